"""The Labeling page in Chromium: open a queued photo, press Edit, drag the jaw box by a known
offset, accept, reload, and find the box moved by that offset in original-image pixels."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.core.db import Photo, ReferencePerson, RegionBox, TypeProfile, get_engine, migrate, session_scope
from sqlmodel import select
from app.core.storage import LocalStore, get_store
from labeling import annotations as ann
from labeling import queue
from tests.browser import assert_still_signed_in, sign_in
from tests.conftest import var_env
from tests.servers import StreamlitServer

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WIDTH, HEIGHT = 1600, 1200  # shown at scale 0.5 on the 800 x 640 canvas
AUTO = {"face": (400.0, 200.0, 1200.0, 1100.0), "tzone": (600.0, 400.0, 1000.0, 700.0), "jaw": (500.0, 750.0, 1100.0, 1150.0)}
SCALE = 0.5
DRAG = (30, 20)  # canvas pixels
#: The jaw box after a drag of DRAG canvas pixels, in original pixels.
JAW_DRAGGED = tuple(v + d / SCALE for v, d in zip(AUTO["jaw"], DRAG * 2))


def _photo_bytes() -> bytes:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    pixels = np.stack([(x * 255 // WIDTH), (y * 255 // HEIGHT), np.full_like(x, 120)], axis=-1).astype(np.uint8)
    image = Image.fromarray(pixels)
    ImageDraw.Draw(image).ellipse([420, 220, 1180, 1120], fill=(220, 180, 160))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _serve_photos(tmp_path, accounts_env, count: int = 1):
    """A throwaway project with ``count`` pending photos (auto boxes AUTO) served by ``streamlit run``."""
    var = tmp_path / "var"
    url = f"sqlite:///{var / 'facetype.db'}"
    store = LocalStore(var / "store")
    migrate(url)
    data = _photo_bytes()
    ids = []
    with session_scope(url) as s:
        s.add(TypeProfile(name="Alpha", order=0, description="test", share_percent=100.0))  # not an empty install
        person = ReferencePerson(person_key="p01", pseudonym="Test Person")
        s.add(person)
        s.flush()
        for n in range(count):
            key = f"reference/1/{n:02d}" + "ab" * 15 + ".jpg"
            store.put(key, data, "image/jpeg")
            photo = Photo(object_key=key, size_bytes=len(data), sha256=f"{n:02d}" + "ab" * 31, width=WIDTH,
                          height=HEIGHT, source="reference", person_id=person.id, boxes_version=1)
            s.add(photo)
            s.flush()
            for region, box in AUTO.items():
                s.add(RegionBox(photo_id=photo.id, version=1, region=region, x0=box[0], y0=box[1], x1=box[2],
                                y1=box[3], source="auto", confidence=0.5 + n / 100))
            ids.append(photo.id)
    get_engine(url).dispose()
    server = StreamlitServer(env={**var_env(var), "FACETYPE_ACCOUNTS": accounts_env}).start(tmp_path)
    return server, url, ids


@pytest.fixture
def labeling_app(tmp_path, team_accounts_env):
    server, url, (photo_id,) = _serve_photos(tmp_path, team_accounts_env)
    yield server, url, photo_id
    server.stop()
    get_engine(url).dispose()


@pytest.fixture
def two_photo_app(tmp_path, team_accounts_env):
    server, url, ids = _serve_photos(tmp_path, team_accounts_env, 2)
    yield server, url, ids
    server.stop()
    get_engine(url).dispose()


def _fmt(box) -> str:
    return ", ".join(f"{v:.2f}" for v in box)


def test_drag_jaw_box_accept_reload(labeling_app, browser):
    from playwright.sync_api import expect

    server, url, photo_id = labeling_app
    ARTIFACTS.mkdir(exist_ok=True)
    x0, y0, x1, y1 = AUTO["jaw"]
    moved = JAW_DRAGGED

    context = browser.new_context(viewport={"width": 1400, "height": 1200}, device_scale_factor=1)
    page = context.new_page()
    try:
        sign_in(page, server.url, "ana", "labeling")
        expect(page.get_by_text("1 photo left in this queue")).to_be_visible(timeout=60_000)
        canvas = page.locator("canvas.upper-canvas")
        expect(canvas).to_be_visible(timeout=30_000)
        expect(page.get_by_text(_fmt(AUTO["jaw"])).first).to_be_visible()
        page.wait_for_function(_INK_AT, arg=[AUTO["jaw"][0] * SCALE, sum(AUTO["jaw"][1::2]) / 2 * SCALE],
                               timeout=30_000)  # the boxes are drawn (they load after the canvas shows)
        page.screenshot(path=str(ARTIFACTS / "labeling_opened.png"))

        page.get_by_role("button", name="Edit").click()
        bbox = canvas.bounding_box()
        assert round(bbox["width"]) == WIDTH * SCALE and round(bbox["height"]) == HEIGHT * SCALE
        cx = bbox["x"] + (x0 + x1) / 2 * SCALE
        cy = bbox["y"] + (y0 + y1) / 2 * SCALE
        page.mouse.move(cx, cy)
        page.mouse.down()
        for i in range(1, 11):
            page.mouse.move(cx + DRAG[0] * i / 10, cy + DRAG[1] * i / 10)
        page.mouse.up()
        # The moved box reaches the app and is shown in original pixels.
        expect(page.get_by_text(_fmt(moved))).to_be_visible(timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "labeling_moved.png"))

        page.get_by_role("button", name="Accept").click()
        expect(page.get_by_text(re.compile(r"accept saved as version 2"))).to_be_visible(timeout=20_000)

        page.reload()
        assert_still_signed_in(page, "ana")
        expect(page.get_by_text(re.compile(r"status accepted"))).to_be_visible(timeout=60_000)
        expect(page.get_by_text(_fmt(moved)).first).to_be_visible(timeout=20_000)
        expect(page.locator("canvas.upper-canvas")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "labeling_reloaded.png"))
    finally:
        context.close()

    with session_scope(url) as s:
        photo = s.get(Photo, photo_id)
        assert photo.boxes_version == 2 and photo.review_status == "accepted"
        boxes = ann.box_map(ann.boxes_at(s, photo_id, 2))
        assert boxes["jaw"] == pytest.approx(moved, abs=1e-6)
        assert boxes["face"] == AUTO["face"] and boxes["tzone"] == AUTO["tzone"]
        (audit,) = queue.audit_trail(s, photo_id)
        assert audit.annotator == "ana" and audit.action == "accept"


#: The canvas has drawn ink (a box's edge) at canvas pixel (x, y), on the boxes' layer above the photo. The
#: canvas element appears before its boxes are loaded; a press before that hits no box.
_INK_AT = """([x, y]) => {
    for (const host of document.querySelectorAll('[data-testid="stMain"] *')) {
        const canvas = host.shadowRoot && host.shadowRoot.querySelector('canvas.dc-canvas');
        if (!canvas || !canvas.width) continue;
        const pixels = canvas.getContext('2d').getImageData(Math.round(x) - 3, Math.round(y) - 3, 7, 7).data;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) return true;
    }
    return false;
}"""

#: The canvas's scroll box (zoomed photos scroll in it): [scrollLeft, scrollTop].
_CANVAS_SCROLL = """() => {
    for (const host of document.querySelectorAll('[data-testid="stMain"] *')) {
        const box = host.shadowRoot && host.shadowRoot.querySelector('.dc-scroll');
        if (box) return [box.scrollLeft, box.scrollTop];
    }
    return null;
}"""


def _drag(page, start: tuple[float, float], offset: tuple[float, float], button: str = "left") -> None:
    x, y = start
    page.mouse.move(x, y)
    page.mouse.down(button=button)
    for i in range(1, 11):
        page.mouse.move(x + offset[0] * i / 10, y + offset[1] * i / 10)
    page.mouse.up(button=button)


def _finger_drag(page, start: tuple[float, float], offset: tuple[float, float]) -> None:
    """A one-finger drag (touch events, as a phone sends them)."""
    cdp = page.context.new_cdp_session(page)
    x, y = start
    for i, kind in enumerate(["touchStart", *["touchMove"] * 10, "touchEnd"]):
        step = min(i, 10) / 10
        points = [] if kind == "touchEnd" else [{"x": x + offset[0] * step, "y": y + offset[1] * step}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})
    cdp.detach()


def _open_first_photo(page, server) -> None:
    from playwright.sync_api import expect

    sign_in(page, server.url, "ana", "labeling")
    expect(page.locator("canvas.upper-canvas")).to_be_visible(timeout=60_000)
    x0, y0, x1, y1 = AUTO["jaw"]
    page.wait_for_function(_INK_AT, arg=[x0 * SCALE, (y0 + y1) / 2 * SCALE], timeout=30_000)


#: For each element matching the selector: null, or what covers its centre (another element on top of it).
_COVERED_BY = """(selector) => [...document.querySelectorAll(selector)].map((element) => {
    const box = element.getBoundingClientRect();
    const top = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
    return element.contains(top) ? null : (top && (top.className || top.tagName));
})"""
#: The number of lines a heading's text is laid out on.
_TITLE_LINES = "(h) => { const r = document.createRange(); r.selectNodeContents(h.firstChild); return r.getClientRects().length; }"


def test_move_delete_and_draw_boxes_without_edit_mode(labeling_app, browser):
    """As in Label Studio / CVAT, with Edit off: a press on the jaw box's edge and a drag moves it; a click
    inside a box leaves no stray box; selecting the T-zone box and pressing Delete switches the label to
    tzone; a drag inside the face box draws the new T-zone box. Accept saves exactly that."""
    from playwright.sync_api import expect

    server, url, photo_id = labeling_app
    context = browser.new_context(viewport={"width": 1400, "height": 1200}, device_scale_factor=1)
    page = context.new_page()
    x0, y0, _, y1 = AUTO["jaw"]
    moved = JAW_DRAGGED
    drawn = (620.0, 420.0, 980.0, 680.0)
    try:
        _open_first_photo(page, server)
        expect(page.get_by_role("button", name="Edit")).to_have_attribute("aria-pressed", "false")
        bbox = page.locator("canvas.upper-canvas").bounding_box()
        at = lambda x, y: (bbox["x"] + x * SCALE, bbox["y"] + y * SCALE)  # noqa: E731  (original px -> screen)

        _drag(page, at(x0, (y0 + y1) / 2), DRAG)  # the jaw box's left edge
        expect(page.get_by_text(_fmt(moved))).to_be_visible(timeout=20_000)

        page.mouse.click(*at(800, 300))  # inside the face box, away from its edges: selects nothing, draws nothing
        tz = AUTO["tzone"]
        page.mouse.click(*at((tz[0] + tz[2]) / 2, tz[1]))  # the T-zone box's top edge
        expect(page.get_by_role("button", name="Delete selected")).to_be_visible(timeout=10_000)
        page.keyboard.press("Delete")
        expect(page.get_by_text(re.compile(r"^Missing: tzone"))).to_be_visible(timeout=20_000)
        expect(page.get_by_role("radio", name="2 tzone")).to_be_checked(timeout=20_000)  # drawn next

        left, top = at(drawn[0], drawn[1])
        _drag(page, (left, top), ((drawn[2] - drawn[0]) * SCALE, (drawn[3] - drawn[1]) * SCALE))
        expect(page.get_by_text(re.compile(r"^Missing: tzone"))).to_have_count(0, timeout=20_000)
        expect(page.locator('[data-testid="stAlert"]')).to_have_count(0)  # no "two boxes", no stray stub
        page.get_by_role("button", name="Accept").click()
        expect(page.get_by_text(re.compile(r"accept saved as version 2"))).to_be_visible(timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "labeling_no_edit_mode.png"))
    finally:
        context.close()
    with session_scope(url) as s:
        boxes = ann.box_map(ann.boxes_at(s, photo_id, 2))
    assert set(boxes) == set(AUTO)
    assert boxes["jaw"] == pytest.approx(moved, abs=1e-6)
    assert boxes["face"] == AUTO["face"]
    assert boxes["tzone"] == pytest.approx(drawn, abs=2 / SCALE)  # a canvas pixel either way


def test_zoom_and_pan_keep_saved_boxes_in_image_pixels(labeling_app, browser):
    """The title is on one line at 1400 px. At 1.5x the photo scrolls in the canvas, and the canvas toolbar
    covers none of the zoom buttons; Space + drag and a middle-button drag pan it (drawing nothing); a box
    moved after panning is saved moved by the drag over the zoomed scale, in image pixels."""
    from playwright.sync_api import expect

    server, url, photo_id = labeling_app
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    zoom = 0.75  # the 1600 x 1200 photo on the 1.5x canvas (1200 x 900)
    x0, y0, x1, y1 = AUTO["jaw"]
    moved = (x0 + DRAG[0] / zoom, y0 + DRAG[1] / zoom, x1 + DRAG[0] / zoom, y1 + DRAG[1] / zoom)
    try:
        _open_first_photo(page, server)
        assert page.locator('[data-testid="stMain"] h1').first.evaluate(_TITLE_LINES) == 1  # not "Labelin / g"
        page.locator(".st-key-labeling-zoom").get_by_text("1.5×").click()
        canvas = page.locator("canvas.upper-canvas")
        expect(canvas).to_have_attribute("width", "1200", timeout=30_000)
        page.wait_for_function(_INK_AT, arg=[x0 * zoom, (y0 + y1) / 2 * zoom], timeout=30_000)
        assert page.evaluate(_CANVAS_SCROLL) == [0, 0]
        view = canvas.bounding_box()
        page.mouse.move(view["x"] + 300, view["y"] + 450)  # the package showed its toolbar on hover, over 2x
        expect(page.locator(".dc-toolbar")).to_have_css("opacity", "1", timeout=10_000)
        assert page.evaluate(_COVERED_BY, ".st-key-labeling-zoom button") == [None, None, None]
        page.mouse.move(view["x"] + 300, view["y"] + 450)
        page.keyboard.down(" ")
        _drag(page, (view["x"] + 300, view["y"] + 450), (0, -200))
        page.keyboard.up(" ")
        page.wait_for_function(f"() => ({_CANVAS_SCROLL})()[1] === 200", timeout=10_000)
        _drag(page, (view["x"] + 300, view["y"] + 450), (0, -100), button="middle")
        page.wait_for_function(f"() => ({_CANVAS_SCROLL})()[1] === 300", timeout=10_000)
        expect(page.get_by_text(_fmt(AUTO["jaw"])).first).to_be_visible()  # panning moved no box
        expect(page.locator('[data-testid="stAlert"]')).to_have_count(0)  # and drew none

        bbox = canvas.bounding_box()  # scrolled up by 300 with the photo
        assert round(view["y"] - bbox["y"]) == 300
        _drag(page, (bbox["x"] + x0 * zoom, bbox["y"] + (y0 + y1) / 2 * zoom), DRAG)
        expect(page.get_by_text(_fmt(moved))).to_be_visible(timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "labeling_zoom_pan.png"))
        page.get_by_role("button", name="Accept").click()
        expect(page.get_by_text(re.compile(r"accept saved as version 2"))).to_be_visible(timeout=20_000)
    finally:
        context.close()
    with session_scope(url) as s:
        boxes = ann.box_map(ann.boxes_at(s, photo_id, 2))
    assert boxes["jaw"] == pytest.approx(moved, abs=0.005)  # stored to 0.01 px
    assert boxes["face"] == AUTO["face"] and boxes["tzone"] == AUTO["tzone"]


#: How far the page and the canvas's own scroll box scroll sideways: [page, canvas].
_SIDEWAYS = """() => {
    const box = [...document.querySelectorAll('[data-testid="stMain"] *')]
        .map((host) => host.shadowRoot && host.shadowRoot.querySelector('.dc-scroll')).find(Boolean);
    const main = document.querySelector('[data-testid="stMain"]');
    return [Math.max(document.documentElement.scrollWidth, main.scrollWidth) - innerWidth,
            box.scrollWidth - box.clientWidth];
}"""


def test_on_a_phone_the_whole_photo_fits_and_boxes_still_move_delete_and_draw(labeling_app, browser):
    """In a 390 x 844 viewport the 800 px canvas is shown at the column's width, so neither the page nor the
    canvas scrolls sideways; the box labels stay readable; ◀ ▶ and the four actions each share a row (not a
    row per button) in the viewport. With a finger (touch events): a drag on the shown jaw edge moves it, a
    tap selects the T-zone box for the toolbar's Delete selected, and a drag draws the new T-zone box (the
    package drew only for a mouse's left button); all are saved in image pixels (the drag over the shown
    scale)."""
    from playwright.sync_api import expect

    server, url, photo_id = labeling_app
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    x0, y0, x1, y1 = AUTO["jaw"]
    tz = AUTO["tzone"]
    drawn = (620.0, 420.0, 980.0, 680.0)
    try:
        _open_first_photo(page, server)
        canvas = page.locator("canvas.upper-canvas")
        expect(canvas).to_have_attribute("width", str(round(WIDTH * SCALE)))  # the drawing's pixels are unchanged
        page.wait_for_function(f"() => ({_SIDEWAYS})().every((overflow) => overflow <= 0)", timeout=20_000)
        for row in (("previous", "next"), ("accept", "flag", "reject", "discard")):
            boxes = [page.locator(f".st-key-labeling-{key}").bounding_box() for key in row]
            assert len({round(box["y"]) for box in boxes}) == 1, row
            assert boxes[0]["x"] >= 0 and boxes[-1]["x"] + boxes[-1]["width"] <= 390, row
        canvas.scroll_into_view_if_needed()  # below the buttons
        bbox = canvas.bounding_box()
        assert bbox["x"] >= 0 and bbox["x"] + bbox["width"] <= 390 and bbox["width"] >= 300, bbox
        shown = bbox["width"] / (WIDTH * SCALE)  # screen px per canvas px
        face_left, face_top = AUTO["face"][0] * SCALE, AUTO["face"][1] * SCALE
        # The face label's chip (above the box) is drawn 1 / shown times larger, to read as on a desktop:
        # canvas pixels 34 to 42 above the box are in it; a chip of the drawing's font size ends 26 above.
        page.wait_for_function(_INK_AT, arg=[face_left + 8, face_top - 38], timeout=10_000)
        at = lambda x, y: (bbox["x"] + x * SCALE * shown, bbox["y"] + y * SCALE * shown)  # noqa: E731
        page.screenshot(path=str(ARTIFACTS / "labeling_phone.png"))

        drag = (30, -10)  # screen px: up, as DRAG down would take the jaw past the photo's bottom at this scale
        _finger_drag(page, at(x0, (y0 + y1) / 2), drag)  # the jaw box's left edge
        moved = tuple(v + d / (SCALE * shown) for v, d in zip(AUTO["jaw"], drag * 2))
        expect(page.get_by_text(_fmt(AUTO["jaw"]))).to_have_count(1, timeout=20_000)  # only as "was" now
        page.touchscreen.tap(*at((tz[0] + tz[2]) / 2, tz[1]))  # a finger on the T-zone box's top edge
        page.get_by_role("button", name="Delete selected").click()  # a phone has no Delete key
        expect(page.get_by_text(re.compile(r"^Missing: tzone"))).to_be_visible(timeout=20_000)
        expect(page.get_by_role("radio", name="2 tzone")).to_be_checked(timeout=20_000)
        left, top = at(drawn[0], drawn[1])
        _finger_drag(page, (left, top), ((drawn[2] - drawn[0]) * SCALE * shown, (drawn[3] - drawn[1]) * SCALE * shown))
        expect(page.get_by_text(re.compile(r"^Missing: tzone"))).to_have_count(0, timeout=20_000)
        expect(page.locator('[data-testid="stAlert"]')).to_have_count(0)
        page.get_by_role("button", name="Accept").click()
        expect(page.get_by_text(re.compile(r"accept saved as version 2"))).to_be_visible(timeout=20_000)
    finally:
        context.close()
    with session_scope(url) as s:
        boxes = ann.box_map(ann.boxes_at(s, photo_id, 2))
    pixel = 1 / (SCALE * shown)  # a screen pixel, in image pixels
    assert boxes["jaw"] == pytest.approx(moved, abs=pixel)
    assert boxes["face"] == AUTO["face"]
    assert boxes["tzone"] == pytest.approx(drawn, abs=2 * pixel)


def test_turning_the_phone_redraws_the_label_chips_at_the_new_size(labeling_app, browser):
    """Shown at full size (a desktop, a phone turned sideways and wide enough) a chip is the drawing's
    size; when the page narrows (the phone turned upright) the canvas shrinks and its chips are drawn
    larger at once, not at the next redraw, and smaller again when it widens."""
    from playwright.sync_api import expect

    server, _, _ = labeling_app
    context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    face_left, face_top = AUTO["face"][0] * SCALE, AUTO["face"][1] * SCALE
    big_chip = [face_left + 8, face_top - 38]  # inside a chip drawn larger, above the end of a normal one
    try:
        _open_first_photo(page, server)
        canvas = page.locator("canvas.upper-canvas")
        page.wait_for_function(f"(at) => !({_INK_AT})(at)", arg=big_chip, timeout=10_000)
        page.set_viewport_size({"width": 390, "height": 844})
        expect(canvas).to_have_attribute("width", str(round(WIDTH * SCALE)))
        page.wait_for_function(f"() => ({_SIDEWAYS})().every((overflow) => overflow <= 0)", timeout=20_000)
        page.wait_for_function(_INK_AT, arg=big_chip, timeout=10_000)
        page.set_viewport_size({"width": 1400, "height": 900})
        page.wait_for_function(f"(at) => !({_INK_AT})(at)", arg=big_chip, timeout=10_000)
    finally:
        context.close()


def test_conflict_keeps_the_others_fix_to_a_region_i_did_not_touch(labeling_app, browser):
    """Ana moves the jaw box while "other" saves a moved T-zone box: Accept shows the conflict with the
    T-zone defaulting to theirs and the jaw to hers; saving as offered keeps both fixes."""
    from playwright.sync_api import expect

    server, url, photo_id = labeling_app
    context = browser.new_context(viewport={"width": 1400, "height": 1200}, device_scale_factor=1)
    page = context.new_page()
    x0, y0, _, y1 = AUTO["jaw"]
    my_jaw = JAW_DRAGGED
    their_tzone = (640.0, 400.0, 1040.0, 700.0)
    try:
        _open_first_photo(page, server)
        with session_scope(url) as s:
            assert isinstance(ann.save_boxes(s, photo_id, 1, {**AUTO, "tzone": their_tzone}, "other", "flag",
                                             "check tzone"), ann.SaveResult)
        bbox = page.locator("canvas.upper-canvas").bounding_box()
        _drag(page, (bbox["x"] + x0 * SCALE, bbox["y"] + (y0 + y1) / 2 * SCALE), DRAG)
        expect(page.get_by_text(_fmt(my_jaw))).to_be_visible(timeout=20_000)
        page.get_by_role("button", name="Accept").click()
        expect(page.get_by_text("Someone else saved this photo since you opened it.")).to_be_visible(timeout=20_000)
        for region, default in (("tzone", "theirs"), ("jaw", "mine")):
            choice = page.locator(f".st-key-choice-{photo_id}-{region}")
            expect(choice.get_by_role("radio", name=default)).to_be_checked(timeout=10_000)
        page.wait_for_function(  # both previews (yours, theirs) are shown
            "() => [...document.querySelectorAll('[data-testid=\"stMain\"] img')]"
            ".filter((i) => i.complete && i.naturalWidth > 0 && i.width >= 300).length >= 2", timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "labeling_conflict.png"))
        page.get_by_role("button", name="Save my choice").click()
        expect(page.get_by_text(re.compile(r"saved as version 3"))).to_be_visible(timeout=20_000)
    finally:
        context.close()
    with session_scope(url) as s:
        boxes = ann.box_map(ann.boxes_at(s, photo_id, 3))
    assert boxes["jaw"] == pytest.approx(my_jaw, abs=1e-6)
    assert boxes["tzone"] == pytest.approx(their_tzone) and boxes["face"] == AUTO["face"]


LABELING_PAGES = ["pages/labeling.py", "pages/labeling_import.py", "pages/labeling_quality.py",
                  "pages/labeling_exchange.py", "pages/labeling_retrain.py"]


def test_page_sections_render_without_errors(app_env):
    """Every Labeling page runs (AppTest; the canvas itself needs the browser test)."""
    from streamlit.testing.v1 import AppTest

    from app.core.auth import Account
    from tests.test_annotations import add_photo

    migrate()
    with session_scope() as s:
        first = add_photo(s, "p01")
        second = add_photo(s, "p02")
    with session_scope() as s:
        ann.save_boxes(s, first, 1, AUTO_SMALL, "ann", "accept")
        ann.save_boxes(s, first, 2, AUTO_SMALL, "bob", "accept")
    at = AppTest.from_file("pages/labeling.py", default_timeout=60)
    at.session_state["annotator"] = "tester"
    at.run()
    assert not at.exception, at.exception
    assert any(m.value.startswith("**1** photo left") for m in at.markdown)
    assert list(at.query_params["photo"]) == [str(second)]  # the only pending photo is open
    for script in LABELING_PAGES[1:]:
        at = AppTest.from_file(script, default_timeout=60)
        at.session_state["annotator"] = "tester"
        at.session_state["account"] = Account("tester", "admin", "unused")
        at.run()
        assert not at.exception, (script, at.exception)
        assert not at.error, (script, [e.value for e in at.error])
        if script == "pages/labeling_quality.py":
            assert any("photos reviewed by two or more annotators" in m.value for m in at.markdown)


def test_page_without_sign_in_says_so_and_offers_no_typed_name(app_env):
    """Saves are made as the session cookie's account: a name typed into the page would sign nobody in,
    so the page (outside app/main.py's sign-in form) asks for a sign-in and shows nothing to save."""
    from streamlit.testing.v1 import AppTest

    from tests.test_annotations import add_photo

    migrate()
    with session_scope() as s:
        add_photo(s, "p01")
    at = AppTest.from_file("pages/labeling.py", default_timeout=60).run()
    assert not at.exception
    assert any("Sign in to use the team pages" in i.value for i in at.info)
    assert not at.text_input and not at.button and "annotator" not in at.session_state


def test_accept_after_the_session_ended_is_refused_not_saved_as_the_old_account(app_env, cookie_sign_in):
    """The page was drawn for ana; her session is ended (signed out in another tab) before she presses
    Accept: the save is refused, nothing is written, nobody's name goes into the history."""
    from streamlit.testing.v1 import AppTest

    from app.core import auth
    from tests.test_annotations import add_photo

    migrate()
    with session_scope() as s:
        pid = add_photo(s, "p01")
        key = s.get(Photo, pid).object_key
    out = io.BytesIO()
    Image.new("RGB", (640, 640), (200, 170, 150)).save(out, format="JPEG")
    get_store().put(key, out.getvalue(), "image/jpeg")
    cookie = cookie_sign_in("ana")
    at = AppTest.from_file("pages/labeling.py", default_timeout=60)
    at.session_state["annotator"] = "ana"  # what app/main.py set when the page was drawn
    at.run()
    assert list(at.query_params["photo"]) == [str(pid)]
    assert auth.end_session(cookie)
    at.button(key="labeling-accept").click().run()
    assert not at.exception, at.exception
    assert any("Not saved: label needs the annotator role; nobody signed in" in e.value for e in at.error), \
        [e.value for e in at.error]
    with session_scope() as s:
        assert (s.get(Photo, pid).boxes_version, s.get(Photo, pid).review_status) == (1, "pending")
        assert queue.audit_trail(s, pid) == []


AUTO_SMALL = {"face": (100.0, 80.0, 500.0, 560.0), "tzone": (210.0, 200.0, 400.0, 380.0), "jaw": (150.0, 380.0, 450.0, 580.0)}


def _run_labeling_page_with_photo_at(key: str, cookie_sign_in):
    """Store a plain 640 x 640 JPEG at ``key`` and run the Labeling page (AppTest) signed in as annotator
    "tester" (``cookie_sign_in`` is the fixture of that name)."""
    from streamlit.testing.v1 import AppTest

    out = io.BytesIO()
    Image.new("RGB", (640, 640), (200, 170, 150)).save(out, format="JPEG")
    get_store().put(key, out.getvalue(), "image/jpeg")
    cookie_sign_in("tester")
    at = AppTest.from_file("pages/labeling.py", default_timeout=60)
    at.session_state["annotator"] = "tester"
    at.run()
    return at


def test_page_shows_conflict_and_lets_annotator_choose(app_env, cookie_sign_in):
    """Two sessions: the page opened version 1, someone else saved version 2, then Accept here
    shows both versions instead of overwriting; the choice is saved as version 3."""

    from tests.test_annotations import add_photo, moved

    migrate()
    with session_scope() as s:
        pid = add_photo(s, "p01")
        key = s.get(Photo, pid).object_key
        start = ann.box_map(ann.boxes_at(s, pid, 1))
    at = _run_labeling_page_with_photo_at(key, cookie_sign_in)
    assert not at.error, [e.value for e in at.error]
    theirs = moved(start, "jaw", 25, 0)
    with session_scope() as s:
        assert isinstance(ann.save_boxes(s, pid, 1, theirs, "other", "flag", "check jaw"), ann.SaveResult)
    at.run()
    assert any("saved by other after you opened" in i.value for i in at.info)
    at.button(key="labeling-accept").click().run()
    assert not at.exception
    assert any("Someone else saved this photo" in w.value for w in at.warning)
    with session_scope() as s:
        assert s.get(Photo, pid).boxes_version == 2  # nothing overwritten
    # This annotator changed nothing: every region defaults to the other person's version.
    assert [at.radio(key=f"choice-{pid}-{r}").value for r in ("face", "tzone", "jaw")] == ["theirs"] * 3
    at.radio(key=f"choice-{pid}-jaw").set_value("theirs").run()
    at.button(key=f"resolve-{pid}").click().run()
    assert not at.exception
    with session_scope() as s:
        photo = s.get(Photo, pid)
        assert (photo.boxes_version, photo.review_status) == (3, "accepted")
        assert ann.box_map(ann.boxes_at(s, pid, 3))["jaw"] == theirs["jaw"]
        assert [a.annotator for a in queue.audit_trail(s, pid)] == ["tester", "other"]


@pytest.mark.parametrize("role, sees_form, sees_folder_field", [("admin", True, True), ("lead", True, False),
                                                                 ("annotator", False, False)])
def test_only_admins_may_import_from_a_server_folder(app_env, role, sees_form, sees_folder_field):
    from streamlit.testing.v1 import AppTest

    from app.core.auth import Account
    from tests.test_annotations import add_photo

    migrate()
    with session_scope() as s:
        add_photo(s, "p01")
    at = AppTest.from_file("pages/labeling_import.py", default_timeout=60)
    at.session_state["annotator"] = "someone"
    at.session_state["account"] = Account("someone", role, "unused")
    at.run()
    assert not at.exception
    labels = [t.label for t in at.text_input]
    assert ("…or a folder on the server" in labels) is sees_folder_field
    assert bool(at.file_uploader) is sees_form


def test_import_photos_has_no_default_person(app_env):
    """Nothing is imported until a person is chosen: the person box starts empty and Import is disabled."""
    from streamlit.testing.v1 import AppTest

    from app.core.auth import Account
    from tests.test_annotations import add_photo

    migrate()
    with session_scope() as s:
        add_photo(s, "p01")
        add_photo(s, "p02")
    at = AppTest.from_file("pages/labeling_import.py", default_timeout=60)
    at.session_state["annotator"] = "lee"
    at.session_state["account"] = Account("lee", "lead", "unused")
    at.run()
    person = at.selectbox(key="import_person")
    assert person.value is None
    (button,) = [b for b in at.button if b.label == "Import and auto-label"]
    assert button.disabled
    # the uploader says what it takes, with the same limit the server enforces
    assert at.file_uploader(key="import_files").label == "Photos of this person (JPEG, PNG or WebP, up to 10 MB each)"


def test_retrain_button_trains_on_the_corrected_boxes(served_app_env, monkeypatch):
    """Correct one photo's boxes, press Retrain: the new run finishes and its data snapshot takes
    that photo's human-reviewed box version, not the auto one."""

    from streamlit.testing.v1 import AppTest

    from models import registry

    with session_scope() as s:
        photo = s.exec(select(Photo).order_by(Photo.id)).first()
        boxes = ann.box_map(ann.boxes_at(s, photo.id, photo.boxes_version))
        moved = {region: tuple(v + 3 for v in box) for region, box in boxes.items()}
        assert isinstance(ann.save_boxes(s, photo.id, photo.boxes_version, moved, "ana", "accept"), ann.SaveResult)
        corrected_id = photo.id
    runs_before = {r.id for r in registry.list_runs()}

    from app.core import auth

    # Through app/main.py, as a signed-in annotator: the page links to the Models page, which
    # only resolves under the app's navigation. AppTest sends no cookies: main.py's cookie check
    # answers with the annotator (the cookie itself is tested in test_auth and test_sessions_browser).
    monkeypatch.setattr(auth, "account_for_cookie", lambda *_a, **_k: auth.Account("ana", "annotator", "unused"))
    at = AppTest.from_file("app/main.py", default_timeout=60)
    at.switch_page("../pages/labeling_retrain.py")
    at.run()
    assert any(m.value.startswith("**1** reviewed") for m in at.markdown), [m.value for m in at.markdown]
    next(b for b in at.button if b.label == "Retrain the type model").click()
    at.run()
    assert not at.exception
    assert any(link.label == "Follow its progress on the Models page" for link in at.get("page_link"))
    (run_id,) = {r.id for r in registry.list_runs()} - runs_before
    assert (registry.get_run(run_id).status, registry.get_run(run_id).requested_by) == ("queued", "ana")
    from models.worker import Worker

    Worker().run_forever(once=True)  # a worker process takes it (the page only queued it)
    run = registry.get_run(run_id)
    assert run.status == "done", run.message
    (entry,) = [p for p in run.data_snapshot["photos"] if p["id"] == corrected_id]
    assert (entry["boxes_version"], entry["box_source"]) == (2, "human")


def _status(url, photo_id):
    with session_scope(url) as s:
        photo = s.get(Photo, photo_id)
        return photo.boxes_version, photo.review_status


#: The canvas has drawn its photo (its background layer, under the boxes, has ink in the middle).
_BACKGROUND_DRAWN = """() => {
    for (const host of document.querySelectorAll('[data-testid="stMain"] *')) {
        const canvas = host.shadowRoot && host.shadowRoot.querySelector('canvas.dc-background-canvas');
        if (!canvas || !canvas.width) continue;
        const pixel = canvas.getContext('2d').getImageData(canvas.width / 2, canvas.height / 2, 1, 1).data;
        if (pixel[3] > 0) return true;
    }
    return false;
}"""


def test_keyboard_enter_accepts_and_opens_the_next_photo_in_1440x900(two_photo_app, browser):
    """In a 1440 x 900 window the canvas and Accept are in view without scrolling; Enter accepts the
    untouched photo, the next one opens in one run and the confirmation stays on screen; K goes back."""
    from playwright.sync_api import expect

    server, url, (first, second) = two_photo_app
    context = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    sent = []  # messages from the page to the app: each asks for a run
    page.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(frame)))
    try:
        sign_in(page, server.url, "ana", "labeling")
        expect(page.get_by_text(f"Photo {first} ·")).to_be_visible(timeout=60_000)
        canvas = page.locator("canvas.upper-canvas")
        expect(canvas).to_be_visible(timeout=30_000)
        page.wait_for_timeout(500)  # background and boxes are drawn
        accept = page.get_by_role("button", name="Accept")
        for element in (canvas, accept):
            box = element.bounding_box()
            assert box["y"] >= 0 and box["y"] + box["height"] <= 900, box
        page.screenshot(path=str(ARTIFACTS / "labeling_1440x900.png"))

        sent.clear()
        page.keyboard.press("Enter")
        expect(page.get_by_text(f"Photo {second} ·")).to_be_visible(timeout=30_000)
        expect(page.get_by_text(f"Photo {first}: accept saved as version 2.")).to_be_visible(timeout=30_000)
        # One run per accept: the new canvas does not ask for a second one when its photo has loaded.
        page.wait_for_function(_BACKGROUND_DRAWN, timeout=30_000)
        page.wait_for_timeout(1_000)  # a second run would be asked for right after the photo is drawn
        assert len(sent) == 1, f"{len(sent)} runs asked for by one accept"
        assert page.evaluate("() => new URLSearchParams(location.search).get('photo')") == str(second)
        assert _status(url, first) == (2, "accepted") and _status(url, second) == (1, "pending")
        expect(page.locator("canvas.upper-canvas")).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "labeling_after_enter.png"))

        page.keyboard.press("k")  # back to the accepted photo (previous in the list)
        expect(page.get_by_text(f"Photo {first} ·")).to_be_visible(timeout=30_000)
    finally:
        context.close()


