"""Reference photos of a type, as shown beside a result (picked without decoding; decoded on demand)."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
from sqlmodel import select

from app.core.db import Photo, ReferencePerson, session_scope
from app.core.settings import get_settings
from app.core.storage import ObjectNotFound, ObjectStore, StorageError, get_visitor_store
from app.core.vocabulary import PhotoSource
from models.intake import IntakeError, decode_image

log = logging.getLogger(__name__)


@dataclass
class ReferenceImage:
    photo_id: int
    pseudonym: str
    image: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class ReferencePhoto:
    photo_id: int
    object_key: str
    pseudonym: str


def pick_reference_photos(type_name: str, rng: random.Random | None = None,
                          url: str | None = None, raise_errors: bool = False) -> list[ReferencePhoto]:
    """Every reference photo of people of ``type_name`` in a random order without repeats,
    one photo of each person first, then their further photos. Empty when the database is down
    (or, with ``raise_errors``, its SQLAlchemyError)."""
    rng = rng or random.Random()
    try:
        with session_scope(url) as session:
            rows = list(session.exec(
                select(Photo.id, Photo.object_key, ReferencePerson.pseudonym)
                .join(ReferencePerson, Photo.person_id == ReferencePerson.id)
                .where(Photo.source == PhotoSource.REFERENCE, ReferencePerson.type_name == type_name)
                .order_by(Photo.id)
            ))
    except sa.exc.SQLAlchemyError as exc:
        log.warning("reference photos unavailable (%s)", type(exc).__name__)
        if raise_errors:
            raise
        return []
    seen: set[str] = set()
    first, rest = [], []
    for photo_id, key, pseudonym in rng.sample(rows, len(rows)):
        (rest if pseudonym in seen else first).append(ReferencePhoto(int(photo_id), key, pseudonym))
        seen.add(pseudonym)
    return first + rest


class ReferenceImages(list):
    """The decoded reference photos (a list of :class:`ReferenceImage`), and ``missing``: a
    sentence for the visitor when some could not be shown because a part of the service is down."""

    missing: str | None = None


STORE_DOWN = "Reference photos cannot be shown right now: the photo store is not answering."
STORE_SLOW = "Some reference photos are not shown: the photo store is answering too slowly."
DATABASE_DOWN = "Reference photos cannot be shown right now: the database is not answering."


def reference_images(
    type_name: str,
    k: int = 4,
    rng: random.Random | None = None,
    url: str | None = None,
    store: ObjectStore | None = None,
    deadline_s: float | None = None,
) -> ReferenceImages:
    """Up to ``k`` decoded reference photos of ``type_name`` (see :func:`pick_reference_photos`).

    Only the photos it shows are fetched: a photo that is missing or unreadable is replaced by the
    next, but the first store failure (unreachable, timed out) ends the search, and so does the
    deadline (``visitor_deadline_s``). Never raises; ``missing`` on the result says what is down."""
    out = ReferenceImages()
    settings = get_settings()
    deadline = time.monotonic() + (settings.visitor_deadline_s if deadline_s is None else deadline_s)
    try:
        picked = pick_reference_photos(type_name, rng, url, raise_errors=True)
    except sa.exc.SQLAlchemyError:
        out.missing = DATABASE_DOWN
        return out
    try:
        store = store or get_visitor_store()
    except (StorageError, ValueError):
        out.missing = STORE_DOWN
        return out
    for ref in picked:
        if len(out) >= k:
            break
        if time.monotonic() > deadline:
            log.warning("reference photos: deadline passed after %d of %d", len(out), k)
            out.missing = STORE_SLOW
            break
        try:
            image = decode_image(store.get(ref.object_key))
        except (ObjectNotFound, IntakeError, ValueError) as exc:
            log.warning("reference photo %s skipped (%s)", ref.photo_id, type(exc).__name__)
            continue
        except StorageError as exc:
            log.warning("reference photos: store unavailable (%s)", type(exc).__name__)
            out.missing = STORE_DOWN
            break
        out.append(ReferenceImage(photo_id=ref.photo_id, pseudonym=ref.pseudonym, image=image))
    return out
