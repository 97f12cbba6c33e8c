"""Try it: a visitor's photo -> face gate -> type model -> result, reference faces and a result card.

A thin page over :mod:`app.services.analysis` and :mod:`app.services.submissions` (which the JSON
API uses too). The photo and the result live only in this browser session's memory; only when the
visitor ticks "keep my photo and answers" is anything written (photo object + rows), and then they
get a result code and a delete code, which stay on this page for the whole session (navigating to
Privacy and back included). One photo in one visit is one kept submission: analysing it again
updates it. ``?result=CODE`` reopens a kept result.

Its parts: pages/try_it_camera.py (the live camera and framing guide), pages/try_it_result.py (how a
result is shown) and pages/try_it_kept.py (keeping, deleting and the codes).
"""

from __future__ import annotations

import hashlib
import queue
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import streamlit as st

from app.core.settings import get_settings
from app.core.vocabulary import MBTI_TYPES
from streamlit.errors import StreamlitAPIException
from app.services import analysis, cards, gallery, submissions
from models.gate import get_face_gate
from models.intake import PHOTO_FORMATS, IntakeError, decode_image, photo_file_type
from pages.try_it_camera import camera_photo
from pages.try_it_kept import codes_text, delete_kept, keep_or_update, kept_now
from pages.try_it_result import (
    copy_button,
    result_card,
    result_link,
    result_references,
    scroll_to_result,
    show_breakdown,
    show_references,
    show_type,
)

settings = get_settings()
PHOTO_FILE_EXTENSIONS = ("jpg", "png", "webp")  # as named by models.intake.photo_file_type
MBTI_CHOICES = [*MBTI_TYPES, analysis.MBTI_UNKNOWN]
#: The result of the current photo; ``try_kept`` (photo id -> codes) is kept for the whole session.
STATE_KEYS = ("try_visit", "try_visit_for", "try_answers", "try_refs", "try_store_error",
              "try_model_error")
#: The answer widgets and their blank values (set, not popped, so the browser shows them blank too).
ANSWER_DEFAULTS = {"try_mbti": None, "try_birth": "", "try_consent": False, "try_keep": False}
#: Streamlit forgets a widget's value while its page is not shown; these are put back on return.
REMEMBERED_WIDGETS = ("try_source", *ANSWER_DEFAULTS)
PREVIEW_MAX_SIDE = 640  # shown 320 px wide; twice that for sharp screens, and little memory


# ---------------------------------------------------------------- cached resources


def live_camera_module():
    """streamlit_webrtc, imported when a visitor asks for the camera (not on the app's first page:
    its imports took 0.5-0.8 s there); None without it, and the simple camera is the only one."""
    try:
        import streamlit_webrtc
    except ImportError:
        return None
    return streamlit_webrtc


def face_gate():
    return get_face_gate()  # one per process, warm-loaded at the app's start


def current_model():
    """The promoted model, cached once per process by models.serving; raises ModelUnavailable."""
    return analysis.served_model()


def analyse(data: bytes, progress):
    """The analysis of a photo with the process's gate and model (on a thread: no Streamlit call)."""
    return analysis.analyse_photo(data, gate=face_gate(), model=current_model(), progress=progress)


# ---------------------------------------------------------------- state helpers


def clear_result() -> None:
    for key in STATE_KEYS:
        st.session_state.pop(key, None)


def restore_answers() -> None:
    """Put back the answers given before a visit to another page (e.g. Privacy)."""
    for key, value in st.session_state.get("try_answers_saved", {}).items():
        if key not in st.session_state:
            st.session_state[key] = value


def save_answers() -> None:
    st.session_state["try_answers_saved"] = {k: st.session_state[k] for k in REMEMBERED_WIDGETS
                                             if k in st.session_state}


def new_photo() -> None:
    """Retake / choose another photo: the photo and result go, MBTI and birth date stay."""
    clear_result()
    st.session_state.pop("try_live_photo", None)
    st.session_state["try_photo_n"] = st.session_state.get("try_photo_n", 0) + 1


def start_over() -> None:
    """Try again: a clean page (the codes of what was kept stay listed)."""
    new_photo()
    for key, blank in ANSWER_DEFAULTS.items():
        st.session_state[key] = blank
    st.session_state["try_cleared"] = True


def leave_stored_view() -> None:
    st.query_params.clear()
    start_over()


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
        card = cards.result_card_png(stored.type_name, stored.description, None, None, stored.created_at,
                                     stored.confidence, stored.explanation)
        st.image(card, caption="The result card (without the photo)", width=600)
        st.download_button("Download result card", data=card, file_name=f"facetype-{stored.type_name.lower()}.png",
                           mime="image/png", key="try_stored_card")
        copy_button(result_link(stored.result_code), "Copy link to this result")
    st.button("Try it yourself", on_click=leave_stored_view, key="try_leave_stored")


