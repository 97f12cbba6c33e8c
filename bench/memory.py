"""Memory benchmark of the JSON API and the Try it page under pixel bombs: ``python -m bench.memory``.

Builds a throwaway project (as :mod:`bench.api_load`) and, for each target (``--only`` picks one):

* API: starts ``uvicorn app.api:api`` (one worker), warms it with the test face photos, then posts
  pixel bombs — tiny files that decode to just under the budget: one PNG at the full-decode budget
  (``max_decode_pixels``; ``max_pixels`` where the code has no separate decode budget), one JPEG at
  the header budget (``max_pixels``), then a burst of ``--burst`` PNGs at once;
* Try it: starts ``streamlit run app/web.py``, uploads a test face in Chromium (warm-up), then the
  same PNG bomb once on the Try it page, then in ``--burst`` tabs at once (each shows its preview or
  its refusal); the tabs are closed before the last reading.

The server's RSS (the process and its children, from /proc) is sampled every 20 ms. Prints
baseline, peak and after-burst RSS and the extra MB per case.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from bench.api_load import ROOT, build_project, free_port, start_server, wait_ready
from bench.timing import load_average

FACES = ROOT / "tests" / "data" / "faces"


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants, in MB."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(c) for c in children)
        except (OSError, ValueError):
            continue
    return total / 1024


class RssSampler:
    """Samples tree_rss_mb(pid) in a thread; ``peak`` since the last ``reset``."""

    def __init__(self, pid: int, every_s: float = 0.02):
        self.pid, self.every_s = pid, every_s
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            time.sleep(self.every_s)

    def reset(self) -> float:
        now = tree_rss_mb(self.pid)
        self.peak = now
        return now

    def stop(self):
        self._stop.set()
        self._thread.join()


def bomb(fmt: str, pixels: int) -> bytes:
    """A solid grey image of just under ``pixels`` pixels, compressed to almost nothing."""
    side = math.isqrt(pixels) - 8
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (128, 128, 128)).save(buffer, fmt, **({"quality": 50} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def request_body(photo: bytes) -> bytes:
    return json.dumps({"user_img": base64.b64encode(photo).decode(), "age": "1990-01-02", "mbti": "ESTJ",
                       "consent_store": False}).encode()


def post(base: str, body: bytes) -> str:
    import httpx

    try:
        r = httpx.post(f"{base}/v1/classify", content=body, headers={"content-type": "application/json"},
                       timeout=120)
        return f"{r.status_code} {r.json().get('error', '')}".strip()
    except httpx.HTTPError as exc:
        return type(exc).__name__


def budgets(var: Path | None) -> tuple[int, int]:
    """(full-decode budget, header budget) of the code under test, read in a child with its settings."""
    import subprocess

    from bench.api_load import project_env

    code = ("from app.core.settings import get_settings as g; s = g(); "
            "print(getattr(s, 'max_decode_pixels', s.max_pixels), s.max_pixels)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=project_env(var), check=True,
                         capture_output=True, text=True).stdout.split()
    return int(out[0]), int(out[1])


def print_rows(title: str, rows: list[tuple[str, str, str]]) -> None:
    print(f"\n{title} — {os.cpu_count()} cores; beside it: this client only (load {load_average()})")
    width = max(len(r[0]) for r in rows)
    for name, result, note in rows:
        print(f"{name:<{width}}  {result:<34}  {note}")


def burst_rows(sampler: RssSampler, pid: int, baseline: float, start: float, burst: int, settle: float,
               outcome: str) -> list[tuple[str, str, str]]:
    """The burst's peak (taken now) and the RSS ``settle`` seconds later."""
    peak = sampler.peak
    time.sleep(settle)
    after = tree_rss_mb(pid)
    return [(f"burst of {burst} PNG bombs at once", f"peak +{peak - start:.0f} MB ({peak:.0f} MB)", outcome),
            (f"{settle:.0f} s after the burst", f"{after:.0f} MB (+{after - baseline:.0f} MB over baseline)", "")]


