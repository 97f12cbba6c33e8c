"""The Try it page, run alone with Streamlit's AppTest (no browser).

Uses ``served_app_env``: the sample project plus a briefly trained, promoted head (its types
mean nothing; the page's behaviour is what is tested).
"""

from __future__ import annotations

import sys
from datetime import date

from sqlmodel import select
from streamlit.testing.v1 import AppTest

from app.services import analysis, gallery, submissions
from app.core import db, settings, storage
from models.gate import GATE_MESSAGES
from tests.conftest import clear_caches
from tests.visit_helpers import (  # noqa: F401  (fixtures)
    BAD,
    NO_FACE,
    PASSING,
    UNREACHABLE_DB,
    snapshot,
    visitor_counts,
)

PAGE = "pages/try_it.py"


def open_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    return at


def analyze_button(at: AppTest):
    return at.button(key="try_analyze")


def give_photo(at: AppTest, path, mime="image/jpeg") -> None:
    at.file_uploader[0].set_value((path.name, path.read_bytes(), mime))
    at.run()


def fill_answers(at: AppTest, mbti="INTJ", born=date(1990, 4, 5), consent=True, keep=False) -> None:
    at.selectbox(key="try_mbti").set_value(mbti)
    at.text_input(key="try_birth").input(born.isoformat())
    at.checkbox(key="try_consent").set_value(consent)
    at.checkbox(key="try_keep").set_value(keep)
    at.run()


