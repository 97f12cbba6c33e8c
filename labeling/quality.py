"""Quality figures of the box review: auto vs human boxes (IoU), per-annotator statistics (how far
they moved boxes, their decisions) and agreement between annotators who reviewed the same photo.

Read from the immutable box versions and the audit trail written by :mod:`labeling.annotations`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlmodel import Session, select

from app.core.db import BoxAudit, Photo, RegionBox
from app.core.vocabulary import REGIONS, BoxSource, ReviewStatus
from labeling.annotations import SAME_PX
from models.geometry import box_iou


def _audit_boxes(state: Any) -> dict[str, list[float]]:
    return {r: v["box"] for r, v in ((state or {}).get("boxes") or {}).items()}


def auto_vs_human_iou(session: Session) -> dict[str, dict[str, float]]:
    """Per region: mean IoU between a photo's first auto box and its current human box, over
    photos whose current version has a human box of that region."""
    first_auto: dict[tuple[int, str], RegionBox] = {}
    for row in session.exec(select(RegionBox).where(RegionBox.source == BoxSource.AUTO).order_by(RegionBox.version)):
        first_auto.setdefault((row.photo_id, row.region), row)
    current = session.exec(
        select(RegionBox).join(Photo, sa.and_(Photo.id == RegionBox.photo_id, Photo.boxes_version == RegionBox.version))
        .where(RegionBox.source == BoxSource.HUMAN, Photo.review_status != ReviewStatus.REJECTED)
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
