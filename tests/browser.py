"""Helpers for Playwright tests against the running Streamlit app."""

from __future__ import annotations

from tests.conftest import ARTIFACTS, TEAM_PASSWORD


def wait_for_app(page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit has rendered the page and finished running the script."""
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=timeout_ms,
    )
    page.wait_for_timeout(500)


def open_page(page, base_url: str, path: str = "") -> None:
    page.goto(f"{base_url}/{path}")
    wait_for_app(page)


def sign_in(page, base_url: str, name: str = "admin", path: str = "labeling") -> None:
    open_page(page, base_url, path)
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(TEAM_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    wait_for_app(page)


def exceptions_shown(page) -> list[str]:
    return [e.inner_text() for e in page.query_selector_all('[data-testid="stException"]')]


def screenshot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
