"""Auto-labeling a folder that mixes good photos and bad files into COCO boxes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pycocotools.coco import COCO

from app.core.settings import PROJECT_ROOT
from labeling.autolabel import autolabel_files
from tests.conftest_paths import TEST_DATA

FACES = TEST_DATA / "faces"
BAD = TEST_DATA / "bad"
GOOD = ["obama.jpg", "biden.jpg", "astronaut.png", "obama_cmyk.jpg", "obama_exif_rotated.jpg"]


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    for name in GOOD:
        shutil.copy(FACES / name, folder / name)
    shutil.copy(FACES / "obama2.jpg", folder / "nested" / "obama2.photo")  # any extension is tried
    for name in ["several_faces.jpg", "no_face_coffee.jpg"]:
        shutil.copy(FACES / name, folder / name)
    for path in BAD.iterdir():
        shutil.copy(path, folder / path.name)
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_mixed_folder_labels_the_good_and_reports_the_bad(mixed_folder, tmp_path):
    coco, skipped = autolabel_files([mixed_folder], progress=False)
    labeled = sorted(Path(image["file_name"]).name for image in coco["images"])
    assert labeled == sorted(GOOD + ["obama2.photo"])
    reasons = {Path(file).name: reason for file, reason, _ in skipped}
    assert reasons == {
        "several_faces.jpg": "several_faces",
        "no_face_coffee.jpg": "no_face",
        "empty.png": "empty",
        "not_an_image.jpg": "not_an_image",
        "truncated.jpg": "truncated",
        "pixel_bomb.png": "too_large",
        "tiny_8x8.png": "too_small",
        "notes.txt": "not_an_image",
    }
    assert all(message for _, _, message in skipped)

    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(coco))
    loaded = COCO(str(path))
    assert [c["name"] for c in loaded.loadCats(loaded.getCatIds())] == ["face", "tzone", "jaw"]
    assert loaded.getCatIds() == [1, 2, 3]
    for image in loaded.dataset["images"]:
        annotations = loaded.loadAnns(loaded.getAnnIds(imgIds=image["id"]))
        assert sorted(a["category_id"] for a in annotations) == [1, 2, 3]
        for annotation in annotations:
            x, y, w, h = annotation["bbox"]
            assert w > 0 and h > 0
            assert 0 <= x and x + w <= image["width"] + 0.1
            assert 0 <= y and y + h <= image["height"] + 0.1
            assert annotation["area"] == pytest.approx(w * h, rel=0.01)
            assert 0 < annotation["score"] <= 1 and annotation["iscrowd"] == 0


def test_upright_sizes_are_recorded(mixed_folder):
    coco, _ = autolabel_files([mixed_folder / "obama_exif_rotated.jpg"], progress=False)
    assert (coco["images"][0]["width"], coco["images"][0]["height"]) == (910, 1137)


def test_cli_writes_coco_and_lists_skipped_files(mixed_folder, tmp_path):
    out = tmp_path / "out" / "boxes.json"
    run = subprocess.run([sys.executable, "-m", "labeling.autolabel", str(mixed_folder), "--out", str(out)],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-500:]
    assert len(json.loads(out.read_text())["images"]) == len(GOOD) + 1
    assert "skipped 8 files" in run.stdout
    assert "pixel_bomb.png: too_large" in run.stdout


@pytest.mark.integration  # starts gate processes
def test_worker_processes_give_the_same_labels_in_the_same_order(mixed_folder):
    shutil.copytree(mixed_folder, mixed_folder / "copy")  # enough files for two workers
    alone = autolabel_files([mixed_folder], progress=False, workers=1)
    side_by_side = autolabel_files([mixed_folder], progress=False, workers=2)
    assert len(alone[0]["images"]) >= 12
    assert side_by_side == alone
