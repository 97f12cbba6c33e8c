"""Benchmark of one classify request in one process: ``python -m bench.classify``.

decode + face gate + regions + type (the served path: :func:`models.gate.FaceGate.decode_and_check`
then :func:`models.serving.classify`) on a 1280x960 JPEG, p50/p95 after warm-up, twice: quiet,
then with a CPU burner (a separate process spinning on one core, started here) beside it. The
type model is a ``head`` with freshly initialised weights (its speed does not depend on training).
Then the source's way per request: build two Faster R-CNN (MobileNetV3-FPN, random weights),
load their weights from a file and run both on the same photo.

``--stages``: the median time of each stage of one request (decode, the gate's MediaPipe calls and
resizes, the head's crops and forward, scoring). ``--mediapipe-sizes``: MediaPipe's detection and mesh
alone at each input size, and what smaller inputs would change in the gate's verdicts and landmarks. ``--compare [--checkpoint FILE]``: the whole-photo
path against the reduced decode on tests/data, the sample photos and enlarged copies of them (gate
verdicts, types, score and region differences).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from bench.cascade import SHARED_FACES, jpeg_bytes, time_source_way
from app.core.settings import PROJECT_ROOT, get_settings
from bench.timing import load_average, time_ms
from models.gate import FaceGate, get_face_gate
from models.intake import decode_image
from models.kinds.head import HeadModel
from models.runtime import configure_serving_process
from models.serving import classify, decode_side

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
        gate_result, image = gate.decode_and_check(data, min_side=decode_side(model))
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
        ("decode whole (header, JPEG decode, EXIF transpose, RGB array)", models.gate, "decode_image"),
        ("decode reduced (the same, JPEG DCT-scaled)", models.gate, "decode_reduced"),
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
        if not hasattr(owner, name):  # a stage an older version of the code does not have
            continue
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
            gate_result, image = gate.decode_and_check(data, min_side=decode_side(model))
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


# ----------------------------------------------------------------------------- MediaPipe input sizes

DETECT_SIDES = (640, 480, 320, 256, 192)
MESH_SIDES = (384, 320, 256, 192)


def mesh_crop(image: np.ndarray, face_box) -> np.ndarray:
    """The padded crop the gate gives the mesh, before its resize to at most ``MESH_MAX_SIDE``."""
    from models.gate import _padded_crop, mesh_window

    return _padded_crop(image, *mesh_window(face_box))


def measure_mediapipe_sizes(runs: int) -> list[tuple[str, str, str]]:
    """Rows: the median time of MediaPipe's face detection given the benchmark photo (decoded
    reduced, as classify does) scaled to each longer side, and of its mesh given the face crop
    scaled to each side; all sizes alternated run by run, so each sees the same load."""
    import cv2

    configure_serving_process()
    model = HeadModel(device="cpu")
    gate = get_face_gate()
    result, image = gate.decode_and_check(jpeg_bytes(SHARED_FACES / "obama.jpg", (1280, 960)),
                                          min_side=decode_side(model))
    crop = mesh_crop(image, result.face)
    height, width = image.shape[:2]
    inputs = [(f"detection, input {width}x{height} (classify's)", gate._detector, image)]
    for side in DETECT_SIDES:
        if side < max(height, width):
            size = (side, round(side * height / width))
            inputs.append((f"detection, input {size[0]}x{size[1]}", gate._detector,
                           cv2.resize(image, size, interpolation=cv2.INTER_AREA)))
    inputs.append((f"mesh, crop {crop.shape[1]} px (classify's)", gate._mesh, crop))
    for side in MESH_SIDES:
        if side != crop.shape[0]:
            inputs.append((f"mesh, crop {side} px", gate._mesh, cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)))
    spent: dict[str, list[float]] = {label: [] for label, _, _ in inputs}
    for index in range(runs + 5):
        for label, solution, picture in inputs:
            start = time.perf_counter()
            solution.process(picture)
            if index >= 5:  # warm-up
                spent[label].append((time.perf_counter() - start) * 1000)
    return [(label, f"{statistics.median(times):.2f} ms", f"load {load_average()}") for label, times in spent.items()]


def compare_mediapipe_sizes(sample_photos: int) -> list[tuple[str, str, str]]:
    """Rows: the gate's verdicts and landmarks with detection and mesh given smaller inputs, against
    today's, on the photos of ``--compare``: verdicts changed, largest landmark difference in
    original pixels, and the largest change of the face size the minimum-size check reads."""
    import models.gate
    from models.geometry import brow_to_chin_px

    settings = get_settings()
    configs = [(settings.detect_max_side, models.gate.MESH_MAX_SIDE)]
    configs += [(side, models.gate.MESH_MAX_SIDE) for side in (320, 192)]
    configs += [(settings.detect_max_side, side) for side in (256, 192)]
    photos = compare_photos(sample_photos)
    model = HeadModel(device="cpu")
    outcomes = []
    mesh_max_side = models.gate.MESH_MAX_SIDE
    try:
        for detect_side, mesh_side in configs:
            gate = FaceGate(settings.model_copy(update={"detect_max_side": detect_side}))
            models.gate.MESH_MAX_SIDE = mesh_side
            outcome = {}
            for name, data in photos:
                result, _ = gate.decode_and_check(data, min_side=decode_side(model))
                landmarks = result.landmarks * result.scale if result.landmarks is not None else None
                outcome[name] = (result.reason, landmarks)
            outcomes.append(outcome)
    finally:
        models.gate.MESH_MAX_SIDE = mesh_max_side
    rows = []
    today = outcomes[0]
    for (detect_side, mesh_side), outcome in zip(configs[1:], outcomes[1:]):
        changed = [name for name in today if today[name][0] != outcome[name][0]]
        diffs, face_px = [0.0], [0.0]
        for name in today:
            before, after = today[name][1], outcome[name][1]
            if before is not None and after is not None:
                diffs.append(float(np.abs(before - after).max()))
                face_px.append(abs(brow_to_chin_px(before) - brow_to_chin_px(after)))
        rows.append((f"detection at most {detect_side} px, mesh crop at most {mesh_side} px",
                     f"{len(changed)} verdicts changed, landmarks <= {max(diffs):.1f} px, "
                     f"face size <= {max(face_px):.1f} px",
                     ", ".join(f"{n}: {today[n][0] or 'pass'} -> {outcome[n][0] or 'pass'}" for n in changed[:3])))
    rows.append(("photos compared", str(len(photos)), f"against detection at most {configs[0][0]} px, mesh "
                                                       f"crop at most {configs[0][1]} px (today's)"))
    return rows


# ----------------------------------------------------------------------------- before / after


def upscaled_jpeg(photo: Path, factor: float) -> bytes:
    """The photo enlarged by ``factor`` and saved as a JPEG, as a phone's larger photo of the same face:
    with the photo's EXIF (its orientation: the decoder turns it the same way) and colour profile."""
    with Image.open(photo) as source:
        image = source if source.mode in ("RGB", "L", "CMYK") else source.convert("RGB")
        image = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90, exif=source.getexif(), icc_profile=source.info.get("icc_profile"))
    return buffer.getvalue()


