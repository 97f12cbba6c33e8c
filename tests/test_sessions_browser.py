"""Team sessions, roles in the navigation, and ratings batches, in Chromium against `streamlit run app/web.py`."""

import re


from playwright.sync_api import expect
from sqlmodel import select

from app.core import auth
from app.core.db import RatingBatch, get_engine, session_scope
from tests.browser import assert_still_signed_in, exceptions_shown, open_page, screenshot, sign_in, wait_for_app
from tests.test_survey_browser import reversed_ratings_csv

TEAM_LINKS = ("Survey", "Labeling", "Models")


def nav_text(page) -> str:
    return page.locator('[data-testid="stSidebarNav"]').inner_text()


def test_sign_in_survives_reload_and_new_tabs_and_sign_out_ends_it(page, streamlit_app):
    sign_in(page, streamlit_app.url, "ana", "labeling")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == auth.SESSION_COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["expires"] > 0
    assert auth.SESSION_COOKIE not in page.evaluate("document.cookie")  # page scripts cannot read it

    page.reload()
    assert_still_signed_in(page, "ana")
    other = page.context.new_page()
    open_page(other, streamlit_app.url, "survey")
    assert_still_signed_in(other, "ana")

    page.get_by_role("button", name="Sign out").click()
    wait_for_app(page)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=90_000)
    assert not [c for c in page.context.cookies() if c["name"] == auth.SESSION_COOKIE]
    other.reload()
    wait_for_app(other)
    expect(other.get_by_role("button", name="Sign in")).to_be_visible(timeout=90_000)


def test_a_sign_in_link_keeps_the_address(page, streamlit_app):
    open_page(page, streamlit_app.url, "survey?tab=x")
    sign_in(page, streamlit_app.url, "ana", path=None)
    assert page.url.endswith("/survey?tab=x")


def test_wrong_password_says_so_and_sets_no_cookie(page, streamlit_app):
    open_page(page, streamlit_app.url, "survey")
    page.get_by_role("textbox", name="Name").fill("nobody-here")
    page.get_by_role("textbox", name="Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Wrong name or password.")).to_be_visible(timeout=90_000)
    assert not [c for c in page.context.cookies() if c["name"] == auth.SESSION_COOKIE]


def test_visitors_see_no_team_pages_in_the_sidebar(page, streamlit_app):
    open_page(page, streamlit_app.url)
    nav = nav_text(page)
    assert "Try it" in nav and "Privacy" in nav
    assert not any(name in nav for name in TEAM_LINKS), nav
    open_page(page, streamlit_app.url, "models")  # still reachable by address, behind the sign-in form
    assert page.get_by_role("button", name="Sign in").count() == 1


def test_an_annotator_sees_the_survey_without_its_lead_sections(page, streamlit_app):
    sign_in(page, streamlit_app.url, "ana", "survey")
    assert all(name in nav_text(page) for name in TEAM_LINKS)
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text("Applying labels and storing ratings is for the lead role")).to_be_visible()
    for button in ("Apply labels…", "Store ratings…", "Restore…"):
        assert page.get_by_role("button", name=button).count() == 0
    screenshot(page, "survey-annotator")
    assert exceptions_shown(page) == []


def active_batch(url) -> tuple[int, str, int]:
    with session_scope(url) as session:
        batch = session.exec(select(RatingBatch).where(RatingBatch.active)).one()
    get_engine(url).dispose()
    return batch.id, batch.file_name, batch.n_ratings


def test_storing_ratings_asks_and_restore_brings_the_previous_batch_back(page, streamlit_app, tmp_path):
    url = streamlit_app.env["FACETYPE_DATABASE_URL"]
    before = active_batch(url)
    uploaded = reversed_ratings_csv(tmp_path)
    sign_in(page, streamlit_app.url, "admin", "survey")
    page.locator('[data-testid="stSidebar"] [data-testid="stFileUploader"] input[type="file"]').first.set_input_files(
        str(uploaded))
    page.get_by_text("reversed_ratings.csv", exact=False).first.wait_for(timeout=90_000)
    wait_for_app(page)

    store = page.get_by_role("button", name="Store ratings…")
    expect(store).to_be_visible(timeout=90_000)  # the page reruns on the parsed upload first
    store.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("becomes the stored ratings, replacing the stored batch")).to_be_visible(timeout=90_000)
    expect(dialog.get_by_text("ratings get a different score")).to_be_visible()
    screenshot(page, "survey-store-dialog")
    assert active_batch(url) == before  # nothing stored before the confirmation
    dialog.get_by_role("button", name="Store ratings").click()
    expect(page.get_by_text(re.compile(r"Stored as batch \d+: .* file reversed_ratings.csv, stored by admin"))
           ).to_be_visible(timeout=90_000)
    stored = active_batch(url)
    assert stored[0] != before[0] and stored[1] == "reversed_ratings.csv" and stored[2] == before[2]

    wait_for_app(page)  # the stored note's rerun re-draws the selectbox; choose after that
    choice = page.get_by_role("combobox", name="Batch to restore")  # its value is the chosen batch
    if not choice.input_value().startswith(f"batch {before[0]}:"):  # the newest earlier batch is offered first
        choice.click()
        page.get_by_role("option", name=re.compile(rf"^batch {before[0]}:")).click()
    expect(choice).to_have_value(re.compile(rf"^batch {before[0]}:"), timeout=90_000)
    wait_for_app(page)
    page.get_by_role("button", name="Restore…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(f"batch {before[0]}:", exact=False).first).to_be_visible(timeout=90_000)
    dialog.get_by_role("button", name="Restore").click()
    expect(page.get_by_text(f"Restored batch {before[0]}:", exact=False)).to_be_visible(timeout=90_000)
    assert active_batch(url) == before
    screenshot(page, "survey-restored")
    assert exceptions_shown(page) == []
