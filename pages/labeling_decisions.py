"""The Labeling page's decisions on a photo: Accept and Flag (button callbacks), the Reject and Discard
dialogs, and the panel that resolves a conflict with someone else's save. Each save is version-checked
by ``labeling.annotations`` under the account the session cookie names now. Imported by
pages/labeling.py; not a page itself."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from app.core import auth
from app.core.db import Photo, session_scope
from app.core.vocabulary import REGIONS, ReviewStatus
from labeling import annotations as ann
from labeling.canvas import missing_regions
from pages.labeling_widgets import boxes_preview
from pages.team_account import account_for

REJECT_REASONS = ("Not a usable face photo", "Blurred or out of focus", "Face cut off or covered",
                  "More than one face", "Duplicate of another photo", "Other")

state = st.session_state


def fmt_box(box) -> str:
    return ", ".join(f"{v:.2f}" for v in box)


def rerun_review() -> None:
    """Rerun only the review fragment where Streamlit allows it (a fragment rerun), else the page."""
    try:
        st.rerun(scope="fragment")
    except StreamlitAPIException:  # the fragment is running as part of a full run
        st.rerun()


def decide(pid: int, opened: int, decision: str, next_pid: int | None) -> None:
    """Accept or Flag, as the button's callback: the save happens before the fragment runs, so the next
    photo is drawn in one run (a save inside the run would need a second one)."""
    boxes = state["edited"].get((pid, opened), {})
    hidden = [r for r in missing_regions(boxes) if state.get(f"hidden-{pid}-{r}")] if decision == "accept" else ()
    try:
        account = account_for("label")  # the cookie's account now, not the one this page was drawn for
        with session_scope() as s:
            result = ann.save_boxes(s, pid, opened, boxes, account.name, decision, state.get(f"note-{pid}"),
                                    not_visible=hidden)
    except (ann.AnnotationError, auth.PermissionDenied) as exc:
        state["labeling_error"] = (pid, f"Not saved: {exc}")
        return
    if isinstance(result, ann.Conflict):
        state["conflicts"][pid] = result
    else:
        record_save(pid, result, next_pid)


def record_save(pid: int, result: ann.SaveResult, next_pid: int | None) -> None:
    state["opened"][pid] = result.version
    state["conflicts"].pop(pid, None)
    state["edited"].pop((pid, result.version - 1), None)
    # Kept until the next save rather than popped: the canvas can trigger an extra rerun right after a
    # save, and a popped message would vanish before the annotator (or a test) sees it.
    state["labeling_last_save"] = f"Photo {pid}: {result.action.replace('_', ' ')} saved as version {result.version}."
    if result.review_status != ReviewStatus.PENDING and next_pid is not None:
        state["labeling_back"] = [*state["labeling_back"], pid][-50:]
        st.query_params["photo"] = str(next_pid)


def close_dialog() -> None:
    state.pop("labeling_dialog", None)


# The dialogs open from session state, not straight from their button, so that they stay open while
# their own widgets rerun the page (and in AppTest); closing one clears it.
@st.dialog("Reject this photo?", on_dismiss=close_dialog)
def reject_dialog(pid: int, opened: int, boxes: dict, next_pid: int | None) -> None:
    st.caption("A rejected photo is left out of training; its boxes and history are kept.")
    preset = st.radio("Reason", REJECT_REASONS, index=None, key=f"reject-preset-{pid}")
    detail = st.text_input("Details" + (" (required)" if preset == "Other" else " (optional)"), key=f"reject-detail-{pid}")
    reason = detail.strip() if preset == "Other" else ", ".join(p for p in (preset, detail.strip()) if p)
    if st.button("Reject photo", type="primary", disabled=not reason, key=f"reject-confirm-{pid}"):
        close_dialog()
        try:
            account = account_for("label")
            with session_scope() as s:
                result = ann.save_boxes(s, pid, opened, boxes, account.name, "reject", reason)
        except (ann.AnnotationError, auth.PermissionDenied) as exc:
            st.error(f"Not saved: {exc}")
            return
        if isinstance(result, ann.Conflict):
            state["conflicts"][pid] = result
        else:
            record_save(pid, result, next_pid)
        st.rerun()


@st.dialog("Discard your changes?", on_dismiss=close_dialog)
def discard_dialog(pid: int, opened: int) -> None:
    st.markdown(f"The canvas goes back to version {opened} of photo {pid}; your unsaved box changes are lost.")
    if st.button("Discard my changes", type="primary", key=f"discard-confirm-{pid}"):
        close_dialog()
        state["canvas_nonce"][pid] = state["canvas_nonce"].get(pid, 0) + 1
        state["edited"].pop((pid, opened), None)
        st.rerun()


def conflict_panel(photo: Photo, conflict: ann.Conflict, next_pid: int | None) -> None:
    when = conflict.theirs_at.strftime("%Y-%m-%d %H:%M:%S") if conflict.theirs_at else "?"
    st.warning(
        f"**Someone else saved this photo since you opened it.** You started from version "
        f"{conflict.expected_version}; version {conflict.current_version} was saved by "
        f"**{conflict.theirs_annotator or 'unknown'}** at {when} UTC ({conflict.theirs_action}, "
        f"status {conflict.theirs_status}). Nothing was overwritten: choose what to keep. Regions you did "
        "not change keep their version unless you pick yours."
    )
    left, right = st.columns(2)
    left.image(boxes_preview(photo.object_key, conflict.mine), caption="Yours (not saved)", width="stretch")
    right.image(boxes_preview(photo.object_key, conflict.theirs),
                caption=f"Theirs (version {conflict.current_version})", width="stretch")
    changed = set(conflict.changed_by_me())
    rows = [{"region": r, "yours": fmt_box(conflict.mine[r]) if r in conflict.mine else "—",
             "theirs": fmt_box(conflict.theirs[r]) if r in conflict.theirs else "—",
             "you changed it": "yes" if r in changed else ""} for r in REGIONS]
    st.table(pd.DataFrame(rows).set_index("region"))
    default = conflict.default_choice()
    choice = {}
    for col, region in zip(st.columns(len(REGIONS)), REGIONS):
        same = ann.same_box(conflict.mine.get(region), conflict.theirs.get(region))
        choice[region] = col.radio(region, ["mine", "theirs"], index=["mine", "theirs"].index(default[region]),
                                   key=f"choice-{photo.id}-{region}", horizontal=True, disabled=same)
    decision = st.selectbox("Decision", ["accept", "flag", "save", "reject"], key=f"conflict-decision-{photo.id}")
    note = st.text_input("Reason / note", key=f"conflict-note-{photo.id}")
    a, b = st.columns(2)
    if a.button("Save my choice", type="primary", key=f"resolve-{photo.id}"):
        try:
            account = account_for("label")
            with session_scope() as s:
                result = ann.resolve_conflict(s, conflict, choice, account.name, decision, note)
        except (ann.AnnotationError, auth.PermissionDenied) as exc:
            st.error(f"Not saved: {exc}")
        else:
            if isinstance(result, ann.Conflict):
                state["conflicts"][photo.id] = result
            else:
                record_save(photo.id, result, next_pid)
            rerun_review()
    if b.button("Discard mine, continue from theirs", key=f"take-theirs-{photo.id}"):
        state["opened"][photo.id] = conflict.current_version
        state["conflicts"].pop(photo.id, None)
        state["canvas_nonce"][photo.id] = state["canvas_nonce"].get(photo.id, 0) + 1
        rerun_review()
