"""Model-assisted labeling (what Label Studio's ML backend does): the served model's own boxes for
queued photos, offered on the Labeling canvas as pre-annotations, and two orders of the queue.

Only a kind that places boxes itself (``places_boxes``: the ``detector``) has boxes to offer; with
a ``head`` served, :func:`assist_state` says why there is nothing. Per photo and served model a
:class:`~app.core.db.BoxSuggestion` row keeps, for the photo's current boxes version:

``regions``       the model's best box per region it found, with its detection score and type
                  probabilities (a region it did not find is absent);
``uncertainty``   1 − min over the three regions of (detection score × top type probability): the
                  least sure region decides; a region not found counts as certainty 0;
``disagreement``  1 − mean IoU between the model's and the photo's current boxes over the three
                  regions (a region missing on either side counts IoU 0). Version 1 of a photo's
                  boxes is the landmark auto-labels, so on untouched photos this is the
                  disagreement with the landmark boxes.

Rows are written by :func:`suggest_for_queue` (``python -m labeling.assist``, which the training
worker runs after a detector is promoted; see :mod:`models.worker`) and, for the photo being
opened, by :func:`suggestion_for` on the Labeling page; ordering only reads them. When a photo's
boxes are saved its next version reuses the stored prediction (no model run) and only the
disagreement is measured again.

Annotators' corrections feed the next run: "Use the model's boxes" only puts them on the canvas,
like any edit; what the annotator then saves (Accept) becomes a human version of the photo's boxes,
and training takes each photo's newest human version (:func:`models.training.data.choose_boxes`).
An unsaved suggestion never reaches training.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from sqlmodel import Session, select

from app.core.db import BoxSuggestion, ModelVersion, Photo, session_scope
from app.core.storage import get_store
from app.core.vocabulary import REGIONS
from labeling import annotations as ann
from labeling.queue import QueueItem, review_queue
from models.geometry import box_iou
from models.intake import decode_image

#: The queue orders the Labeling page offers: key -> what the annotator reads.
ORDERS = {
    "queue": "queue order",
    "uncertainty": "model uncertainty",
    "disagreement": "disagreement with landmarks",
}
#: The statuses whose photos the batch computes boxes for (what annotators open from the queue).
QUEUE_STATUSES = ("pending", "flagged")


# ----------------------------------------------------------------------------- the numbers


def uncertainty(regions: Mapping[str, Mapping]) -> float:
    """1 − the least sure region's certainty (detection score × top type probability); 1 when the
    model did not find a region at all."""
    certainty = [float(regions[r]["score"] or 0.0) * max(regions[r]["probs"]) if r in regions else 0.0
                 for r in REGIONS]
    return round(1.0 - min(certainty), 6)


def disagreement(predicted: Mapping[str, Sequence[float]], current: Mapping[str, Sequence[float]]) -> float:
    """1 − mean IoU over the three regions of the model's boxes and the photo's boxes."""
    ious = [box_iou(predicted[r], current[r]) if r in predicted and r in current else 0.0 for r in REGIONS]
    return round(1.0 - sum(ious) / len(REGIONS), 6)


@dataclass(frozen=True)
class AssistState:
    """Whether the served model can offer boxes; ``reason`` says why not when it cannot."""

    model_version_id: int | None
    kind: str | None
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.reason is None


def assist_state(session: Session) -> AssistState:
    """The served model, read from the registry without loading it."""
    row = session.exec(select(ModelVersion).where(ModelVersion.promoted.is_(True)).order_by(ModelVersion.id.desc())).first()
    if row is None:
        return AssistState(None, None, "No model is served yet, so there are no model boxes to offer.")
    if row.kind != "detector":
        return AssistState(row.id, row.kind, f"The served model (run {row.id}) is a {row.kind}: it types the landmark "
                           "regions and places no boxes of its own. Promote a detector run to get its boxes here.")
    return AssistState(row.id, row.kind)


# ----------------------------------------------------------------------------- computing and storing


def stored_suggestions(session: Session, photo_ids: Iterable[int], model_version_id: int) -> dict[int, BoxSuggestion]:
    """The rows for the photos' current boxes versions and this model (photo id -> row)."""
    ids = list(photo_ids)
    if not ids:
        return {}
    rows = session.exec(
        select(BoxSuggestion).join(Photo, Photo.id == BoxSuggestion.photo_id)
        .where(BoxSuggestion.photo_id.in_(ids), BoxSuggestion.model_version_id == model_version_id,
               BoxSuggestion.boxes_version == Photo.boxes_version)
    )
    return {row.photo_id: row for row in rows}


