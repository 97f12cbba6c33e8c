"""Try it: a visitor's photo -> face gate -> type model -> result, reference faces and a result card.

A thin page over :mod:`app.visits` (which the JSON API uses too). The photo and the result live
only in this browser session's memory; only when the visitor ticks "keep my photo and answers"
is anything written (photo object + rows), and then they get a result code and a delete code.
``?result=CODE`` reopens a kept result.
"""

from __future__ import annotations

import hashlib
from datetime import date

import pandas as pd
import sqlalchemy as sa
import streamlit as st

from app.core import vocabulary
from app.core.settings import get_settings
from app.core.vocabulary import MBTI_TYPES
from app.services import analysis, cards, gallery, submissions
from models import registry
from models.gate import get_face_gate
from models.intake import IntakeError, decode_image

settings = get_settings()
TODAY = date.today()
PHOTO_TYPES = ["jpg", "jpeg", "png", "webp"]
STATE_KEYS = ("try_visit", "try_visit_for", "try_refs", "try_stored", "try_stored_for", "try_store_error",
              "try_card", "try_model_error")
ANSWER_KEYS = ("try_mbti", "try_birth", "try_consent", "try_keep", "try_source")


# ---------------------------------------------------------------- cached resources


@st.cache_resource(show_spinner="Loading the face detector…")
def face_gate():
    return get_face_gate()


@st.cache_resource(max_entries=4, show_spinner="Loading the face-type model…")
def _model_for(database_url: str, model_id: int):
    return analysis.served_model()


def current_model():
    """The promoted model, loaded once per process and promoted version; raises ModelUnavailable."""
    try:
        model_id = registry.promoted_id()
    except sa.exc.SQLAlchemyError:
        return analysis.served_model()  # falls back to the model loaded before, when there is one
    if model_id is None:
        raise analysis.ModelUnavailable(analysis.MESSAGES[analysis.NO_MODEL])
    return _model_for(settings.resolved_database_url, model_id)


# ---------------------------------------------------------------- state helpers


def clear_result() -> None:
    for key in STATE_KEYS:
        st.session_state.pop(key, None)


def still_kept(result_code: str) -> bool:
    try:
        return submissions.load_submission(result_code) is not None
    except analysis.VisitError:  # database down: it cannot be stored again either
        return False


def new_photo() -> None:
    """Retake / choose another photo: the photo and result go, MBTI and birth date stay."""
    clear_result()
    st.session_state["try_photo_n"] = st.session_state.get("try_photo_n", 0) + 1


def start_over() -> None:
    """Try again: a clean page."""
    new_photo()
    for key in ANSWER_KEYS:
        st.session_state.pop(key, None)


def leave_stored_view() -> None:
    st.query_params.clear()
    start_over()


# ---------------------------------------------------------------- display helpers


def breakdown_table(per_region: dict) -> pd.DataFrame:
    rows = []
    for region, label in vocabulary.REGION_LABELS.items():
        info = per_region.get(region) or {}
        rows.append({
            "region": label,
            "type": info.get("type", "–"),
            "points": round(float(info.get("points", 0.0)), 1),
            "probability": f"{float(info.get('probability', 0.0)):.0%}",
        })
    return pd.DataFrame(rows)


def show_type(type_name: str, description: str, confidence: float | None, score: float | None,
              explanation: str = "") -> None:
    st.subheader(f"Your face type: {type_name}")
    if explanation:
        st.markdown(f"**How it was worked out:** {explanation}",
                    help="Each region's most likely type and its points (expected over the model's "
                         "probabilities), their total, and the band of points that gives the type.")
    if description:
        st.write(description)
    cols = st.columns(2)
    if confidence is not None:
        cols[0].metric("Confidence", f"{confidence:.0%}",
                       help="How sure the model is of this type, by its own probabilities. "
                            "It is not calibrated and says nothing about you.")
    if score is not None:
        cols[1].metric("Points", f"{score:.1f}", help="Sum of the region points (face, T-zone, jaw).")


def show_breakdown(per_region: dict) -> None:
    st.markdown("**Per-region breakdown**")
    st.dataframe(breakdown_table(per_region), hide_index=True, width="stretch")


