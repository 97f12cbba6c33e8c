"""Benchmark of one classify request in one process: ``python -m bench.classify``.

decode + face gate + regions + type (the served path: :func:`models.gate.FaceGate.decode_and_check`
then :func:`models.serving.classify`) on a 1280x960 JPEG, p50/p95 after warm-up, twice: quiet,
then with a CPU burner (a separate process spinning on one core, started here) beside it. The
type model is a ``head`` with freshly initialised weights (its speed does not depend on training).
Then the source's way per request: build two Faster R-CNN (MobileNetV3-FPN, random weights),
load their weights from a file and run both on the same photo.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np

from bench.cascade import SHARED_FACES, jpeg_bytes, time_source_way
from bench.timing import load_average, time_ms
from models.gate import get_face_gate
from models.kinds.head import HeadModel
from models.runtime import configure_serving_process
from models.serving import classify

BURNER = "while True:\n    pass\n"


@contextmanager
def cpu_burner(processes: int = 1):
    """``processes`` busy-looping Python processes for the duration of the block."""
    burners = [subprocess.Popen([sys.executable, "-c", BURNER]) for _ in range(processes)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def time_classify(data: bytes, model, runs: int) -> list[float]:
    gate = get_face_gate()

    def once():
        gate_result, image = gate.decode_and_check(data)
        assert gate_result.ok, gate_result.reason
        return classify(image, gate_result, model)

    return time_ms(once, runs)


def measure(runs: int, source_runs: int) -> list[tuple[str, str, str]]:
    """Rows (measure, result, what ran beside)."""
    import torch

    configure_serving_process()  # what every serving process does at its start
    data = jpeg_bytes(SHARED_FACES / "obama.jpg", (1280, 960))
    model = HeadModel(device="cpu")
    model.net.eval()
    rows = []
    quiet = time_classify(data, model, runs)
    rows.append(("classify 1280x960 JPEG (decode+gate+regions+type), p50 / p95",
                 f"{statistics.median(quiet):.1f} / {np.percentile(quiet, 95):.1f} ms (goal <= 15 ms)",
                 f"nothing of ours (load {load_average()})"))
    with cpu_burner(1):
        busy = time_classify(data, model, runs)
        rows.append(("classify, same, with a CPU burner beside, p50 / p95",
                     f"{statistics.median(busy):.1f} / {np.percentile(busy, 95):.1f} ms (goal <= 25 ms)",
                     f"1 busy-loop process (load {load_average()})"))
    if source_runs:
        source = time_source_way(data, source_runs, detectors=2)
        ratio = statistics.median(source) / statistics.median(quiet)
        rows.append(("the source's way: 2 Faster R-CNN built+loaded+run per request, p50",
                     f"{statistics.median(source):.0f} ms = {ratio:.0f}x the classify p50 (goal >= 50x)",
                     f"nothing of ours (load {load_average()})"))
    rows.append(("(torch intra-op threads in this process)", str(torch.get_num_threads()), ""))
    return rows


# ----------------------------------------------------------------------------- stages


def stage_targets(gate) -> list[tuple[str, object, str]]:
    """(label, owner, attribute): the callables of the classify path timed by ``--stages``; a label
    indented by two spaces is a part of the stage above it."""
    import cv2
    from PIL import Image, ImageFile

    import models.gate
    import models.kinds.head
    import models.serving

    return [
        ("decode (header, JPEG decode, EXIF transpose, RGB array)", models.gate, "decode_image"),
        ("  JPEG decode", ImageFile.ImageFile, "load"),
        ("  EXIF transpose", Image.Image, "transpose"),
        ("gate: face detection, MediaPipe", gate._detector, "process"),
        ("gate: resizes for detection and mesh (cv2.resize)", cv2, "resize"),
        ("gate: mesh crop", models.gate, "_padded_crop"),
        ("gate: face mesh, MediaPipe", gate._mesh, "process"),
        ("gate: regions from landmarks", models.gate, "regions_from_landmarks"),
        ("head: crops (window resize, roi_align)", models.kinds.head, "crops_at_max_side"),
        ("head: forward (fused net)", models.kinds.head.FusedHeadNet, "forward"),
        ("scoring", models.serving, "score_regions"),
    ]


@contextmanager
def timed_calls(targets):
    """Each target callable wrapped to add its time (ms) to ``spent[label]`` while the block runs."""
    spent: dict[str, float] = {}
    originals = []
    for label, owner, name in targets:
        original = getattr(owner, name)
        originals.append((owner, name, owner.__dict__.get(name, _ABSENT) if hasattr(owner, "__dict__") else original))

        def wrapper(*args, _original=original, _label=label, **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_label] = spent.get(_label, 0.0) + (time.perf_counter() - start) * 1000

        setattr(owner, name, wrapper)
    try:
        yield spent
    finally:
        for owner, name, original in reversed(originals):
            if original is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


_ABSENT = object()


def measure_stages(runs: int) -> list[tuple[str, str, str]]:
    """Rows: the median time per request of each stage of one classify request, and what is left."""
    configure_serving_process()
    data = jpeg_bytes(SHARED_FACES / "obama.jpg", (1280, 960))
    model = HeadModel(device="cpu")
    model.net.eval()
    gate = get_face_gate()
    targets = stage_targets(gate)
    per_run: list[dict[str, float]] = []
    totals = []
    for index in range(runs + 5):
        with timed_calls(targets) as spent:
            start = time.perf_counter()
            gate_result, image = gate.decode_and_check(data)
            assert gate_result.ok, gate_result.reason
            classify(image, gate_result, model)
            total = (time.perf_counter() - start) * 1000
        if index >= 5:  # warm-up
            per_run.append(spent)
            totals.append(total)
    rows = []
    top_level = 0.0
    for label, _, _ in targets:
        ms = statistics.median(run.get(label, 0.0) for run in per_run)
        calls_note = "" if any(label in run for run in per_run) else "not called"
        if not label.startswith("  "):
            top_level += ms
        rows.append((label, f"{ms:.2f} ms", calls_note))
    total_p50 = statistics.median(totals)
    rows.append(("rest (Python between the stages)", f"{total_p50 - top_level:.2f} ms", ""))
    rows.append(("total, p50 (timed with the wrappers in place)", f"{total_p50:.2f} ms",
                 f"load {load_average()}"))
    return rows


def print_rows(title: str, rows) -> None:
    print(f"\n{title} — {os.cpu_count()} cores")
    width = max(len(r[0]) for r in rows)
    for name, result, beside in rows:
        print(f"{name:<{width}}  {result:<44}  {beside}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--source-runs", type=int, default=4)
    parser.add_argument("--stages", action="store_true",
                        help="only the time of each stage of one request (decode, gate, crops, head, scoring)")
    args = parser.parse_args(argv)
    if args.stages:
        print_rows("classify 1280x960 JPEG, stage by stage (median per request)", measure_stages(args.runs))
        return 0
    print_rows("classify, one process", measure(args.runs, args.source_runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