def compare_photos(sample_photos: int) -> list[tuple[str, bytes]]:
    """(name, bytes): every tests/data photo and bad file, ``sample_photos`` sample photos, and the
    sample and test photos enlarged 2.5x (decoded reduced by the new path), and the benchmark photo."""
    tests_data = PROJECT_ROOT / "tests" / "data"
    files = sorted(p for p in (tests_data / "faces").iterdir() if p.suffix != ".json")
    files += sorted((tests_data / "bad").iterdir())
    samples = sorted((PROJECT_ROOT / "data" / "sample" / "photos").glob("*/*.jpg"))[:sample_photos]
    photos = [(str(p.relative_to(PROJECT_ROOT)), p.read_bytes()) for p in files + samples]
    for path in [f for f in files if f.parent.name == "faces"] + samples:
        photos.append((f"{path.relative_to(PROJECT_ROOT)} x2.5", upscaled_jpeg(path, 2.5)))
    photos.append(("obama 1280x960 (the benchmark's)", jpeg_bytes(SHARED_FACES / "obama.jpg", (1280, 960))))
    return photos


def classify_whole(gate, data: bytes, model):
    """The path before the reduced decode: the whole photo decoded, checked and classified."""
    result = gate.check_bytes(data)
    if not result.ok:
        return result, None
    return result, classify(decode_image(data), result, model)


