"""Reference photos of a type, as shown beside a result (picked without decoding; decoded on demand)."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
from sqlmodel import select

from app.core.db import Photo, ReferencePerson, session_scope
from app.core.storage import ObjectStore, StorageError, get_store
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
                          url: str | None = None) -> list[ReferencePhoto]:
    """Every reference photo of people of ``type_name`` in a random order without repeats,
    one photo of each person first, then their further photos. Empty when the database is down."""
    rng = rng or random.Random()
    try:
        with session_scope(url) as session:
            rows = list(session.exec(
                select(Photo.id, Photo.object_key, ReferencePerson.pseudonym)
                .join(ReferencePerson, Photo.person_id == ReferencePerson.id)
                .where(Photo.source == "reference", ReferencePerson.type_name == type_name)
                .order_by(Photo.id)
            ))
    except sa.exc.SQLAlchemyError as exc:
        log.warning("reference photos unavailable (%s)", type(exc).__name__)
        return []
    seen: set[str] = set()
    first, rest = [], []
    for photo_id, key, pseudonym in rng.sample(rows, len(rows)):
        (rest if pseudonym in seen else first).append(ReferencePhoto(int(photo_id), key, pseudonym))
        seen.add(pseudonym)
    return first + rest


def reference_images(
    type_name: str,
    k: int = 4,
    rng: random.Random | None = None,
    url: str | None = None,
    store: ObjectStore | None = None,
) -> list[ReferenceImage]:
    """Up to ``k`` decoded reference photos of ``type_name`` (see :func:`pick_reference_photos`).

    Fewer when fewer exist or some cannot be read; never raises (an unreachable database or store
    gives fewer or no images)."""
    picked = pick_reference_photos(type_name, rng, url)
    try:
        store = store or get_store()
    except (StorageError, ValueError):
        return []
    out: list[ReferenceImage] = []
    for ref in picked:
        if len(out) >= k:
            break
        try:
            image = decode_image(store.get(ref.object_key))
        except (StorageError, IntakeError, ValueError) as exc:
            log.warning("reference photo %s skipped (%s)", ref.photo_id, type(exc).__name__)
            continue
        out.append(ReferenceImage(photo_id=ref.photo_id, pseudonym=ref.pseudonym, image=image))
    return out
