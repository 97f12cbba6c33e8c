"""Reviewing region boxes: version-checked saves with an audit trail, review decisions and
conflict resolution. The review queue is :mod:`labeling.queue`; quality figures are
:mod:`labeling.quality`.

Boxes are immutable history (see :class:`app.core.db.RegionBox`): a save writes the photo's boxes
as version ``v + 1`` and bumps ``Photo.boxes_version``. The version check is one statement in
the database::

    UPDATE photo SET boxes_version = v + 1, ... WHERE id = :id AND boxes_version = v

so it holds across sessions, threads and processes: of two saves that both started from
version ``v``, exactly one updates a row; the other gets a :class:`Conflict` carrying both
versions and nothing is written for it. Every successful save writes exactly one
:class:`app.core.db.BoxAudit` row (who, when, before, after) in the same transaction.

Decisions
    ``accept``  the boxes become human-reviewed (``source="human"``); the photo is ``accepted``. Every
                region needs a box or an explicit "not visible" mark (``not_visible``; kept in
                the audit row), so a deleted box cannot slip into the training data unnoticed.
    ``reject``  the photo is unusable for training (a reason is required); it is ``rejected``.
    ``flag``    a second look is needed (a note is optional); it is ``flagged``.
    ``save``    keep the boxes, keep the photo's status (a draft; also used by COCO imports).
A second ``accept`` of an already accepted photo by another annotator is recorded as action
``second_review``; :func:`labeling.quality.annotator_agreement` compares the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlmodel import Session, select

from app.core.db import BoxAudit, Photo, RegionBox, utcnow
from app.core.vocabulary import REGIONS, BoxSource, PhotoSource, ReviewStatus

DECISIONS = ("accept", "reject", "flag", "save")
STATUS_FOR_DECISION = {"accept": ReviewStatus.ACCEPTED, "reject": ReviewStatus.REJECTED, "flag": ReviewStatus.FLAGGED}
#: Coordinates closer than this (pixels) count as unchanged.
SAME_PX = 0.01
#: Boxes may reach this many pixels past the photo's edge (tools round differently).
EDGE_PX = 1.0


class AnnotationError(ValueError):
    """A save that cannot be done as asked (bad boxes, missing reason, unknown photo)."""


class PhotoNotAvailable(AnnotationError):
    """No photo of this id that team tools may use (unknown, or a visitor's photo without
    consent to training; the message does not say which)."""


def team_photo_clause():
    """The photos team tools may open, label, import to and export: reference photos, and
    visitors' photos only where the visitor consented to training use."""
    return sa.or_(Photo.source == PhotoSource.REFERENCE,
                  sa.and_(Photo.source == PhotoSource.VISITOR, Photo.consent_training.is_(True)))