def show_references(type_name: str, refs: list) -> None:
    st.markdown(f"**Reference faces of type {type_name}**")
    missing = getattr(refs, "missing", None)
    if missing:
        st.caption(missing)
    if not refs:
        if not missing:
            st.caption("There are no reference photos of this type yet.")
        return
    cols = st.columns(4)
    for col, ref in zip(cols, refs):
        col.image(ref.image, caption=ref.pseudonym, width="stretch")


def result_link(code: str) -> str:
    base = None
    try:
        base = st.context.url
    except Exception:  # older Streamlit or no browser context (tests)
        base = None
    return f"{base or ''}?result={code}"


# ---------------------------------------------------------------- a stored result (?result=CODE)


def show_stored(code: str) -> None:
    st.title("A kept facetype result")
    try:
        stored = submissions.load_submission(code)
    except analysis.ResultsUnavailable as exc:
        st.error(exc.message)
        stored = None
        missing = False
    else:
        missing = stored is None
    if missing:
        st.error(
            "There is no kept result with this code. It may have been deleted, or it expired "
            f"(results are kept for {settings.retention_days} days)."
        )
    if stored is not None:
        show_type(stored.type_name, stored.description, stored.confidence, stored.score, stored.explanation)
        show_breakdown(stored.per_region)
        show_references(stored.type_name, gallery.reference_images(stored.type_name))
        st.info(analysis.FOR_FUN_LINE)
        st.caption(
            f"Kept since {stored.created_at:%Y-%m-%d}, deleted automatically after "
            f"{stored.expires_at:%Y-%m-%d}. The photo is not shown through a result link."
        )
        st.download_button(
            "Download result card",
            data=cards.result_card_png(stored.type_name, stored.description, None, None, stored.created_at,
                                        stored.confidence, stored.explanation),
            file_name=f"facetype-{stored.type_name.lower()}.png",
            mime="image/png",
            key="try_stored_card",
        )
    st.button("Try it yourself", on_click=leave_stored_view, key="try_leave_stored")


result_param = st.query_params.get("result")
if result_param:
    show_stored(result_param)
    st.stop()


# ---------------------------------------------------------------- the visit

st.title("Try it: which face type are you?")
st.caption(analysis.FOR_FUN_LINE)

model_problem = None
try:
    current_model()
except analysis.ModelUnavailable as exc:
    model_problem = exc.message
if model_problem:
    st.warning(model_problem, icon="⏳")

st.markdown("#### 1. Your photo")
photo_n = st.session_state.get("try_photo_n", 0)
source = st.radio("How do you want to give a photo?", ["Upload a photo", "Take a photo"], horizontal=True,
                  key="try_source")
if source == "Take a photo":
    photo = st.camera_input("Take a photo: one face, looking at the camera", key=f"try_camera_{photo_n}")
else:
    photo = st.file_uploader(
        f"Upload a photo (JPEG, PNG or WebP, up to {settings.max_upload_mb} MB)",
        type=PHOTO_TYPES, key=f"try_file_{photo_n}",
    )
data = photo.getvalue() if photo is not None else None
photo_id = hashlib.sha256(data).hexdigest() if data else None
if st.session_state.get("try_visit_for") not in (None, photo_id):
    clear_result()  # another photo: the old result no longer applies

if data:
    try:
        preview = decode_image(data, max_pixels=settings.max_pixels)
    except IntakeError:
        st.caption("This file cannot be previewed; Analyze will say why.")
    else:
        st.image(preview, caption="Your photo (only kept in this page's memory)", width=320)

st.markdown("#### 2. About you")
cols = st.columns(2)
mbti = cols[0].selectbox("Your MBTI type", MBTI_TYPES, index=None, placeholder="Choose your MBTI type",
                         key="try_mbti")
birth_date = cols[1].date_input("Your birth date", value=None, min_value=analysis.EARLIEST_BIRTH_DATE,
                                max_value=TODAY, format="YYYY-MM-DD", key="try_birth")

st.markdown("#### 3. Your consent")
consent = st.checkbox(
    "Analyse my photo (required). It is processed in memory and forgotten when you leave, "
    "unless you tick the box below.",
    key="try_consent",
)
keep = st.checkbox(
    "Keep my photo and answers to improve the model (optional). You get a result code and a "
    f"delete code; everything is deleted after {settings.retention_days} days, or earlier with the "
    "delete code on the Privacy page.",
    value=False,
    key="try_keep",
)