def test_accept_with_a_deleted_box_is_blocked_until_marked_not_visible(labeling_app, browser):
    """Delete the T-zone box on the canvas (Edit, select, Delete key): Accept is refused and nothing is
    saved; ticking "tzone not visible" lets it through without the box."""
    from playwright.sync_api import expect

    server, url, photo_id = labeling_app
    context = browser.new_context(viewport={"width": 1400, "height": 1200}, device_scale_factor=1)
    page = context.new_page()
    try:
        sign_in(page, server.url, "ana", "labeling")
        canvas = page.locator("canvas.upper-canvas")
        expect(canvas).to_be_visible(timeout=60_000)
        page.wait_for_function(_INK_AT, arg=[AUTO["jaw"][0] * SCALE, sum(AUTO["jaw"][1::2]) / 2 * SCALE],
                               timeout=30_000)  # the boxes are drawn (they load after the canvas shows)
        page.keyboard.press("e")  # the canvas's Edit mode
        expect(page.get_by_role("button", name="Edit")).to_have_attribute("aria-pressed", "true", timeout=10_000)
        bbox = canvas.bounding_box()
        x0, y0, x1, y1 = AUTO["tzone"]
        page.mouse.click(bbox["x"] + (x0 + x1) / 2 * SCALE, bbox["y"] + (y0 + 20) * SCALE)
        page.keyboard.press("Delete")
        expect(page.get_by_text(re.compile(r"^Missing: tzone"))).to_be_visible(timeout=20_000)
        expect(page.get_by_role("radio", name="2 tzone")).to_be_checked(timeout=20_000)  # drawn next
        page.get_by_role("button", name="Accept").click()
        expect(page.get_by_text(re.compile(r"Not saved: accepting needs all three regions: no tzone box"))).to_be_visible(
            timeout=20_000)
        assert _status(url, photo_id) == (1, "pending")

        page.get_by_text("tzone not visible").click()
        page.get_by_role("button", name="Accept").click()
        expect(page.get_by_text(re.compile(r"accept saved as version 2"))).to_be_visible(timeout=20_000)
    finally:
        context.close()
    assert _status(url, photo_id) == (2, "accepted")
    with session_scope(url) as s:
        assert set(ann.box_map(ann.boxes_at(s, photo_id, 2))) == {"face", "jaw"}
        (audit,) = queue.audit_trail(s, photo_id)
        assert audit.after["not_visible"] == ["tzone"]


