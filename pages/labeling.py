"""Labeling: correct the auto-labeled region boxes of the queued photos on a canvas; accept, flag or reject.

A thin page over ``labeling.annotations`` (version-checked saves, conflicts), ``labeling.queue`` and
``labeling.canvas`` (original pixels <-> canvas). The review runs in a fragment, so a canvas edit or a
save reruns only it. Accept, Flag, Reject, Discard and conflicts: ``pages.labeling_decisions``. Keyboard
shortcuts: ``pages.labeling_widgets.SHORTCUTS``. The other Labeling pages (Import photos, Quality,
Export / import, Retrain) are their own scripts.

``?photo=ID`` in the address opens that photo (the page keeps it there, so a reload reopens it).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlmodel import select

from app.core.db import Photo, ReferencePerson, session_scope
from app.core.vocabulary import REGION_COLORS, REGIONS, ReviewStatus
from labeling import annotations as ann
from labeling import queue
from labeling.canvas import boxes_to_drawing, check_canvas_boxes, drawing_to_boxes, fit_canvas, missing_regions
from pages import labeling_assist
from pages.labeling_decisions import (
    conflict_panel,
    decide,
    discard_dialog,
    fmt_box,
    reject_dialog,
    rerun_review,
)
from pages.labeling_widgets import (
    SHORTCUTS,
    annotator_name,
    box_canvas,
    boxes_preview,
    canvas_background,
    keyboard_shortcuts,
    prefetch_canvas_background,
    queue_counts,
)

CANVAS_MAX_W, CANVAS_MAX_H = 800, 600
ZOOMS = {"1×": 1.0, "1.5×": 1.5, "2×": 2.0}

state = st.session_state
state.setdefault("opened", {})  # photo id -> the boxes version the annotator started from
state.setdefault("canvas_nonce", {})  # photo id -> bump to reload the canvas
state.setdefault("conflicts", {})  # photo id -> ann.Conflict awaiting a choice
state.setdefault("edited", {})  # (photo id, version) -> the boxes last read from the canvas (kept across zooms)
state.setdefault("initial_drawing", {})  # canvas key -> the drawing it was mounted with
state.setdefault("labeling_back", [])  # photo ids the annotator moved on from, for Previous


def queue_strip(photo_ids: list[int]) -> None:
    with session_scope() as s:
        keys = {p.id: p.object_key for p in s.exec(select(Photo).where(Photo.id.in_(photo_ids)))}
    for col, i in zip(st.columns(6), photo_ids):
        col.image(boxes_preview(keys[i], {}, 160), caption=f"photo {i}")
        if col.button("Open", key=f"thumb-{i}", width="stretch"):
            state["labeling_back"] = [*state["labeling_back"], int(st.query_params.get("photo", 0))][-50:]
            st.query_params["photo"] = str(i)
            rerun_review()


#: Queue filter widget key -> (address parameter, default value). The filters live in the address too,
#: so a reload or a shared link (a new Streamlit session) keeps them; defaults are left out of it.
QUEUE_FILTERS = {"q_status": ("status", [ReviewStatus.PENDING]), "q_person": ("person", None),
                 "q_annotator": ("annotator", None), "q_second": ("second", False)}


def filter_from_address(key: str, text: str, names: list[str], people: dict[int, str]):
    """The filter value an address parameter names; an unknown one gives the default."""
    if key == "q_status":  # "all" (no status chosen) keeps none of its parts
        return [status for status in text.split(",") if status in queue.REVIEW_STATUSES]
    if key == "q_person":
        return int(text) if text.isdigit() and int(text) in people else None
    if key == "q_annotator":
        return text if text in names else None
    return text == "1"


def filter_to_address(value) -> str:
    if isinstance(value, list):
        return ",".join(value) or "all"
    return "1" if value is True else str(value)


def open_first_of_new_queue() -> None:
    """A queue filter's callback: the photo open until now may not be in the new queue; its first one opens."""
    st.query_params.pop("photo", None)


