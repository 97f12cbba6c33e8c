"""The Labeling page's model-assisted parts (labeling.assist): the queue order option and, over the
canvas, the served detector's boxes as dashed outlines with a button that puts them on the canvas.
Imported by pages/labeling.py; not a page of its own."""

from __future__ import annotations

import functools

import streamlit as st

from app.core.db import Photo, session_scope
from labeling import assist
from labeling.previews import with_dashed_boxes
from labeling.queue import QueueItem

ORDER_NOTES = {
    "queue": "lowest auto-label confidence first",
    "uncertainty": "the model's least sure photos first",
    "disagreement": "photos where the model's boxes differ most from the current ones first",
}


def assist_now() -> assist.AssistState:
    with session_scope() as s:
        return assist.assist_state(s)


def order_option(state: assist.AssistState) -> str:
    """The "Order" choice, in a popover of its own beside the queue filters; disabled, with the
    reason written under it, when the served model places no boxes."""
    order = st.session_state.get("labeling-order", "queue") if state.available else "queue"
    with st.popover(f"Order: {order}", width="stretch"):
        order = st.radio(
            "Order the queue by", list(assist.ORDERS), format_func=assist.ORDERS.get, key="labeling-order",
            disabled=not state.available,
            help="Model uncertainty and disagreement use the served detector's boxes, stored for the queue by the "
                 "training worker after a promotion (or `python -m labeling.assist`).",
        )
        if state.reason:
            st.caption(state.reason)
    return order if state.available else "queue"


def ordered(pending: list[QueueItem], order: str, state: assist.AssistState) -> tuple[list[QueueItem], str]:
    """The queue in ``order`` and the note that says what "first" means (and what is not scored yet)."""
    if order == "queue" or not state.available:
        return pending, ORDER_NOTES["queue"]
    with session_scope() as s:
        stored = assist.stored_suggestions(s, [q.photo_id for q in pending], state.model_version_id)
    note = ORDER_NOTES[order]
    if missing := sum(q.photo_id not in stored for q in pending):
        note += f"; {missing} not yet scored by the model come last"
    return assist.order_queue(pending, stored, order), note


def use_model_boxes(pid: int, opened: int, current: dict, model_boxes: dict) -> None:
    """Button callback: the model's boxes replace the editable ones of the regions it found; the
    annotator then edits and accepts as usual (the canvas is reloaded with them)."""
    state = st.session_state
    state["edited"][(pid, opened)] = {**current, **{r: [float(v) for v in box] for r, box in model_boxes.items()}}
    state["canvas_nonce"][pid] = state["canvas_nonce"].get(pid, 0) + 1


def model_boxes_bar(photo: Photo, opened: int, current: dict, state: assist.AssistState) -> dict:
    """The served detector's boxes for ``photo`` (computed and stored now if the worker has not yet),
    a line with its uncertainty and disagreement, the Show toggle and the Use button. Returns the
    boxes to draw dashed on the canvas background ({} when hidden or when there are none)."""
    if not state.available:
        return {}
    try:
        with session_scope() as s:
            row = assist.stored_suggestions(s, [photo.id], state.model_version_id).get(photo.id)
            if row is None:
                from models.serving import get_served_model

                with st.spinner("The served detector is looking at this photo…"):
                    model = get_served_model()
                    row = assist.suggestion_for(s, s.get(Photo, photo.id), model) if model.places_boxes else None
    except Exception as exc:  # the model or the photo cannot be loaded: the page goes on without it
        st.caption(f"The model's boxes are not available for this photo ({type(exc).__name__}: {exc}).")
        return {}
    if row is None:
        return {}
    boxes = {r: v["box"] for r, v in (row.regions or {}).items()}
    line, show_at, use_at = st.columns([4, 1.3, 1.5], vertical_alignment="center")
    found = " ".join(f"{r} {v['score']:.2f}" for r, v in (row.regions or {}).items()) or "no region found"
    line.caption(f"Model run {row.model_version_id} (dashed): {found} · uncertainty {row.uncertainty:.2f} · "
                 f"disagreement {row.disagreement:.2f}")
    shown = show_at.toggle("Model's boxes", value=True, key="labeling-show-model", help="Dashed outlines, not editable")
    use_at.button("Use the model's boxes", key=f"labeling-use-model-{photo.id}", width="stretch", disabled=not boxes,
                  on_click=use_model_boxes, args=(photo.id, opened, dict(current), boxes),
                  help="Put the model's boxes on the canvas in place of the current ones (regions it did not find "
                       "stay as they are); edit them and accept as usual.")
    return boxes if shown else {}


def with_model_boxes(background: bytes, boxes: dict, fit) -> bytes:
    """The canvas background with the model's boxes painted dashed when there are any."""
    return _painted(background, fit, tuple((r, tuple(b)) for r, b in boxes.items())) if boxes else background


# A fragment rerun (every canvas edit) must not paint and encode the picture again. The background
# is the same cached bytes object on every rerun, so its hash and the key compare are cheap.
@functools.lru_cache(maxsize=8)
def _painted(background: bytes, fit, boxes: tuple) -> bytes:
    return with_dashed_boxes(background, dict(boxes), fit.scale_x, fit.scale_y)