def test_reject_asks_for_a_reason_in_a_dialog_with_presets(app_env, cookie_sign_in):
    """Reject… opens a dialog: nothing is saved until a reason is picked (a preset plus optional details)."""

    from tests.test_annotations import add_photo

    migrate()
    with session_scope() as s:
        pid = add_photo(s, "p01")
        add_photo(s, "p02")
        key = s.get(Photo, pid).object_key
    at = _run_labeling_page_with_photo_at(key, cookie_sign_in)
    at.button(key="labeling-reject").click().run()
    assert not at.exception, at.exception
    assert at.button(key=f"reject-confirm-{pid}").disabled  # no reason yet
    at.radio(key=f"reject-preset-{pid}").set_value("Blurred or out of focus").run()
    at.text_input(key=f"reject-detail-{pid}").input("motion blur").run()
    at.button(key=f"reject-confirm-{pid}").click().run()
    assert not at.exception, at.exception
    with session_scope() as s:
        photo = s.get(Photo, pid)
        assert (photo.review_status, photo.review_note) == ("rejected", "Blurred or out of focus, motion blur")


def _coco_import_asked_by_a_lead(cookie_sign_in):
    """A lead's Export / import page (AppTest) with a COCO file moving one box 7 px uploaded and Import…
    pressed; the import acts as the account of the connection's session cookie. Returns (at, photo id)."""
    from streamlit.testing.v1 import AppTest

    from app.core.auth import Account
    from labeling import coco_export
    from tests.test_annotations import add_photo

    migrate()
    with session_scope() as s:
        pid = add_photo(s, "p01")
    with session_scope() as s:
        data = coco_export.export_coco(s, ["pending"])
    data["annotations"][0]["bbox"][0] += 7
    cookie_sign_in("lee", "lead")
    at = AppTest.from_file("pages/labeling_exchange.py", default_timeout=60)
    at.session_state["annotator"] = "lee"
    at.session_state["account"] = Account("lee", "lead", "unused")
    at.run()
    at.file_uploader(key="coco_upload").set_value(("boxes.json", json.dumps(data).encode(), "application/json")).run()
    at.button(key="coco-import").click().run()
    return at, pid