def queue_filters(names: list[str], people: dict[int, str]):
    # A session starts from the filters in its address (a reload, a shared link); kept for the session, so
    # the widgets' defaults do not change under them.
    start = state.setdefault("labeling_filters_start", {
        key: default if st.query_params.get(param) is None
        else filter_from_address(key, st.query_params[param], names, people)
        for key, (param, default) in QUEUE_FILTERS.items()})
    person_options, names_options = [None, *people], [None, *names]
    with st.popover("Queue filters", width="stretch"):
        statuses = st.multiselect("Status", queue.REVIEW_STATUSES, default=start["q_status"], key="q_status",
                                  on_change=open_first_of_new_queue)
        person_id = st.selectbox("Person", person_options, key="q_person",
                                 index=person_options.index(start["q_person"]) if start["q_person"] in people else 0,
                                 format_func=lambda i: "all people" if i is None else people[i],
                                 placeholder="all people",  # how this Streamlit shows the None option
                                 on_change=open_first_of_new_queue)
        who = st.selectbox("Annotator", names_options, format_func=lambda n: "anyone" if n is None else n,
                           index=names_options.index(start["q_annotator"]) if start["q_annotator"] in names else 0,
                           placeholder="anyone", key="q_annotator", on_change=open_first_of_new_queue)
        second = st.toggle("Second review", value=start["q_second"], key="q_second", on_change=open_first_of_new_queue,
                           help="Only photos you have not reviewed yet "
                           "(pick status accepted to review another annotator's work).")
    for key, value in zip(QUEUE_FILTERS, (statuses, person_id, who, second)):
        param, default = QUEUE_FILTERS[key]
        if value == default:
            st.query_params.pop(param, None)
        elif st.query_params.get(param) != filter_to_address(value):
            st.query_params[param] = filter_to_address(value)
    return statuses, person_id, who, second


