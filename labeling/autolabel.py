"""Auto-label photos with face / tzone / jaw boxes from the face gate, as a COCO file.

    python -m labeling.autolabel PATH... --out boxes.json

Folders are walked for files of any extension; a file that is not a usable photo (or whose face
the gate refuses) is listed with its reason at the end instead of stopping the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from app.core.vocabulary import REGIONS
from models.gate import GATE_MESSAGES, get_face_gate

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


def autolabel_files(paths, progress: bool = True) -> tuple[dict, list[tuple[str, str, str]]]:
    """Run the gate on every file; return (COCO dict of the accepted photos, [(file, reason, message)])."""
    gate = get_face_gate()
    files = expand_paths(paths)
    images, annotations, skipped = [], [], []
    bar = tqdm(files, unit="photo", disable=not progress or len(files) < PROGRESS_MIN_FILES)
    for path in bar:
        try:
            data = path.read_bytes()
        except OSError:
            skipped.append((str(path), "unreadable", GATE_MESSAGES["unreadable"]))
            continue
        result = gate.check_bytes(data)
        if not result.ok:
            skipped.append((str(path), result.reason, result.message))
            continue
        image_id = len(images) + 1
        width, height = result.image_size
        images.append({"id": image_id, "file_name": str(path), "width": width, "height": height})
        for category_id, region in enumerate(REGIONS, start=1):
            box = result.regions[region]
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": category_id,
                "bbox": [box.x0, box.y0, round(box.width, 1), round(box.height, 1)],
                "area": round(box.area, 1),
                "score": box.confidence,
                "iscrowd": 0,
            })
    coco = {
        "info": {"description": "facetype auto-labels from the MediaPipe face mesh"},
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    return coco, skipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labeling.autolabel", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="photo files or folders")
    parser.add_argument("--out", required=True, type=Path, help="COCO JSON file to write")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    coco, skipped = autolabel_files(args.paths, progress=not args.quiet)
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