def predict_regions(model, photo: Photo, store=None) -> dict[str, dict]:
    """Run ``model`` on the stored photo: region -> {box (original pixels), score, probs}."""
    data = (store or get_store()).get(photo.object_key)
    image = decode_image(data, max_side=(getattr(model, "config", None) or {}).get("max_side"))
    scale_x, scale_y = photo.width / image.shape[1], photo.height / image.shape[0]
    out = {}
    for region, prediction in model.region_boxes(image).items():
        x0, y0, x1, y1 = prediction.box
        out[region] = {"box": [round(x0 * scale_x, 2), round(y0 * scale_y, 2), round(x1 * scale_x, 2), round(y1 * scale_y, 2)],
                       "score": float(prediction.score or 0.0), "probs": [float(p) for p in prediction.probs]}
    return out


def suggestion_for(session: Session, photo: Photo, model, store=None) -> BoxSuggestion:
    """The row for ``photo``'s current version and ``model`` (added to ``session`` when new). An
    earlier version's prediction by the same model is reused: the photo's pixels did not change."""
    model_id = int(model.model_version_id)
    rows = session.exec(
        select(BoxSuggestion).where(BoxSuggestion.photo_id == photo.id, BoxSuggestion.model_version_id == model_id)
        .order_by(BoxSuggestion.boxes_version.desc())
    ).all()
    for row in rows:
        if row.boxes_version == photo.boxes_version:
            return row
    regions = rows[0].regions if rows else predict_regions(model, photo, store)
    current = ann.box_map(ann.boxes_at(session, photo.id, photo.boxes_version))
    row = BoxSuggestion(photo_id=photo.id, boxes_version=photo.boxes_version, model_version_id=model_id,
                        regions=regions, uncertainty=uncertainty(regions),
                        disagreement=disagreement({r: v["box"] for r, v in regions.items()}, current))
    session.add(row)
    session.flush()
    return row


def suggest_for_queue(model=None, statuses: Sequence[str] = QUEUE_STATUSES, url: str | None = None, store=None,
                      limit: int | None = None) -> dict[str, int]:
    """Compute and store the served model's boxes for every queued photo that has none for its
    current version; returns counts (``computed``, ``already``, ``failed``). Does nothing when
    the served model places no boxes."""
    if model is None:
        from models.serving import get_served_model  # loads torch: only here, not for ordering

        model = get_served_model(url=url, store=store)
    counts = {"computed": 0, "already": 0, "failed": 0}
    if not getattr(model, "places_boxes", False):
        return counts
    with session_scope(url) as session:
        items = review_queue(session, statuses, limit=limit)
        have = stored_suggestions(session, [q.photo_id for q in items], model.model_version_id)
    for item in items:
        if item.photo_id in have:
            counts["already"] += 1
            continue
        try:
            with session_scope(url) as session:
                suggestion_for(session, session.get(Photo, item.photo_id), model, store)
        except Exception as exc:  # one unreadable photo must not stop the batch
            counts["failed"] += 1
            print(f"photo {item.photo_id}: {type(exc).__name__}: {exc}", file=sys.stderr)
        else:
            counts["computed"] += 1
    return counts


# ----------------------------------------------------------------------------- ordering


def order_queue(items: Sequence[QueueItem], suggestions: Mapping[int, BoxSuggestion], order: str) -> list[QueueItem]:
    """``items`` in ``order``: the queue's own order, or the most uncertain / most disagreeing
    photos first. Photos without a stored suggestion follow, in the queue's order."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}: one of {', '.join(ORDERS)}")
    if order == "queue":
        return list(items)
    scored = [q for q in items if q.photo_id in suggestions]
    rest = [q for q in items if q.photo_id not in suggestions]
    scored.sort(key=lambda q: -getattr(suggestions[q.photo_id], order))  # stable: ties keep the queue's order
    return scored + rest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labeling.assist",
                                     description="Store the served detector's boxes for the queued photos.")
    parser.add_argument("--limit", type=int, default=None, help="at most this many photos of the queue")
    args = parser.parse_args(argv)
    from models.runtime import configure_serving_process

    configure_serving_process()
    with session_scope() as session:
        state = assist_state(session)
    if not state.available:
        print(state.reason)
        return 0
    counts = suggest_for_queue(limit=args.limit)
    print(f"model {state.model_version_id}: {counts['computed']} photos computed, {counts['already']} already "
          f"stored, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