@st.fragment
def review() -> None:
    with session_scope() as s:
        people = {p.id: f"{p.person_key} — {p.pseudonym}"
                  for p in s.exec(select(ReferencePerson).order_by(ReferencePerson.person_key))}
        names = queue.annotators(s)
    # The title takes the width it needs (in a column of its own it was squeezed to "Labelin / g").
    with st.container(horizontal=True, vertical_alignment="center", key="labeling-head"):
        st.title("Labeling", width="content")
        counts_at, filters_at, photo_at, previous_at, next_at = st.columns([3.6, 1.8, 2.8, 0.6, 0.6],
                                                                            vertical_alignment="center")
    assist = labeling_assist.assist_now()
    with filters_at:
        statuses, person_id, who, second = queue_filters(names, people)
        order = labeling_assist.order_option(assist)
    with session_scope() as s:
        pending = queue.review_queue(s, statuses, person_id, who, exclude_annotator=annotator if second else None)
    pending, order_note = labeling_assist.ordered(pending, order, assist)
    with counts_at:
        queue_counts()
        st.markdown(f"**{len(pending)}** photo{'s' if len(pending) != 1 else ''} left in this queue "
                    f"({order_note}).")
    requested = st.query_params.get("photo")
    pid = int(requested) if requested and requested.isdigit() else (pending[0].photo_id if pending else None)
    if pid is None:
        st.success("Nothing left to review here.")
        return
    try:
        with session_scope() as s:  # reference photos, and visitors' only with consent to training
            photo = ann.team_photo(s, pid)
            person = s.get(ReferencePerson, photo.person_id) if photo.person_id else None
    except ann.PhotoNotAvailable:
        st.error(f"There is no photo {pid} open to team tools.")
        st.query_params.pop("photo", None)
        return
    ids = [q.photo_id for q in pending]
    conf = {q.photo_id: q.min_confidence for q in pending}
    options = ids if pid in ids else [pid, *ids]
    at = options.index(pid)
    back = [i for i in state["labeling_back"] if i != pid]  # photos this annotator came from, latest last
    previous_pid = back[-1] if back else options[at - 1] if at > 0 else None
    following = [i for i in options[at + 1:] + options[:at] if i != pid and i in ids]
    next_pid = following[0] if following else None

    def label(i: int) -> str:
        c = conf.get(i)
        return f"photo {i}" + (f" · confidence {c:.2f}" if c is not None else "") + ("" if i in ids else " · not in this queue")

    chosen = photo_at.selectbox("Photo", options, index=at, format_func=label, label_visibility="collapsed")
    go_previous = previous_at.button("◀", key="labeling-previous", help="Previous photo (K or ←)", disabled=previous_pid is None)
    go_next = next_at.button("▶", key="labeling-next", help="Next photo (J or →)", disabled=next_pid is None)
    target = previous_pid if go_previous else next_pid if go_next else chosen
    if target != pid:
        if go_previous:
            state["labeling_back"] = back[:-1]
        else:
            state["labeling_back"] = [*back, pid][-50:]
        st.query_params["photo"] = str(target)
        rerun_review()
    st.query_params["photo"] = str(pid)

    opened = state["opened"].setdefault(pid, photo.boxes_version)
    with session_scope() as s:
        start_rows = {r.region: r for r in ann.boxes_at(s, pid, opened)}
        latest = ann.last_audit(s, pid) if photo.boxes_version != opened else None
    start_boxes = ann.box_map(start_rows.values())
    who_line = f"{person.person_key} ({person.pseudonym}), type {person.type_name or '—'}" if person else "no person"
    line, saved = st.columns([3, 2])
    line.caption(f"Photo {pid} · {who_line} · {photo.width}×{photo.height} px · status **{photo.review_status}**"
                 + (f" ({photo.review_note})" if photo.review_note else "") + f" · editing version {opened}")
    if text := state.get("labeling_last_save"):
        saved.caption(f":green[:material/check_circle: **{text}**]")
    if photo.boxes_version != opened and pid not in state["conflicts"]:
        st.info(f"Version {photo.boxes_version} was saved by {latest.annotator if latest else 'someone'} after you opened "
                "this photo. Your save will show both versions; or load the newest now.")
        if st.button("Load the newest version"):
            state["opened"][pid] = photo.boxes_version
            state["canvas_nonce"][pid] = state["canvas_nonce"].get(pid, 0) + 1
            rerun_review()

    conflict = state["conflicts"].get(pid)
    if conflict is not None:
        conflict_panel(photo, conflict, next_pid)
        return

    edited = state["edited"].get((pid, opened), start_boxes)
    missing_now = missing_regions(edited)
    label_key = f"new-label-{pid}"
    if f"next-label-{pid}" in state:  # set below, after a deletion; a widget's value changes before it is drawn
        state[label_key] = state.pop(f"next-label-{pid}")
    b1, b2, b3, b4, pick, zoom_at = st.container(key="labeling-actions").columns([1.1, 1, 1, 1, 2.4, 1.5],
                                                                                 vertical_alignment="center")
    with pick.container(key="labeling-label"):
        new_label = st.radio("Label for a new box", REGIONS, index=REGIONS.index(missing_now[0]) if missing_now else 0,
                             horizontal=True, key=label_key, label_visibility="collapsed",
                             format_func=lambda r: f"{REGIONS.index(r) + 1} {r}",
                             help="Drag on the photo, inside a box too, to draw a box with this label. Drag a box by "
                                  "its edge or label to move it, by its handles to resize it; Delete removes the "
                                  "selected box. Space + drag pans a zoomed photo.")
    zoom = zoom_at.segmented_control("Zoom", list(ZOOMS), default="1×", key="labeling-zoom",
                                     label_visibility="collapsed") or "1×"
    model_boxes = labeling_assist.model_boxes_bar(photo, opened, edited, assist)
    try:
        fit = fit_canvas(photo.width, photo.height, round(CANVAS_MAX_W * ZOOMS[zoom]), round(CANVAS_MAX_H * ZOOMS[zoom]))
        background = labeling_assist.with_model_boxes(
            canvas_background(photo.object_key, fit.canvas_width, fit.canvas_height), model_boxes, fit)
    except Exception as exc:  # the object is missing or unreadable
        st.error(f"Cannot load photo {pid} from the store: {exc}")
        return
    canvas_key = f"canvas-{pid}-{opened}-{state['canvas_nonce'].get(pid, 0)}-{zoom}"
    initial = state["initial_drawing"].setdefault(canvas_key, boxes_to_drawing(edited, fit))
    drawing = box_canvas(
        background_jpeg=background, width=fit.canvas_width, height=fit.canvas_height, label=new_label,
        stroke_color=REGION_COLORS[new_label], initial_drawing=initial, key=canvas_key,
        max_display_height=CANVAS_MAX_H if ZOOMS[zoom] > 1 else None, width_zoom=ZOOMS[zoom],
    )
    if next_pid is not None:
        upcoming = next(q for q in pending if q.photo_id == next_pid)
        ahead = fit_canvas(upcoming.width, upcoming.height, round(CANVAS_MAX_W * ZOOMS[zoom]),
                           round(CANVAS_MAX_H * ZOOMS[zoom]))
        prefetch_canvas_background(upcoming.object_key, ahead.canvas_width, ahead.canvas_height)
    boxes, problems = check_canvas_boxes(drawing_to_boxes(drawing, fit))
    if not problems:
        state["edited"][(pid, opened)] = boxes
    missing = missing_regions(boxes)
    if not problems and state.get(f"missing-{pid}") != missing:
        state[f"missing-{pid}"] = missing
        if missing and state.get(label_key) not in missing:  # a box was deleted: its region is drawn next
            state[f"next-label-{pid}"] = missing[0]
            rerun_review()
    b1.button("Accept ⏎", type="primary", disabled=bool(problems), key="labeling-accept", width="stretch",
              help="Accept the boxes and open the next photo (Enter)", on_click=decide,
              args=(pid, opened, "accept", next_pid))
    b2.button("Flag (F)", disabled=bool(problems), key="labeling-flag", width="stretch",
              help="Flag for a second look; the note below is kept with it", on_click=decide,
              args=(pid, opened, "flag", next_pid))
    error = state.pop("labeling_error", None)
    if error and error[0] == pid:
        st.error(error[1])
    if b3.button("Reject…", key="labeling-reject", width="stretch", help="Reject the photo (R); asks for a reason"):
        state["labeling_dialog"] = ("reject", pid)
    if b4.button("Discard…", key="labeling-discard", width="stretch", help="Undo every unsaved change on this photo"):
        state["labeling_dialog"] = ("discard", pid)
    if state.get("labeling_dialog") == ("reject", pid):
        reject_dialog(pid, opened, start_boxes if problems else boxes, next_pid)
    elif state.get("labeling_dialog") == ("discard", pid):
        discard_dialog(pid, opened)
    for problem in problems:
        st.warning(problem)
    if missing:
        cols = st.columns([3] + [1] * len(missing))
        cols[0].caption("Missing: " + ", ".join(missing) + " — pick it above and draw it, or mark it not visible "
                        "(Accept needs every region).")
        for col, region in zip(cols[1:], missing):
            col.checkbox(f"{region} not visible", key=f"hidden-{pid}-{region}")

    rows = []
    for region in REGIONS:
        before, now, row = start_boxes.get(region), boxes.get(region), start_rows.get(region)
        # "changed" first after the region: on a phone the coordinates push the last columns off screen
        rows.append({"region": region, "changed": "yes" if not ann.same_box(before, now) else "",
                     "x0, y0, x1, y1 (original px)": fmt_box(now) if now else "—",
                     "was": fmt_box(before) if before else "—", "source": row.source if row else "—",
                     "confidence": f"{row.confidence:.2f}" if row and row.confidence is not None else "—"})
    st.table(pd.DataFrame(rows).set_index("region"))
    st.text_input("Note (kept with Accept or Flag)", key=f"note-{pid}")
    if st.toggle("Show the next photos of the queue", key="labeling-thumbs"):
        queue_strip(following[:6])
    with st.expander("History of this photo"):
        with session_scope() as s:
            trail = queue.audit_trail(s, pid)
        if not trail:
            st.caption("No saves yet: these are the auto boxes.")
        for entry in trail:
            st.markdown(f"**v{entry.from_version} → v{entry.to_version}** · {entry.action} by {entry.annotator} · "
                        f"{entry.at:%Y-%m-%d %H:%M:%S}")
            st.json({"before": entry.before, "after": entry.after}, expanded=False)


