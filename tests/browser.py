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
        text = page.locator('[data-testid="stMain"]').inner_text()
        settled = text == previous and page.locator(busy).count() == 0
        stable_polls = stable_polls + 1 if settled else 0
        previous = text
    if stable_polls < 3:
        raise TimeoutError("the page kept changing or loading")


def open_page(page, base_url: str, path: str = "") -> None:
    page.goto(f"{base_url}/{path}")
    wait_for_app(page)


def sign_in(page, base_url: str, name: str = "admin", path: str = "labeling") -> None:
    open_page(page, base_url, path)
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Password").fill(TEAM_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as").wait_for(timeout=60_000)
    wait_for_app(page)


def exceptions_shown(page) -> list[str]:
    """Tracebacks and "Page not found" dialogs on the page."""
    shown = [e.inner_text() for e in page.query_selector_all('[data-testid="stException"]')]
    return shown + [d.inner_text() for d in page.query_selector_all('[role="dialog"]') if "not found" in d.inner_text()]


def screenshot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
