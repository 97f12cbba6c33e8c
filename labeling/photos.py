"""Reference photos into the project: stored once (by sha256), checked by the face gate and
auto-labeled with the three region boxes as version 1 of the photo's boxes."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from sqlmodel import Session, select

from app.core.db import Photo, ReferencePerson, RegionBox, session_scope
from app.core.settings import get_settings
from app.core.storage import ObjectStore, get_store
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
    existing = session.exec(select(Photo).where(Photo.source == "reference", Photo.sha256 == digest)).first()
    if existing is not None:
        return ImportOutcome(filename, "duplicate", message="already stored", photo_id=existing.id)
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
            source="reference",
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
                    source="auto", confidence=box.confidence,
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


def import_reference_batch(
    person_id: int,
    files: Sequence[tuple[str, bytes | Path]],
    progress: Callable[[int, int, str], None] | None = None,
    url: str | None = None,
    store: ObjectStore | None = None,
) -> list[ImportOutcome]:
    """Import photos (bytes, or paths read one at a time) for one reference person, each in its own
    transaction, so one bad file never stops the batch. ``progress(done, total, name)`` after each."""
    limit = get_settings().max_batch_files
    if len(files) > limit:
        raise BatchTooLarge(
            f"{len(files)} files is more than the {limit} allowed in one import (setting "
            "FACETYPE_MAX_BATCH_FILES); import them in smaller batches."
        )
    store = store or get_store()
    outcomes = []
    for done, (name, source) in enumerate(files, start=1):
        try:
            data = source.read_bytes() if isinstance(source, Path) else source
            with session_scope(url) as session:
                person = session.get(ReferencePerson, person_id)
                outcomes.append(import_reference_photo(session, store, person, data, name))
        except OSError as error:
            outcomes.append(ImportOutcome(name, "skipped", "unreadable", str(error)))
        except Exception as error:  # one bad file must not stop the batch
            log.exception("import of one reference photo failed")
            outcomes.append(ImportOutcome(name, "skipped", "error", str(error)[:300]))
        if progress:
            progress(done, len(files), name)
    return outcomes
