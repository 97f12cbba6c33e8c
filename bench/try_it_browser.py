"""The Try it page in headless Chromium: cold start, one visitor warm, four at once, app memory.

Run by hand: ``.venv/bin/python -m bench.try_it_browser [--runs 10]``. It builds a throwaway
project (sample project + a quickly trained head) in a temporary folder (``--var`` copies a
prepared one instead), serves it with ``streamlit run`` and times:

* cold start: from launching ``streamlit run`` to the first page's form drawn (its Analyze button;
  the models warm-load on a thread once it is drawn: models.warmup; the first photo below waits
  for them), and beside it until the page stopped changing (``tests.browser.wait_for_app``: at
  least 1.2 s of polling, the driver's, not the app's);
* the first photo after the start (upload -> type shown);
* per warm run: upload a photo, click Analyze, until the type is shown (``--runs``). Timed on the
  page's own clock by a script injected into it (:data:`RECORDER`): from the file input's change to
  the type heading in the DOM, less the time the driver took to click Analyze once it was enabled
  (a person sees it enabled and clicks; Playwright's click retries a disabled button after 20, 100,
  100 and 500 ms). The driver's own stopwatch (set_input_files -> heading found) is printed beside;
* four visitors at once: four browser tabs click Analyze one after another, each timed on its
  page's clock from its click to its type heading (the driver's number beside reads the tabs in
  order, so a tab that finished early counts when it is read: an upper bound);
* the app's RSS (the streamlit process) after all that;
* with ``--while-training``: warm runs again while a detector run trains in a worker process on the
  same machine (queued as the Models page does, ``python -m models.worker`` beside the app, as
  ``make run`` starts it), and the ratio of their p50 to the idle one.

Where the time of a warm visit and of a cold start goes: ``bench.try_it_phases``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from bench.memory import tree_rss_mb


def project_env(var: Path) -> dict:
    """The settings' environment of a project in ``var`` (SQLite file, folder store), set in this
    process too, before anything reads the settings."""
    env = {
        "FACETYPE_VAR_DIR": str(var),
        "FACETYPE_DATABASE_URL": f"sqlite:///{var / 'facetype.db'}",
        "FACETYPE_STORAGE_URL": str(var / "store"),
    }
    os.environ.update(env)
    return env


def prepare_project(var: Path, copy_from: Path | None = None) -> dict:
    """A project with a served model in ``var``: a copy of ``copy_from`` (a var/ folder), else built."""
    if copy_from:
        shutil.copytree(copy_from, var)
        return project_env(var)
    return build_project(var)


def build_project(var: Path) -> dict:
    env = project_env(var)
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
    from app.core.vocabulary import RunStatus
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
        if row.status in (RunStatus.QUEUED, RunStatus.RUNNING):
            jobs.cancel(lead, run_id)
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)


#: Notes, on the page's clock (ms), when the file input changes, Analyze is enabled after it, Analyze is
#: clicked and the type heading is in the DOM. Cheap on every mutation: no layout (textContent only).
RECORDER = """
window.__tryit = {};
const note = what => { if (!(what in window.__tryit)) window.__tryit[what] = performance.now(); };
const analyzeButton = () => [...document.querySelectorAll("button")].find(b => b.textContent.trim() === "Analyze");
document.addEventListener("change", e => { if (e.target.type === "file") note("change"); }, true);
document.addEventListener("click", e => { if (e.target.closest("button") === analyzeButton()) note("click"); }, true);
new MutationObserver(() => {
  if (!("change" in window.__tryit) && !("click" in window.__tryit)) return;
  const analyze = analyzeButton();
  if (analyze && !analyze.disabled) note("enabled");
  if ([...document.querySelectorAll("h3")].some(h => /^Your face type: \\w+/.test(h.textContent.trim()))) note("heading");
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
window.__tryitReset = () => { window.__tryit = {}; };
"""


def visit_on_page_clock(page) -> float:
    """Seconds from the file input's change to the type heading, less the driver's wait between Analyze
    being enabled and its click (see :data:`RECORDER`)."""
    notes = page.evaluate("window.__tryit")
    return (notes["heading"] - notes["change"] - (notes["click"] - notes["enabled"])) / 1000


def timed_visit(page, photo) -> tuple[float, float]:
    """(page's clock, driver's stopwatch) of one upload -> type shown, on an open page with the
    questions answered."""
    from tests.browser import analyze_and_wait_for_result, upload_try_it_photo

    page.evaluate("window.__tryitReset()")
    start = time.perf_counter()
    upload_try_it_photo(page, photo)
    analyze_and_wait_for_result(page)
    driver = time.perf_counter() - start
    page.wait_for_function("'heading' in window.__tryit", timeout=10_000)
    return visit_on_page_clock(page), driver


def time_runs(page, url: str, photos: list, runs: int, first: int = 0) -> tuple[list[float], list[float]]:
    from tests.browser import answer_try_it_questions, open_page

    on_page, driver = [], []
    for run in range(first, first + runs):
        open_page(page, url)
        answer_try_it_questions(page)
        page_s, driver_s = timed_visit(page, photos[run % len(photos)])
        on_page.append(page_s)
        driver.append(driver_s)
    return on_page, driver


def launch_server(env: dict, log_dir: Path):
    """``streamlit run app/web.py`` launched, and the seconds until its health check answers (polled
    every 20 ms; ``StreamlitServer.start`` polls every 250 ms)."""
    import urllib.request

    from tests.servers import PROJECT_ROOT, StreamlitServer

    server = StreamlitServer(env)
    server.log = log_dir / f"streamlit-{server.port}.log"
    started = time.perf_counter()
    server.process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/web.py", "--server.port", str(server.port),
         "--server.address", "127.0.0.1"],
        cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=server.log.open("wb"),
        stderr=subprocess.STDOUT, start_new_session=True)
    while True:
        try:
            if urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            if server.process.poll() is not None or time.perf_counter() - started > 120:
                raise RuntimeError(f"streamlit did not start: {server.log.read_text()[-2000:]}") from None
            time.sleep(0.02)
    return server, started


def summary(timings: list[float]) -> tuple[float, float, float, float]:
    timings = sorted(timings)
    p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
    return statistics.median(timings), p95, timings[0], timings[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--while-training", action="store_true",
                        help="idle, while a detector run trains in a worker, idle again")
    parser.add_argument("--visitors", type=int, default=4)
    parser.add_argument("--var", type=Path, default=None, help="a var/ folder with a served model to copy")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from tests.browser import answer_try_it_questions, open_page, upload_try_it_photo, wait_for_app
    from tests.servers import CHROMIUM_ARGS

    with tempfile.TemporaryDirectory(prefix="facetype-bench-") as tmp:
        env = prepare_project(Path(tmp) / "var", args.var)  # before anything reads the settings
        from app.core.settings import get_settings

        photos = sorted((get_settings().sample_dir / "photos").glob("*/1.jpg"))
        timings, driver_timings, together, together_driver, training = [], [], [], [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.add_init_script(RECORDER)
            server, started = launch_server(env, Path(tmp))
            try:
                page.goto(server.url, wait_until="commit")
                page.get_by_role("button", name="Analyze").wait_for(timeout=60_000)
                first_page = time.perf_counter() - started
                wait_for_app(page)
                first_settled = time.perf_counter() - started
                for run in range(args.runs + 1):
                    if run:
                        open_page(page, server.url)
                    answer_try_it_questions(page)
                    page_s, driver_s = timed_visit(page, photos[run % len(photos)])
                    if run:
                        timings.append(page_s)
                        driver_timings.append(driver_s)
                    else:
                        first_photo, first_photo_driver = page_s, driver_s
                tabs = [browser.new_page(viewport={"width": 1280, "height": 900}) for _ in range(args.visitors)]
                for i, tab in enumerate(tabs):
                    tab.add_init_script(RECORDER)
                    open_page(tab, server.url)
                    answer_try_it_questions(tab)
                    upload_try_it_photo(tab, photos[i % len(photos)])
                clicked = []
                for tab in tabs:
                    tab.get_by_role("button", name="Analyze").click()
                    clicked.append(time.perf_counter())
                for tab, start in zip(tabs, clicked):
                    tab.get_by_text(re.compile(r"^Your face type: \w+$")).wait_for(timeout=120_000)
                    together_driver.append(time.perf_counter() - start)
                for tab in tabs:
                    tab.wait_for_function("'heading' in window.__tryit", timeout=10_000)
                    notes = tab.evaluate("window.__tryit")
                    together.append((notes["heading"] - notes["click"]) / 1000)
                rss = tree_rss_mb(server.process.pid)
                if args.while_training:
                    with detector_training(env, Path(tmp) / "worker.log"):
                        training, _ = time_runs(page, server.url, photos, args.runs, 1)
                browser.close()
            finally:
                server.stop()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"\nTry it in Chromium — {os.cpu_count()} CPU cores; beside it: Chromium and this driver (load {load})")
    rows = [
        ("first page after `streamlit run` starts (models warm-loading beside it): launch -> form drawn",
         f"{first_page:.1f} s (goal <= 5 s); page settled (wait_for_app) {first_settled:.1f} s"),
        ("first photo after the start, upload -> type shown (page's clock; driver's)",
         f"{first_photo:.2f} s; {first_photo_driver:.2f} s"),
        (f"warm, upload -> type shown, {len(timings)} runs, p50 / p95 (page's clock)",
         f"{statistics.median(timings):.2f} / {percentile(timings, 0.95):.2f} s (goal p50 <= 0.5 s)"),
        ("  the same runs on the driver's stopwatch (its polling and click retries included), p50 / p95",
         f"{statistics.median(driver_timings):.2f} / {percentile(driver_timings, 0.95):.2f} s"),
        (f"{len(together)} visitors at once, Analyze -> type shown, p50 / p95 (page's clock)",
         f"{statistics.median(together):.2f} / {percentile(together, 0.95):.2f} s (goal p95 <= 2 s)"),
        ("  the same on the driver's stopwatch (tabs read in order: an upper bound), p50 / p95",
         f"{statistics.median(together_driver):.2f} / {percentile(together_driver, 0.95):.2f} s"),
        ("app RSS (streamlit process) with models loaded, after these runs", f"{rss:.0f} MB (goal <= 1200 MB)"),
    ]
    if training:
        rows.append((f"warm, while a detector run trains in a worker, {len(training)} runs, p50 / p95",
                     f"{statistics.median(training):.2f} / {percentile(training, 0.95):.2f} s, "
                     f"{statistics.median(training) / statistics.median(timings):.2f}x idle (goal <= 1.3x)"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


if __name__ == "__main__":
    raise SystemExit(main())
