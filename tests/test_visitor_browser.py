"""The visitor's experience in Chromium (issue 14): codes that survive a visit to Privacy,
one stored copy per photo, visible messages for refused files, and the phone viewport.

Uses the synthetic sample portrait (no real person is given a type) and, for refused files,
tests/data/bad. Screenshots of each state go to tests/artifacts/visitor-*.png."""

from __future__ import annotations


import re

import sqlalchemy as sa

from app.core.settings import get_settings
from app.core.storage import LocalStore
from tests.browser import (
    analyze_and_wait_for_result,
    answer_try_it_questions,
    exceptions_shown,
    open_page,
    screenshot,
    upload_try_it_photo,
    wait_for_app,
)
from tests.conftest_paths import TEST_DATA

PHOTO = get_settings().sample_dir / "framing_example.jpg"
DELETE_CODE = re.compile(r"^[0-9A-Z]{8}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$")


def stored(streamlit_app) -> tuple[list[tuple[str, str]], list[str]]:
    """(result code, MBTI) of every submission in the app's database, and its visitor photo objects."""
    engine = sa.create_engine(streamlit_app.env["FACETYPE_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select result_code, mbti from submission order by id")).all()
    finally:
        engine.dispose()
    keys = LocalStore(streamlit_app.env["FACETYPE_STORAGE_URL"]).list("visitor/")
    return [tuple(r) for r in rows], keys


def keep_and_analyze(page, base_url: str, mbti: str = "INFP") -> tuple[str, str]:
    """Upload, answer, tick Keep, Analyze; the (result code, delete code) shown."""
    page.goto(base_url)
    wait_for_app(page, timeout_ms=180_000)  # the first visit loads the models, slow on a busy machine
    upload_try_it_photo(page, PHOTO)
    wait_for_app(page)
    answer_try_it_questions(page, mbti=mbti)
    page.get_by_text("Keep my photo and answers").click()
    wait_for_app(page)
    analyze_and_wait_for_result(page)
    page.get_by_text("Your photo and answers are kept under the result code").wait_for(timeout=60_000)
    wait_for_app(page)
    return shown_codes(page)


def shown_codes(page) -> tuple[str, str]:
    main = page.locator('[data-testid="stMain"]')
    result_code = re.search(r"result code (\w{8})", main.inner_text()).group(1)
    codes = [c.strip() for c in main.locator("code").all_inner_texts()]
    return result_code, next(c for c in codes if DELETE_CODE.match(c))


def test_codes_survive_going_to_privacy_and_back(page, streamlit_app):
    result_code, delete_code = keep_and_analyze(page, streamlit_app.url)
    screenshot(page, "visitor-kept-result")
    # Privacy through the link beside the consent, then back through the sidebar
    page.locator('[data-testid="stMain"]').get_by_role("link", name=re.compile("Privacy$")).click()
    page.get_by_role("heading", name="Privacy").wait_for(timeout=30_000)
    wait_for_app(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Try it").click()
    page.get_by_role("heading", name=re.compile("^Try it")).wait_for(timeout=30_000)
    wait_for_app(page)
    screenshot(page, "visitor-back-from-privacy")
    main = page.locator('[data-testid="stMain"]')
    assert result_code in main.inner_text()
    assert shown_codes(page) == (result_code, delete_code)
    # the answers are back too, so the page does not claim Keep was unticked
    assert page.get_by_role("checkbox", name=re.compile("^Keep my photo")).is_checked()
    assert page.get_by_role("textbox", name="Your birth date").input_value() == "1994-05-17"
    assert "You unticked" not in main.inner_text()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=streamlit_app.url)
    page.get_by_role("button", name="Copy link").click()
    page.get_by_text("Copied.").wait_for(timeout=10_000)
    link = next(c for c in main.locator("code").all_inner_texts() if "?result=" in c).strip()
    assert link.endswith(f"?result={result_code}")
    assert page.evaluate("() => navigator.clipboard.readText()") == link
    with page.expect_download() as download:
        page.get_by_role("button", name="Download my codes").first.click()
    text = open(download.value.path()).read()
    assert result_code in text and delete_code in text
    assert exceptions_shown(page) == []


