"""Labeling page in headless Chromium: seconds and actions per photo for an untouched accept and for
one box correction (drag the jaw box, then accept), from the first action until the next photo's
canvas is shown and the app has finished running.

Run by hand: ``.venv/bin/python -m bench.labeling_browser [--photos 12] [--accept click|enter] [--move direct|edit]
[--burn]``.
It builds a throwaway project (SQLite + folder store) of synthetic 1600x1200 photos with auto boxes,
serves it with ``streamlit run``, signs in as an annotator and works through the queue. The first
photo warms the app and is not counted. ``--accept enter`` accepts with the Enter key (the page's
keyboard shortcut) instead of clicking Accept. ``--move direct`` (the default) drags the jaw box by its
edge, as the canvas allows without an Edit mode; ``--move edit`` turns on Edit first (E or the toolbar
button) and drags it from inside. ``--burn`` keeps one CPU core busy meanwhile.
Prints a table with the load average and the core count.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

WIDTH, HEIGHT = 1600, 1200
AUTO = {"face": (400.0, 200.0, 1200.0, 1100.0), "tzone": (600.0, 400.0, 1000.0, 700.0),
        "jaw": (500.0, 750.0, 1100.0, 1150.0)}


def _photo(seed: int) -> bytes:
    import numpy as np
    from PIL import Image, ImageDraw

    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    pixels = np.stack([(x * 255 // WIDTH), (y * 255 // HEIGHT), np.full_like(x, (seed * 37) % 255)], axis=-1)
    image = Image.fromarray(pixels.astype(np.uint8))
    ImageDraw.Draw(image).ellipse([420, 220, 1180, 1120], fill=(220, 180 - seed % 40, 160))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def build_project(var: Path, photos: int) -> dict:
    import hashlib

    from app.core.auth import hash_password
    from tests.conftest import TEAM_PASSWORD
    from app.core.db import Photo, ReferencePerson, RegionBox, TypeProfile, get_engine, migrate, session_scope
    from app.core.storage import LocalStore

    url = f"sqlite:///{var / 'facetype.db'}"
    migrate(url)
    store = LocalStore(var / "store")
    with session_scope(url) as s:
        s.add(TypeProfile(name="Alpha", order=0, description="bench", share_percent=100.0))
        person = ReferencePerson(person_key="p01", pseudonym="Bench Person")
        s.add(person)
        s.flush()
        for i in range(photos):
            data = _photo(i)
            digest = hashlib.sha256(data).hexdigest()
            key = f"reference/{person.id}/{digest[:32]}.jpg"
            store.put(key, data, "image/jpeg")
            photo = Photo(object_key=key, size_bytes=len(data), sha256=digest, width=WIDTH, height=HEIGHT,
                          source="reference", person_id=person.id, boxes_version=1)
            s.add(photo)
            s.flush()
            for region, box in AUTO.items():
                s.add(RegionBox(photo_id=photo.id, version=1, region=region, x0=box[0], y0=box[1], x1=box[2],
                                y1=box[3], source="auto", confidence=0.5 + i / 1000))
    get_engine(url).dispose()
    return {
        "FACETYPE_VAR_DIR": str(var), "FACETYPE_DATABASE_URL": url, "FACETYPE_STORAGE_URL": str(var / "store"),
        "FACETYPE_ACCOUNTS": json.dumps({"ana": {"role": "annotator", "password_hash": hash_password(TEAM_PASSWORD)}}),
    }


def _burn() -> None:
    while True:
        pass


def current_photo(page) -> str:
    return page.evaluate("() => new URLSearchParams(location.search).get('photo')")


def wait_for_photo_after(page, previous: str, timeout_ms: int = 60_000) -> None:
    """Until the address names another photo, its caption and canvas are shown and nothing is stale."""
    page.wait_for_function(
        """(previous) => {
            const pid = new URLSearchParams(location.search).get('photo');
            if (!pid || pid === previous) return false;
            const main = document.querySelector('[data-testid="stMain"]');
            if (!main || !main.innerText.includes('Photo ' + pid + ' ·')) return false;
            return !document.querySelector('[data-stale="true"], [data-testid="stSpinner"]');
        }""",
        arg=previous, timeout=timeout_ms, polling="raf",
    )
    page.locator("canvas.upper-canvas").wait_for(timeout=timeout_ms)


def accept(page, how: str) -> None:
    if how == "enter":
        page.evaluate("() => document.activeElement && document.activeElement.blur()")  # not in a field
        page.keyboard.press("Enter")
    else:
        page.get_by_role("button", name=re.compile(r"^Accept")).click()


def wait_for_jaw_drawn(page, timeout_ms: int = 60_000) -> None:
    """Until the canvas has drawn the jaw box (ink on its top edge, on the boxes' own layer above the
    photo). The canvas element appears before its boxes are loaded (asynchronously, later still on a busy
    machine); a drag before that moves nothing, and what an annotator drags is a box they see."""
    page.wait_for_function(
        """([x0, y0, x1]) => {
            for (const host of document.querySelectorAll('[data-testid="stMain"] *')) {
                const canvas = host.shadowRoot && host.shadowRoot.querySelector('canvas.dc-canvas');
                if (!canvas || !canvas.width) continue;
                const scale = canvas.width / %d;
                const x = Math.round((x0 + x1) / 2 * scale), y = Math.round(y0 * scale);
                const pixels = canvas.getContext('2d').getImageData(x - 3, y - 3, 7, 7).data;
                for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) return true;
            }
            return false;
        }""" % WIDTH,
        arg=list(AUTO["jaw"][:3]), timeout=timeout_ms,
    )


def drag_jaw(page, how: str, move: str) -> int:
    """Drag the jaw box 20 canvas pixels right (``move`` "edit": turn on the canvas's Edit mode first and
    drag from inside the box; "direct": drag its left edge); returns the actions taken."""
    wait_for_jaw_drawn(page)
    if move == "edit":
        if how == "enter":
            page.keyboard.press("e")
        else:
            page.get_by_role("button", name="Edit").click()
    canvas = page.locator("canvas.upper-canvas")
    canvas.evaluate("c => c.scrollIntoView({block: 'end'})")  # the jaw is in the photo's lower half
    box = canvas.bounding_box()
    scale = box["width"] / WIDTH
    x0, y0, x1, y1 = AUTO["jaw"]
    cx, cy = box["x"] + (x0 + x1 if move == "edit" else 2 * x0) / 2 * scale, box["y"] + (y0 + y1) / 2 * scale
    page.mouse.move(cx, cy)
    page.mouse.down()
    for i in range(1, 6):
        page.mouse.move(cx + 4 * i, cy)
    page.mouse.up()
    page.get_by_text(f"{x0 + 20 / scale:.2f}, {y0:.2f}").first.wait_for(timeout=60_000)
    return 2 if move == "edit" else 1  # (the Edit toggle and) the drag


def show_failure(page, screenshot: Path) -> None:
    """What the page showed when a step timed out: a screenshot and the main area's text."""
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"Step failed on photo {current_photo(page)}; screenshot {screenshot}; the page said:")
    print(page.locator('[data-testid="stMain"]').inner_text(timeout=10_000))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--accept", choices=["click", "enter"], default="click")
    parser.add_argument("--move", choices=["direct", "edit"], default="direct")
    parser.add_argument("--burn", action="store_true", help="keep one CPU core busy while measuring")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from tests.browser import sign_in, wait_for_app
    from tests.servers import CHROMIUM_ARGS, StreamlitServer

    untouched, corrected = [], []
    with tempfile.TemporaryDirectory(prefix="facetype-bench-") as tmp:
        var = Path(tmp) / "var"
        env = build_project(var, args.photos)
        server = StreamlitServer(env).start(Path(tmp))
        # Spawned, not forked: a forked child would hold Playwright's pipe to its driver open, and leaving
        # sync_playwright() would wait for the driver forever.
        burner = multiprocessing.get_context("spawn").Process(target=_burn, daemon=True) if args.burn else None
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(f"{server.url}/labeling")
                wait_for_app(page, timeout_ms=300_000)  # the first page after start, on a busy machine
                sign_in(page, server.url, "ana", path=None)
                page.locator("canvas.upper-canvas").wait_for(timeout=60_000)
                if burner:
                    burner.start()
                for n in range(args.photos - 1):
                    previous = current_photo(page)
                    correct = n % 2 == 0 and n > 0
                    start = time.perf_counter()
                    try:
                        actions = drag_jaw(page, args.accept, args.move) if correct else 0
                        accept(page, args.accept)
                        wait_for_photo_after(page, previous)
                    except Exception:
                        show_failure(page, Path(tmp).parent / f"labeling-bench-failure-{os.getpid()}.png")
                        raise
                    elapsed = time.perf_counter() - start
                    if n:  # photo 0 warms the app
                        (corrected if correct else untouched).append((elapsed, actions + 1))
                browser.close()
        finally:
            if burner and burner.is_alive():
                burner.terminate()
            server.stop()
    load = os.getloadavg()[0]
    print(f"\nLabeling: action -> next photo shown, accept by {args.accept}, box moved {args.move}, "
          f"{os.cpu_count()} CPU cores, "
          f"load average {load:.1f}{', one core kept busy by the benchmark' if args.burn else ''}")
    print(f"{'case':<16} {'photos':>6} {'actions':>7} {'p50 (s)':>8} {'min (s)':>8} {'max (s)':>8}")
    for name, rows in (("untouched accept", untouched), ("one box fixed", corrected)):
        if rows:
            seconds = sorted(r[0] for r in rows)
            print(f"{name:<16} {len(rows):>6} {rows[0][1]:>7} {statistics.median(seconds):8.2f} "
                  f"{seconds[0]:8.2f} {seconds[-1]:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
