"""Evaluation of a type model on held-out people, and the ``python -m models.evaluate`` CLI.

Metrics (all on photos of people the model never saw in training):

* ``box_map50`` / ``box_map50_per_region``: region box mAP at IoU 0.5 (torchmetrics
  MeanAveragePrecision; the class is the region), and ``mean_iou`` per region.
  For the head, boxes are the landmark locator's, so these measure the locator. For the
  detector, mAP uses its raw detections (every score), while ``mean_iou`` is of the boxes it
  serves (landmark fallbacks included; ``regions_from_landmarks`` counts them).
* ``type_accuracy``, ``macro_f1``, ``confusion`` (rows true, columns predicted, TYPES order),
  ``person_accuracy`` (majority vote over a person's photos), ``region_type_accuracy``.
* Chance beside them: ``chance_accuracy`` (always the most common type in the held-out set)
  and ``chance_macro_f1`` (guessing with the held-out type frequencies).
* ``synthetic_labels``: True when the types are the sample project's synthetic ones — the
  numbers then only show the pipeline runs, not that faces predict anything.

Usage::

    python -m models.evaluate --model 3             # the stored metrics table of run 3
    python -m models.evaluate --model 3 --recompute # re-run it on its held-out people
    python -m models.evaluate --kfold 5 --kind head --epochs 10   # k-fold by person
    python -m models.evaluate --model 3 --json      # one JSON object: type_accuracy, within_one_accuracy,
                                                    # spearman, chance_accuracy, ceiling_accuracy, type_shares, n_people
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import sqlalchemy as sa

from app.core.vocabulary import REGIONS
from models import registry
from models.kinds import KINDS
from models.serving import load_model
from models.training.data import ImageBank, kfold_by_person, load_samples
from models.training.engine import evaluate, format_metrics
from models.training.train import train


def kfold(kind: str = "head", k: int = 5, epochs: int | None = None, device: str = "auto", url=None, store=None,
          seed: int = 0, **train_kwargs) -> dict:
    """k-fold cross-validation by person (no models are registered). Returns mean metrics."""
    snapshot = load_samples(url)
    folds = []
    for i, tr, va in kfold_by_person(snapshot.samples, k, seed):
        print(f"fold {i + 1}/{k}: {len({s.person_id for s in tr})} train people, {len({s.person_id for s in va})} held out", file=sys.stderr)
        result = train(kind=kind, epochs=epochs, device=device, url=url, store=store, seed=seed, register=False,
                       split=(tr, va), synthetic=snapshot.synthetic_labels, **train_kwargs)
        folds.append(result.metrics)
    keys = ["type_accuracy", "within_one_accuracy", "spearman", "macro_f1", "person_accuracy", "box_map50",
            "chance_accuracy", "chance_macro_f1"]
    folds = [{**f, "spearman": f["spearman"] if f.get("spearman") is not None else float("nan")} for f in folds]
    out = {key: round(float(np.mean([f[key] for f in folds])), 4) for key in keys}
    out["std"] = {key: round(float(np.std([f[key] for f in folds])), 4) for key in keys}
    out["confusion"] = np.sum([f["confusion"] for f in folds], axis=0).tolist()
    out["n_photos"] = sum(f["n_photos"] for f in folds)
    out["n_people"] = sum(f["n_people"] for f in folds)
    for key in ("mean_iou", "box_map50_per_region", "region_type_accuracy"):
        out[key] = {r: round(float(np.mean([f[key][r] for f in folds])), 4) for r in REGIONS}
    out["type_shares"] = {t: round(float(np.mean([f["type_shares"][t] for f in folds])), 4) for t in folds[0]["type_shares"]}
    out["synthetic_labels"] = snapshot.synthetic_labels
    out.update({key: folds[0][key] for key in ("ceiling_accuracy", "ceiling_within_one") if key in folds[0]})
    out["folds"] = k
    return out


def recompute(model_id: int, url=None, store=None) -> dict:
    """Evaluate a stored model again on the held-out people recorded in its data snapshot."""
    row = registry.get_run(model_id, url=url)
    held = set((row.data_snapshot or {}).get("split", {}).get("val_people", []))
    snapshot = load_samples(url)
    samples = [s for s in snapshot.samples if s.person_key in held]
    model = load_model(model_id, url=url, store=store)
    bank = ImageBank(store or registry.default_store(), model.config.get("max_side", 640))
    return evaluate(model, samples, bank, snapshot.synthetic_labels)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate facetype type models on held-out people.")
    parser.add_argument("--model", type=int, help="ModelVersion id (default: the promoted model)")
    parser.add_argument("--recompute", action="store_true", help="re-run the evaluation instead of printing stored metrics")
    parser.add_argument("--kfold", type=int, default=0, help="k-fold cross-validation by person (trains k models)")
    parser.add_argument("--kind", default="head", choices=sorted(KINDS))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    args = parser.parse_args(argv)

    try:
        return _main(args, registry)
    except sa.exc.OperationalError as exc:
        print(f"cannot read the model registry ({str(exc).splitlines()[0]}); run `python -m app.services.bootstrap` first",
              file=sys.stderr)
        return 2


def _main(args, registry) -> int:
    if args.kfold:
        metrics = kfold(args.kind, args.kfold, args.epochs, args.device, seed=args.seed)
        if args.json:
            print(json.dumps({"kfold": args.kfold, "kind": args.kind, **metrics}))
        else:
            print(f"\n{args.kfold}-fold cross-validation by person, kind={args.kind}")
            print(format_metrics(metrics))
        return 0
    model_id = args.model or registry.promoted_id()
    if model_id is None:
        print("no model given and none is promoted", file=sys.stderr)
        return 2
    row = registry.get_run(model_id)
    if row is None:
        print(f"no model version {model_id}", file=sys.stderr)
        return 2
    metrics = recompute(model_id) if args.recompute else (row.metrics or {})
    if not metrics:
        print(f"model {model_id} has no metrics (status {row.status}: {row.message})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"model": model_id, "kind": row.kind, "promoted": bool(row.promoted), **metrics}))
    else:
        print(f"model {model_id} ({row.kind}, {row.status}{', promoted' if row.promoted else ''})")
        print(format_metrics(metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
