"""The Survey page in Chromium: upload ratings, see the charts, apply labels, reload, and find the
labels persisted."""

import re

import pandas as pd
from sqlmodel import select

from app.core.db import ReferencePerson, get_engine, session_scope
from app.core.settings import get_settings
from app.core.vocabulary import TYPES
from labeling import survey
from tests.browser import assert_still_signed_in, exceptions_shown, screenshot, sign_in, wait_for_app

SHARES = [21.8, 21.4, 22.5, 19.2, 15.2]


def reversed_ratings_csv(tmp_path):
    """The sample survey with every score mirrored on its 1-5 scale, so the ranking turns over."""
    ratings = pd.read_csv(get_settings().sample_dir / "ratings.csv")
    ratings["score"] = 6 - ratings["score"]
    path = tmp_path / "reversed_ratings.csv"
    ratings.to_csv(path, index=False)
    return path


def sample_people() -> int:
    return len(pd.read_csv(get_settings().sample_dir / "people.csv"))


def moves_announced(page) -> int:
    n = sample_people()
    text = page.get_by_text(re.compile(rf"of {n} people would move type")).inner_text()
    return int(re.match(rf"\s*(\d+) of {n}", text).group(1))


def test_upload_apply_reload_keeps_the_labels(page, streamlit_app, tmp_path):
    uploaded = reversed_ratings_csv(tmp_path)
    sign_in(page, streamlit_app.url, "admin", "survey")
    page.locator('[data-testid="stSidebar"] [data-testid="stFileUploader"] input[type="file"]').first.set_input_files(
        str(uploaded))
    page.get_by_text("reversed_ratings.csv", exact=False).first.wait_for(timeout=30_000)
    wait_for_app(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1
    moved = moves_announced(page)
    assert moved > 0
    screenshot(page, "survey-uploaded")

    page.get_by_role("button", name="Apply labels…").click()
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text(f"Labels applied in one transaction: {moved} people moved type.").wait_for(timeout=30_000)
    assert exceptions_shown(page) == []

    page.reload()
    assert_still_signed_in(page, "admin")
    # The page now compares the database's (stored, unreversed) ratings with the applied labels.
    assert moves_announced(page) == moved
    screenshot(page, "survey-after-reload")

    expected = survey.label_people(survey.parse_ratings(uploaded, (1, 5)), list(TYPES), SHARES).labels
    url = streamlit_app.env["FACETYPE_DATABASE_URL"]
    with session_scope(url) as session:
        stored = {p.person_key: p.type_name for p in session.exec(select(ReferencePerson))}
    get_engine(url).dispose()
    assert stored == dict(zip(expected["person_id"], expected["type"]))


def test_on_a_touch_phone_no_toolbar_covers_a_chart_title_or_legend(browser, streamlit_app):
    """A touch screen shows Plotly's toolbar all the time across the top of a chart, and a table's
    toolbar over the element above it: at 390 px they covered the chart titles and the agreement
    chart's last legend item. Nor do the ranking's quota-boundary labels run into each other."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        sign_in(page, streamlit_app.url, "admin", "survey")
        for tab in ("Ranking", "Agreement"):
            page.get_by_role("tab", name=tab).click()
            chart = page.locator('[data-testid="stPlotlyChart"]').filter(visible=True).first
            chart.scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            toolbar = chart.locator(".modebar").bounding_box()
            covered = [box for box in (chart.locator(".gtitle").bounding_box(),) if overlaps(box, toolbar)]
            tables = page.locator('[data-testid="stElementToolbar"]').filter(visible=True)
            legend = [chart.locator(".legend .traces").nth(i).bounding_box()
                      for i in range(chart.locator(".legend .traces").count())]
            covered += [box for i in range(tables.count()) for box in legend
                        if overlaps(box, tables.nth(i).bounding_box())]
            labels = [chart.locator(".annotation").nth(i).bounding_box()
                      for i in range(chart.locator(".annotation").count())]
            covered += [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:] if overlaps(a, b)]
            screenshot(page, f"survey-phone-{tab.lower()}")
            assert toolbar and legend and not covered, tab
    finally:
        context.close()


def overlaps(a: dict | None, b: dict | None) -> bool:
    return bool(a and b and a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
                and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])
