"""The live framing guide in Chromium: its fake camera plays a still video made from the synthetic
sample portrait (no real person is given a type); the video reaches the app over WebRTC on loopback,
with no ICE server, and the guide says "ready" or a hint."""

from __future__ import annotations

import re
import time

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from contextlib import contextmanager

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from app.core.settings import get_settings
from app.core.vocabulary import TYPES
from models.intake import read_image_file
from tests.browser import analyze_and_wait_for_result, answer_try_it_questions, exceptions_shown, open_page, screenshot
from tests.conftest import ARTIFACTS
from tests.face_synth import webcam_frame, write_y4m
from tests.servers import CHROMIUM_ARGS

PORTRAIT = get_settings().sample_dir / "framing_example.jpg"
PHONE = {"width": 390, "height": 844}
WAIT_MS = 180_000  # the camera, the WebRTC connection and the first checks: seconds each on a busy 2-core machine


@contextmanager
def camera_page(browser, video):
    """A tab of a Chromium whose fake camera plays ``video`` (the camera flags are per browser)."""
    chromium = browser.browser_type.launch(
        executable_path="/usr/bin/chromium",
        args=[*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              f"--use-file-for-fake-video-capture={video}"],
    )
    try:
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        context.grant_permissions(["camera"])
        yield context.new_page()
    finally:
        chromium.close()


def start_button(page):
    return page.frame_locator('iframe[title*="webrtc"]').get_by_role("button", name="Start the camera")


def wait_for_status(page, text: str, name: str) -> None:
    """Wait for the guide's text. On a busy machine the WebRTC connection may drop (the component
    then offers Start again, as a visitor would see): start it again. On a timeout, save the page."""
    deadline = time.monotonic() + WAIT_MS / 1000
    status = page.get_by_text(text)
    while not status.is_visible():
        if time.monotonic() > deadline:
            page.screenshot(path=str(ARTIFACTS / f"{name}-timeout.png"), full_page=True)
            raise AssertionError(f"the live guide did not say {text!r} in {WAIT_MS / 1000:.0f} s")
        component = page.frame_locator('iframe[title*="webrtc"]')
        try:  # a button seen a moment ago may be re-drawn before the click: poll again then
            if start_button(page).is_visible():
                start_button(page).click(timeout=5_000)
            elif component.get_by_text("taking longer than expected").is_visible():  # stuck connecting: again
                component.get_by_role("button", name="Stop the camera").click(timeout=5_000)
        except PlaywrightTimeoutError:
            pass
        page.wait_for_timeout(1000)  # poll


def take_photo(page) -> None:
    """Take the photo once the guide says ready (again after a dropped connection or a late click)."""
    preview = page.get_by_text("Your photo (only kept in this page's memory)")
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        wait_for_status(page, "Framing: ready", "live-guide-take")
        page.get_by_role("button", name="Take the photo").click()
        try:
            preview.wait_for(timeout=30_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError("the taken photo was never shown")


def start_live_camera(page, base_url: str) -> None:
    open_page(page, base_url)
    page.get_by_text("Take a photo", exact=True).click()
    start_button(page).click(timeout=WAIT_MS)


def no_sideways_scroll(page) -> list[str]:
    return page.evaluate(
        """() => [document.scrollingElement, ...document.querySelectorAll(
              '[data-testid="stMain"], [data-testid="stMainBlockContainer"], [data-testid="stAppViewContainer"]')]
           .filter(e => e && e.scrollWidth > e.clientWidth + 1)
           .map(e => (e.dataset && e.dataset.testid || e.tagName) + ' ' + e.scrollWidth + '>' + e.clientWidth)"""
    )


def screenshots(page, name: str) -> None:
    """The state on the desktop and on a phone-sized viewport (the video in view)."""
    page.locator('iframe[title*="webrtc"]').scroll_into_view_if_needed()
    page.wait_for_timeout(1000)  # a few video frames with the overlay
    page.screenshot(path=str(ARTIFACTS / f"{name}-desktop.png"))
    size = page.viewport_size
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(1500)
    page.locator('iframe[title*="webrtc"]').scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"))
    assert no_sideways_scroll(page) == []
    page.set_viewport_size(size)


def test_live_guide_turns_ready_on_a_good_face_and_the_taken_photo_is_analyzed(browser, streamlit_app, tmp_path):
    video = write_y4m(tmp_path / "good_face.y4m", webcam_frame(read_image_file(PORTRAIT), 480))
    with camera_page(browser, video) as page:
        start_live_camera(page, streamlit_app.url)
        wait_for_status(page, "Framing: ready", "live-guide-ready")
        screenshots(page, "live-guide-ready")
        take_photo(page)
        answer_try_it_questions(page)
        assert analyze_and_wait_for_result(page) in TYPES
        screenshot(page, "live-guide-result")
        assert exceptions_shown(page) == []


def test_live_guide_says_move_closer_on_a_small_face(browser, streamlit_app, tmp_path):
    video = write_y4m(tmp_path / "small_face.y4m", webcam_frame(read_image_file(PORTRAIT), 160))
    with camera_page(browser, video) as page:
        start_live_camera(page, streamlit_app.url)
        wait_for_status(page, "Framing: move closer", "live-guide-move-closer")
        screenshots(page, "live-guide-move-closer")
        page.get_by_role("button", name="Take the photo").click()
        page.get_by_text("Not yet: move closer").wait_for(timeout=WAIT_MS)
        assert page.get_by_text("Your photo (only kept in this page's memory)").count() == 0
        assert page.get_by_text(re.compile("^Framing: ready")).count() == 0
        assert exceptions_shown(page) == []
