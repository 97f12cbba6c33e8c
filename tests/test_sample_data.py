"""Checks on the committed sample data in data/sample/ (made by data/make_sample.py).

Uses MediaPipe directly (not the project's gate module) so the data is checked
independently of the code that consumes it.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
PHOTOS = sorted((SAMPLE / "photos").glob("*/*.jpg"))
TARGET_SHARES = {"Alpha": 21.8, "Beta": 21.4, "Gamma": 22.5, "Delta": 19.2, "Omega": 15.2}
N_PEOPLE = 110
IDS = [f"p{n:03d}" for n in range(1, N_PEOPLE + 1)]


def _generator():
    spec = importlib.util.spec_from_file_location(
        "make_sample", SAMPLE.parent / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def make_sample():
    return _generator()


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
    assert len(PHOTOS) == 3 * N_PEOPLE
    assert (SAMPLE / "framing_example.jpg").is_file()
    assert (SAMPLE / "traits_strip.jpg").is_file()
    total = sum(p.stat().st_size for p in PHOTOS) + (SAMPLE / "framing_example.jpg").stat().st_size
    assert total < 6 * 1024 * 1024


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
    assert ids == IDS
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
    assert len(rows) == 100 * N_PEOPLE
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


# ------------------------------------------------------------------ the planted rule


def test_survey_gives_the_source_quotas(make_sample):
    types = make_sample.survey_types(SAMPLE)
    assert len(types) == N_PEOPLE
    assert Counter(types.values()) == {"Alpha": 24, "Beta": 23, "Gamma": 25, "Delta": 21, "Omega": 17}


def test_traits_recorded_for_everyone(make_sample):
    rows = _read_csv("traits.csv")
    assert list(rows[0]) == ["person_id", "face", "tzone", "jaw", "hidden", "rule", "appeal"]
    assert [r["person_id"] for r in rows] == IDS
    for r in rows:
        v = {k: float(x) for k, x in r.items() if k != "person_id"}
        assert v["rule"] == pytest.approx(0.5 * v["face"] + 0.4 * v["tzone"] + 0.1 * v["jaw"], abs=2e-4)
        assert v["appeal"] == pytest.approx(v["rule"] + make_sample.HIDDEN_SD * v["hidden"], abs=2e-4)
    for k in ("face", "tzone", "jaw", "hidden"):  # standardised over the sample
        x = np.array([float(r[k]) for r in rows])
        assert abs(x.mean()) < 1e-3 and abs(x.std() - 1) < 1e-3
    # the survey follows the appeal: mean scores rank people close to it
    from scipy.stats import spearmanr

    ratings = _read_csv("ratings.csv")
    means = {pid: np.mean([int(r["score"]) for r in ratings if r["person_id"] == pid]) for pid in IDS}
    rho = spearmanr([means[p] for p in IDS], [float(r["appeal"]) for r in rows]).correlation
    assert rho > 0.95


def test_ceiling_on_a_known_case(make_sample):
    names = list(TARGET_SHARES)
    # 10 people, shares 20/20/20/20/20 -> quotas 2 each; rule ranks p1 > p2 > ... > p10.
    rule = {f"p{i}": 10.0 - i for i in range(1, 11)}
    truth = dict(zip(rule, [n for n in names for _ in range(2)]))
    shares = [20.0] * 5
    assert make_sample.ceiling(rule, truth, names, shares)["ceiling_accuracy"] == 1.0
    # swap p2 and p3 in the truth: both are one type off -> 8/10 exact, 10/10 within one
    truth["p2"], truth["p3"] = truth["p3"], truth["p2"]
    out = make_sample.ceiling(rule, truth, names, shares)
    assert out == {"ceiling_accuracy": 0.8, "ceiling_within_one": 1.0, "n_people": 10}
    # p1 truly Omega, p10 truly Alpha: four types apart each
    truth = dict(zip(rule, [n for n in names for _ in range(2)]))
    truth["p1"], truth["p10"] = "Omega", "Alpha"
    out = make_sample.ceiling(rule, truth, names, shares)
    assert out == {"ceiling_accuracy": 0.8, "ceiling_within_one": 0.8, "n_people": 10}
    # the rule's types use the survey's quotas on the source's shares
    rule110 = {f"p{i:03d}": -i for i in range(1, 111)}
    assert Counter(make_sample.rule_types(rule110).values()) == {
        "Alpha": 24, "Beta": 23, "Gamma": 25, "Delta": 21, "Omega": 17}


def test_committed_ceiling_matches_recomputation(make_sample):
    stored = json.loads((SAMPLE / "ceiling.json").read_text(encoding="utf-8"))
    assert stored == make_sample.sample_ceiling(SAMPLE, make_sample.SEED)
    assert stored["n_people"] == N_PEOPLE
    assert 0.65 <= stored["ceiling_accuracy"] <= 0.85
    assert stored["ceiling_within_one"] >= 0.97


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.integration  # runs the sample generator twice
def test_generator_is_deterministic_per_seed(make_sample, tmp_path):
    pytest.importorskip("mediapipe")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 5), (b, 5), (c, 6)):
        assert make_sample.main(["--people", "4", "--seed", str(seed), "--out", str(out), "-q"]) == 0
    ta, tb, tc = _tree(a), _tree(b), _tree(c)
    assert ta == tb
    assert sorted(p for p in ta if p.startswith("photos")) == [
        f"photos/p00{i}/{j}.jpg" for i in range(1, 5) for j in (1, 2, 3)]
    assert {"people.csv", "ratings.csv", "traits.csv", "ceiling.json", "traits_strip.jpg"} <= set(ta)
    assert ta["traits.csv"] != tc["traits.csv"] and ta["photos/p001/1.jpg"] != tc["photos/p001/1.jpg"]