def test_coco_import_asks_before_saving(app_env, cookie_sign_in):
    """Import… on Export / import opens a confirmation; the boxes are saved only after Import in it."""
    at, pid = _coco_import_asked_by_a_lead(cookie_sign_in)
    assert not at.exception, at.exception
    assert _version(pid) == 1  # asked, not saved
    at.button(key="coco-import-confirm").click().run()
    assert not at.exception, at.exception
    assert _version(pid) == 2
    assert any("1 updated" in m.value for m in at.success)


def _version(photo_id: int) -> int:
    with session_scope() as s:
        return s.get(Photo, photo_id).boxes_version


def test_queue_filters_come_from_the_address_and_go_back_to_it(app_env):
    """A new session (a reload, a shared link) takes the queue filters from the address; changing one
    writes it there; defaults stay out of the address and unknown values fall back to them."""
    from streamlit.testing.v1 import AppTest

    from tests.test_annotations import add_photo

    migrate()
    with session_scope() as s:
        add_photo(s, "p01")
        second = add_photo(s, "p02")
        person_2 = s.get(Photo, second).person_id
    at = AppTest.from_file("pages/labeling.py", default_timeout=60)
    at.session_state["annotator"] = "tester"
    at.query_params["person"] = str(person_2)
    at.query_params["status"] = "pending,flagged,nonsense"
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="q_person").value == person_2
    assert at.multiselect(key="q_status").value == ["pending", "flagged"]
    assert any(m.value.startswith("**1** photo left") for m in at.markdown)
    assert list(at.query_params["photo"]) == [str(second)]
    assert list(at.query_params["status"]) == ["pending,flagged"]
    at.selectbox(key="q_person").select_index(0).run()  # "all people"
    at.multiselect(key="q_status").set_value([]).run()
    at.toggle(key="q_second").set_value(True).run()
    assert "person" not in at.query_params
    assert list(at.query_params["status"]) == ["all"] and list(at.query_params["second"]) == ["1"]

    again = AppTest.from_file("pages/labeling.py", default_timeout=60)  # the address of that page, reloaded
    again.session_state["annotator"] = "tester"
    for name in ("status", "second"):
        again.query_params[name] = list(at.query_params[name])[0]
    again.query_params["person"] = "999"  # nobody: the default
    again.run()
    assert again.multiselect(key="q_status").value == [] and again.toggle(key="q_second").value is True
    assert again.selectbox(key="q_person").value is None