def texts(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader", "title", "code"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def run_analysis(at: AppTest) -> None:
    analyze_button(at).click()
    at.run()
    assert not at.exception, at.exception


def test_analyze_disabled_until_all_inputs_are_given(served_app_env):
    at = open_page()
    assert analyze_button(at).disabled
    assert "still needed: a usable photo, your MBTI type, your birth date, your consent" in at.info[0].value
    give_photo(at, PASSING)
    assert analyze_button(at).disabled
    assert "a usable photo" not in at.info[0].value
    at.selectbox(key="try_mbti").set_value("ENFP")
    at.run()
    assert analyze_button(at).disabled
    at.text_input(key="try_birth").input("31/12/1999")
    at.run()
    assert analyze_button(at).disabled
    assert at.info[0].value == "To analyze, still needed: your consent to analyze the photo."
    assert at.checkbox(key="try_keep").value is False  # opt-in is off by default
    at.checkbox(key="try_consent").check()
    at.run()
    assert not analyze_button(at).disabled
    assert not [i for i in at.info if "still needed" in i.value]


def test_passing_photo_gives_a_type_and_references_and_stores_nothing(served_app_env):
    before = snapshot()
    at = open_page()
    give_photo(at, PASSING)
    fill_answers(at)
    run_analysis(at)
    visit = at.session_state["try_visit"]
    assert visit.ok
    assert any(s.value == f"Your face type: {visit.type_name}" for s in at.subheader)
    assert visit.description in texts(at)
    refs = at.session_state["try_refs"]
    assert len(refs) == 4 and len({r.photo_id for r in refs}) == 4
    assert len(at.get("image")) >= 2 + 4  # preview, overlay, four references
    assert analysis.FOR_FUN_LINE in texts(at)
    assert at.get("download_button")
    assert at.dataframe[0].value["region"].tolist() == ["Face", "T-zone", "Jaw"]
    status = at.status[0]
    assert [m.value for m in status.markdown] == [f"{label}…" for _, label in analysis.STEPS]
    assert status.state == "complete" and status.label.startswith("Done")
    assert "Nothing about this visit was stored" in texts(at)
    assert snapshot() == before

    at.button(key="try_again").click()
    at.run()
    assert "try_visit" not in at.session_state
    assert at.selectbox(key="try_mbti").value is None
    assert at.text_input(key="try_birth").value == ""
    assert not at.checkbox(key="try_consent").value
    assert analyze_button(at).disabled
    assert "Your answers were cleared" in texts(at)
    give_photo(at, PASSING)  # a new photo does not enable Analyze without answering again
    assert analyze_button(at).disabled
    assert "your MBTI type, your birth date, your consent" in at.info[0].value


def test_no_face_photo_gives_its_message_and_keeps_the_answers(served_app_env):
    at = open_page()
    give_photo(at, NO_FACE)
    fill_answers(at, mbti="ISFP", born=date(1980, 1, 2))
    run_analysis(at)
    assert [e.value for e in at.error] == [GATE_MESSAGES["no_face"]]
    assert any("well-framed" in (c or "") for img in at.get("image") for c in img.captions)
    at.button(key="try_retake").click()
    at.run()
    assert not at.error
    assert at.selectbox(key="try_mbti").value == "ISFP"
    assert at.text_input(key="try_birth").value == "1980-01-02"
    assert analyze_button(at).disabled  # the photo is gone, so it is missing again
    assert "a usable photo" in at.info[0].value


def test_bad_file_gives_its_message_as_soon_as_it_is_uploaded(served_app_env):
    at = open_page()
    give_photo(at, BAD / "truncated.jpg")
    assert [e.value for e in at.error] == [f"**truncated.jpg** cannot be used. {GATE_MESSAGES['truncated']}"]
    fill_answers(at)
    assert analyze_button(at).disabled
    assert "a usable photo" in at.info[0].value


def test_gif_empty_and_oversized_files_each_get_a_visible_message(served_app_env, tmp_path):
    from PIL import Image

    gif = tmp_path / "face.gif"
    Image.open(PASSING).save(gif)
    big = tmp_path / "big.jpg"
    big.write_bytes(PASSING.read_bytes() + b"\0" * (served_app_env.max_upload_mb * 1024 * 1024))
    at = open_page()
    for path, said in ((gif, "This is a GIF file. Upload a JPEG, PNG or WebP photo."),
                       (BAD / "empty.png", GATE_MESSAGES["empty"]),
                       (big, f"larger than {served_app_env.max_upload_mb} MB"),
                       (BAD / "not_an_image.jpg", "Upload a JPEG, PNG or WebP photo.")):
        give_photo(at, path)
        assert len(at.error) == 1 and at.error[0].value.startswith(f"**{path.name}** cannot be used.")
        assert said in at.error[0].value
        assert not at.get("image")  # no preview of a refused file


def test_opt_in_stores_one_submission_and_the_delete_code_removes_it(served_app_env):
    at = open_page()
    give_photo(at, PASSING)
    fill_answers(at, keep=True)
    run_analysis(at)
    (entry,) = at.session_state["try_kept"].values()
    result_code, delete_code = entry["result_code"], entry["delete_code"]
    assert visitor_counts() == (1, 1, 1)
    codes = [c.value for c in at.code]
    assert f"?result={result_code}" in codes[0] and codes[1] == delete_code
    assert result_code in texts(at)

    # The link reopens the result (without the photo).
    link = AppTest.from_file(PAGE, default_timeout=90)
    link.query_params["result"] = result_code
    link.run()
    assert not link.exception
    assert any(s.value.startswith("Your face type: ") for s in link.subheader)
    assert "not shown through a result link" in texts(link)
    assert any("result card (without the photo)" in c for image in link.get("image") for c in image.captions)

    privacy = AppTest.from_file("pages/privacy.py", default_timeout=60)
    privacy.run()
    privacy.text_input(key="privacy_delete_code").input(delete_code)
    privacy.button[0].click()
    privacy.run()
    assert privacy.success and "Deleted" in privacy.success[0].value
    assert visitor_counts() == (0, 0, 0)


def kept_codes(at: AppTest) -> list[tuple[str, str]]:
    return [(e["result_code"], e["delete_code"]) for e in at.session_state["try_kept"].values()]


def test_analyze_again_keeps_one_submission_until_it_is_deleted(served_app_env):
    at = open_page()
    give_photo(at, PASSING)
    fill_answers(at, keep=True)
    run_analysis(at)
    (first,) = kept_codes(at)
    keys = storage.get_store().list("")
    at.selectbox(key="try_mbti").set_value("ESTP")
    at.run()
    run_analysis(at)
    assert kept_codes(at) == [first]
    assert visitor_counts() == (1, 1, 1)
    assert storage.get_store().list("") == keys
    assert "updates this one copy" in texts(at)
    with db.session_scope() as session:  # the one submission holds the new answer
        assert [r.mbti for r in session.exec(select(db.Submission))] == ["ESTP"]
    assert submissions.delete_submission(None, first[1])
    run_analysis(at)  # deleted meanwhile: keeping again makes a new submission
    assert kept_codes(at) != [first]
    assert visitor_counts() == (1, 1, 1)


def test_ticking_keep_after_the_result_keeps_it_at_once(served_app_env):
    at = open_page()
    give_photo(at, PASSING)
    fill_answers(at, mbti=analysis.MBTI_UNKNOWN, keep=False)
    run_analysis(at)
    assert "Nothing about this visit was stored" in texts(at)
    assert visitor_counts() == (0, 0, 0)
    at.checkbox(key="try_keep").check()
    at.run()
    (codes,) = kept_codes(at)
    assert visitor_counts() == (1, 1, 1)
    assert codes[0] in texts(at) and codes[1] in [c.value for c in at.code]
    with db.session_scope() as session:
        assert [r.mbti for r in session.exec(select(db.Submission))] == [analysis.MBTI_UNKNOWN]
    at.checkbox(key="try_keep").uncheck()  # unticking says it is still kept and offers to delete it
    at.run()
    assert any("still kept" in w.value for w in at.warning)
    at.button(key="try_delete_now").click()
    at.run()
    assert visitor_counts() == (0, 0, 0)
    assert at.session_state["try_kept"] == {}
    assert any("Deleted" in s.value for s in at.success)


def test_codes_stay_listed_after_try_again(served_app_env):
    at = open_page()
    give_photo(at, PASSING)
    fill_answers(at, keep=True)
    run_analysis(at)
    (codes,) = kept_codes(at)
    at.button(key="try_again").click()
    at.run()
    assert "try_visit" not in at.session_state
    assert "Your codes in this visit" in texts(at)
    assert codes[0] in texts(at) and codes[1] in texts(at)
    download = at.get("download_button")
    assert download, "the codes can be downloaded"


def test_birth_date_typed_in_common_formats_or_refused_with_a_message(served_app_env):
    at = open_page()
    give_photo(at, PASSING)
    at.selectbox(key="try_mbti").set_value("INFP")
    at.checkbox(key="try_consent").check()
    for typed in ("17/05/1994", "1994-5-7", "1994-05-17"):
        at.text_input(key="try_birth").input(typed)
        at.run()
        assert not at.error, typed
        assert not analyze_button(at).disabled, typed
    for typed, said in (("2999-01-01", "is not in the past"), (date.today().strftime("%d/%m/%Y"), "is not in the past"),
                        ("17 May 94", "Write your birth date as day/month/year (17/05/1994)")):
        at.text_input(key="try_birth").input(typed)
        at.run()
        assert [e.value for e in at.error if said in e.value], typed
        assert analyze_button(at).disabled, typed


def test_mbti_offers_i_dont_know_and_says_why_it_is_asked(served_app_env):
    at = open_page()
    assert at.selectbox(key="try_mbti").options[-1] == "I don't know"
    assert "do not change your result" in texts(at)


def test_store_down_still_shows_the_result(served_app_env, monkeypatch):
    class DeadStore:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise storage.StorageError("down (test)")

            return fail

    monkeypatch.setattr(submissions, "get_visitor_store", lambda: DeadStore())
    monkeypatch.setattr(gallery, "get_visitor_store", lambda: DeadStore())
    at = open_page()
    give_photo(at, PASSING)
    fill_answers(at, keep=True)
    run_analysis(at)
    assert at.session_state["try_visit"].ok
    assert "try_stored" not in at.session_state
    assert any("nothing was kept" in w.value for w in at.warning)
    assert visitor_counts()[:2] == (0, 0)


def test_database_down_still_shows_the_result(served_app_env, monkeypatch):
    at = open_page()
    give_photo(at, PASSING)
    fill_answers(at, keep=False)
    run_analysis(at)  # the model is loaded while the database is up
    first = at.session_state["try_visit"]
    assert first.ok

    monkeypatch.setenv("FACETYPE_DATABASE_URL", UNREACHABLE_DB)
    settings.get_settings.cache_clear()
    db.get_engine.cache_clear()
    keys = storage.get_store().list("")
    at.checkbox(key="try_keep").check()
    at.run()
    run_analysis(at)
    visit = at.session_state["try_visit"]
    assert visit.ok and visit.type_name == first.type_name
    assert any(s.value == f"Your face type: {visit.type_name}" for s in at.subheader)
    assert any("nothing was kept" in w.value for w in at.warning)
    assert storage.get_store().list("") == keys


def test_unknown_result_code(served_app_env):
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.query_params["result"] = "ZZZZZZZZ"
    at.run()
    assert at.error and "no kept result" in at.error[0].value


def test_without_a_model_the_page_says_so(app_env):
    clear_caches()
    db.migrate()
    at = open_page()
    assert any("no model has been promoted" in w.value for w in at.warning)
    # A Material icon: the emoji it had rendered as an empty box where the browser had no emoji font.
    assert [w.icon for w in at.warning] == [":material/hourglass_top:"]
    assert analyze_button(at).disabled


def test_take_a_photo_offers_the_live_guide_and_the_simple_camera(served_app_env, monkeypatch):
    """AppTest has no real runtime for the WebRTC component, so the streamer is a stand-in that
    records its arguments here (tests/test_framing_browser.py drives the real one in Chromium)."""
    import types

    import streamlit_webrtc

    calls = []

    def streamer(**kwargs):
        calls.append(kwargs)
        return types.SimpleNamespace(state=types.SimpleNamespace(playing=False))

    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", streamer)
    at = open_page()
    at.radio(key="try_source").set_value("Take a photo")
    at.run()
    assert not at.exception, at.exception
    assert "The video shows, live, whether your framing passes" in texts(at)
    (call,) = calls[-1:]
    assert call["rtc_configuration"] == {"iceServers": []}  # nothing fetched from outside
    assert callable(call["video_frame_callback"])
    assert not at.get("camera_input")
    at.toggle(key="try_simple_camera").set_value(True)
    at.run()
    assert not at.exception, at.exception
    assert len(at.get("camera_input")) == 1
    assert "The video shows, live" not in texts(at)


def test_the_first_page_leaves_the_live_camera_unimported_until_it_is_asked_for(served_app_env, monkeypatch):
    """streamlit_webrtc's imports took 0.5-0.8 s of the app's first page, which shows the uploader."""
    import types

    import streamlit_webrtc

    monkeypatch.delitem(sys.modules, "streamlit_webrtc")  # an import would put it back
    at = open_page()
    assert "streamlit_webrtc" not in sys.modules
    monkeypatch.setitem(sys.modules, "streamlit_webrtc", streamlit_webrtc)  # no second component declared
    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer",
                        lambda **kwargs: types.SimpleNamespace(state=types.SimpleNamespace(playing=False)))
    at.radio(key="try_source").set_value("Take a photo")
    at.run()
    assert not at.exception, at.exception
    assert "The video shows, live, whether your framing passes" in texts(at)


def test_without_streamlit_webrtc_take_a_photo_is_the_simple_camera(served_app_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "streamlit_webrtc", None)  # importing it raises ImportError
    at = open_page()
    at.radio(key="try_source").set_value("Take a photo")
    at.run()
    assert not at.exception, at.exception
    assert len(at.get("camera_input")) == 1
    assert not at.get("toggle")
