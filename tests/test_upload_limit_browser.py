"""The upload limit in Chromium: FACETYPE_MAX_UPLOAD_MB is the limit Streamlit's server keeps (app/web.py),
and a photo over it is refused with a reason a visitor can read without hovering (app/main.py), on a
desktop and on a phone."""

import shutil

import pytest

from app.core.settings import get_settings
from tests.browser import exceptions_shown, open_page, screenshot, upload_try_it_photo, wait_for_app
from tests.conftest import ARTIFACTS, var_env
from tests.visit_helpers import PASSING

#: Streamlit's browser side counts a megabyte as 10**6 bytes, its server (and the pages) as 2**20.
CONFIG_TOML_LIMIT_MB = 10
LARGER_LIMIT_MB = 11


def padded_photo(path, size_bytes: int):
    """The test face, followed by zeros up to ``size_bytes`` (a JPEG decoder stops at its end marker)."""
    data = PASSING.read_bytes()
    path.write_bytes(data + b"\0" * (size_bytes - len(data)))
    return path


@pytest.fixture
def app_with_a_larger_limit(tmp_path, served_template, team_accounts_env):
    """The app served with FACETYPE_MAX_UPLOAD_MB above .streamlit/config.toml's server.maxUploadSize."""
    from tests.servers import StreamlitServer

    var = tmp_path / "var"
    shutil.copytree(served_template, var)
    env = {**var_env(var), "FACETYPE_ACCOUNTS": team_accounts_env, "FACETYPE_MAX_UPLOAD_MB": str(LARGER_LIMIT_MB)}
    server = StreamlitServer(env).start(ARTIFACTS)
    yield server
    server.stop()


def test_the_server_takes_a_photo_up_to_the_settings_limit_not_config_tomls(page, app_with_a_larger_limit, tmp_path):
    # Over config.toml's 10 MB (10 * 2**20 bytes, which the server refused with 413 before app/web.py set
    # its limit from the setting), under the uploader's 11 MB (11 * 10**6 bytes in the browser).
    photo = padded_photo(tmp_path / "large.jpg", 10_700_000)
    assert CONFIG_TOML_LIMIT_MB * 2**20 < photo.stat().st_size < LARGER_LIMIT_MB * 10**6
    open_page(page, app_with_a_larger_limit.url)
    assert f"up to {LARGER_LIMIT_MB} MB" in page.locator('[data-testid="stFileUploader"]').inner_text()
    upload_try_it_photo(page, photo)  # waits for the page's preview: the server accepted the file
    wait_for_app(page)
    assert page.locator('[data-testid="stFileChips"] [role="alert"]').count() == 0
    assert exceptions_shown(page) == []


@pytest.mark.parametrize("viewport", [{"width": 1400, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_a_photo_over_the_limit_is_refused_with_a_reason_shown_under_it(browser, streamlit_app, tmp_path, viewport):
    limit_mb = get_settings().max_upload_mb
    photo = padded_photo(tmp_path / "too-large.jpg", limit_mb * 2**20 + 65_536)
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    try:
        open_page(page, streamlit_app.url)
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(photo))
        reason = page.locator('[data-testid="stFileChips"] [role="alert"]')
        reason.wait_for(timeout=30_000)
        assert f"File must be {limit_mb}.0MB or smaller." in reason.inner_text()
        # Streamlit draws it as a 1 px, clipped "visually hidden" span (a tooltip on hover, which a phone lacks)
        box = reason.bounding_box()
        assert box["width"] > 150 and box["height"] > 10, box
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], box
        wait_for_app(page)
        assert page.get_by_text("Your photo (only kept in this page's memory)").count() == 0
        screenshot(page, f"upload-over-limit-{viewport['width']}px")
    finally:
        context.close()