def compare(sample_photos: int, checkpoint: str | None) -> list[tuple[str, str, str]]:
    """Rows: the gate's verdicts, the types and the scores of the whole-photo path against the
    reduced-decode one, photo by photo, and a summary."""
    from models.geometry import box_iou
    from models.serving import model_from_checkpoint

    configure_serving_process()
    model = model_from_checkpoint(Path(checkpoint).read_bytes(), device="cpu") if checkpoint else HeadModel(device="cpu")
    model.net.eval()
    gate = get_face_gate()
    rows, verdicts_changed, types_changed, reduced = [], 0, 0, 0
    score_diffs, prob_diffs, ious = [0.0], [0.0], [1.0]
    for name, data in compare_photos(sample_photos):
        before, before_class = classify_whole(gate, data, model)
        after, image = gate.decode_and_check(data, min_side=decode_side(model))
        after_class = classify(image, after, model) if after.ok else None
        reduced += after.scale > 1
        verdict = lambda r: "pass" if r.ok else r.reason  # noqa: E731
        note = f"decoded 1/{after.scale:g}" if after.scale > 1 else "whole"
        if verdict(before) != verdict(after):
            verdicts_changed += 1
            rows.append((name, f"gate {verdict(before)} -> {verdict(after)}", note))
            continue
        if before_class is None:
            continue
        for region in before.regions:
            ious.append(box_iou(before.regions[region], [v * after.scale for v in after.regions[region].as_list()]))
        b, a = before_class.result, after_class.result
        score_diffs.append(abs(a.score - b.score))
        prob_diffs.append(max(abs(pa - pb) for r in before_class.regions
                              for pa, pb in zip(after_class.regions[r].probs, before_class.regions[r].probs)))
        if a.type != b.type:
            types_changed += 1
            rows.append((name, f"type {b.type} -> {a.type} (score {b.score:.2f} -> {a.score:.2f})", note))
    total = len(compare_photos(sample_photos))
    rows += [
        ("photos compared (decoded reduced by the new path)", f"{total} ({reduced})", ""),
        ("gate verdicts changed", str(verdicts_changed), ""),
        ("types changed", str(types_changed), f"model: {checkpoint or 'head, random weights'}"),
        ("largest score difference (points)", f"{max(score_diffs):.3f}", ""),
        ("largest region probability difference", f"{max(prob_diffs):.4f}", ""),
        ("smallest region IoU, in original pixels", f"{min(ious):.3f}", ""),
    ]
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
    parser.add_argument("--compare", action="store_true",
                        help="only compare verdicts, types and scores of the whole-photo and reduced-decode paths")
    parser.add_argument("--mediapipe-sizes", action="store_true",
                        help="only MediaPipe's detection and mesh timed at each input size, and the gate's "
                             "verdicts and landmarks with smaller inputs against today's (photos of --compare)")
    parser.add_argument("--sample-photos", type=int, default=60, help="sample photos compared (--compare)")
    parser.add_argument("--checkpoint", help="a head checkpoint file to compare with (default: random weights)")
    args = parser.parse_args(argv)
    if args.compare:
        print_rows("classify, whole-photo decode -> reduced decode", compare(args.sample_photos, args.checkpoint))
        return 0
    if args.mediapipe_sizes:
        print_rows("MediaPipe alone, by input size (median per call, sizes alternated)", measure_mediapipe_sizes(args.runs))
        print_rows("the gate with smaller MediaPipe inputs, against today's", compare_mediapipe_sizes(args.sample_photos))
        return 0
    if args.stages:
        print_rows("classify 1280x960 JPEG, stage by stage (median per request)", measure_stages(args.runs))
        return 0
    print_rows("classify, one process", measure(args.runs, args.source_runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
