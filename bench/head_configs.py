"""Which head configuration, and which way of calibrating its bands, ranks people best?

``python -m bench.head_configs NAME='{"crop_size": 48}' [NAME=JSON ...] [--fold K] [--out FILE.jsonl]``

k-fold by person (5 folds, split seed 0) on the database of the current settings (``FACETYPE_VAR_DIR``,
``FACETYPE_SAMPLE_DIR`` pick a sample). Per configuration and fold it trains the head (options as
``model_options``; ``epochs``, ``lr`` and ``seed`` as the training's), then reads the held-out people's type with
bands calibrated three ways: on the training photos' scores (``trcal``, what the app does), on
scores of augmented training photos (``augcal``), and on the held-out scores themselves (``oracle``:
not available when serving, it shows how much calibration alone could gain). ``--fold`` runs one
fold, so that folds can run as parallel processes on a machine with more cores; results append to
``--out`` and the table at the end summarises every row in that file.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from models import registry
from models.kinds.head import jitter_boxes
from models.scoring import calibrate_thresholds, score_regions, type_for_score
from models.serving import classify
from models.training.data import ImageBank, kfold_by_person, load_samples, survey_type_shares
from models.training.engine import gate_stand_in
from models.training.train import train
from models.transforms import augment

STRATEGIES = ("trcal", "augcal", "oracle")


def served_scores(model, samples, bank) -> np.ndarray:
    out = []
    for s in samples:
        image, _ = bank.get(s)
        _, landmarks = bank.get(s, landmarks=True)
        out.append(classify(image, gate_stand_in(landmarks, image), model).result.score)
    return np.array(out)


def augmented_scores(model, samples, bank, draws: int = 3, seed: int = 0) -> np.ndarray:
    rng = random.Random(seed)
    model.net.eval()
    out = []
    for s in samples:
        for _ in range(draws):
            image, landmarks = bank.get(s, landmarks=True)
            image, boxes = augment(image, landmarks, rng, scale=False)
            out.append(score_regions(model.predict_probs(image, jitter_boxes(boxes, rng))).score)
    return np.array(out)


def run_fold(name: str, options: dict, fold: int, train_samples, val_samples, shares) -> dict:
    options = dict(options)
    started = time.time()
    result = train(kind="head", epochs=options.pop("epochs", None), lr=options.pop("lr", None),
                   seed=options.pop("seed", 0), register=False,
                   split=(train_samples, val_samples), synthetic=True, quiet=True, model_options=options)
    model = result.model
    bank = ImageBank(registry.default_store(), model.config.get("max_side", 640))
    bank.load(train_samples + val_samples)
    held = served_scores(model, val_samples, bank)
    truth = np.array([s.type_index for s in val_samples])
    bands = {"trcal": calibrate_thresholds(served_scores(model, train_samples, bank), shares),
             "augcal": calibrate_thresholds(augmented_scores(model, train_samples, bank), shares),
             "oracle": calibrate_thresholds(held, shares)}
    row = {"name": name, "fold": fold, "spearman": result.metrics["spearman"], "seconds": round(time.time() - started)}
    for strategy, thresholds in bands.items():
        predicted = np.array([type_for_score(x, thresholds=thresholds) for x in held])
        row[f"acc_{strategy}"] = round(float(np.mean(predicted == truth)), 4)
        row[f"within_one_{strategy}"] = round(float(np.mean(np.abs(predicted - truth) <= 1)), 4)
    return row


def summary(rows: list[dict]) -> str:
    by_name = defaultdict(list)
    for row in rows:
        by_name[row["name"]].append(row)
    columns = [f"acc_{s}" for s in STRATEGIES] + ["within_one_trcal", "spearman"]
    lines = [f"{'config':<12} folds " + " ".join(f"{c:>16}" for c in columns)]
    for name, group in sorted(by_name.items()):
        cells = []
        for c in columns:
            values = [r[c] for r in group if r.get(c) is not None]
            cells.append(f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}".rjust(16) if values else "—".rjust(16))
        lines.append(f"{name:<12} {len(group):>5} " + " ".join(cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", help="NAME=JSON model options (plus epochs, lr, seed)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold", type=int, default=None, help="run only this fold")
    parser.add_argument("--out", default="bench/out/head_configs.jsonl")
    args = parser.parse_args(argv)
    configs = dict(c.split("=", 1) for c in args.configs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    snapshot = load_samples()
    shares = survey_type_shares()
    for name, options in configs.items():
        for fold, train_samples, val_samples in kfold_by_person(snapshot.samples, args.folds, 0):
            if args.fold is not None and fold != args.fold:
                continue
            row = run_fold(name, json.loads(options), fold, train_samples, val_samples, shares)
            print(json.dumps(row), flush=True)
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    with open(args.out, encoding="utf-8") as f:
        print(summary([json.loads(line) for line in f]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