result_param = st.query_params.get("result")
if result_param:
    show_stored(result_param)
    st.stop()


# ---------------------------------------------------------------- the visit


def privacy_link() -> None:
    try:
        st.page_link(Path(__file__).with_name("privacy.py"), label="How your photo is handled, and deleting it: Privacy",
                     icon=":material/shield_person:")
    except (StreamlitAPIException, KeyError):  # the page run alone, without the app's navigation (tests)
        st.caption("How your photo is handled, and deleting it: see the Privacy page.")


def check_photo(data: bytes):
    """``(decoded photo, None)``, or ``(None, why it cannot be used)``: said as soon as it is uploaded."""
    if len(data) > settings.max_upload_mb * 1024 * 1024:
        return None, analysis.upload_too_large_message()
    try:
        image = decode_image(data, max_pixels=settings.max_pixels, max_side=PREVIEW_MAX_SIDE)
    except IntakeError as error:
        return None, error.message
    extension, content_type = photo_file_type(data)
    if extension not in PHOTO_FILE_EXTENSIONS:
        kind = content_type.removeprefix("image/").upper()
        return None, f"This is a {kind} file. Upload a {PHOTO_FORMATS} photo."
    return image, None


st.title("Try it: which face type are you?")
st.caption(analysis.FOR_FUN_LINE)

model_problem = analysis.model_status(load=False)  # drawn without waiting for the models to load
if model_problem:
    st.warning(model_problem, icon=":material/hourglass_top:")  # the emoji showed as an empty box without an emoji font

restore_answers()
st.markdown("#### 1. Your photo")
photo_n = st.session_state.get("try_photo_n", 0)
source = st.radio("How do you want to give a photo?", ["Upload a photo", "Take a photo"], horizontal=True,
                  key="try_source")
if source == "Take a photo":
    photo = camera_photo(photo_n, live_camera_module())
else:
    photo = st.file_uploader(
        f"Upload a photo ({PHOTO_FORMATS}, up to {settings.max_upload_mb} MB)",
        # Streamlit's hint under it says this limit too. A larger limit here did not bring the page's own message
        # for a larger photo: Streamlit's server refuses any file over server.maxUploadSize (this setting, app/web.py).
        key=f"try_file_{photo_n}", max_upload_size=settings.max_upload_mb,
    )
data = photo.getvalue() if photo is not None else None
photo_id = hashlib.sha256(data).hexdigest() if data else None
if st.session_state.get("try_visit_for") not in (None, photo_id) and photo_id is not None:
    clear_result()  # another photo: the old result no longer applies

preview, problem = check_photo(data) if photo is not None else (None, None)
if problem:
    st.error(f"**{photo.name}** cannot be used. {problem}", icon=":material/block:")
elif preview is not None:
    st.image(preview, caption="Your photo (only kept in this page's memory)", width=320)

st.markdown("#### 2. About you")
st.caption("These two answers do not change your result: the type comes from your photo alone. They are "
           "asked as in the survey the types come from, and are stored only if you tick *Keep* below, so "
           "the team can check the model across ages and personality types.")
cols = st.columns(2)
mbti = cols[0].selectbox("Your MBTI type", MBTI_CHOICES, index=None, placeholder="Choose your MBTI type",
                         format_func=lambda m: "I don't know" if m == analysis.MBTI_UNKNOWN else m,
                         key="try_mbti")
birth_text = cols[1].text_input("Your birth date", placeholder="17/05/1994 or 1994-05-17", key="try_birth",
                                help=f"Type it as {analysis.BIRTH_DATE_FORMATS}.")
birth_date = None
if (birth_text or "").strip():
    try:
        birth_date = analysis.parse_birth_date(birth_text)
    except ValueError as exc:
        cols[1].error(str(exc))
if st.session_state.pop("try_cleared", False):
    st.caption("Your answers were cleared: answer again for the next photo.")

st.markdown("#### 3. Your consent")
consent = st.checkbox(
    "Analyze my photo (required). It is processed in memory and forgotten when you leave, "
    "unless you tick the box below.",
    key="try_consent",
)
keep = st.checkbox(
    "Keep my photo and answers to improve the model (optional). You get a result code and a "
    f"delete code; everything is deleted after {settings.retention_days} days, or earlier with the "
    "delete code on the Privacy page.",
    key="try_keep",
)
privacy_link()
save_answers()

missing = [name for name, given in (("a usable photo", bool(data) and not problem), ("your MBTI type", bool(mbti)),
                                    ("your birth date", birth_date is not None),
                                    ("your consent to analyze the photo", consent)) if not given]
