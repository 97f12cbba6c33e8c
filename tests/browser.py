"""Helpers for Playwright tests against the running Streamlit app."""

from __future__ import annotations

from tests.conftest import ARTIFACTS, TEAM_PASSWORD


def wait_for_app(page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit has rendered the page and finished running the script: a title is
    shown, nothing is stale, loading or spinning, and the page's text has stopped changing."""
    import time

    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout_ms)  # every page has a title
    busy = '[data-stale="true"], [data-testid="stSpinner"], [data-testid="stSkeleton"]'
    deadline = time.monotonic() + timeout_ms / 1000
    previous, stable_polls = None, 0
    while time.monotonic() < deadline and stable_polls < 3:
        page.wait_for_timeout(400)
        text = page.locator('[data-testid="stMain"]').inner_text(timeout=timeout_ms)  # a page load may be slow
        settled = text == previous and page.locator(busy).count() == 0
        stable_polls = stable_polls + 1 if settled else 0
        previous = text
    if stable_polls < 3:
        raise TimeoutError("the page kept changing or loading")


def open_page(page, base_url: str, path: str = "") -> None:
    page.goto(f"{base_url}/{path}")
    wait_for_app(page)


def sign_in(page, base_url: str, name: str = "admin", path: str | None = "labeling") -> None:
    """Sign in with the team form on ``path`` (None: on the page already open, keeping its URL)."""
    if path is None:
        wait_for_app(page)
    else:
        open_page(page, base_url, path)
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Password").fill(TEAM_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as").wait_for(timeout=60_000)
    wait_for_app(page)


def assert_still_signed_in(page, name: str) -> None:
    """After a reload or in a new tab: the session cookie signs the same account in, with no form."""
    wait_for_app(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Signed in as").wait_for(timeout=60_000)
    assert f"Signed in as {name}" in sidebar.inner_text()
    assert page.get_by_role("button", name="Sign in").count() == 0


def exceptions_shown(page) -> list[str]:
    """Tracebacks and "Page not found" dialogs on the page."""
    shown = [e.inner_text() for e in page.query_selector_all('[data-testid="stException"]')]
    return shown + [d.inner_text() for d in page.query_selector_all('[role="dialog"]') if "not found" in d.inner_text()]


def screenshot(page, name: str) -> None:
    """Save the whole page: Streamlit scrolls inside its own container, so the viewport is made as
    tall as the content for the picture and restored after."""
    size = page.viewport_size
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], [data-testid=\"stMainBlockContainer\"]')]"
        ".map(e => e.scrollHeight), 0)"
    )
    page.set_viewport_size({"width": size["width"], "height": min(max(size["height"], height + 120), 6000)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def answer_try_it_questions(page, mbti: str = "INFP", birth_date: str = "1994-05-17") -> None:
    """Answer MBTI and birth date on the Try it page and tick the required consent, letting the
    app rerun after each answer."""
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Your MBTI type").click()
    page.keyboard.type(mbti)  # the option list is virtualised: filter it, then pick the one match
    page.get_by_role("option", name=mbti, exact=True).click()
    wait_for_app(page)
    birth = page.get_by_role("textbox", name="Your birth date")
    birth.fill(birth_date)
    birth.press("Enter")  # a text input sends its value on Enter (or on leaving the field)
    wait_for_app(page)
    page.get_by_text("Analyze my photo (required)").click()
    wait_for_app(page)


def upload_try_it_photo(page, photo_path) -> None:
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(photo_path))
    page.get_by_text("Your photo (only kept in this page's memory)").wait_for(timeout=30_000)


def broken_images(page) -> int:
    """Images on the page that the browser could not load (a media or static route failing)."""
    return page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=\"stMain\"] img')]"
        ".filter(img => img.complete && img.naturalWidth === 0).length"
    )


def analyze_and_wait_for_result(page, timeout_ms: int = 60_000) -> str:
    """Click Analyze and return the type name once the result is shown."""
    import re

    page.get_by_role("button", name="Analyze").click()
    heading = page.get_by_text(re.compile(r"^Your face type: \w+$"))
    heading.wait_for(timeout=timeout_ms)
    return heading.inner_text().removeprefix("Your face type: ")


def image_url(page, caption: str) -> str:
    """The full /media URL of the image shown with ``caption``."""
    image = page.locator('[data-testid="stImage"]', has_text=caption).locator("img")
    return image.evaluate("img => img.src")


def media_status(url: str) -> int:
    """The HTTP status the app answers for ``url``, asked without any browser session."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def wait_until_gone(url: str, timeout_s: float) -> float:
    """Seconds until ``url`` answers 404; raises if it still answers after ``timeout_s``."""
    import time

    start = time.monotonic()
    while media_status(url) != 404:
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"{url} was still served {timeout_s:.0f} s later")
        time.sleep(0.5)
    return time.monotonic() - start
