"""The Survey page's parts: a CSV's problems as a table, database reads that fall back to a default,
and the stored ratings (the batches table, with the dialogs that store the shown ratings as a new
batch or restore an earlier one). Imported by pages/survey.py; not a page itself."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
import streamlit as st

from app.core import auth
from app.core.db import session_scope
from labeling import survey_csv, survey_store
from pages.team_account import acting_account


def show_problems(title: str, error: survey_csv.SurveyValidationError, outcome: str = "nothing was loaded") -> None:
    st.error(f"{title}: {len(error.problems)} problem(s); {outcome}.")
    st.dataframe(
        pd.DataFrame([{"line": p.line, "problem": p.message} for p in error.problems]),
        hide_index=True,
        width="stretch",
    )


def read_db(fn, default=None, errors: list[str] | None = None):
    """Run ``fn(session)``; a missing or unmigrated database yields ``default`` (and a note in ``errors``)."""
    try:
        with session_scope() as session:
            return fn(session)
    except sa.exc.SQLAlchemyError as exc:
        if errors is not None:
            errors.append(str(exc).splitlines()[0])
        return default


def _when(batch) -> str:
    return f"{batch.stored_at:%Y-%m-%d %H:%M} UTC"


def _describe(batch) -> str:
    return (f"batch {batch.id}: {batch.n_ratings} ratings from {batch.n_raters} raters on {batch.n_people} people, "
            f"file {batch.file_name}, stored by {batch.stored_by} on {_when(batch)}")


def _store(shown: pd.DataFrame, shown_scale: tuple[float, float], file_name: str) -> None:
    try:
        with session_scope() as session:
            batch = survey_store.store_ratings(session, acting_account(), shown, shown_scale, file_name)
            st.session_state["ratings_note"] = ("success", f"Stored as {_describe(batch)}.")
    except (survey_csv.SurveyValidationError, sa.exc.SQLAlchemyError, auth.PermissionDenied) as exc:
        st.session_state["ratings_note"] = ("error", f"Nothing was stored: {exc}")


@st.dialog("Store these ratings?", width="large")
def confirm_store(shown: pd.DataFrame, shown_scale: tuple[float, float], file_name: str) -> None:
    try:
        change = read_db(lambda s: survey_store.plan_ratings_change(s, shown, shown_scale))
    except survey_csv.SurveyValidationError as exc:
        show_problems("These ratings cannot be stored", exc, "nothing can be stored")
        return
    if change is None:
        st.error("The database is unavailable: nothing can be stored.")
        return
    now = f"the stored {_describe(change.current)}" if change.current else "no stored ratings"
    st.write(f"**{file_name}** becomes the stored ratings, replacing {now}. "
             "The replaced batch stays stored and can be restored.")
    st.dataframe(pd.DataFrame({
        "": ["ratings", "raters", "people", "scale"],
        "stored now": [*(str(x[0]) for x in (change.ratings, change.raters, change.people)),
                       "–" if change.scale[0] is None else f"{change.scale[0][0]:g}–{change.scale[0][1]:g}"],
        "after storing": [*(str(x[1]) for x in (change.ratings, change.raters, change.people)),
                          f"{change.scale[1][0]:g}–{change.scale[1][1]:g}"],
    }), hide_index=True)
    if change.ratings_removed or change.raters_dropped:
        st.warning(f"{change.ratings_removed} stored ratings are not in the new file"
                   + (f"; raters no longer present: {', '.join(change.raters_dropped[:20])}"
                      f"{' …' if len(change.raters_dropped) > 20 else ''}" if change.raters_dropped else "") + ".")
    if change.ratings_changed:
        st.write(f"{change.ratings_changed} ratings get a different score.")
    yes, no = st.columns(2)
    # A callback: it runs (and checks the cookie's account) before the next run decides what to show.
    if yes.button("Store ratings", type="primary", key="confirm_store", on_click=_store,
                  args=(shown, shown_scale, file_name)):
        st.rerun()  # a dialog reruns as a fragment: close it, so the page shows the note
    if no.button("Cancel", key="cancel_store"):
        st.rerun()


def _restore(batch_id: int) -> None:
    try:
        with session_scope() as session:
            batch = survey_store.restore_batch(session, acting_account(), batch_id)
            st.session_state["ratings_note"] = ("success", f"Restored {_describe(batch)}.")
    except (survey_csv.SurveyValidationError, sa.exc.SQLAlchemyError, auth.PermissionDenied) as exc:
        st.session_state["ratings_note"] = ("error", f"Nothing was restored: {exc}")


@st.dialog("Restore these ratings?", width="large")
def confirm_restore(batch_id: int, description: str, replaced: str) -> None:
    st.write(f"The stored ratings become **{description}**, replacing {replaced}. "
             "The replaced batch stays stored and can be restored.")
    yes, no = st.columns(2)
    if yes.button("Restore", type="primary", key="confirm_restore", on_click=_restore, args=(batch_id,)):
        st.rerun()  # a dialog reruns as a fragment: close it, so the page shows the note
    if no.button("Cancel", key="cancel_restore"):
        st.rerun()


def stored_ratings_section(shown: pd.DataFrame, shown_scale: tuple[float, float], upload_name: str | None,
                           may_store: bool) -> None:
    """The note of the last store or restore, and (when ``may_store``: a lead, with the database up) the
    stored batches; ``upload_name`` is the uploaded ratings file shown above, offered for storing, or None."""
    kind, note = st.session_state.pop("ratings_note", (None, None))
    if kind:
        getattr(st, kind)(note)
    if not may_store:
        return
    st.header("Stored ratings")
    if upload_name is not None:
        st.write(f"The uploaded **{upload_name}** is shown above; store it to make it the stored ratings.")
        if st.button("Store ratings…", key="store_ratings"):
            confirm_store(shown, shown_scale, upload_name)
    batches = read_db(survey_store.list_batches, [])
    if batches:
        st.dataframe(pd.DataFrame([{
            "batch": b.id, "in use": "✓" if b.active else "", "file": b.file_name, "stored by": b.stored_by,
            "stored at": _when(b), "ratings": b.n_ratings, "raters": b.n_raters, "people": b.n_people,
            "scale": f"{b.scale_min:g}–{b.scale_max:g}"} for b in batches]), hide_index=True, width="stretch")
        earlier = [b for b in batches if not b.active]
        active = next((b for b in batches if b.active), None)
        if earlier:
            left, right = st.columns([3, 1], vertical_alignment="bottom")
            chosen = left.selectbox("Batch to restore", earlier, format_func=_describe, key="restore_choice")
            if right.button("Restore…", key="restore"):
                confirm_restore(chosen.id, _describe(chosen), f"the stored {_describe(active)}" if active else "nothing")