if missing:
    st.info("To analyze, still needed: " + ", ".join(missing) + ".")
analyze = st.button("Analyze", type="primary", disabled=bool(missing) or bool(model_problem), key="try_analyze")

analysed_now = False
if analyze and not missing and not model_problem:
    clear_result()
    visit = None
    steps: queue.SimpleQueue = queue.SimpleQueue()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="facetype-analysis") as pool:
        # Begun before the status box, whose drawing holds the script 50 ms (Streamlit's own pause so
        # that a quick update is not lost): the analysis runs meanwhile; its steps are shown from here.
        analysing = pool.submit(analyse, data, lambda step, label: steps.put(label))
        analysing.add_done_callback(lambda _: steps.put(None))
        with st.status("Analyzing your photo…", expanded=True) as status:
            while (label := steps.get()) is not None:
                status.update(label=f"{label}…")
                status.write(f"{label}…")
            try:
                visit = analysing.result()
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
        st.session_state["try_answers"] = (mbti, birth_date)
        st.session_state["try_scroll"] = st.session_state.get("try_scroll", 0) + 1
        analysed_now = True

if st.session_state.get("try_model_error"):
    st.error(st.session_state["try_model_error"])

visit = st.session_state.get("try_visit")
result_photo_id = st.session_state.get("try_visit_for")
if visit is not None and visit.ok and keep:
    st.session_state.pop("try_store_error", None)
    keep_or_update(visit, data if photo_id == result_photo_id else None, result_photo_id,
                   st.session_state["try_answers"], analysed_now)

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
    cols[0].image(cards.draw_regions(visit.image, visit.image_boxes(), max_side=720),
                  caption="Your photo with the three regions", width="stretch")
    with cols[1]:
        show_breakdown(visit.per_region)
        for note in visit.notes:
            st.caption(note)
    show_references(visit.type_name, result_references(visit))
    st.info(analysis.FOR_FUN_LINE)

    st.markdown("#### Save and share")
    st.download_button("Download result card", data=result_card(visit),
                       file_name=f"facetype-{visit.type_name.lower()}.png", mime="image/png", key="try_card_button")
    entry = st.session_state.get("try_kept", {}).get(result_photo_id)
    if entry:
        result_code = entry["result_code"]
        st.success(
            f"Your photo and answers are kept under the result code **{result_code}** for "
            f"{settings.retention_days} days. Analyzing this photo again updates this one copy."
        )
        st.markdown("Link that reopens this result (the photo is not shown through it):")
        st.code(result_link(result_code), language=None)
        copy_button(result_link(result_code), "Copy link")
        st.markdown("Your **delete code** — it is shown on this page until you close it, and never again. "
                    "Copy or download it; enter it on the Privacy page to delete your photo and answers "
                    "at any time:")
        st.code(entry["delete_code"], language=None)
        st.download_button("Download my codes", data=codes_text(kept_now()), file_name="facetype-codes.txt",
                           mime="text/plain", key="try_codes_download")
        if not keep:
            st.warning("You unticked *Keep*, but this photo is still kept. Delete it now, or later with "
                       "the delete code.")
            st.button("Delete my kept photo and answers now", on_click=delete_kept, args=(result_photo_id,),
                      key="try_delete_now")
    elif st.session_state.get("try_store_error"):
        st.warning(st.session_state["try_store_error"] + " Your result is shown here but nothing was kept; "
                   "you can still download the card.")
    elif keep:
        st.warning("To keep this result, upload the same photo again: the page no longer has it.")
    else:
        st.caption("Nothing about this visit was stored. Leaving or reloading the page forgets it. "
                   "Tick *Keep* above to keep it (it is kept at once, no need to analyze again).")
    st.button("Try again", on_click=start_over, key="try_again")
    if analysed_now:
        scroll_to_result(st.session_state["try_scroll"])

if st.session_state.pop("try_delete_error", None):
    st.error("The kept photo could not be deleted just now. Please try again, or use the delete code later.")
if deleted := st.session_state.pop("try_deleted", None):
    st.success(f"Deleted: the photo and answers kept under {deleted} are gone.")

shown_here = result_photo_id if visit is not None and visit.ok else None
if set(kept_now()) - {shown_here}:  # codes of this visit not shown with a result above
    st.markdown("#### Your codes in this visit")
    st.caption("Listed for as long as this page is open, also when you visit the Privacy page and come back. "
               "Copy or download them: they are not shown again after you close the page.")
    for entry in kept_now().values():
        st.markdown(f"- **{entry['type_name']}**: result code `{entry['result_code']}`, "
                    f"delete code `{entry['delete_code']}`")
    st.download_button("Download my codes", data=codes_text(kept_now()), file_name="facetype-codes.txt",
                       mime="text/plain", key="try_codes_list_download")
