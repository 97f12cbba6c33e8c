"""The visitor's path in Chromium: upload, answer, consent, Analyze, see the type and four
reference faces. Uses a synthetic sample portrait (no real person is given a type)."""

import re

from app.core.settings import get_settings
from app.core.vocabulary import TYPES
from tests.browser import (
    analyze_and_wait_for_result,
    answer_try_it_questions,
    broken_images,
    exceptions_shown,
    open_page,
    screenshot,
    upload_try_it_photo,
    wait_for_app,
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