def measure_api(workdir: Path, var: Path, png: bytes, jpeg: bytes, budgets_mp: tuple[float, float], burst: int,
                settle: float) -> list[tuple[str, str, str]]:
    server = sampler = None
    rows = []
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(var, port, 1, workdir / "uvicorn.log")
        wait_ready(base, server)
        faces = [p for p in sorted(FACES.iterdir()) if p.suffix.lower() in (".jpg", ".png")]
        for _ in range(2):
            for face in faces:
                post(base, request_body(face.read_bytes()))
        sampler = RssSampler(server.pid)
        time.sleep(1)
        baseline = sampler.reset()
        rows.append(("server after warm-up (baseline)", f"{baseline:.0f} MB", ""))
        for name, photo in ((f"one PNG bomb, {len(png) // 1024} KiB -> {budgets_mp[0]:.0f} MP", png),
                            (f"one JPEG bomb, {len(jpeg) // 1024} KiB -> {budgets_mp[1]:.0f} MP", jpeg)):
            start = sampler.reset()
            status = post(base, request_body(photo))
            time.sleep(0.2)
            rows.append((name, f"peak +{sampler.peak - start:.0f} MB", f"answer {status}"))
        body = request_body(png)
        start = sampler.reset()
        with ThreadPoolExecutor(burst) as pool:
            statuses = list(pool.map(lambda _: post(base, body), range(burst)))
        rows += burst_rows(sampler, server.pid, baseline, start, burst, settle,
                           "answers " + ", ".join(sorted(set(statuses))))
    finally:
        if sampler is not None:
            sampler.stop()
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
    return rows


PREVIEW = "Your photo (only kept in this page's memory)"


def upload_on_try_it(tab, photo: Path) -> None:
    """Choose ``photo`` in the Try it uploader (the upload and the page's rerun go on by themselves)."""
    tab.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(photo))


def outcome_on_try_it(tab) -> str:
    """Wait until the page shows the preview or the refusal of the uploaded photo; which one."""
    import re

    tab.get_by_text(re.compile(re.escape(PREVIEW) + "|cannot be used")).first.wait_for(timeout=180_000)
    return "refused" if tab.get_by_text("cannot be used").count() else "preview"


def measure_try_it(workdir: Path, var: Path, png: bytes, budget_mp: float, burst: int,
                   settle: float) -> list[tuple[str, str, str]]:
    from playwright.sync_api import sync_playwright

    from bench.api_load import project_env
    from tests.browser import open_page, wait_for_app
    from tests.servers import CHROMIUM_ARGS, StreamlitServer

    bomb_file = workdir / "bomb.png"
    bomb_file.write_bytes(png)
    warm_photo = next(p for p in sorted(FACES.iterdir()) if p.suffix.lower() == ".jpg")
    env = {k: v for k, v in project_env(var).items() if k.startswith("FACETYPE_")}
    server = StreamlitServer(env).start(workdir)
    sampler = None
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)

            def new_tab():
                tab = browser.new_page(viewport={"width": 1280, "height": 900})
                tab.goto(server.url)
                wait_for_app(tab, timeout_ms=180_000)  # the first visit waits for the models
                return tab

            tab = new_tab()
            for _ in range(2):
                upload_on_try_it(tab, warm_photo)
                outcome_on_try_it(tab)
                open_page(tab, server.url)
            sampler = RssSampler(server.process.pid)
            time.sleep(1)
            baseline = sampler.reset()
            rows.append(("streamlit after warm-up (baseline)", f"{baseline:.0f} MB", ""))
            start = sampler.reset()
            upload_on_try_it(tab, bomb_file)
            outcome = outcome_on_try_it(tab)
            wait_for_app(tab)
            rows.append((f"one PNG bomb, {len(png) // 1024} KiB -> {budget_mp:.0f} MP", f"peak +{sampler.peak - start:.0f} MB",
                         outcome))
            tab.close()
            tabs = [new_tab() for _ in range(burst)]
            start = sampler.reset()
            for each in tabs:
                upload_on_try_it(each, bomb_file)
            outcomes = [outcome_on_try_it(each) for each in tabs]
            for each in tabs:
                wait_for_app(each)
            for each in tabs:  # the visits end
                each.close()
            rows += burst_rows(sampler, server.process.pid, baseline, start, burst, settle,
                               f"{burst} tabs: " + ", ".join(sorted(set(outcomes))) + "; tabs closed")
            browser.close()
    finally:
        if sampler is not None:
            sampler.stop()
        server.stop()
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("api", "try-it"), default=None, help="one target (default: both)")
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the burst before RSS is read")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--project", type=Path, default=None,
                        help="a var/ folder with a served model to copy instead of building one")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="facetype-bench-memory-"))
    var = workdir / "var"
    try:
        if args.project:
            shutil.copytree(args.project, var)
        else:
            build_project(var, args.epochs)
        decode_budget, header_budget = budgets(var)
        png, jpeg = bomb("PNG", decode_budget), bomb("JPEG", header_budget)
        if args.only in (None, "api"):
            print_rows("API memory under pixel bombs, 1 uvicorn worker",
                       measure_api(workdir, var, png, jpeg, (decode_budget / 1e6, header_budget / 1e6), args.burst,
                                   args.settle))
        if args.only in (None, "try-it"):
            print_rows("Try it memory under pixel bombs, `streamlit run app/web.py` in Chromium",
                       measure_try_it(workdir, var, png, decode_budget / 1e6, args.burst, args.settle))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("goal: one bomb at the budget <= +150 MB; RSS back to the baseline after the burst")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