def test_changing_a_queue_filter_opens_the_first_photo_of_the_new_queue(app_env):
    """The photo open before a filter changed is not kept in the address or on screen: the new queue's
    first photo opens (the old one may not even be in it)."""
    from streamlit.testing.v1 import AppTest

    from tests.test_annotations import add_photo

    migrate()
    with session_scope() as s:
        first = add_photo(s, "p01")
        second = add_photo(s, "p02")
        person_2 = s.get(Photo, second).person_id
    at = AppTest.from_file("pages/labeling.py", default_timeout=60)
    at.session_state["annotator"] = "tester"
    at.run()
    assert list(at.query_params["photo"]) == [str(first)]
    at.selectbox(key="q_person").set_value(person_2).run()
    assert not at.exception, at.exception
    assert list(at.query_params["photo"]) == [str(second)]
    assert any(c.value.startswith(f"Photo {second} ·") for c in at.caption)
    assert not any("not in this queue" in str(o) for o in at.selectbox[-1].options)


def test_coco_import_replayed_with_an_annotators_cookie_saves_nothing(app_env, cookie_sign_in):
    """The confirmation was opened by a lead; the connection's cookie now names an annotator: refused."""
    at, pid = _coco_import_asked_by_a_lead(cookie_sign_in)
    cookie_sign_in("ana")
    at.button(key="coco-import-confirm").click().run()
    assert any("import annotations needs the lead role; ana (annotator) cannot" in e.value for e in at.error)
    assert _version(pid) == 1


