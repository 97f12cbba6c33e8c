"""Labeling: correct the auto-labeled region boxes on a canvas, review them, and retrain.

A thin page over ``labeling.annotations`` (queue, version-checked saves, audit, quality),
``labeling.coco`` (export / import) and ``labeling.canvas`` (original pixels <-> canvas).
Runs under ``app/main.py``'s ``st.navigation``; the annotator's name is
``st.session_state["annotator"]`` (set at sign-in, or entered here once per session).

``?photo=ID`` in the address opens that photo (the page keeps it there, so a reload reopens it).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
import streamlit as st
from PIL import Image, ImageDraw
from sqlmodel import select

# streamlit-drawable-canvas 0.13 is a components-v2 component that sends the background as a
# data URL; it does not use streamlit.elements.image.image_to_url, so no shim is needed.
from streamlit_drawable_canvas import st_canvas

from app.core.db import Photo, ReferencePerson, session_scope
from app.core.settings import PROJECT_ROOT
from app.core.storage import get_store
from app.core.vocabulary import REGION_COLORS, REGIONS
from labeling import annotations as ann
from labeling import coco, quality, queue
from labeling.canvas import (
    boxes_to_drawing,
    check_canvas_boxes,
    drawing_to_boxes,
    fit_canvas,
    missing_regions,
    region_color,
)
from labeling.photos import BatchTooLarge, import_reference_batch
from models.intake import decode_image
from models import jobs

CANVAS_MAX_W, CANVAS_MAX_H = 800, 640
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic"}

state = st.session_state
state.setdefault("opened", {})  # photo id -> the boxes version the annotator started from
state.setdefault("canvas_nonce", {})  # photo id -> bump to reload the canvas
state.setdefault("conflicts", {})  # photo id -> ann.Conflict awaiting a choice


def fmt_box(box) -> str:
    return ", ".join(f"{v:.2f}" for v in box)


@st.cache_data(max_entries=64, show_spinner=False)
def canvas_background(object_key: str, width: int, height: int) -> bytes:
    """The photo, upright, scaled to the canvas, as JPEG bytes."""
    image = Image.fromarray(decode_image(get_store().get(object_key)))
    image = image.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def boxes_preview(object_key: str, boxes: dict, max_side: int = 420) -> Image.Image:
    image = Image.fromarray(decode_image(get_store().get(object_key)))
    scale = min(1.0, max_side / max(image.size))
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    draw = ImageDraw.Draw(image)
    for region, box in boxes.items():
        x0, y0, x1, y1 = (v * scale for v in box)
        draw.rectangle([x0, y0, x1, y1], outline=region_color(region), width=3)
        draw.text((x0 + 4, y0 + 2), region, fill=region_color(region))
    return image


# ----------------------------------------------------------------------------- annotator

st.title("Labeling")
annotator = (state.get("annotator") or "").strip()
if not annotator:
    st.info("Enter your name once for this session; every save is recorded under it.")
    with st.form("annotator_form"):
        name = st.text_input("Your name (annotator)", max_chars=64)
        if st.form_submit_button("Start labeling", type="primary") and name.strip():
            state["annotator"] = name.strip()
            st.rerun()
    st.stop()
st.sidebar.caption(f"Annotating as **{annotator}**")

try:
    with session_scope() as s:
        counts = queue.status_counts(s)
except sa.exc.SQLAlchemyError as exc:
    st.error(f"The database is unavailable: {str(exc).splitlines()[0]}")
    st.stop()
st.caption(
    " · ".join(f"{n} {status}" for status, n in counts.items())
    + " — boxes: " + ", ".join(f":{'red' if r == 'face' else 'blue' if r == 'tzone' else 'orange'}[{r}]" for r in REGIONS)
)

section = st.radio(
    "Section", ["Review", "Import photos", "Quality", "Export / import", "Retrain"],
    horizontal=True, key="labeling_section", label_visibility="collapsed",
)


# ----------------------------------------------------------------------------- review


def show_last_save() -> None:
    # Kept until the next save rather than popped: the canvas can trigger an extra rerun right after a
    # save, and a popped message would vanish before the annotator (or a test) sees it.
    if text := state.get("labeling_last_save"):
        st.success(text)


def save_and_report(pid: int, result, next_pid: int | None) -> None:
    if isinstance(result, ann.Conflict):
        state["conflicts"][pid] = result
        st.rerun()
    state["opened"][pid] = result.version
    state["conflicts"].pop(pid, None)
    state["labeling_last_save"] = f"Photo {pid}: {result.action.replace('_', ' ')} saved as version {result.version}."
    if result.review_status != "pending" and next_pid is not None:
        st.query_params["photo"] = str(next_pid)
    st.rerun()


def conflict_panel(photo: Photo, conflict: ann.Conflict, next_pid: int | None) -> None:
    when = conflict.theirs_at.strftime("%Y-%m-%d %H:%M:%S") if conflict.theirs_at else "?"
    st.warning(
        f"**Someone else saved this photo since you opened it.** You started from version "
        f"{conflict.expected_version}; version {conflict.current_version} was saved by "
        f"**{conflict.theirs_annotator or 'unknown'}** at {when} UTC ({conflict.theirs_action}, "
        f"status {conflict.theirs_status}). Nothing was overwritten: choose what to keep."
    )
    left, right = st.columns(2)
    left.image(boxes_preview(photo.object_key, conflict.mine), caption="Yours (not saved)")
    right.image(boxes_preview(photo.object_key, conflict.theirs), caption=f"Theirs (version {conflict.current_version})")
    rows = [{"region": r, "yours": fmt_box(conflict.mine[r]) if r in conflict.mine else "—",
             "theirs": fmt_box(conflict.theirs[r]) if r in conflict.theirs else "—"} for r in REGIONS]
    st.table(pd.DataFrame(rows).set_index("region"))
    choice = {}
    cols = st.columns(len(REGIONS))
    for col, region in zip(cols, REGIONS):
        same = ann.same_box(conflict.mine.get(region), conflict.theirs.get(region))
        choice[region] = col.radio(f"{region}", ["mine", "theirs"], index=0, key=f"choice-{photo.id}-{region}",
                                   horizontal=True, disabled=same)
    decision = st.selectbox("Decision", ["accept", "flag", "save", "reject"], key=f"conflict-decision-{photo.id}")
    note = st.text_input("Reason / note", key=f"conflict-note-{photo.id}")
    a, b = st.columns(2)
    if a.button("Save my choice", type="primary", key=f"resolve-{photo.id}"):
        try:
            with session_scope() as s:
                result = ann.resolve_conflict(s, conflict, choice, annotator, decision, note)
        except ann.AnnotationError as exc:
            st.error(str(exc))
        else:
            save_and_report(photo.id, result, next_pid)
    if b.button("Discard mine, continue from theirs", key=f"take-theirs-{photo.id}"):
        state["opened"][photo.id] = conflict.current_version
        state["conflicts"].pop(photo.id, None)
        state["canvas_nonce"][photo.id] = state["canvas_nonce"].get(photo.id, 0) + 1
        st.rerun()


def review_section() -> None:
    show_last_save()
    with session_scope() as s:
        people = list(s.exec(select(ReferencePerson).order_by(ReferencePerson.person_key)))
        names = queue.annotators(s)
    person_names = {p.id: f"{p.person_key} — {p.pseudonym}" for p in people}
    c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
    statuses = c1.multiselect("Status", queue.REVIEW_STATUSES, default=["pending"], key="q_status")
    person_id = c2.selectbox("Person", [None, *person_names], format_func=lambda i: "all people" if i is None else person_names[i], key="q_person")
    who = c3.selectbox("Annotator", [None, *names], format_func=lambda n: "anyone" if n is None else n, key="q_annotator")
    second = c4.toggle("Second review", key="q_second", help="Only photos you have not reviewed yet "
                       "(pick status accepted to review another annotator's work).")
    with session_scope() as s:
        pending = queue.review_queue(s, statuses, person_id, who, exclude_annotator=annotator if second else None)
    st.markdown(f"**{len(pending)}** photo{'s' if len(pending) != 1 else ''} left in this queue "
                "(lowest auto-label confidence first).")

    requested = st.query_params.get("photo")
    pid = int(requested) if requested and requested.isdigit() else (pending[0].photo_id if pending else None)
    if pid is None:
        st.success("Nothing left to review here.")
        return
    with session_scope() as s:
        photo = s.get(Photo, pid)
        person = s.get(ReferencePerson, photo.person_id) if photo and photo.person_id else None
    if photo is None:
        st.error(f"There is no photo {pid}.")
        st.query_params.pop("photo", None)
        return
    ids = [q.photo_id for q in pending]
    options = ids if pid in ids else [pid, *ids]
    conf = {q.photo_id: q.min_confidence for q in pending}

    def label(i: int) -> str:
        c = conf.get(i)
        return f"photo {i}" + (f" · confidence {c:.2f}" if c is not None else "") + ("" if i in ids else " · not in this queue")

    chosen = st.selectbox("Photo", options, index=options.index(pid), format_func=label)
    if chosen != pid:
        st.query_params["photo"] = str(chosen)
        st.rerun()
    st.query_params["photo"] = str(pid)
    later = [i for i in ids if i != pid]
    next_pid = later[0] if later else None

    opened = state["opened"].setdefault(pid, photo.boxes_version)
    with session_scope() as s:
        start_boxes = ann.box_map(ann.boxes_at(s, pid, opened))
        start_rows = {r.region: r for r in ann.boxes_at(s, pid, opened)}
        latest = ann.last_audit(s, pid)
    who_line = f"{person.person_key} ({person.pseudonym}), type {person.type_name or '—'}" if person else "no person"
    st.caption(f"Photo {pid} · {who_line} · {photo.width}×{photo.height} px · status **{photo.review_status}**"
               + (f" ({photo.review_note})" if photo.review_note else "") + f" · editing version {opened}")
    if photo.boxes_version != opened and pid not in state["conflicts"]:
        st.info(f"Version {photo.boxes_version} was saved by {latest.annotator if latest else 'someone'} after you opened "
                "this photo. Your save will show both versions; or load the newest now.")
        if st.button("Load the newest version"):
            state["opened"][pid] = photo.boxes_version
            state["canvas_nonce"][pid] = state["canvas_nonce"].get(pid, 0) + 1
            st.rerun()

    conflict = state["conflicts"].get(pid)
    if conflict is not None:
        conflict_panel(photo, conflict, next_pid)
        return

    fit = fit_canvas(photo.width, photo.height, CANVAS_MAX_W, CANVAS_MAX_H)
    missing_now = missing_regions(start_boxes)
    new_label = st.radio(
        "Label for a new box", REGIONS, index=REGIONS.index(missing_now[0]) if missing_now else 0,
        horizontal=True, key=f"new-label-{pid}",
        help="Draw a box by dragging on the photo. To move, resize, relabel (click a selected box's "
             "label) or delete a box, press Edit in the canvas toolbar first.",
    )
    try:
        background = canvas_background(photo.object_key, fit.canvas_width, fit.canvas_height)
    except Exception as exc:  # the object is missing or unreadable
        st.error(f"Cannot load photo {pid} from the store: {exc}")
        return
    nonce = state["canvas_nonce"].get(pid, 0)
    result = st_canvas(
        fill_color="rgba(0, 0, 0, 0)",
        stroke_width=3,
        stroke_color=REGION_COLORS[new_label],
        background_image=background,
        background_image_fit="stretch",
        width=fit.canvas_width,
        height=fit.canvas_height,
        drawing_mode="labeled_rect",
        label=new_label,
        initial_drawing=boxes_to_drawing(start_boxes, fit),
        font_size=14,
        key=f"canvas-{pid}-{opened}-{nonce}",
    )
    canvas_boxes = drawing_to_boxes(result.json_data, fit)
    boxes, problems = check_canvas_boxes(canvas_boxes)

    rows = []
    for region in REGIONS:
        before = start_boxes.get(region)
        now = boxes.get(region)
        rows.append({
            "region": region,
            "x0, y0, x1, y1 (original px)": fmt_box(now) if now else "—",
            "was": fmt_box(before) if before else "—",
            "source": (start_rows[region].source if region in start_rows else "—"),
            "confidence": (f"{start_rows[region].confidence:.2f}" if region in start_rows and start_rows[region].confidence is not None else "—"),
            "changed": "yes" if not ann.same_box(before, now) else "",
        })
    st.table(pd.DataFrame(rows).set_index("region"))
    for problem in problems:
        st.warning(problem)
    if missing_regions(boxes):
        st.caption("Missing: " + ", ".join(missing_regions(boxes)) + " — pick it above and draw it.")

    note = st.text_input("Reason (needed to reject) / note", key=f"note-{pid}")
    b1, b2, b3, b4 = st.columns(4)
    decision = None
    if b1.button("Accept", type="primary", disabled=bool(problems), key=f"accept-{pid}"):
        decision = "accept"
    if b2.button("Flag for a second look", disabled=bool(problems), key=f"flag-{pid}"):
        decision = "flag"
    if b3.button("Reject photo", key=f"reject-{pid}"):
        decision = "reject"
    if b4.button("Discard my changes", key=f"discard-{pid}"):
        state["canvas_nonce"][pid] = nonce + 1
        st.rerun()
    if decision:
        to_save = boxes if decision != "reject" or not problems else start_boxes
        try:
            with session_scope() as s:
                result = ann.save_boxes(s, pid, opened, to_save, annotator, decision, note)
        except ann.AnnotationError as exc:
            st.error(str(exc))
        else:
            save_and_report(pid, result, next_pid)

    with st.expander("History of this photo"):
        with session_scope() as s:
            trail = queue.audit_trail(s, pid)
        if not trail:
            st.caption("No saves yet: these are the auto boxes.")
        for entry in trail:
            st.markdown(f"**v{entry.from_version} → v{entry.to_version}** · {entry.action} by {entry.annotator} · "
                        f"{entry.at:%Y-%m-%d %H:%M:%S}")
            st.json({"before": entry.before, "after": entry.after}, expanded=False)


# ----------------------------------------------------------------------------- import


def import_section() -> None:
    with session_scope() as s:
        people = list(s.exec(select(ReferencePerson).order_by(ReferencePerson.person_key)))
    if not people:
        st.info("Add reference people first (Survey page).")
        return
    names = {p.id: f"{p.person_key} — {p.pseudonym}" for p in people}
    person_id = st.selectbox("Reference person", list(names), format_func=names.get, key="import_person")
    uploads = st.file_uploader("Photos", accept_multiple_files=True, key="import_files")
    account = st.session_state.get("account")
    folder = ""
    if account is not None and account.is_admin:  # a server path reads whatever the app process can
        folder = st.text_input("…or a folder on the server", placeholder="/data/photos/p07", key="import_folder")
    if not st.button("Import and auto-label", type="primary", disabled=not uploads and not folder.strip()):
        return
    items: list[tuple[str, bytes | Path]] = [(u.name, u.getvalue()) for u in uploads or []]
    if folder.strip():
        root = Path(folder.strip()).expanduser()
        if not root.is_dir():
            st.error(f"{root} is not a folder on the server.")
            return
        items += [(str(p), p) for p in sorted(root.rglob("*"))
                  if p.is_file() and not p.name.startswith(".")]
    bar = st.progress(0.0, text=f"0 of {len(items)}")
    try:
        results = import_reference_batch(
            person_id, items,
            progress=lambda done, total, name: bar.progress(done / total, text=f"{done} of {total}: {Path(name).name}"),
        )
    except BatchTooLarge as error:
        st.error(str(error))
        return
    outcomes = [{"file": o.filename, "status": o.status, "reason": o.reason or "", "message": o.message,
                 "photo": o.photo_id} for o in results]
    table = pd.DataFrame(outcomes)
    if table.empty:
        st.info("No files found.")
        return
    summary = table["status"].value_counts().to_dict()
    st.success(f"Added {summary.get('added', 0)}, already stored {summary.get('duplicate', 0)}, "
               f"skipped {summary.get('skipped', 0)}. New photos are in the review queue.")
    skipped = table[table["status"] == "skipped"]
    if not skipped.empty:
        st.subheader("Skipped files")
        st.dataframe(skipped[["file", "reason", "message"]], hide_index=True, width="stretch")
    st.dataframe(table, hide_index=True, width="stretch")


# ----------------------------------------------------------------------------- quality


def quality_section() -> None:
    with session_scope() as s:
        iou = quality.auto_vs_human_iou(s)
        stats = quality.annotator_stats(s)
        agreement = quality.annotator_agreement(s)
    st.subheader("Auto vs human boxes")
    st.caption("Per region: mean IoU between the auto box and the current human-reviewed box.")
    st.table(pd.DataFrame([{"region": r, "photos": v["photos"],
                            "mean IoU": "—" if v["mean_iou"] is None else f"{v['mean_iou']:.3f}"} for r, v in iou.items()]).set_index("region"))
    st.subheader("Annotators")
    st.caption("Saves, photos and decisions; shift = mean absolute corner movement per box, in original pixels.")
    if stats:
        frame = pd.DataFrame(stats)
        frame["mean_shift_px"] = frame["mean_shift_px"].round(2)
        frame["max_shift_px"] = frame["max_shift_px"].round(2)
        st.dataframe(frame, hide_index=True, width="stretch")
    else:
        st.caption("No saves yet.")
    st.subheader("Agreement between annotators")
    if agreement.photos == 0:
        st.caption("No photo has been reviewed by two annotators yet (use Second review in the Review section).")
    else:
        st.markdown(f"**{agreement.photos}** photos reviewed by two or more annotators; same decision in "
                    f"**{agreement.decision_agreement:.0%}** of pairs.")
        st.table(pd.DataFrame([{"region": r, "pairs": v["pairs"],
                                "mean IoU": "—" if v["mean_iou"] is None else f"{v['mean_iou']:.3f}"}
                               for r, v in agreement.per_region.items()]).set_index("region"))
        st.dataframe(pd.DataFrame(agreement.pairs), hide_index=True, width="stretch")


# ----------------------------------------------------------------------------- export / import


def exchange_section() -> None:
    statuses = st.multiselect("Export photos with status", queue.REVIEW_STATUSES, default=["accepted"], key="export_status")
    with session_scope() as s:
        data = coco.export_coco(s, statuses)
        yolo = coco.export_yolo(s, statuses)
    st.caption(f"{len(data['images'])} photos, {len(data['annotations'])} boxes.")
    a, b = st.columns(2)
    a.download_button("COCO JSON", json.dumps(data, indent=1), "facetype_boxes.json", "application/json")
    b.download_button("YOLO labels (zip)", coco.yolo_zip(yolo), "facetype_yolo.zip", "application/zip")

    st.subheader("Import a COCO file")
    st.caption("Images are matched by photo id or file name, regions by category name. Changes are saved "
               "as new versions with the same version check as the canvas.")
    upload = st.file_uploader("COCO JSON", type=["json"], key="coco_upload")
    use_versions = st.checkbox("Conflict if a photo was saved since the file was exported", value=True,
                               help="Uses the boxes_version recorded in files exported from here.")
    decision = st.radio("Imported boxes", ["save", "accept"], horizontal=True,
                        format_func={"save": "keep review status", "accept": "mark accepted"}.get)
    if upload is not None and st.button("Import", type="primary"):
        try:
            with session_scope() as s:
                report = coco.import_coco(s, upload.getvalue(), annotator, decision, use_versions)
        except coco.CocoFormatError as exc:
            st.error(f"Cannot import this file: {exc}")
            return
        st.success(", ".join(f"{n} {k}" for k, n in report.summary.items()))
        st.dataframe(pd.DataFrame([{"file": o.file_name, "status": o.status, "photo": o.photo_id,
                                    "version": o.version, "message": o.message} for o in report.outcomes]),
                     hide_index=True, width="stretch")


# ----------------------------------------------------------------------------- retrain


def start_training_run() -> int:
    """Queue a type-model (head) training run for a worker (models/jobs.py); returns its
    ModelVersion id. Its progress is on the Models page."""
    return jobs.enqueue(st.session_state.get("account"), "head", action="retrain")


def retrain_section() -> None:
    with session_scope() as s:
        n = s.exec(select(sa.func.count()).select_from(Photo).where(Photo.source == "reference",
                                                                     Photo.review_status == "accepted")).one()
    st.markdown(f"**{n}** reviewed (accepted) photos. Training uses each photo's human-reviewed boxes where "
                "there are any and leaves rejected photos out.")
    if st.button("Retrain the type model", type="primary"):
        try:
            run_id = start_training_run()
        except RuntimeError as exc:  # a run is already going on
            st.warning(str(exc))
        except Exception as exc:
            st.error(f"Could not start training: {exc}")
        else:
            state["last_run"] = run_id
    if state.get("last_run"):
        st.success(f"Training run {state['last_run']} started in the background.")
        st.page_link(PROJECT_ROOT / "pages" / "models.py", label="Follow its progress on the Models page",
                     icon=":material/model_training:")


{"Review": review_section, "Import photos": import_section, "Quality": quality_section,
 "Export / import": exchange_section, "Retrain": retrain_section}[section]()
