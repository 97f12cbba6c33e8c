"""Team actions in Chromium, on one throwaway project served once for the module: a save made after the
session was ended in another tab is refused; the Labeling queue filters survive a reload; an annotator's
direct calls of lead and admin actions (by address, and by replaying a lead's widget message on her own
connection) change nothing."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlmodel import func, select

from app.core import auth
from app.core.db import BoxAudit, ModelVersion, Photo, ReferencePerson, get_engine, session_scope
from tests.browser import assert_still_signed_in, open_page, sign_in, wait_for_app
from tests.test_labeling_browser import _serve_photos


@pytest.fixture(scope="module")
def team_app(tmp_path_factory, team_accounts_env):
    """Three pending photos; the third belongs to a second person (p02)."""
    server, url, ids = _serve_photos(tmp_path_factory.mktemp("team-actions"), team_accounts_env, 3)
    with session_scope(url) as s:
        other = ReferencePerson(person_key="p02", pseudonym="Second Person")
        s.add(other)
        s.flush()
        s.get(Photo, ids[2]).person_id = other.id
    yield server, url, ids
    server.stop()
    get_engine(url).dispose()


@pytest.fixture
def tab(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    yield context.new_page()
    context.close()


def photo_state(url, photo_id):
    with session_scope(url) as s:
        photo = s.get(Photo, photo_id)
        audits = s.exec(select(func.count()).select_from(BoxAudit).where(BoxAudit.photo_id == photo_id)).one()
        return photo.boxes_version, photo.review_status, audits


def shown_photo(page) -> int:
    return int(page.evaluate("() => new URLSearchParams(location.search).get('photo')"))


def test_a_save_after_signing_out_in_another_tab_is_refused(team_app, tab):
    server, url, _ = team_app
    sign_in(tab, server.url, "ana", "labeling")
    expect(tab.locator("canvas.upper-canvas")).to_be_visible(timeout=60_000)
    pid = shown_photo(tab)
    before = photo_state(url, pid)

    other = tab.context.new_page()  # same browser, same cookie
    open_page(other, server.url, "labeling")
    other.get_by_role("button", name="Sign out").click()
    expect(other.get_by_role("button", name="Sign in")).to_be_visible(timeout=90_000)
    other.close()

    # The first tab's connection still carries the old cookie; its session is over.
    tab.get_by_role("button", name=re.compile("^Accept")).click()
    expect(tab.get_by_text("Not saved: label needs the annotator role; nobody signed in")).to_be_visible(
        timeout=60_000)
    assert photo_state(url, pid) == before


def test_queue_filters_survive_a_reload(team_app, tab):
    server, url, ids = team_app
    sign_in(tab, server.url, "ana", "labeling")
    expect(tab.get_by_text("3 photos left in this queue")).to_be_visible(timeout=60_000)
    tab.get_by_role("button", name="Queue filters").click()
    tab.locator('[data-testid="stSelectbox"]').filter(has_text="Person").click()
    tab.get_by_role("option", name=re.compile("^p02")).click()
    expect(tab.get_by_text("1 photo left in this queue")).to_be_visible(timeout=60_000)
    tab.keyboard.press("Escape")
    expect(tab).to_have_url(re.compile(r"[?&]person=\d+"), timeout=30_000)

    tab.reload()
    assert_still_signed_in(tab, "ana")
    expect(tab.get_by_text("1 photo left in this queue")).to_be_visible(timeout=60_000)
    assert re.search(r"[?&]person=\d+", tab.url)
    tab.get_by_role("button", name="Queue filters").click()
    tab.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stSelectbox"]')].some(
        (box) => (box.innerText + [...box.querySelectorAll('input')].map((i) => i.value).join()).includes('p02 — Second'))""",
                          timeout=30_000)  # the popover's Person box shows p02


def runs(url) -> list[tuple[int, str, str]]:
    with session_scope(url) as s:
        return [(r.id, r.status, r.requested_by) for r in s.exec(select(ModelVersion).order_by(ModelVersion.id))]


def test_an_annotator_reaching_lead_and_admin_actions_by_address_is_refused(team_app, tab):
    server, url, ids = team_app
    sign_in(tab, server.url, "ana", "labeling")
    open_page(tab, server.url, "labeling_import")  # import_photos, import_server_folder
    expect(tab.get_by_text("This page is for the lead role and above; ana is annotator.")).to_be_visible()
    assert tab.locator('[data-testid="stFileUploader"]').count() == 0
    open_page(tab, server.url, f"labeling_exchange?photo={ids[0]}")  # import_annotations
    expect(tab.get_by_text("Importing boxes needs the lead role.")).to_be_visible()
    assert tab.locator('[data-testid="stFileUploader"]').count() == 0
    open_page(tab, server.url, "models")  # train, cancel_run, promote
    expect(tab.get_by_text("Asking for training runs is for leads and admins.")).to_be_visible()
    assert tab.get_by_role("button", name="Queue run").count() == 0
    assert runs(url) == []


def test_a_leads_widget_message_replayed_on_an_annotators_connection_does_nothing(team_app, browser):
    """The admin queues a training run; the very message her browser sent is then sent to the server on
    ana's connection (as a tampered client could): no run is queued for ana."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    from models import jobs

    server, url, _ = team_app
    admin = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    sent: list[bytes] = []
    admin.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    sign_in(admin, server.url, "admin", "models")
    admin.get_by_role("button", name="Queue run").click()
    expect(admin.get_by_text(re.compile(r"Run \d+ queued"))).to_be_visible(timeout=60_000)
    admin.context.close()
    (queued,) = runs(url)
    jobs.cancel(auth.Account("admin", "admin", ""), queued[0], url=url)  # no live view polling below

    def is_queue_run(payload) -> bool:
        message = BackMsg()
        message.ParseFromString(payload if isinstance(payload, bytes) else payload.encode())
        return any("Queue run" in w.id for w in message.rerun_script.widget_states.widgets if w.trigger_value)

    (replay,) = [p for p in sent if is_queue_run(p)]
    ana = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    connection = {}

    def forward(route):
        connection["server"] = route.connect_to_server()  # everything else passes through unchanged

    ana.route_web_socket(re.compile(r"/_stcore/stream"), forward)
    try:
        sign_in(ana, server.url, "ana", "models")
        connection["server"].send(replay)
        wait_for_app(ana)
        expect(ana.get_by_text("Asking for training runs is for leads and admins.")).to_be_attached()  # folded
        assert ana.get_by_text(re.compile(r"Run \d+ queued")).count() == 0
    finally:
        ana.context.close()
    assert [(i, status) for i, status, _ in runs(url)] == [(queued[0], "cancelled")]
