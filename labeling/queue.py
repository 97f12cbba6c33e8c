"""The review queue: reference photos by review status, lowest auto-label confidence first;
counts per status, the annotators and the audit trail (see :mod:`labeling.annotations` for saves)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import sqlalchemy as sa
from sqlmodel import Session, func, select

from app.core.db import BoxAudit, Photo, ReferencePerson, RegionBox
from app.core.vocabulary import PhotoSource, ReviewStatus

REVIEW_STATUSES = tuple(s.value for s in ReviewStatus)


@dataclass(frozen=True)
class QueueItem:
    photo_id: int
    person_id: int | None
    person_key: str | None
    pseudonym: str | None
    review_status: str
    boxes_version: int
    min_confidence: float | None
    width: int
    height: int
    object_key: str | None = None


def review_queue(
    session: Session,
    statuses: Sequence[str] = (ReviewStatus.PENDING,),
    person_id: int | None = None,
    annotator: str | None = None,
    exclude_annotator: str | None = None,
    limit: int | None = None,
) -> list[QueueItem]:
    """Reference photos in ``statuses``, lowest auto-label confidence first (photos without
    boxes first of all, then by id). ``annotator``: only photos that annotator saved;
    ``exclude_annotator``: leave out photos that annotator saved (for second reviews)."""
    conf = (
        select(RegionBox.photo_id.label("pid"), func.min(RegionBox.confidence).label("conf"))
        .join(Photo, sa.and_(Photo.id == RegionBox.photo_id, Photo.boxes_version == RegionBox.version))
        .group_by(RegionBox.photo_id)
        .subquery()
    )
    query = (
        select(Photo, ReferencePerson.person_key, ReferencePerson.pseudonym, conf.c.conf)
        .join(ReferencePerson, ReferencePerson.id == Photo.person_id, isouter=True)
        .join(conf, conf.c.pid == Photo.id, isouter=True)
        .where(Photo.source == PhotoSource.REFERENCE)
    )
    if statuses:
        query = query.where(Photo.review_status.in_(list(statuses)))
    if person_id is not None:
        query = query.where(Photo.person_id == person_id)
    if annotator:
        query = query.where(Photo.id.in_(select(BoxAudit.photo_id).where(BoxAudit.annotator == annotator)))
    if exclude_annotator:
        query = query.where(Photo.id.not_in(select(BoxAudit.photo_id).where(BoxAudit.annotator == exclude_annotator)))
    query = query.order_by(sa.case((conf.c.conf.is_(None), 0), else_=1), conf.c.conf, Photo.id)
    if limit:
        query = query.limit(limit)
    return [
        QueueItem(p.id, p.person_id, key, pseudonym, p.review_status, p.boxes_version,
                  None if c is None else float(c), p.width, p.height, p.object_key)
        for p, key, pseudonym, c in session.exec(query)
    ]


def queue_count(session: Session, statuses: Sequence[str] = (ReviewStatus.PENDING,), person_id: int | None = None,
                annotator: str | None = None, exclude_annotator: str | None = None) -> int:
    return len(review_queue(session, statuses, person_id, annotator, exclude_annotator))


def status_counts(session: Session) -> dict[str, int]:
    rows = session.exec(
        select(Photo.review_status, func.count()).where(Photo.source == PhotoSource.REFERENCE).group_by(Photo.review_status)
    )
    counts = {s: 0 for s in REVIEW_STATUSES}
    counts.update({s: int(n) for s, n in rows})
    return counts


def annotators(session: Session) -> list[str]:
    return sorted(set(session.exec(select(BoxAudit.annotator).distinct())))


def audit_trail(session: Session, photo_id: int | None = None, limit: int | None = None) -> list[BoxAudit]:
    query = select(BoxAudit).order_by(BoxAudit.at.desc(), BoxAudit.id.desc())
    if photo_id is not None:
        query = query.where(BoxAudit.photo_id == photo_id)
    if limit:
        query = query.limit(limit)
    return list(session.exec(query))