def team_photo(session: Session, photo_id: int, fresh: bool = False) -> Photo:
    """The photo ``photo_id`` if team tools may use it, else :class:`PhotoNotAvailable`."""
    try:
        photo_id = int(photo_id)
    except (TypeError, ValueError):
        raise PhotoNotAvailable(f"no photo {photo_id!r} is open to team tools") from None
    query = select(Photo).where(Photo.id == photo_id, team_photo_clause())
    if fresh:
        query = query.execution_options(populate_existing=True)
    photo = session.exec(query).first()
    if photo is None:
        raise PhotoNotAvailable(f"no photo {photo_id} is open to team tools")
    return photo


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
    #: The boxes at ``expected_version``: what "mine" started from.
    started: dict[str, tuple[float, float, float, float]] | None = None

    ok = False

    def differing_regions(self) -> list[str]:
        return [r for r in REGIONS if not same_box(self.mine.get(r), self.theirs.get(r))]

    def changed_by_me(self) -> list[str]:
        """Regions this annotator changed (moved, drew or deleted) since the version they opened."""
        started = self.started or {}
        return [r for r in REGIONS if not same_box(self.mine.get(r), started.get(r))]

    def default_choice(self) -> dict[str, str]:
        """Per region, what a resolution keeps unless the annotator says otherwise: their own box where
        they changed it, the other person's everywhere else (so an untouched region never undoes the
        other person's fix)."""
        mine = set(self.changed_by_me())
        return {r: "mine" if r in mine else "theirs" for r in REGIONS}


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
        try:
            values = [float(v) for v in box]
        except (TypeError, ValueError):
            values = []
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise AnnotationError(f"the {region} box needs four finite numbers, got {box!r}")
        if min(values) < 0:
            raise AnnotationError(f"the {region} box has a negative coordinate: {box!r}")
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
    not_visible: Iterable[str] = (),
) -> SaveResult | Conflict:
    """Save ``boxes`` (original pixels) as the photo's next version if it is still at
    ``expected_version``; otherwise return a :class:`Conflict` and write nothing.

    Boxes equal to the previous version's keep their source and confidence unless the decision
    is ``accept`` (then every box is human-reviewed); changed or new boxes are ``human``.
    Regions left out are deleted (the new version does not have them); ``accept`` refuses that unless
    each such region is in ``not_visible`` (the annotator's "region not visible" mark). The caller
    commits (``session_scope`` does)."""
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
    unknown = [r for r in not_visible if r not in REGIONS]
    if unknown:
        raise AnnotationError(f"unknown region {unknown[0]!r} marked not visible")
    hidden = [r for r in REGIONS if r in set(not_visible) and r not in mine]
    if decision == "accept":
        absent = [r for r in REGIONS if r not in mine and r not in hidden]
        if absent:
            raise AnnotationError(
                f"accepting needs all three regions: no {' or '.join(absent)} box. Draw it, or mark it "
                "\"not visible\" if the photo does not show it.")

    photo = team_photo(session, photo_id, fresh=True)
    for region, (_x0, _y0, x1, y1) in mine.items():
        if x1 > photo.width + EDGE_PX or y1 > photo.height + EDGE_PX:
            raise AnnotationError(f"the {region} box reaches outside the {photo.width}×{photo.height} photo")
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
    was_accepted_by = _accepted_by(session, photo_id) if before_status == ReviewStatus.ACCEPTED else set()
    if action is None:
        action = decision
        if decision == "accept" and before_status == ReviewStatus.ACCEPTED and was_accepted_by and annotator not in was_accepted_by:
            action = "second_review"
    box_status = STATUS_FOR_DECISION.get(decision, ReviewStatus.PENDING)
    new_rows = []
    for region, box in mine.items():
        old = before.get(region)
        unchanged = old is not None and same_box((old.x0, old.y0, old.x1, old.y1), box)
        if unchanged and decision != "accept":
            source, confidence, who = old.source, old.confidence, old.annotator
        else:
            source, confidence, who = BoxSource.HUMAN, None, annotator
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
        after={**_state(new_rows, new_status, new_note), **({"not_visible": hidden} if hidden else {})}, at=utcnow(),
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
                    audit.annotator if audit else None, audit.at if audit else None, audit.action if audit else None,
                    started=box_map(boxes_at(session, photo_id, expected)))


def merge_choice(conflict: Conflict, choice: Mapping[str, str]) -> dict[str, tuple[float, float, float, float]]:
    """Boxes made of ``mine`` or ``theirs`` per region (``choice[region]`` is "mine" or
    "theirs"; regions not named take :meth:`Conflict.default_choice`). A region absent from the
    chosen side is left out."""
    merged = {}
    default = conflict.default_choice()
    for region in REGIONS:
        side = conflict.mine if choice.get(region, default[region]) == "mine" else conflict.theirs
        if region in side:
            merged[region] = side[region]
    return merged


def resolve_conflict(session: Session, conflict: Conflict, choice: Mapping[str, str], annotator: str,
                     decision: str = "accept", note: str | None = None,
                     not_visible: Iterable[str] = ()) -> SaveResult | Conflict:
    """Save the annotator's per-region choice on top of the version they were shown as
    "theirs"; if yet another save happened meanwhile this is a new Conflict."""
    return save_boxes(session, conflict.photo_id, conflict.current_version, merge_choice(conflict, choice),
                      annotator, decision, note, action=f"resolve_{decision}", not_visible=not_visible)
