"""Memory benchmark of the JSON API under pixel bombs: ``python -m bench.memory``.

Starts ``uvicorn app.api:api`` (one worker) on a throwaway project (as :mod:`bench.api_load`),
warms it with the shared face photos, then posts pixel bombs — tiny files that decode to just
under the budget — and samples the server's RSS (the process and its children, from /proc)
every 20 ms:

* one PNG at the full-decode budget (``max_decode_pixels``; ``max_pixels`` where the code has no
  separate decode budget), then one JPEG at the header budget (``max_pixels``);
* a burst of ``--burst`` of those PNGs at once, and the RSS a few seconds after the burst.

Prints baseline, peak and after-burst RSS and the extra MB per case.
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the burst before RSS is read")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--project", type=Path, default=None,
                        help="a var/ folder with a served model to copy instead of building one")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="facetype-bench-memory-"))
    var = workdir / "var"
    server = sampler = None
    rows = []
    try:
        if args.project:
            shutil.copytree(args.project, var)
        else:
            build_project(var, args.epochs)
        decode_budget, header_budget = budgets(var)
        png, jpeg = bomb("PNG", decode_budget), bomb("JPEG", header_budget)
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
        for name, photo in ((f"one PNG bomb, {len(png) // 1024} KiB -> {decode_budget / 1e6:.0f} MP", png),
                            (f"one JPEG bomb, {len(jpeg) // 1024} KiB -> {header_budget / 1e6:.0f} MP", jpeg)):
            start = sampler.reset()
            status = post(base, request_body(photo))
            time.sleep(0.2)
            rows.append((name, f"peak +{sampler.peak - start:.0f} MB", f"answer {status}"))
        body = request_body(png)
        start = sampler.reset()
        with ThreadPoolExecutor(args.burst) as pool:
            statuses = list(pool.map(lambda _: post(base, body), range(args.burst)))
        peak = sampler.peak
        time.sleep(args.settle)
        after = tree_rss_mb(server.pid)
        rows.append((f"burst of {args.burst} PNG bombs at once", f"peak +{peak - start:.0f} MB ({peak:.0f} MB)",
                     "answers " + ", ".join(sorted(set(statuses)))))
        rows.append((f"{args.settle:.0f} s after the burst", f"{after:.0f} MB (+{after - baseline:.0f} MB over baseline)",
                     ""))
    finally:
        if sampler is not None:
            sampler.stop()
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nAPI memory under pixel bombs — {os.cpu_count()} cores, 1 uvicorn worker; beside it: this "
          f"client only (load {' '.join(Path('/proc/loadavg').read_text().split()[:3])})")
    width = max(len(r[0]) for r in rows)
    for name, result, note in rows:
        print(f"{name:<{width}}  {result:<34}  {note}")
    print("goal: one bomb at the budget <= +150 MB; RSS back to the baseline after the burst")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