# The canvas and its Accept button fit in a 1440 x 900 window: less empty space above the page. On a phone
# the title row stacks, as columns do there (Streamlit stacks columns below 640 px, each a row of its own),
# but the photo picker keeps ◀ ▶ beside it and the four actions share a row: the photo is a screen higher.
st.html("<style>[data-testid='stMainBlockContainer'] {padding-top: 2.5rem;}"
        "@media (max-width: 640px) {.st-key-labeling-head {flex-direction: column; align-items: stretch;}"
        " .st-key-labeling-head [data-testid='stColumn']:nth-child(3) {min-width: calc(100% - 7.5rem)}"
        " .st-key-labeling-head [data-testid='stColumn']:nth-child(n+4) {min-width: 2.5rem; flex: 0 0 auto}"
        " .st-key-labeling-actions [data-testid='stColumn']:nth-child(-n+4) {min-width: calc(25% - 0.8rem)}"
        " .st-key-labeling-actions [data-testid='stColumn']:nth-child(-n+4) button {padding: 0 0.25rem}}</style>")
annotator = (state.get("annotator") or "").strip()
if not annotator:
    st.title("Labeling")
    annotator = annotator_name()
st.sidebar.caption(f"Annotating as **{annotator}**")
keyboard_shortcuts()
review()
with st.expander("Keyboard shortcuts"):  # static: outside the fragment, not resent on every save
    st.table(pd.DataFrame({"key": list(SHORTCUTS), "does": list(SHORTCUTS.values())}).set_index("key"))
