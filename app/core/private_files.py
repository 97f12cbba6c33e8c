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
    """Create ``path`` empty as a 0600 file, or tighten an existing file of ours to 0600."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path