@pytest.mark.parametrize("field", ["files", "folder"])
def test_photo_import_replayed_with_an_annotators_cookie_adds_nothing(app_env, cookie_sign_in, field, tmp_path):
    """Import photos drawn for an admin; the connection's cookie now names an annotator: refused."""
    from sqlmodel import func

    at = _import_page_for_an_admin(cookie_sign_in)
    if field == "folder":
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "a.jpg").write_bytes(_photo_bytes())
        at.text_input(key="import_folder").input(str(tmp_path / "in")).run()
    else:
        at.file_uploader(key="import_files").set_value(("a.jpg", _photo_bytes(), "image/jpeg")).run()
    cookie_sign_in("ana")
    next(b for b in at.button if b.label == "Import and auto-label").click().run()
    assert any("import photos needs the lead role; ana (annotator) cannot" in e.value for e in at.error), \
        [e.value for e in at.error]
    with session_scope() as s:
        assert s.exec(select(func.count()).select_from(Photo)).one() == 1


def _import_page_for_an_admin(cookie_sign_in):
    """The Import page signed in as an admin, person p01 (one stored photo) chosen."""
    from streamlit.testing.v1 import AppTest

    from app.core.auth import Account
    from tests.test_annotations import add_photo

    migrate()
    with session_scope() as s:
        person_id = s.get(Photo, add_photo(s, "p01")).person_id
    cookie_sign_in("root", "admin")
    at = AppTest.from_file("pages/labeling_import.py", default_timeout=60)
    at.session_state["annotator"] = "root"
    at.session_state["account"] = Account("root", "admin", "unused")
    at.run()
    at.selectbox(key="import_person").set_value(person_id).run()
    return at


