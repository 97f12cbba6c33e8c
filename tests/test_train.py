"""Tiny training runs of each kind lower their loss and leave a loadable checkpoint."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from app.core.vocabulary import REGIONS, TYPES
from tests.test_dataset import BASE_BOXES, build_fixture, make_image


def gate(boxes=BASE_BOXES):
    return SimpleNamespace(ok=True, reason=None, message=None, face=tuple(boxes["face"]), landmarks=None,
                           regions=dict(boxes), image_size=(96, 96))


def _mean(xs):
    return float(np.mean(xs))


@pytest.mark.integration  # trains a model
def test_head_tiny_run_learns_and_reloads(tmp_path):
    from models import registry
    from models.serving import classify, clear_cache, load_model

    url, store = build_fixture(tmp_path, n_people=10, photos_per_person=2)
    result = train_kind("head", url, store, epochs=8, batch_size=8, lr=1e-2)
    assert _mean(result.step_losses[-4:]) < _mean(result.step_losses[:4])
    row = registry.get_run(result.model_version_id, url=url)
    assert row.status == "done" and row.object_key and row.progress == 1.0
    assert len(row.history) == 8 and "val_type_accuracy" in row.history[-1]
    assert row.metrics["synthetic_labels"] is True and "note" in row.metrics
    assert {"box_map50", "mean_iou", "type_accuracy", "macro_f1", "confusion", "chance_accuracy"} <= set(row.metrics)
    assert set(row.data_snapshot["split"]["train_people"]).isdisjoint(row.data_snapshot["split"]["val_people"])

    clear_cache()
    model = load_model(result.model_version_id, url=url, store=store)
    image = make_image(BASE_BOXES, 0)
    before = result.model.predict_probs(image, BASE_BOXES)
    after = model.predict_probs(image, BASE_BOXES)
    for r in REGIONS:
        assert after[r] == pytest.approx(before[r], abs=1e-5)
    out = classify(image, gate(), model)
    assert out.result.type in TYPES and set(out.boxes) == set(REGIONS)
    assert out.model_version_id == result.model_version_id


@pytest.mark.integration  # trains a model
def test_detector_tiny_run_learns_and_reloads(tmp_path):
    from models.kinds.detector import DetectorModel
    from models.serving import classify, load_model

    url, store = build_fixture(tmp_path, n_people=5, photos_per_person=1)
    torch.manual_seed(0)
    result = train_kind("detector", url, store, epochs=5, batch_size=2, lr=0.01, min_size=96, max_size=96,
                        augment=False, val_fraction=0.2)
    losses = result.step_losses
    assert len(losses) == 10
    assert _mean(losses[-3:]) < _mean(losses[:3])
    model = load_model(result.model_version_id, url=url, store=store)
    assert isinstance(model, DetectorModel) and model.config["min_size"] == 96
    a = model.net.state_dict()
    b = result.model.net.state_dict()
    assert all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)
    out = classify(make_image(BASE_BOXES, 1), gate(), model)
    assert out.result.type in TYPES  # untrained boxes fall back to landmarks: still an answer
    assert all(out.regions[r].source in ("model", "landmarks") for r in REGIONS)


def test_detector_region_fallback():
    from models.kinds.detector import region_predictions

    det = {  # a confident Beta face, a weak Gamma T-zone only, nothing for the jaw
        "boxes": torch.tensor([[10.0, 10, 80, 90], [12, 12, 80, 88], [38, 28, 58, 62]]),
        "labels": torch.tensor([3 * 1 + 1, 3 * 0 + 1, 3 * 2 + 2]),
        "scores": torch.tensor([0.9, 0.3, 0.4]),
    }
    preds = region_predictions(det, BASE_BOXES, threshold=0.75)
    assert preds["face"].source == "model" and preds["face"].box == [10, 10, 80, 90]
    assert preds["face"].probs == pytest.approx([0.25, 0.75, 0, 0, 0])
    assert preds["tzone"].source == "landmarks" and preds["tzone"].probs == pytest.approx([0, 0, 1, 0, 0])
    assert preds["jaw"].source == "landmarks" and preds["jaw"].probs == pytest.approx([0.2] * 5)


def test_classify_fills_missing_regions():
    from models.serving import RegionPrediction, classify

    class OnlyFace:
        kind = "detector"
        config: dict = {}

        def predict(self, image, gate_result):
            return {"face": RegionPrediction([0, 0, 10, 10], [1, 0, 0, 0, 0], "model", 0.9)}

        def checkpoint(self):
            return {}

    out = classify(np.zeros((96, 96, 3), np.uint8), gate(), OnlyFace())
    assert out.result.type in TYPES
    assert out.regions["jaw"].source == "landmarks" and out.regions["jaw"].box == BASE_BOXES["jaw"]
    assert any("tzone" in n for n in out.notes)
    # a gate without regions: regions come from the face box
    out = classify(np.zeros((96, 96, 3), np.uint8), SimpleNamespace(face=(0, 0, 50, 50), regions=None), OnlyFace())
    assert out.regions["tzone"].source == "landmarks"


def train_kind(kind, url, store, **kwargs):
    from models.training.train import train

    return train(kind=kind, device="cpu", url=url, store=store, quiet=True, seed=0, **kwargs)


@pytest.mark.integration  # trains a model
def test_head_learns_a_planted_rule_and_serves_with_calibrated_bands(tmp_path, monkeypatch, capsys):
    """The fixture's types are planted in the pixels (brightness); a small run must find the rule
    on held-out people well above chance, store bands calibrated to the survey's shares, and
    the served classification must read its type from those bands."""
    from models.serving import classify, load_model, model_thresholds
    from models.scoring import type_band

    url, store = build_fixture(tmp_path, n_people=20, photos_per_person=2)
    result = train_kind("head", url, store, epochs=12, batch_size=8, lr=1e-2, val_fraction=0.25)
    m = result.metrics
    assert m["n_people"] == 5 and m["chance_accuracy"] == pytest.approx(0.2)
    assert m["type_accuracy"] >= m["chance_accuracy"] + 0.4
    assert m["within_one_accuracy"] >= 0.9
    assert m["spearman"] is not None and m["spearman"] > 0.8
    assert set(m["type_shares"]) == set(TYPES) and sum(m["type_shares"].values()) == pytest.approx(1.0, abs=1e-3)
    thresholds = result.model.config["type_thresholds"]
    assert m["threshold_mode"] == "calibrated" and m["type_thresholds"] == thresholds
    assert len(thresholds) == 4 and thresholds == sorted(thresholds, reverse=True)

    model = load_model(result.model_version_id, url=url, store=store)
    assert model_thresholds(model) == tuple(thresholds)
    out = classify(make_image(BASE_BOXES, 0), gate(), model)
    # the confidence shown is how often this type was right on the held-out photos
    assert model.config["type_precision"] == [m["type_precision"][t] for t in TYPES]
    confusion = np.array(m["confusion"])
    given = confusion[:, out.result.type_index].sum()
    if given:
        right = confusion[out.result.type_index, out.result.type_index]
        assert out.result.confidence == pytest.approx(right / given, abs=1e-4)
    else:  # a type never given on held-out photos keeps the model's own probability
        assert model.config["type_precision"][out.result.type_index] is None
    low, high = type_band(out.result.type_index, thresholds)
    assert (low is None or out.result.score > low) and (high is None or out.result.score <= high)
    assert out.result.explanation().startswith("Face ")

    from app.core.db import get_engine
    from app.core.settings import get_settings
    from models.training import evaluate

    monkeypatch.setenv("FACETYPE_DATABASE_URL", url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        assert evaluate.main(["--model", str(result.model_version_id), "--json"]) == 0
    finally:
        get_settings.cache_clear()
        get_engine.cache_clear()
    printed = json.loads(capsys.readouterr().out)
    assert {"type_accuracy", "within_one_accuracy", "spearman", "chance_accuracy", "type_shares", "n_people"} <= set(printed)
    assert printed["type_accuracy"] == m["type_accuracy"] and printed["model"] == result.model_version_id


def test_per_epoch_accuracy_reads_bands_calibrated_on_training_photos(tmp_path):
    from models.kinds.head import HeadModel
    from models.training.data import ImageBank, load_samples
    from models.training.engine import calibrate, quick_val

    url, store = build_fixture(tmp_path, n_people=6, photos_per_person=2)
    samples = load_samples(url).samples
    bank = ImageBank(store)
    bank.load(samples)
    torch.manual_seed(0)
    model = HeadModel({"width": 4})
    shares = [3, 1, 1, 1, 3]
    during_training = quick_val(model, samples, bank, samples, shares)
    assert "type_thresholds" not in model.config  # the finished model is calibrated once, at the end
    model.config["type_thresholds"] = list(calibrate(model, samples, bank, shares))
    assert during_training == quick_val(model, samples, bank)
