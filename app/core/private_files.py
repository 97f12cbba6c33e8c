"""Folders and files of the app's own data (``var/``: the SQLite database, the folder store) that
only the app's user may read: folders 0700, files 0600, whatever the umask."""

from __future__ import annotations

import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(path: Path) -> Path:
    """Create ``path`` and its missing parents as 0700 folders (existing parents are left alone)."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:  # made meanwhile by another process
            continue
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty as a 0600 file, or tighten an existing file of ours to 0600.

    An existing file is never opened here: closing any descriptor of a file drops every POSIX lock
    this process holds on it, so opening and closing a live SQLite database beside the process's
    own connections would release their locks, and another process could then recover or reset
    the write-ahead log under them (writes of one process invisible to the other)."""
    path = Path(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        status = os.stat(path)
        if status.st_uid == os.geteuid() and status.st_mode & 0o777 != FILE_MODE:
            os.chmod(path, FILE_MODE)
    return path
