"""Upload → result visible on the Try it page, in headless Chromium, with a warm app.

Run by hand: ``.venv/bin/python -m bench.try_it_browser [--runs 10] [--while-training]``. It builds
a throwaway project (sample project + a quickly trained head) in a temporary folder, serves it with
``streamlit run``, answers the questions, then times, per run: upload a photo, click Analyze, until
the type is shown. The first run warms the models and is not counted. Prints a table.

``--while-training``: the same, in one session, idle, then while a detector run trains in a
worker process on the same machine (queued as the Models page does, ``python -m models.worker``
beside the app, as ``make run`` starts it), then idle again.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
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


@contextmanager
def detector_training(env: dict, log: Path):
    """A detector run queued and trained by a worker process until the block ends (then cancelled)."""
    from app.core.auth import Account
    from models import jobs, registry

    lead = Account("bench", "lead", "")
    run_id = jobs.enqueue(lead, "detector", epochs=200)
    worker = subprocess.Popen([sys.executable, "-m", "models.worker", "--poll", "0.5"], env={**os.environ, **env},
                              stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while not (registry.get_run(run_id).history or (registry.get_run(run_id).progress or 0) > 0.05):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"the detector run did not start training: {log.read_text()[-2000:]}")
            time.sleep(1)
        yield run_id
    finally:
        row = registry.get_run(run_id)
        print(f"  (detector run {run_id}: {row.message}, on {row.devices})")
        if row.status in (jobs.QUEUED, jobs.RUNNING):
            jobs.cancel(lead, run_id)
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)


def time_runs(page, url: str, photos: list, runs: int, first: int = 0) -> list[float]:
    from tests.browser import analyze_and_wait_for_result, answer_try_it_questions, open_page, upload_try_it_photo

    timings = []
    for run in range(first, first + runs):
        open_page(page, url)
        answer_try_it_questions(page)
        start = time.perf_counter()
        upload_try_it_photo(page, photos[run % len(photos)])
        analyze_and_wait_for_result(page)
        timings.append(time.perf_counter() - start)
    return timings


def summary(timings: list[float]) -> tuple[float, float, float, float]:
    timings = sorted(timings)
    p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
    return statistics.median(timings), p95, timings[0], timings[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--while-training", action="store_true",
                        help="idle, while a detector run trains in a worker, idle again")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from tests.servers import CHROMIUM_ARGS, StreamlitServer

    with tempfile.TemporaryDirectory(prefix="facetype-bench-") as tmp:
        env = build_project(Path(tmp) / "var")  # before anything reads the settings
        from app.core.settings import get_settings

        photos = sorted((get_settings().sample_dir / "photos").glob("*/1.jpg"))
        server = StreamlitServer(env).start(Path(tmp))
        phases: dict[str, list[float]] = {}
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                time_runs(page, server.url, photos, 1)  # warms the models, not counted
                phases["idle"] = time_runs(page, server.url, photos, args.runs, 1)
                if args.while_training:
                    with detector_training(env, Path(tmp) / "worker.log"):
                        phases["detector training in a worker"] = time_runs(page, server.url, photos, args.runs, 1)
                    phases["idle again"] = time_runs(page, server.url, photos, args.runs, 1)
                browser.close()
        finally:
            server.stop()
    print(f"\nTry it: upload -> result visible, {args.runs} runs per row, warm app, {os.cpu_count()} CPU cores, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    idle = statistics.median(phases["idle"])
    print(f"{'beside the app':<32} {'p50 (s)':>8} {'p95 (s)':>8} {'min (s)':>8} {'max (s)':>8} {'p50/idle':>9}")
    for name, timings in phases.items():
        p50, p95, low, high = summary(timings)
        print(f"{name:<32} {p50:8.2f} {p95:8.2f} {low:8.2f} {high:8.2f} {p50 / idle:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