missing = [name for name, given in (("a photo", bool(data)), ("your MBTI type", bool(mbti)),
                                    ("your birth date", birth_date is not None),
                                    ("your consent to analyse the photo", consent)) if not given]
if missing:
    st.info("To analyse, still needed: " + ", ".join(missing) + ".")
analyze = st.button("Analyze", type="primary", disabled=bool(missing) or bool(model_problem), key="try_analyze")

if analyze and not missing and not model_problem:
    answers = (photo_id, mbti, birth_date)
    kept_before = st.session_state.get("try_stored") if st.session_state.get("try_stored_for") == answers else None
    clear_result()
    visit = None
    with st.status("Analysing your photo…", expanded=True) as status:

        def progress(step: str, label: str) -> None:
            status.update(label=f"{label}…")
            status.write(f"{label}…")

        try:
            visit = analysis.analyse_photo(data, gate=face_gate(), model=current_model(), progress=progress)
        except analysis.ModelUnavailable as exc:
            st.session_state["try_model_error"] = exc.message
            status.update(label="The model is not available", state="error")
        else:
            if visit.ok:
                status.update(label=f"Done: {visit.type_name}", state="complete", expanded=False)
            else:
                status.update(label="This photo cannot be used", state="error", expanded=False)
    if visit is not None:
        st.session_state["try_visit"] = visit
        st.session_state["try_visit_for"] = photo_id
        if visit.ok:
            st.session_state["try_refs"] = gallery.reference_images(visit.type_name)
            st.session_state["try_card"] = cards.visit_card_png(visit)
            if keep and kept_before and still_kept(kept_before[0]):  # Analyze again on the same photo and answers
                st.session_state["try_stored"] = kept_before
                st.session_state["try_stored_for"] = answers
            elif keep:
                try:
                    st.session_state["try_stored"] = submissions.store_submission(
                        visit, data, mbti, birth_date, consent_training=True)
                    st.session_state["try_stored_for"] = answers
                except analysis.NotStored as exc:
                    st.session_state["try_store_error"] = exc.message

if st.session_state.get("try_model_error"):
    st.error(st.session_state["try_model_error"])

visit = st.session_state.get("try_visit")
if visit is not None and not visit.ok:
    st.error(visit.message)
    example = settings.sample_dir / "framing_example.jpg"
    cols = st.columns([1, 2])
    if example.is_file():
        cols[0].image(str(example), caption="A well-framed photo: one face, looking at the camera, whole head "
                      "inside the picture.", width="stretch")
    cols[1].write("Your MBTI type and birth date stay filled in.")
    cols[1].button("Retake or choose another photo", on_click=new_photo, key="try_retake")

elif visit is not None and visit.ok:
    st.divider()
    show_type(visit.type_name, visit.description, visit.confidence, visit.score, visit.explanation)
    cols = st.columns([3, 2])
    cols[0].image(cards.draw_regions(visit.image, visit.boxes, max_side=720),
                  caption="Your photo with the three regions", width="stretch")
    with cols[1]:
        show_breakdown(visit.per_region)
        for note in visit.notes:
            st.caption(note)
    show_references(visit.type_name, st.session_state.get("try_refs", []))
    st.info(analysis.FOR_FUN_LINE)

    st.markdown("#### Save and share")
    st.download_button("Download result card", data=st.session_state.get("try_card") or cards.visit_card_png(visit),
                       file_name=f"facetype-{visit.type_name.lower()}.png", mime="image/png", key="try_card_button")
    stored = st.session_state.get("try_stored")
    if stored:
        result_code, delete_code = stored
        st.success(
            f"Your photo and answers are kept under the result code **{result_code}** for "
            f"{settings.retention_days} days."
        )
        st.markdown("Link that reopens this result (the photo is not shown through it):")
        st.code(result_link(result_code), language=None)
        st.markdown("Your **delete code** — write it down, it is shown only this once. Enter it on the "
                    "Privacy page to delete your photo and answers at any time:")
        st.code(delete_code, language=None)
    elif st.session_state.get("try_store_error"):
        st.warning(st.session_state["try_store_error"] + " Your result is shown here but nothing was kept; "
                   "you can still download the card.")
    else:
        st.caption("Nothing about this visit was stored. Leaving or reloading the page forgets it.")
    st.button("Try again", on_click=start_over, key="try_again")