def test_a_server_folder_import_says_how_many_hidden_entries_it_left_out(app_env, cookie_sign_in, tmp_path):
    folder = tmp_path / "in"
    (folder / ".thumbnails").mkdir(parents=True)
    for name in ("a.jpg", ".DS_Store", "._a.jpg"):
        (folder / name).write_bytes(b"not a photo")
    at = _import_page_for_an_admin(cookie_sign_in)
    at.text_input(key="import_folder").input(str(folder)).run()
    next(b for b in at.button if b.label == "Import and auto-label").click().run()
    assert not at.exception
    assert [i.value for i in at.info] == [f"Left out of the import from {folder}: 2 hidden files (the name starts "
                                          "with a dot), 1 hidden folder (not opened)."]
    assert at.success[0].value == "Added 0 photos of p01 — Person p01; 0 already stored, 1 skipped."  # a.jpg: no photo


def test_a_server_folder_import_names_its_files_by_their_path_in_the_folder(app_env, cookie_sign_in, tmp_path):
    """The full server path made the file column so wide that a phone showed no reason beside it."""
    folder = tmp_path / "deep" / "server" / "in"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.jpg", "sub/b.jpg"):
        (folder / name).write_bytes(b"not a photo")
    at = _import_page_for_an_admin(cookie_sign_in)
    at.text_input(key="import_folder").input(str(folder)).run()
    next(b for b in at.button if b.label == "Import and auto-label").click().run()
    assert not at.exception
    assert at.caption[-1].value == f"Files from {folder} are named by their path in it."
    for table in at.dataframe:  # skipped files, then every file
        assert list(table.value["file"]) == ["a.jpg", "sub/b.jpg"]
        assert set(table.value["reason"]) == {"not_an_image"}
