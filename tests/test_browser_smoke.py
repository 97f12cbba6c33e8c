"""Every page opens in Chromium without an exception, on the app served by `streamlit run`."""

import re

import pytest

from app.core.settings import Settings

from tests.browser import exceptions_shown, open_page, screenshot, sign_in, wait_for_app

PUBLIC = {"": "Try it", "privacy": "Privacy"}
TEAM = {"survey": "Survey", "labeling": "Labeling", "labeling_import": "Import photos",
        "labeling_quality": "Labeling quality", "labeling_exchange": "Export / import boxes",
        "labeling_retrain": "Retrain", "models": "Models"}


@pytest.mark.parametrize("path", PUBLIC)
def test_public_pages_open(page, streamlit_app, path):
    open_page(page, streamlit_app.url, path)
    screenshot(page, f"smoke-{path or 'try-it'}")
    assert exceptions_shown(page) == []
    assert page.locator('[data-testid="stSidebarNav"]').get_by_text(PUBLIC[path]).count() >= 1
    if path == "":  # the label and Streamlit's hint under it name one limit, the photo limit (the hint said 40MB)
        uploader = page.locator('[data-testid="stFileUploader"]').inner_text()
        assert set(re.findall(r"(\d+) ?MB", uploader)) == {str(Settings.model_fields["max_upload_mb"].default)}, uploader


@pytest.mark.parametrize("path", TEAM)
def test_team_pages_show_only_the_sign_in_form_to_visitors(page, streamlit_app, path):
    open_page(page, streamlit_app.url, path)
    screenshot(page, f"smoke-{path}-signed-out")
    assert exceptions_shown(page) == []
    assert page.get_by_role("button", name="Sign in").count() == 1
    main = page.locator('[data-testid="stMain"]').inner_text()
    assert "Sign in" in main and "Password" in main


@pytest.mark.parametrize("path", TEAM)
def test_team_pages_open_after_sign_in(page, streamlit_app, path):
    sign_in(page, streamlit_app.url, "admin", path)
    screenshot(page, f"smoke-{path}")
    assert exceptions_shown(page) == []
    assert page.get_by_role("button", name="Sign in").count() == 0
    assert "Signed in as" in page.locator('[data-testid="stSidebar"]').inner_text()


def test_wrong_password_is_refused(page, streamlit_app):
    open_page(page, streamlit_app.url, "models")
    page.get_by_role("textbox", name="Name").fill("admin")
    page.get_by_role("textbox", name="Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Wrong name or password.").wait_for(timeout=20_000)
    assert page.get_by_role("button", name="Sign in").count() == 1


def test_annotator_can_label_but_not_promote(page, streamlit_app):
    sign_in(page, streamlit_app.url, "ana", "labeling")
    main = page.locator('[data-testid="stMain"]')
    assert "photos left in this queue" in main.inner_text()
    assert page.locator("canvas").count() >= 1
    screenshot(page, "annotator-labeling")
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Models").click()
    wait_for_app(page)
    screenshot(page, "annotator-models")
    assert page.get_by_text("Promoting and rolling back models is for admins.").count() == 1
    assert page.get_by_role("button", name=re.compile("^Promote run")).count() == 0
    assert page.get_by_role("button", name=re.compile("^Roll back")).count() == 0
    assert exceptions_shown(page) == []
