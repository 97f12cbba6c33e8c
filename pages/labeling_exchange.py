"""Labeling · Export / import: the reviewed boxes as COCO JSON or YOLO labels, and COCO files back in.

A thin page over ``labeling.coco_export`` and ``labeling.coco_import``; an import asks for confirmation
first (it saves new box versions)."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app.core import auth
from app.core.db import session_scope
from app.core.vocabulary import ReviewStatus
from labeling import coco_export, coco_import, queue
from pages.labeling_widgets import annotator_name
from pages.team_account import account_for

state = st.session_state

st.title("Export / import boxes")
annotator = annotator_name()
account = state.get("account")

statuses = st.multiselect("Export photos with status", queue.REVIEW_STATUSES, default=[ReviewStatus.ACCEPTED],
                          key="export_status")
with session_scope() as s:
    data = coco_export.export_coco(s, statuses)
    yolo = coco_export.export_yolo(s, statuses)
st.caption(f"{len(data['images'])} photos, {len(data['annotations'])} boxes.")
a, b = st.columns(2)
a.download_button("COCO JSON", json.dumps(data, indent=1), "facetype_boxes.json", "application/json")
b.download_button("YOLO labels (zip)", coco_export.yolo_zip(yolo), "facetype_yolo.zip", "application/zip")

st.subheader("Import a COCO file")
if account is not None and not auth.can(account, "import_annotations"):
    st.info(f"Importing boxes needs the {auth.ACTION_ROLES['import_annotations']} role.")
    st.stop()
st.caption("Images are matched by photo id or file name, regions by category name. Changes are saved "
           "as new versions with the same version check as the canvas; earlier versions stay in each photo's history.")
upload = st.file_uploader("COCO JSON", type=["json"], key="coco_upload")
use_versions = st.checkbox("Conflict if a photo was saved since the file was exported", value=True,
                           help="Uses the boxes_version recorded in files exported from here.")
decision = st.radio("Imported boxes", ["save", "accept"], horizontal=True,
                    format_func={"save": "keep review status", "accept": "mark accepted"}.get)


def close_dialog() -> None:
    state.pop("coco_confirm", None)


# Opened from session state (not straight from its button) so it stays open while its widgets rerun the page.
@st.dialog("Import these boxes?", on_dismiss=close_dialog)
def confirm_import(payload: bytes, name: str) -> None:
    try:
        images = len(json.loads(payload).get("images", []))
    except (ValueError, AttributeError):
        images = "?"
    st.markdown(f"**{name}** describes **{images}** images. Each photo whose boxes differ gets a new box version "
                f"saved under your name ({annotator})"
                + (", and is marked **accepted**." if decision == "accept" else "; review statuses stay as they are."))
    if st.button("Import", type="primary", key="coco-import-confirm"):
        close_dialog()
        try:
            with session_scope() as s:
                state["coco_report"] = coco_import.import_coco(s, payload, account_for("import_annotations"), decision,
                                                        use_versions)
        except (coco_import.CocoFormatError, auth.PermissionDenied) as exc:
            state["coco_report"] = str(exc)
        st.rerun()


if st.button("Import…", type="primary", disabled=upload is None, key="coco-import"):
    state["coco_confirm"] = (upload.getvalue(), upload.name)
if state.get("coco_confirm"):
    confirm_import(*state["coco_confirm"])
report = state.pop("coco_report", None)
if isinstance(report, str):
    st.error(f"Cannot import this file: {report}")
elif report is not None:
    st.success(", ".join(f"{n} {k}" for k, n in report.summary.items()))
    st.dataframe(pd.DataFrame([{"file": o.file_name, "status": o.status, "photo": o.photo_id,
                                "version": o.version, "message": o.message} for o in report.outcomes]),
                 hide_index=True, width="stretch")
