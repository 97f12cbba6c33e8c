"""Benchmark of the live framing guide: ``python -m bench.framing_guide``.

Feeds a 640x480 webcam-like frame (the sample project's synthetic portrait, see data/sample) to
:class:`app.services.framing.FramingGuide` at 30 frames a second, as WebRTC does, for ``--seconds``,
and prints frames shown and frames checked by the face gate per second, the time to draw the overlay
on a frame and the time of one check (p50 / p95). Four runs: the guide's own spacing of checks
(:data:`app.services.framing.CHECK_INTERVAL_S`) and no spacing (as fast as the CPU allows, checks
still skipped while one runs), each quiet and with a CPU burner (a separate busy-looping process)
beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import numpy as np

from app.core.settings import get_settings
from app.services import framing
from bench.classify import cpu_burner, load_average
from models.gate import get_face_gate
from models.intake import read_image_file

FPS = 30


def webcam_frame() -> np.ndarray:
    import cv2

    portrait = read_image_file(get_settings().sample_dir / "framing_example.jpg")
    scale = 480 / portrait.shape[0]
    small = cv2.resize(portrait, (round(portrait.shape[1] * scale), 480), interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 128, np.uint8)
    left = (640 - small.shape[1]) // 2
    frame[:, left:left + small.shape[1]] = small
    return frame


class TimedGate:
    """The face gate, recording how long each check takes."""

    def __init__(self, gate):
        self.gate, self.times = gate, []

    def check(self, frame):
        start = time.perf_counter()
        try:
            return self.gate.check(frame)
        finally:
            self.times.append((time.perf_counter() - start) * 1000)


def run(frame: np.ndarray, interval_s: float, seconds: float) -> dict:
    gate = TimedGate(get_face_gate())
    guide = framing.FramingGuide(gate, interval_s=interval_s)
    draw_ms = []
    start = time.perf_counter()
    next_frame = start
    while time.perf_counter() - start < seconds:
        began = time.perf_counter()
        guide.on_frame(frame)
        draw_ms.append((time.perf_counter() - began) * 1000)
        next_frame += 1 / FPS
        time.sleep(max(0.0, next_frame - time.perf_counter()))
    elapsed = time.perf_counter() - start
    for _ in range(100):  # let the last check finish
        if not guide._busy:
            break
        time.sleep(0.05)
    verdict = guide.verdict
    return {
        "shown": guide.frames_seen / elapsed,
        "checked": guide.frames_checked / elapsed,
        "draw": (statistics.median(draw_ms), float(np.percentile(draw_ms, 95))),
        "check": (statistics.median(gate.times), float(np.percentile(gate.times, 95))) if gate.times else (0, 0),
        "verdict": verdict.hint if verdict else "-",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    frame = webcam_frame()
    get_face_gate().check(frame)  # models loaded and warm
    rows = []
    for burner in (0, 1):
        for interval in (framing.CHECK_INTERVAL_S, 0.0):
            if burner:
                with cpu_burner(1):
                    load = load_average()
                    result = run(frame, interval, args.seconds)
            else:
                load = load_average()
                result = run(frame, interval, args.seconds)
            rows.append((f"{interval:.1f} s" if interval else "none", "1 busy-loop process" if burner else "nothing",
                         load, result))
    print(f"Live framing guide, 640x480 frames fed at {FPS}/s for {args.seconds:.0f} s per run; "
          f"{os.cpu_count()} CPU cores (shared with other work on this machine: see the load average)")
    header = ("spacing", "beside", "load avg (1/5/15 min)", "frames shown/s", "frames checked/s",
              "overlay ms p50/p95", "check ms p50/p95", "last hint")
    print(" | ".join(header))
    for interval, beside, load, r in rows:
        print(" | ".join([interval, beside, load, f"{r['shown']:.1f}", f"{r['checked']:.1f}",
                          f"{r['draw'][0]:.1f} / {r['draw'][1]:.1f}", f"{r['check'][0]:.0f} / {r['check'][1]:.0f}",
                          r["verdict"]]))
    threading.Event().wait(0.1)


if __name__ == "__main__":
    main()
