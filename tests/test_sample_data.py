"""Checks on the committed sample data in data/sample/ (made by data/make_sample.py).

Uses MediaPipe directly (not the project's gate module) so the data is checked
independently of the code that consumes it.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
PHOTOS = sorted((SAMPLE / "photos").glob("*/*.jpg"))
TARGET_SHARES = {"Alpha": 21.8, "Beta": 21.4, "Gamma": 22.5, "Delta": 19.2, "Omega": 15.2}


def _read_csv(name):
    with (SAMPLE / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def mp_models():
    os.environ.setdefault("GLOG_minloglevel", "2")
    mp = pytest.importorskip("mediapipe")
    fd = [
        mp.solutions.face_detection.FaceDetection(model_selection=m, min_detection_confidence=0.5)
        for m in (0, 1)
    ]
    fm = mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=2, refine_landmarks=False,
        min_detection_confidence=0.5,
    )
    yield fd, fm
    for m in (*fd, fm):
        m.close()


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def test_photos_exist():
    assert len(PHOTOS) == 90
    assert (SAMPLE / "framing_example.jpg").is_file()
    total = sum(p.stat().st_size for p in PHOTOS) + (SAMPLE / "framing_example.jpg").stat().st_size
    assert total < 4.5 * 1024 * 1024


@pytest.mark.parametrize(
    "path", PHOTOS + [SAMPLE / "framing_example.jpg"], ids=lambda p: "/".join(p.parts[-2:])
)
def test_photo_passes_face_check(path, mp_models):
    fd, fm = mp_models
    rgb = _load_rgb(path)
    h, w = rgb.shape[:2]
    assert rgb.ndim == 3 and min(h, w) >= 300
    for model in fd:
        assert len(model.process(rgb).detections or []) == 1
    faces = fm.process(rgb).multi_face_landmarks or []
    assert len(faces) == 1
    p = np.array([[q.x * w, q.y * h] for q in faces[0].landmark])
    assert len(p) == 468
    margin = 0.02 * min(w, h)
    assert (p[:, 0] >= margin).all() and (p[:, 0] <= w - 1 - margin).all()
    assert (p[:, 1] >= margin).all() and (p[:, 1] <= h - 1 - margin).all()
    assert np.linalg.norm(p[9] - p[152]) >= 100  # brow to chin
    yaw_ratio = (p[1, 0] - p[234, 0]) / (p[454, 0] - p[234, 0])
    assert 0.3 <= yaw_ratio <= 0.7  # nose tip between the cheeks: not turned


def test_people_match_photo_folders():
    people = _read_csv("people.csv")
    ids = [r["person_id"] for r in people]
    assert ids == [f"p{n:02d}" for n in range(1, 31)]
    assert all(r["name"].startswith("Composite ") for r in people)
    folders = sorted(d.name for d in (SAMPLE / "photos").iterdir() if d.is_dir())
    assert folders == ids
    for pid in ids:
        assert sorted(f.name for f in (SAMPLE / "photos" / pid).iterdir()) == [
            "1.jpg", "2.jpg", "3.jpg"
        ]


def test_ratings():
    rows = _read_csv("ratings.csv")
    assert list(rows[0]) == ["rater_id", "person_id", "score", "age_group", "gender"]
    people = {r["person_id"] for r in _read_csv("people.csv")}
    assert {r["person_id"] for r in rows} == people
    pairs = [(r["rater_id"], r["person_id"]) for r in rows]
    assert len(pairs) == len(set(pairs))
    raters = {r["rater_id"] for r in rows}
    assert len(raters) == 100
    assert len(rows) == 100 * 30
    for r in rows:
        assert r["score"].isdigit() and 1 <= int(r["score"]) <= 5
        assert r["age_group"] in {"20s", "30s", "40s", "50+"}
        assert r["gender"] in {"female", "male", "other"}
    # demographics are per rater
    demo = {}
    for r in rows:
        assert demo.setdefault(r["rater_id"], (r["age_group"], r["gender"])) == (
            r["age_group"], r["gender"]
        )
    means = {}
    for pid in people:
        means[pid] = np.mean([int(r["score"]) for r in rows if r["person_id"] == pid])
    assert max(means.values()) - min(means.values()) > 1.0  # people are distinguishable


def test_type_choices_shares():
    rows = _read_csv("type_choices.csv")
    assert list(rows[0]) == ["rater_id", "type"]
    assert [r["rater_id"] for r in rows] == [f"c{i:03d}" for i in range(1, 501)]
    counts = Counter(r["type"] for r in rows)
    assert set(counts) == set(TARGET_SHARES)
    for name, share in TARGET_SHARES.items():
        assert abs(100 * counts[name] / len(rows) - share) <= 0.5


def test_types_json():
    types = json.loads((SAMPLE / "types.json").read_text(encoding="utf-8"))
    assert [t["name"] for t in types] == list(TARGET_SHARES)
    assert [t["order"] for t in types] == list(range(5))
    assert [t["share_percent"] for t in types] == list(TARGET_SHARES.values())
    assert abs(sum(t["share_percent"] for t in types) - 100) <= 0.5
    for t in types:
        assert isinstance(t["description"], str) and 40 <= len(t["description"]) <= 400
