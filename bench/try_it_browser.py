"""Upload → result visible on the Try it page, in headless Chromium, with a warm app.

Run by hand: ``.venv/bin/python -m bench.try_it_browser [--runs 10]``. It builds a throwaway
project (sample project + a quickly trained head) in a temporary folder, serves it with
``streamlit run``, answers the questions, then times, per run: upload a photo, click Analyze, until
the type is shown. The first run warms the models and is not counted. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def build_project(var: Path) -> dict:
    env = {
        "FACETYPE_VAR_DIR": str(var),
        "FACETYPE_DATABASE_URL": f"sqlite:///{var / 'facetype.db'}",
        "FACETYPE_STORAGE_URL": str(var / "store"),
    }
    os.environ.update(env)
    from app.core.db import migrate
    from app.services.sample import load_sample_project
    from models.training.train import ensure_served_model

    migrate()
    load_sample_project()
    ensure_served_model(epochs=5)
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from tests.browser import analyze_and_wait_for_result, answer_try_it_questions, open_page, upload_try_it_photo
    from tests.servers import CHROMIUM_ARGS, StreamlitServer

    with tempfile.TemporaryDirectory(prefix="facetype-bench-") as tmp:
        env = build_project(Path(tmp) / "var")  # before anything reads the settings
        from app.core.settings import get_settings

        photos = sorted((get_settings().sample_dir / "photos").glob("*/1.jpg"))
        server = StreamlitServer(env).start(Path(tmp))
        timings = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                for run in range(args.runs + 1):
                    open_page(page, server.url)
                    answer_try_it_questions(page)
                    start = time.perf_counter()
                    upload_try_it_photo(page, photos[run % len(photos)])
                    analyze_and_wait_for_result(page)
                    elapsed = time.perf_counter() - start
                    if run:  # run 0 warms the models
                        timings.append(elapsed)
                browser.close()
        finally:
            server.stop()
    timings.sort()
    p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
    print(f"\nTry it: upload -> result visible, {len(timings)} runs, warm app, {os.cpu_count()} CPU cores")
    print(f"{'p50 (s)':>8} {'p95 (s)':>8} {'min (s)':>8} {'max (s)':>8}")
    print(f"{statistics.median(timings):8.2f} {p95:8.2f} {timings[0]:8.2f} {timings[-1]:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
