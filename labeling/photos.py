"""Reference photos into the project: stored once (by sha256), checked by the face gate and
auto-labeled with the three region boxes as version 1 of the photo's boxes."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

from sqlmodel import Session, select

from app.core import auth
from app.core.db import Photo, ReferencePerson, RegionBox, session_scope
from app.core.settings import get_settings
from app.core.storage import ObjectStore, get_store
from app.core.vocabulary import BoxSource, PhotoSource
from labeling.annotations import team_photo
from models.gate import FaceGate, get_face_gate
from models.intake import IntakeError, decode_image, photo_file_type

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportOutcome:
    filename: str
    status: str  # "added", "duplicate" or "skipped"
    reason: str | None = None
    message: str = ""
    photo_id: int | None = None


def import_reference_photo(
    session: Session,
    store: ObjectStore,
    person: ReferencePerson,
    data: bytes,
    filename: str,
    gate: FaceGate | None = None,
) -> ImportOutcome:
    """Store one photo of ``person`` with its auto boxes, unless it is already stored or unusable.

    The object is written before the rows; if the rows cannot be written the object is removed,
    so no object is left without a row.
    """
    digest = hashlib.sha256(data).hexdigest()
    existing = session.exec(select(Photo).where(Photo.source == PhotoSource.REFERENCE, Photo.sha256 == digest)).first()
    if existing is not None:
        owner = session.get(ReferencePerson, existing.person_id) if existing.person_id else None
        whose = f"{owner.person_key} ({owner.pseudonym})" if owner else "no person"
        elsewhere = "" if owner is not None and owner.id == person.id else ", not the person you chose"
        return ImportOutcome(filename, "duplicate", message=f"already stored as photo {existing.id} of {whose}{elsewhere}",
                             photo_id=existing.id)
    try:
        image = decode_image(data)
    except IntakeError as error:
        return ImportOutcome(filename, "skipped", error.reason, error.message)
    result = (gate or get_face_gate()).check(image)
    if not result.ok:
        return ImportOutcome(filename, "skipped", result.reason, result.message)

    extension, content_type = photo_file_type(data)
    key = f"reference/{person.id}/{digest[:32]}.{extension}"
    store.put(key, data, content_type)
    try:
        photo = Photo(
            object_key=key,
            size_bytes=len(data),
            sha256=digest,
            width=image.shape[1],
            height=image.shape[0],
            source=PhotoSource.REFERENCE,
            original_name=PurePosixPath(filename.replace("\\", "/")).name[:255] or None,
            person_id=person.id,
            boxes_version=1,
        )
        session.add(photo)
        session.flush()
        for region, box in result.regions.items():
            session.add(
                RegionBox(
                    photo_id=photo.id, version=1, region=region,
                    x0=box.x0, y0=box.y0, x1=box.x1, y1=box.y1,
                    source=BoxSource.AUTO, confidence=box.confidence,
                )
            )
        session.flush()
    except Exception:
        store.delete(key)
        raise
    return ImportOutcome(filename, "added", photo_id=photo.id)


def team_photo_bytes(photo_id: int, url: str | None = None, store: ObjectStore | None = None) -> tuple[Photo, bytes]:
    """A photo's row and file for team tools (the Labeling canvas and previews): only photos
    :func:`labeling.annotations.team_photo` allows; :class:`PhotoNotAvailable` for any other id."""
    with session_scope(url) as session:
        photo = team_photo(session, photo_id)
    return photo, (store or get_store()).get(photo.object_key)


class BatchTooLarge(ValueError):
    """More files than ``settings.max_batch_files`` in one import."""


class NoSuchPerson(ValueError):
    """The import names no reference person, or one that does not exist: photos are never filed by default."""


class FileTooLarge(ValueError):
    """A file over ``settings.max_upload_mb``."""


#: Why the server-folder walk leaves an entry out -> how the page names such entries (one, several).
FOLDER_SKIP_REASONS = {
    "hidden_file": ("hidden file", "hidden files", "the name starts with a dot"),
    "hidden_folder": ("hidden folder", "hidden folders", "not opened"),
    "link": ("symbolic link", "symbolic links", "never followed"),
    "not_a_file": ("pipe or device", "pipes or devices", "not a regular file"),
}


@dataclass(frozen=True)
class ServerFolder:
    """What the walk of a server folder found: the files to import, and how many entries it left out per
    reason (:data:`FOLDER_SKIP_REASONS`), so the page can say so instead of leaving them out silently."""

    files: list[tuple[str, Path]]
    skipped: dict[str, int]

    def skipped_summary(self) -> str:
        """E.g. "2 hidden files (the name starts with a dot), 1 symbolic link (never followed)"; "" for none."""
        return ", ".join(f"{n} {one if n == 1 else several} ({why})"
                         for reason, (one, several, why) in FOLDER_SKIP_REASONS.items() if (n := self.skipped.get(reason)))


def server_folder_files(folder: str | Path, limit: int | None = None) -> ServerFolder:
    """The photo files under a folder on the server, for an admin's import: regular files only,
    hidden ones skipped, sorted; symbolic links are never followed (a link could lead anywhere
    the app's process may read). Each entry left out is counted by reason. Stops walking at the limit
    (``max_batch_files``) and raises :class:`BatchTooLarge` instead of listing a whole tree."""
    limit = get_settings().max_batch_files if limit is None else limit
    root = Path(folder).expanduser()
    if root.is_symlink() or not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder on the server")
    found: list[tuple[str, Path]] = []
    skipped = dict.fromkeys(FOLDER_SKIP_REASONS, 0)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        kept = []
        for name in sorted(dirnames):  # os.walk lists a link to a folder among the folders
            if (Path(dirpath) / name).is_symlink():
                skipped["link"] += 1
            elif name.startswith("."):
                skipped["hidden_folder"] += 1
            else:
                kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink():
                skipped["link"] += 1
            elif name.startswith("."):
                skipped["hidden_file"] += 1
            elif not path.is_file():
                skipped["not_a_file"] += 1
            else:
                found.append((str(path), path))
                if len(found) > limit:
                    raise BatchTooLarge(
                        f"{root} holds more than the {limit} files allowed in one import (setting "
                        "FACETYPE_MAX_BATCH_FILES); import a smaller folder.")
    return ServerFolder(found, {reason: n for reason, n in skipped.items() if n})


def read_server_file(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes, at most ``max_bytes + 1`` of them read; a symbolic link, a device
    or a pipe is refused (OSError) without reading."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        return f.read(max_bytes + 1)


def import_reference_batch(
    person_id: int | None,
    files: Sequence[tuple[str, bytes | Path]],
    progress: Callable[[int, int, str], None] | None = None,
    url: str | None = None,
    store: ObjectStore | None = None,
    *,
    account: auth.Account | None,
) -> list[ImportOutcome]:
    """Import photos (bytes, or paths read one at a time) for one reference person, each in its own
    transaction, so one bad file never stops the batch. ``progress(done, total, name)`` after each.
    ``account`` must be allowed to import photos (a lead); files given as paths on the server need an admin."""
    auth.require(account, "import_photos")
    if any(isinstance(source, Path) for _, source in files):
        auth.require(account, "import_server_folder")
    limit = get_settings().max_batch_files
    if len(files) > limit:
        raise BatchTooLarge(
            f"{len(files)} files is more than the {limit} allowed in one import (setting "
            "FACETYPE_MAX_BATCH_FILES); import them in smaller batches."
        )
    if person_id is None:
        raise NoSuchPerson("choose the person these photos show; photos are never filed under a default person")
    with session_scope(url) as session:
        if session.get(ReferencePerson, person_id) is None:
            raise NoSuchPerson(f"there is no reference person {person_id}")
    store = store or get_store()
    max_bytes = get_settings().max_upload_mb * 1024 * 1024
    outcomes = []
    for done, (name, source) in enumerate(files, start=1):
        try:
            data = read_server_file(source, max_bytes) if isinstance(source, Path) else source
            if len(data) > max_bytes:
                raise FileTooLarge(f"larger than {max_bytes // (1024 * 1024)} MB (setting FACETYPE_MAX_UPLOAD_MB)")
            with session_scope(url) as session:
                person = session.get(ReferencePerson, person_id)
                outcomes.append(import_reference_photo(session, store, person, data, name))
        except FileTooLarge as error:
            outcomes.append(ImportOutcome(name, "skipped", "too_large", str(error)))
        except OSError as error:
            outcomes.append(ImportOutcome(name, "skipped", "unreadable", str(error)))
        except Exception as error:  # one bad file must not stop the batch
            log.exception("import of one reference photo failed")
            outcomes.append(ImportOutcome(name, "skipped", "error", str(error)[:300]))
        if progress:
            progress(done, len(files), name)
    return outcomes
