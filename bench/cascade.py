"""Benchmark of the photo cascade (run by hand: ``python -m bench.cascade``).

1. decode + face gate + regions on a 1280x960 JPEG, p50/p95 after warm-up, as a request to classify
   does it (decoded reduced) and with the whole photo decoded (as auto-labelling does);
2. auto-label throughput on a folder of 640x480 JPEGs, one gate process per core (after a
   warm-up pass that starts them);
3. the source's way per request: load a Faster R-CNN (MobileNetV3-FPN, random weights) from a
   file and run it on the same photo, p50.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.timing import load_average, time_ms
from labeling.autolabel import autolabel_files
from models.gate import get_face_gate
from models.intake import decode_image

SHARED_FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
SOURCE_PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png"]


def jpeg_bytes(photo: Path, size: tuple[int, int]) -> bytes:
    """The photo letterboxed onto a grey canvas of ``size`` (the face keeps its proportions)."""
    image = Image.open(photo).convert("RGB")
    image.thumbnail(size)
    canvas = Image.new("RGB", size, (120, 120, 120))
    canvas.paste(image, ((size[0] - image.width) // 2, (size[1] - image.height) // 2))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def time_gate(data: bytes, runs: int, whole: bool = False) -> list[float]:
    """The served path (:meth:`FaceGate.decode_and_check`: a JPEG decoded reduced), or with ``whole``
    the whole photo decoded and checked (:meth:`FaceGate.check_bytes`, what auto-labelling does)."""
    gate = get_face_gate()

    def once():
        assert (gate.check_bytes(data) if whole else gate.decode_and_check(data)[0]).ok

    return time_ms(once, runs)


def time_autolabel(count: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        for i in range(count):
            name = SOURCE_PHOTOS[i % len(SOURCE_PHOTOS)]
            Path(folder, f"{i:03d}.jpg").write_bytes(jpeg_bytes(SHARED_FACES / name, (640, 480)))
        autolabel_files([folder], progress=False)  # warm-up: starts the worker processes
        start = time.perf_counter()
        coco, skipped = autolabel_files([folder], progress=False)
        elapsed = time.perf_counter() - start
    assert len(coco["images"]) + len(skipped) == count
    return count / elapsed


def time_source_way(data: bytes, runs: int, detectors: int = 1) -> list[float]:
    """The source's request: ``detectors`` Faster R-CNN built, loaded from a file and run on the
    photo, per request."""
    import torch
    import torchvision

    def build():
        return torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(
            weights=None, weights_backbone=None, num_classes=16
        )

    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder, "detector.pt")
        torch.save(build().state_dict(), weights)

        def once():
            image = torch.from_numpy(decode_image(data)).permute(2, 0, 1).float() / 255
            for _ in range(detectors):
                model = build()
                model.load_state_dict(torch.load(weights, map_location="cpu"))
                model.eval()
                with torch.no_grad():
                    model([image])

        return time_ms(once, runs, warmup=1)  # the first run pays one-off library start-up


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--source-runs", type=int, default=8, help="0: the source's way is not timed")
    parser.add_argument("--photos", type=int, default=120)
    args = parser.parse_args(argv)

    data = jpeg_bytes(SHARED_FACES / "obama.jpg", (1280, 960))
    gate_ms = time_gate(data, args.runs)
    whole_ms = time_gate(data, args.runs, whole=True)
    photos_per_s = time_autolabel(args.photos)
    source_ms = time_source_way(data, args.source_runs) if args.source_runs else []

    gate_p50 = statistics.median(gate_ms)
    print(f"\ncascade — {os.cpu_count()} cores; beside it: nothing of ours "
          f"(load {load_average()})")
    print(f"{'measure':46s} {'p50':>9s} {'p95':>9s}")
    print(f"{'decode+gate+regions, 1280x960 JPEG (ms)':46s} {gate_p50:9.1f} {percentile(gate_ms, 95):9.1f}")
    print(f"{'  the same, whole photo decoded (ms)':46s} {statistics.median(whole_ms):9.1f} "
          f"{percentile(whole_ms, 95):9.1f}")
    if source_ms:
        print(f"{'source: load Faster R-CNN + run, per request (ms)':46s} {statistics.median(source_ms):9.1f} "
              f"{percentile(source_ms, 95):9.1f}")
    print(f"{'auto-label, 640x480 JPEGs (photos/s)':46s} {photos_per_s:9.1f}")
    if source_ms:
        print(f"speed-up over the source's way: {statistics.median(source_ms) / gate_p50:.0f}x")


if __name__ == "__main__":
    main()
