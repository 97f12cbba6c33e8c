"""Where a warm Try it visit's time goes, step by step, as the browser sees it.

Run by hand: ``.venv/bin/python -m bench.try_it_phases [--runs 10] [--cold 3] [--var VAR]`` (``--runs 0``
or ``--cold 0`` skips that part): VAR a prepared var/ folder with a served model to copy (as
``bench.try_it_browser --var`` takes); without it a throwaway project is built first, as that benchmark
does (minutes).
Each warm run uploads a photo, clicks Analyze as soon as it is enabled and waits for the type, as
``bench.try_it_browser`` does. A script injected into the page notes, on the page's own clock, every
websocket message (decoded here as Streamlit's forward messages) and when the photo, the enabled
Analyze button and the type heading appear, so that each step splits into: the browser sending its
request, the script starting (``new_session``), the script's elements arriving, its last messages
(``script_finished``: Streamlit's post-run garbage collection holds them back when it is slow) and
the drawing after them. Medians over the runs, with the load beside.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import tempfile
from pathlib import Path

#: Notes (time, what, payload) for every websocket message and for the moments the page shows things.
RECORDER = """
window.__notes = [];
const note = (what, data) => window.__notes.push([performance.timeOrigin + performance.now(), what, data || ""]);
const Socket = window.WebSocket;
window.WebSocket = function (...args) {
  const ws = new Socket(...args);
  ws.binaryType = "arraybuffer";
  ws.addEventListener("message", e => {
    if (!(e.data instanceof ArrayBuffer)) return;
    const bytes = new Uint8Array(e.data);
    let text = "";
    for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
    note("in", btoa(text));
  });
  const send = ws.send.bind(ws);
  ws.send = data => { note("out"); send(data); };
  return ws;
};
window.WebSocket.prototype = Socket.prototype;
Object.assign(window.WebSocket, Socket);
const seen = {};
new MutationObserver(() => {
  const text = document.body ? document.body.innerText : "";
  const mark = (what, shown) => { if (shown && !seen[what]) { seen[what] = 1; note(what); } };
  mark("photo shown", text.includes("Your photo (only kept in this page's memory)"));
  mark("type shown", /Your face type: \\w+/.test(text));
  const analyze = [...document.querySelectorAll("button")].find(b => b.innerText.trim() === "Analyze");
  mark("Analyze enabled", analyze && !analyze.disabled);
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
window.__reset = () => { window.__notes = []; for (const k in seen) delete seen[k]; };
"""


def decode(notes: list) -> list[tuple[float, str]]:
    """(seconds, what) with each incoming message named by its forward-message type."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    events = []
    for ms, what, data in notes:
        if what == "in":
            what = "in:" + (ForwardMsg.FromString(base64.b64decode(data)).WhichOneof("type") or "?")
        events.append((ms / 1000, what))
    return events


def split(events: list[tuple[float, str]], start: float, shown: str) -> dict:
    """One step's phases in seconds, from ``start`` (the driver's action, on the page's clock)."""
    def first(what, after=start):
        return min((t for t, w in events if w == what and t >= after), default=float("nan"))

    sent = first("out")
    run_start = first("in:new_session", sent)
    shown_at = first(shown)
    deltas = [t for t, w in events if w == "in:delta" and run_start <= t <= shown_at]
    finished = first("in:script_finished", run_start)
    return {
        "the browser sends its request (click: driver)": sent - start,
        "-> the script run starts": run_start - sent,
        "-> the text's element arrives": (deltas[-1] if deltas else float("nan")) - run_start,
        "-> drawn": shown_at - (deltas[-1] if deltas else run_start),
        "total": shown_at - start,
        "(script run's last message, from its start)": finished - run_start,
        "(script runs in the step)": len([1 for t, w in events if w == "in:new_session" and start <= t <= shown_at]),
    }


def cold_start(browser, env: dict, log_dir: Path) -> dict:
    """One cold start, in parts: from launching ``streamlit run`` to its health check answering (Python,
    Streamlit's and app/web.py's imports, the server), then the page's HTML, its title, the whole form
    (the Analyze button) and the wait until nothing changes any more (tests.browser.wait_for_app)."""
    import time

    from bench.try_it_browser import launch_server
    from tests.browser import wait_for_app
    from tests.servers import stop_process

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    server, started = launch_server(env, log_dir)
    try:
        healthy = time.perf_counter()
        page.goto(server.url, wait_until="commit")
        html = time.perf_counter()
        page.wait_for_selector('[data-testid="stMain"] h1', timeout=60_000)
        title = time.perf_counter()
        page.get_by_role("button", name="Analyze").wait_for(timeout=60_000)
        form = time.perf_counter()
        wait_for_app(page)
        settled = time.perf_counter()
    finally:
        page.close()
        stop_process(server.process)
    return {
        "launch -> health check answers": healthy - started,
        "-> page HTML": html - healthy,
        "-> title drawn": title - html,
        "-> whole form drawn (Analyze button)": form - title,
        "first page drawn (sum)": form - started,
        "-> nothing changes for 1.2 s (wait_for_app)": settled - form,
    }


def print_steps(colds: list[dict], steps: dict[str, list[dict]], runs: int) -> None:
    """The table: each step's parts, medians over its runs; a step with no runs (``--runs 0``,
    ``--cold 0``) is left out."""
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    warm = f"warm, medians of {runs} runs" if runs else "warm runs not timed (--runs 0)"
    print(f"\nTry it, where the time goes — {warm}, in s; {os.cpu_count()} CPU cores; "
          f"beside it: Chromium and this driver (load {load})")
    timed = {f"cold start ({len(colds)} starts)": colds, **steps}
    for step, rows in timed.items():
        if not rows:
            continue
        print(f"\n{step}")
        for name in rows[0]:
            values = [row[name] for row in rows]
            median = statistics.median(values)
            print(f"  {name:<46} {median:.3f}" if "runs" not in name else f"  {name:<46} {median:g}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="warm visits to time; 0: none, only cold starts")
    parser.add_argument("--var", type=Path, default=None, help="a var/ folder with a served model to copy")
    parser.add_argument("--cold", type=int, default=3, help="cold starts to time (each a new server); 0: none")
    args = parser.parse_args(argv)
    if args.runs < 0 or args.cold < 0:
        parser.error("--runs and --cold are counts: 0 or more")
    if not args.runs and not args.cold:
        parser.error("--runs 0 and --cold 0 leave nothing to time")

    from playwright.sync_api import sync_playwright

    from bench.try_it_browser import prepare_project
    from tests.browser import answer_try_it_questions, open_page
    from tests.servers import CHROMIUM_ARGS, StreamlitServer

    with tempfile.TemporaryDirectory(prefix="facetype-bench-") as tmp:
        env = prepare_project(Path(tmp) / "var", args.var)
        from app.core.settings import get_settings

        photos = sorted((get_settings().sample_dir / "photos").glob("*/1.jpg"))
        steps: dict[str, list[dict]] = {"upload -> photo shown": [], "upload -> Analyze enabled": [],
                                        "Analyze enabled -> clicked -> type shown": []}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            colds = [cold_start(browser, env, Path(tmp)) for _ in range(args.cold)]
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.add_init_script(RECORDER)
            server = StreamlitServer(env).start(Path(tmp)) if args.runs else None
            now = "performance.timeOrigin + performance.now()"
            try:
                # the first run waits for the models: not counted; none at all without warm runs to time
                for run in range(args.runs + 1 if args.runs else 0):
                    open_page(page, server.url)
                    answer_try_it_questions(page)
                    page.evaluate("window.__reset()")
                    uploaded = page.evaluate(now) / 1000
                    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
                        str(photos[run % len(photos)]))
                    page.get_by_text("Your photo (only kept in this page's memory)").wait_for(timeout=30_000)
                    analyze = page.get_by_role("button", name="Analyze")
                    analyze.click()  # Playwright waits for it to be enabled
                    page.get_by_text("Your face type:").first.wait_for(timeout=60_000)
                    page.wait_for_timeout(500)
                    events = decode(page.evaluate("window.__notes"))
                    clicked = min(t for t, w in events if w == "Analyze enabled")
                    if run:
                        steps["upload -> photo shown"].append(split(events, uploaded, "photo shown"))
                        steps["upload -> Analyze enabled"].append(split(events, uploaded, "Analyze enabled"))
                        steps["Analyze enabled -> clicked -> type shown"].append(split(events, clicked, "type shown"))
                browser.close()
            finally:
                if server is not None:
                    server.stop()
    print_steps(colds, steps, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
