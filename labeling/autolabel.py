"""Auto-label photos with face / tzone / jaw boxes from the face gate, as a COCO file.

    python -m labeling.autolabel PATH... --out boxes.json

Folders are walked for files of any extension; a file that is not a usable photo (or whose face
the gate refuses) is listed with its reason at the end instead of stopping the run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from app.core.vocabulary import REGIONS
from models.gate import GATE_MESSAGES, get_face_gate
from models.runtime import configure_serving_process

#: Below this many files a progress bar is noise.
PROGRESS_MIN_FILES = 5
CATEGORIES = [{"id": i, "name": name, "supercategory": "face"} for i, name in enumerate(REGIONS, start=1)]


def expand_paths(paths) -> list[Path]:
    """Files named directly, plus every file under named folders (sorted, hidden files skipped)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            files.append(path)
    return files


def autolabel_files(paths, progress: bool = True, workers: int | None = None) -> tuple[dict, list[tuple[str, str, str]]]:
    """Run the gate on every file; return (COCO dict of the accepted photos, [(file, reason, message)]).

    ``workers`` processes (default: one per core) check the files side by side, each with its own
    gate on one thread; with one worker, or few files, this process does it alone."""
    files = expand_paths(paths)
    workers = min(workers or os.cpu_count() or 1, max(1, len(files) // PHOTOS_PER_WORKER))
    images, annotations, skipped = [], [], []
    bar = tqdm(total=len(files), unit="photo", disable=not progress or len(files) < PROGRESS_MIN_FILES)
    if workers > 1:
        outcomes = _pool(workers).map(_check_file, map(str, files), chunksize=4)
    else:
        outcomes = map(_check_file, map(str, files))
    for path, outcome in zip(files, outcomes):
        bar.update()
        if not outcome["ok"]:
            skipped.append((str(path), outcome["reason"], outcome["message"]))
            continue
        image_id = len(images) + 1
        width, height = outcome["image_size"]
        images.append({"id": image_id, "file_name": str(path), "width": width, "height": height})
        for category_id, region in enumerate(REGIONS, start=1):
            x0, y0, x1, y1, confidence = outcome["regions"][region]
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": category_id,
                "bbox": [x0, y0, round(x1 - x0, 1), round(y1 - y0, 1)],
                "area": round((x1 - x0) * (y1 - y0), 1),
                "score": confidence,
                "iscrowd": 0,
            })
    bar.close()
    coco = {
        "info": {"description": "facetype auto-labels from the MediaPipe face mesh"},
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    return coco, skipped


#: Below this many files per extra process, starting it costs more than it saves.
PHOTOS_PER_WORKER = 8

_pools: dict[int, ProcessPoolExecutor] = {}


def _pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` gate processes, started once per process and reused. Spawned, not
    forked: a fork of a process whose MediaPipe and torch threads run can deadlock."""
    if workers not in _pools:
        _pools[workers] = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                              initializer=_start_worker)
    return _pools[workers]


def _start_worker() -> None:
    configure_serving_process()
    get_face_gate()


def _check_file(path: str) -> dict:
    """The gate's answer for one file, as plain values (what crosses between processes)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return {"ok": False, "reason": "unreadable", "message": GATE_MESSAGES["unreadable"]}
    result = get_face_gate().check_bytes(data)
    if not result.ok:
        return {"ok": False, "reason": result.reason, "message": result.message}
    return {"ok": True, "image_size": result.image_size,
            "regions": {r: (box.x0, box.y0, box.x1, box.y1, box.confidence) for r, box in result.regions.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labeling.autolabel", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="photo files or folders")
    parser.add_argument("--out", required=True, type=Path, help="COCO JSON file to write")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    args = parser.parse_args(argv)

    configure_serving_process()
    coco, skipped = autolabel_files(args.paths, progress=not args.quiet, workers=args.workers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(coco, indent=1))
    print(f"labeled {len(coco['images'])} photos -> {args.out}")
    if skipped:
        print(f"skipped {len(skipped)} files:")
        for file, reason, message in skipped:
            print(f"  {file}: {reason}: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
