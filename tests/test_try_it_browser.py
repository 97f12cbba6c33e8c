"""The visitor's path in Chromium: upload, answer, consent, Analyze, see the type and four
reference faces; Try again and a closed page take the photo off its /media URL. Uses a synthetic
sample portrait (no real person is given a type)."""

import re

from PIL import Image

from app.core.settings import get_settings
from app.core.vocabulary import TYPES
from tests.browser import (
    analyze_and_wait_for_result,
    answer_try_it_questions,
    broken_images,
    exceptions_shown,
    image_url,
    media_status,
    open_page,
    screenshot,
    upload_try_it_photo,
    wait_for_app,
    wait_until_gone,
)

PHOTO = get_settings().sample_dir / "framing_example.jpg"


def test_upload_answer_analyze_shows_type_and_four_reference_faces(page, streamlit_app):
    open_page(page, streamlit_app.url)
    analyze = page.get_by_role("button", name="Analyze")
    assert analyze.is_disabled()
    upload_try_it_photo(page, PHOTO)
    wait_for_app(page)
    assert broken_images(page) == 0  # the preview is served by Streamlit's media route
    assert analyze.is_disabled()
    answer_try_it_questions(page)
    wait_for_app(page)
    screenshot(page, "try-it-answered")
    assert analyze.is_enabled()
    type_name = analyze_and_wait_for_result(page)
    assert type_name in TYPES
    page.get_by_text(f"Reference faces of type {type_name}").wait_for()
    page.get_by_role("button", name="Download result card").wait_for()
    page.wait_for_timeout(1000)  # images load
    main = page.locator('[data-testid="stMain"]')
    page.get_by_text(f"Your face type: {type_name}").scroll_into_view_if_needed()
    screenshot(page, "try-it-result")
    assert main.get_by_text("Your photo with the three regions").count() == 1
    # the explanation names each region, the total and the band the total falls in
    explanation = main.locator("p", has_text="How it was worked out:").first.inner_text()
    assert re.search(r"Face \w+ \d+ \+ T-zone \w+ \d+ \+ Jaw \w+ \d+ = \d+ → " + type_name, explanation)
    # reference faces are captioned with their synthetic person's pseudonym
    assert main.get_by_text(re.compile(r"^Composite \d+$")).count() == 4
    assert "for fun" in main.inner_text().lower()
    assert broken_images(page) == 0
    assert exceptions_shown(page) == []
    # the card is drawn when it is asked for (deferred download), with the photo and the type on it
    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("button", name="Download result card").click()
    assert download.value.suggested_filename == f"facetype-{type_name.lower()}.png"
    with Image.open(download.value.path()) as card:
        assert card.format == "PNG" and card.size == (900, 540)
    wait_for_app(page)

    # Try again: the photo and its preview with the regions are no longer served
    visitor_images = [image_url(page, "Your photo (only kept in this page's memory)"),
                      image_url(page, "Your photo with the three regions")]
    assert [media_status(url) for url in visitor_images] == [200, 200]
    page.get_by_role("button", name="Try again").click()
    wait_for_app(page)
    for url in visitor_images:
        wait_until_gone(url, timeout_s=30)


#: app.media_release sweeps every 2 s; the rest is room for a busy machine.
GONE_AFTER_CLOSE_S = 30


def test_a_closed_pages_photo_leaves_its_media_url(browser, streamlit_app):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    open_page(tab, streamlit_app.url)
    upload_try_it_photo(tab, PHOTO)
    wait_for_app(tab)
    preview = image_url(tab, "Your photo (only kept in this page's memory)")
    assert media_status(preview) == 200
    context.close()  # Streamlit keeps a closed page's session a while, for a reconnect
    wait_until_gone(preview, timeout_s=GONE_AFTER_CLOSE_S)