def test_analyzing_again_updates_the_one_stored_copy(page, streamlit_app):
    before_rows, before_keys = stored(streamlit_app)
    result_code, delete_code = keep_and_analyze(page, streamlit_app.url, mbti="INFP")
    rows, keys = stored(streamlit_app)
    assert rows == [*before_rows, (result_code, "INFP")] and len(keys) == len(before_keys) + 1
    # a new MBTI answer, Analyze again: the same codes, the same one row (updated) and object
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Your MBTI type").click()
    page.keyboard.type("ESTJ")
    page.get_by_role("option", name="ESTJ", exact=True).click()
    wait_for_app(page)
    analyze_and_wait_for_result(page)
    page.get_by_text("updates this one copy").wait_for(timeout=60_000)
    wait_for_app(page)
    screenshot(page, "visitor-analyzed-again")
    assert shown_codes(page) == (result_code, delete_code)
    rows_after, keys_after = stored(streamlit_app)
    assert rows_after == [*before_rows, (result_code, "ESTJ")]
    assert keys_after == keys


def test_a_refused_upload_shows_a_visible_message_at_once(page, streamlit_app, tmp_path):
    from PIL import Image

    page.goto(streamlit_app.url)
    wait_for_app(page, timeout_ms=180_000)
    uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    gif = tmp_path / "portrait.gif"
    Image.open(PHOTO).save(gif)
    for path, said in ((TEST_DATA / "bad" / "empty.png", "The file is empty"),
                       (gif, "This is a GIF file. Upload a JPEG, PNG or WebP photo."),
                       (TEST_DATA / "bad" / "not_an_image.jpg", "Upload a JPEG, PNG or WebP photo.")):
        uploader.set_input_files(str(path))
        message = page.locator('[data-testid="stAlertContentError"]').filter(has_text=f"{path.name} cannot be used")
        message.wait_for(timeout=30_000)  # shown as text, no hovering, before any question is answered
        assert said in message.inner_text()
        assert message.is_visible()
        wait_for_app(page)
        screenshot(page, f"visitor-refused-{path.suffix[1:]}")
        assert page.locator('[data-testid="stAlertContentError"]').count() == 1  # messages do not pile up
    assert page.get_by_role("button", name="Analyze").is_disabled()


def test_phone_viewport_has_no_sideways_scroll_and_shows_the_result(browser, streamlit_app):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  device_scale_factor=2)
    page = context.new_page()
    try:
        open_page(page, streamlit_app.url)
        screenshot(page, "visitor-phone-start")
        upload_try_it_photo(page, PHOTO)
        wait_for_app(page)
        answer_try_it_questions(page)
        analyze_and_wait_for_result(page)
        heading = page.get_by_text(re.compile(r"^Your face type: \w+$"))

        def heading_in_view() -> bool:
            box = heading.bounding_box()
            return box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 844

        page.wait_for_function(
            """() => { const h = [...document.querySelectorAll('[data-testid="stMain"] h3')]
                 .find(e => e.textContent.startsWith('Your face type'));
               if (!h) return false; const r = h.getBoundingClientRect();
               return r.top >= 0 && r.bottom <= window.innerHeight; }""",
            timeout=30_000,
        )
        assert heading_in_view()
        page.screenshot(path=str(__import__("tests.conftest", fromlist=["ARTIFACTS"]).ARTIFACTS
                                 / "visitor-phone-result-in-view.png"))
        overflow = page.evaluate(
            """() => [document.scrollingElement, ...document.querySelectorAll(
                  '[data-testid="stMain"], [data-testid="stMainBlockContainer"], [data-testid="stAppViewContainer"]')]
               .filter(e => e && e.scrollWidth > e.clientWidth + 1)
               .map(e => (e.dataset && e.dataset.testid || e.tagName) + ' ' + e.scrollWidth + '>' + e.clientWidth)"""
        )
        assert overflow == []
        screenshot(page, "visitor-phone-result")
        assert exceptions_shown(page) == []
    finally:
        context.close()
