"""Reviewing region boxes: the review queue, version-checked saves with an audit trail, review
decisions and quality figures.

Boxes are immutable history (see :class:`app.core.db.RegionBox`): a save writes the photo's boxes
as version ``v + 1`` and bumps ``Photo.boxes_version``. The version check is one statement in
the database::

    UPDATE photo SET boxes_version = v + 1, ... WHERE id = :id AND boxes_version = v

so it holds across sessions, threads and processes: of two saves that both started from
version ``v``, exactly one updates a row; the other gets a :class:`Conflict` carrying both
versions and nothing is written for it. Every successful save writes exactly one
:class:`app.core.db.BoxAudit` row (who, when, before, after) in the same transaction.

Decisions
    ``accept``  the boxes become human-reviewed (``source="human"``); the photo is ``accepted``.
    ``reject``  the photo is unusable for training (a reason is required); it is ``rejected``.
    ``flag``    a second look is needed (a note is optional); it is ``flagged``.
    ``save``    keep the boxes, keep the photo's status (a draft; also used by COCO imports).
A second ``accept`` of an already accepted photo by another annotator is recorded as action
``second_review``; :func:`annotator_agreement` compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlmodel import Session, func, select

from app.core.db import BoxAudit, Photo, ReferencePerson, RegionBox, utcnow
from app.core.vocabulary import REGIONS
from models.geometry import box_iou

DECISIONS = ("accept", "reject", "flag", "save")
STATUS_FOR_DECISION = {"accept": "accepted", "reject": "rejected", "flag": "flagged"}
REVIEW_STATUSES = ("pending", "flagged", "accepted", "rejected")
#: Coordinates closer than this (pixels) count as unchanged.
SAME_PX = 0.01


class AnnotationError(ValueError):
    """A save that cannot be done as asked (bad boxes, missing reason, unknown photo)."""


@dataclass(frozen=True)
class BoxState:
    """One region box as saved: original pixels plus provenance."""

    region: str
    box: tuple[float, float, float, float]
    source: str = "human"
    confidence: float | None = None
    annotator: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"region": self.region, "box": list(self.box), "source": self.source,
                "confidence": self.confidence, "annotator": self.annotator}


@dataclass(frozen=True)
class SaveResult:
    photo_id: int
    version: int
    action: str
    review_status: str
    boxes: dict[str, tuple[float, float, float, float]]
    audit_id: int

    ok = True


@dataclass(frozen=True)
class Conflict:
    """Someone saved the photo since ``expected_version``; nothing was written."""

    photo_id: int
    expected_version: int
    current_version: int
    mine: dict[str, tuple[float, float, float, float]]
    theirs: dict[str, tuple[float, float, float, float]]
    theirs_status: str
    theirs_annotator: str | None = None
    theirs_at: datetime | None = None
    theirs_action: str | None = None

    ok = False

    def differing_regions(self) -> list[str]:
        return [r for r in REGIONS if not same_box(self.mine.get(r), self.theirs.get(r))]


# ----------------------------------------------------------------------------- helpers


def same_box(a, b, tolerance: float = SAME_PX) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return all(abs(float(x) - float(y)) <= tolerance for x, y in zip(a, b))


def normalize_boxes(boxes: Mapping[str, Iterable[float]]) -> dict[str, tuple[float, float, float, float]]:
    """Check and normalize ``{region: [x0, y0, x1, y1]}`` (regions known, corners ordered)."""
    out = {}
    for region, box in boxes.items():
        if region not in REGIONS:
            raise AnnotationError(f"unknown region {region!r}; regions are {', '.join(REGIONS)}")
        values = [float(v) for v in box]
        if len(values) != 4 or any(v != v for v in values):
            raise AnnotationError(f"the {region} box needs four numbers, got {box!r}")
        x0, y0, x1, y1 = values
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            raise AnnotationError(f"the {region} box is empty")
        out[region] = (x0, y0, x1, y1)
    return {r: out[r] for r in REGIONS if r in out}


def boxes_at(session: Session, photo_id: int, version: int) -> list[RegionBox]:
    return list(session.exec(
        select(RegionBox).where(RegionBox.photo_id == photo_id, RegionBox.version == version).order_by(RegionBox.region)
    ))


def box_map(rows: Iterable[RegionBox]) -> dict[str, tuple[float, float, float, float]]:
    return {r.region: (r.x0, r.y0, r.x1, r.y1) for r in sorted(rows, key=lambda r: REGIONS.index(r.region) if r.region in REGIONS else 99)}


def _state(rows: Iterable[RegionBox], photo_status: str | None, note: str | None) -> dict[str, Any]:
    return {
        "review_status": photo_status,
        "review_note": note,
        "boxes": {r.region: {"box": [r.x0, r.y0, r.x1, r.y1], "source": r.source, "confidence": r.confidence,
                             "annotator": r.annotator} for r in rows},
    }


def last_audit(session: Session, photo_id: int) -> BoxAudit | None:
    return session.exec(
        select(BoxAudit).where(BoxAudit.photo_id == photo_id).order_by(BoxAudit.to_version.desc(), BoxAudit.id.desc())
    ).first()


# ----------------------------------------------------------------------------- save


def save_boxes(
    session: Session,
    photo_id: int,
    expected_version: int,
    boxes: Mapping[str, Iterable[float]],
    annotator: str,
    decision: str = "accept",
    note: str | None = None,
    action: str | None = None,
) -> SaveResult | Conflict:
    """Save ``boxes`` (original pixels) as the photo's next version if it is still at
    ``expected_version``; otherwise return a :class:`Conflict` and write nothing.

    Boxes equal to the previous version's keep their source and confidence unless the decision
    is ``accept`` (then every box is human-reviewed); changed or new boxes are ``human``.
    Regions left out are deleted (the new version does not have them). The caller commits
    (``session_scope`` does)."""
    annotator = (annotator or "").strip()
    if not annotator:
        raise AnnotationError("an annotator name is needed to save")
    if decision not in DECISIONS:
        raise AnnotationError(f"decision must be one of {DECISIONS}, not {decision!r}")
    note = (note or "").strip() or None
    if decision == "reject" and not note:
        raise AnnotationError("rejecting a photo needs a reason")
    mine = normalize_boxes(boxes)
    if decision == "accept" and not mine:
        raise AnnotationError("a photo cannot be accepted without boxes; reject it instead")

    photo = session.exec(
        select(Photo).where(Photo.id == photo_id).execution_options(populate_existing=True)
    ).first()
    if photo is None:
        raise AnnotationError(f"no photo {photo_id}")
    before_status, before_note = photo.review_status, photo.review_note
    new_status = STATUS_FOR_DECISION.get(decision, before_status)
    new_note = note if decision in ("reject", "flag") else (note or (None if decision == "accept" else before_note))
    new_version = int(expected_version) + 1

    # The version check, in the database. Nothing is written unless exactly this row moves on.
    updated = session.execute(
        sa.update(Photo)
        .where(Photo.id == photo_id, Photo.boxes_version == int(expected_version))
        .values(boxes_version=new_version, review_status=new_status, review_note=new_note)
        .execution_options(synchronize_session=False)
    )
    if updated.rowcount != 1:
        session.expire(photo)
        return _conflict(session, photo_id, int(expected_version), mine)
    session.expire(photo)

    before_rows = boxes_at(session, photo_id, int(expected_version))
    before = {r.region: r for r in before_rows}
    was_accepted_by = _accepted_by(session, photo_id) if before_status == "accepted" else set()
    if action is None:
        action = decision
        if decision == "accept" and before_status == "accepted" and was_accepted_by and annotator not in was_accepted_by:
            action = "second_review"
    box_status = {"accept": "accepted", "reject": "rejected", "flag": "flagged"}.get(decision, "pending")
    new_rows = []
    for region, box in mine.items():
        old = before.get(region)
        unchanged = old is not None and same_box((old.x0, old.y0, old.x1, old.y1), box)
        if unchanged and decision != "accept":
            source, confidence, who = old.source, old.confidence, old.annotator
        else:
            source, confidence, who = "human", None, annotator
            if unchanged:
                box = (old.x0, old.y0, old.x1, old.y1)
        row = RegionBox(photo_id=photo_id, version=new_version, region=region, x0=box[0], y0=box[1],
                        x1=box[2], y1=box[3], source=source, confidence=confidence, annotator=who,
                        review_status=box_status)
        session.add(row)
        new_rows.append(row)
    audit = BoxAudit(
        photo_id=photo_id, annotator=annotator, action=action, from_version=int(expected_version),
        to_version=new_version, before=_state(before_rows, before_status, before_note),
        after=_state(new_rows, new_status, new_note), at=utcnow(),
    )
    session.add(audit)
    session.flush()
    return SaveResult(photo_id, new_version, action, new_status, box_map(new_rows), int(audit.id))


def _accepted_by(session: Session, photo_id: int) -> set[str]:
    return set(session.exec(
        select(BoxAudit.annotator).where(BoxAudit.photo_id == photo_id, BoxAudit.action.in_(("accept", "second_review")))
    ))


def _conflict(session: Session, photo_id: int, expected: int, mine) -> Conflict:
    current = session.exec(select(Photo.boxes_version, Photo.review_status).where(Photo.id == photo_id)).one()
    theirs = box_map(boxes_at(session, photo_id, current[0]))
    audit = last_audit(session, photo_id)
    return Conflict(photo_id, expected, int(current[0]), mine, theirs, current[1],
                    audit.annotator if audit else None, audit.at if audit else None, audit.action if audit else None)


def merge_choice(conflict: Conflict, choice: Mapping[str, str]) -> dict[str, tuple[float, float, float, float]]:
    """Boxes made of ``mine`` or ``theirs`` per region (``choice[region]`` is "mine" or
    "theirs"; regions not named take theirs). A region absent from the chosen side is left out."""
    merged = {}
    for region in REGIONS:
        side = conflict.mine if choice.get(region, "theirs") == "mine" else conflict.theirs
        if region in side:
            merged[region] = side[region]
    return merged


def resolve_conflict(session: Session, conflict: Conflict, choice: Mapping[str, str], annotator: str,
                     decision: str = "accept", note: str | None = None) -> SaveResult | Conflict:
    """Save the annotator's per-region choice on top of the version they were shown as
    "theirs"; if yet another save happened meanwhile this is a new Conflict."""
    return save_boxes(session, conflict.photo_id, conflict.current_version, merge_choice(conflict, choice),
                      annotator, decision, note, action=f"resolve_{decision}")


# ----------------------------------------------------------------------------- queue


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


def review_queue(
    session: Session,
    statuses: Sequence[str] = ("pending",),
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
        .where(Photo.source == "reference")
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
                  None if c is None else float(c), p.width, p.height)
        for p, key, pseudonym, c in session.exec(query)
    ]


def queue_count(session: Session, statuses: Sequence[str] = ("pending",), person_id: int | None = None,
                annotator: str | None = None, exclude_annotator: str | None = None) -> int:
    return len(review_queue(session, statuses, person_id, annotator, exclude_annotator))


def status_counts(session: Session) -> dict[str, int]:
    rows = session.exec(
        select(Photo.review_status, func.count()).where(Photo.source == "reference").group_by(Photo.review_status)
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


# ----------------------------------------------------------------------------- quality


def _audit_boxes(state: Any) -> dict[str, list[float]]:
    return {r: v["box"] for r, v in ((state or {}).get("boxes") or {}).items()}


def auto_vs_human_iou(session: Session) -> dict[str, dict[str, float]]:
    """Per region: mean IoU between a photo's first auto box and its current human box, over
    photos whose current version has a human box of that region."""
    first_auto: dict[tuple[int, str], RegionBox] = {}
    for row in session.exec(select(RegionBox).where(RegionBox.source == "auto").order_by(RegionBox.version)):
        first_auto.setdefault((row.photo_id, row.region), row)
    current = session.exec(
        select(RegionBox).join(Photo, sa.and_(Photo.id == RegionBox.photo_id, Photo.boxes_version == RegionBox.version))
        .where(RegionBox.source == "human", Photo.review_status != "rejected")
    )
    values: dict[str, list[float]] = {r: [] for r in REGIONS}
    for row in current:
        auto = first_auto.get((row.photo_id, row.region))
        if auto is not None and row.region in values:
            values[row.region].append(box_iou(auto.as_list(), row.as_list()))
    return {r: {"photos": len(v), "mean_iou": (sum(v) / len(v)) if v else None} for r, v in values.items()}


def box_shift(before: Mapping[str, Iterable[float]], after: Mapping[str, Iterable[float]]) -> list[float]:
    """Per region present in both: mean absolute corner displacement in pixels."""
    shifts = []
    for region, a in after.items():
        b = before.get(region)
        if b is not None:
            shifts.append(sum(abs(float(x) - float(y)) for x, y in zip(a, b)) / 4.0)
    return shifts


def annotator_stats(session: Session) -> list[dict[str, Any]]:
    """Per annotator: saves, distinct photos, decisions, and how far boxes were moved
    (mean absolute corner shift in pixels per region box, and the largest)."""
    stats: dict[str, dict[str, Any]] = {}
    for audit in session.exec(select(BoxAudit).order_by(BoxAudit.id)):
        s = stats.setdefault(audit.annotator, {"annotator": audit.annotator, "saves": 0, "photos": set(),
                                                "accepted": 0, "rejected": 0, "flagged": 0, "shifts": []})
        s["saves"] += 1
        s["photos"].add(audit.photo_id)
        status = (audit.after or {}).get("review_status")
        if status in ("accepted", "rejected", "flagged"):
            s[status] += 1
        s["shifts"] += box_shift(_audit_boxes(audit.before), _audit_boxes(audit.after))
    out = []
    for s in stats.values():
        shifts = s.pop("shifts")
        s["photos"] = len(s["photos"])
        s["mean_shift_px"] = (sum(shifts) / len(shifts)) if shifts else 0.0
        s["max_shift_px"] = max(shifts) if shifts else 0.0
        s["boxes_moved"] = sum(1 for v in shifts if v > SAME_PX)
        out.append(s)
    return sorted(out, key=lambda s: s["annotator"])


@dataclass
class Agreement:
    photos: int = 0
    per_region: dict[str, dict[str, float | None]] = field(default_factory=dict)
    decision_agreement: float | None = None
    pairs: list[dict[str, Any]] = field(default_factory=list)


def annotator_agreement(session: Session) -> Agreement:
    """Where two (or more) annotators each reviewed a photo (accept, reject or flag), compare
    each annotator's last decision on it: per region mean IoU between their boxes, and how
    often they made the same decision. Pairs are counted per photo and annotator pair."""
    last: dict[int, dict[str, BoxAudit]] = {}
    for audit in session.exec(select(BoxAudit).order_by(BoxAudit.id)):
        if (audit.after or {}).get("review_status") in ("accepted", "rejected", "flagged") and audit.action != "save":
            last.setdefault(audit.photo_id, {})[audit.annotator] = audit
    ious: dict[str, list[float]] = {r: [] for r in REGIONS}
    same, pairs, photos = 0, [], 0
    for photo_id, by in last.items():
        names = sorted(by)
        if len(names) < 2:
            continue
        photos += 1
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                sa_, sb = by[a].after or {}, by[b].after or {}
                ba, bb = _audit_boxes(sa_), _audit_boxes(sb)
                pair = {"photo_id": photo_id, "annotators": f"{a} / {b}",
                        "same_decision": sa_.get("review_status") == sb.get("review_status")}
                same += pair["same_decision"]
                for region in REGIONS:
                    if region in ba and region in bb:
                        value = box_iou(ba[region], bb[region])
                        ious[region].append(value)
                        pair[f"{region}_iou"] = round(value, 4)
                pairs.append(pair)
    per_region = {r: {"pairs": len(v), "mean_iou": (sum(v) / len(v)) if v else None} for r, v in ious.items()}
    return Agreement(photos, per_region, (same / len(pairs)) if pairs else None, pairs)
