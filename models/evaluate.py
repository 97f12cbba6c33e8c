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
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from types import SimpleNamespace
from typing import Sequence

import numpy as np
import torch

from app.core.vocabulary import REGIONS, TYPES

SYNTHETIC_NOTE = (
    "Type labels are the sample project's synthetic ones: there is no real signal to learn, "
    "so type metrics near chance are expected and say nothing about faces."
)


def gate_stand_in(boxes: dict, image: np.ndarray) -> SimpleNamespace:
    """A GateResult-like object whose regions are the given landmark boxes."""
    face = boxes.get("face")
    return SimpleNamespace(ok=True, reason=None, message=None, face=tuple(face) if face else None,
                           landmarks=None, regions=dict(boxes), image_size=(image.shape[1], image.shape[0]))


def macro_f1(confusion: np.ndarray) -> float:
    """Mean F1 over the classes that occur in the truth or the predictions."""
    f1s = []
    for k in range(confusion.shape[0]):
        tp = confusion[k, k]
        support, predicted = confusion[k].sum(), confusion[:, k].sum()
        if support == 0 and predicted == 0:
            continue
        f1s.append(0.0 if tp == 0 else 2 * tp / (support + predicted))
    return float(np.mean(f1s)) if f1s else 0.0


def evaluate_samples(model, samples: Sequence, bank, synthetic_labels: bool = False, settings=None) -> dict:
    """Run ``model`` on the held-out ``samples`` (images from ``bank``) and compute the metrics."""
    from torchmetrics.detection import MeanAveragePrecision

    from labeling.regions import box_iou
    from models.typemodel import classify

    if not samples:
        raise ValueError("no held-out photos to evaluate on")
    n = len(TYPES)
    confusion = np.zeros((n, n), dtype=int)
    ious: dict[str, list[float]] = defaultdict(list)
    region_hits: dict[str, list[bool]] = defaultdict(list)
    votes: dict[str, list[int]] = defaultdict(list)
    truth_of: dict[str, int] = {}
    fallbacks = 0
    confidences = []
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", iou_thresholds=[0.5], class_metrics=True,
                                  sync_on_compute=False)  # evaluation runs on rank 0 only
    preds, targets = [], []
    for s in samples:
        image, gt = bank.get(s)
        _, landmarks = bank.get(s, landmarks=True)
        gate = gate_stand_in(landmarks, image)
        if hasattr(model, "detect"):
            # one forward pass: raw detections for the box mAP, the same ones for the type
            from models.detector import NUM_CLASSES, decode_label, region_predictions
            from models.typemodel import landmark_regions

            det = model.detect(image)
            adapter = SimpleNamespace(kind=model.kind, model_version_id=getattr(model, "model_version_id", None),
                                      predict=lambda im, g, det=det: region_predictions(det, landmark_regions(im, g)))
            out = classify(image, gate, adapter, settings=settings)
            keep = [i for i, lab in enumerate(det["labels"].tolist()) if 1 <= lab < NUM_CLASSES]
            preds.append({
                "boxes": det["boxes"][keep].float().reshape(-1, 4),
                "scores": det["scores"][keep].float(),
                "labels": torch.tensor([decode_label(int(det["labels"][i]))[1] + 1 for i in keep], dtype=torch.int64),
            })
        else:
            out = classify(image, gate, model, settings=settings)
            preds.append({
                "boxes": torch.tensor([out.regions[r].box for r in REGIONS], dtype=torch.float32),
                "scores": torch.tensor([out.regions[r].score if out.regions[r].score is not None else 1.0 for r in REGIONS]),
                "labels": torch.arange(1, len(REGIONS) + 1),
            })
        confusion[s.type_index, out.result.type_index] += 1
        votes[s.person_key].append(out.result.type_index)
        truth_of[s.person_key] = s.type_index
        confidences.append(out.result.confidence)
        for r in REGIONS:
            p = out.regions[r]
            ious[r].append(box_iou(p.box, gt[r]))
            region_hits[r].append(int(np.argmax(p.probs)) == s.type_index)
            fallbacks += model.kind == "detector" and p.source == "landmarks"
        targets.append({"boxes": torch.tensor([gt[r] for r in REGIONS], dtype=torch.float32),
                        "labels": torch.arange(1, len(REGIONS) + 1)})
    metric.update(preds, targets)
    m = metric.compute()
    per_class = m["map_per_class"].tolist() if m["map_per_class"].ndim else [float(m["map_per_class"])]
    classes = m["classes"].tolist() if m["classes"].ndim else [int(m["classes"])]
    per_region = {REGIONS[c - 1]: round(float(v), 4) for c, v in zip(classes, per_class)}

    counts = confusion.sum(axis=1)
    total = int(counts.sum())
    present = counts[counts > 0]
    person_correct = [Counter(v).most_common(1)[0][0] == truth_of[k] for k, v in votes.items()]
    metrics = {
        "n_photos": total,
        "n_people": len(votes),
        "synthetic_labels": bool(synthetic_labels),
        "box_map50": round(float(m["map_50"]), 4),
        "box_map50_per_region": per_region,
        "mean_iou": {r: round(float(np.mean(v)), 4) for r, v in ious.items()},
        "type_accuracy": round(float(np.trace(confusion) / total), 4),
        "macro_f1": round(macro_f1(confusion), 4),
        "person_accuracy": round(float(np.mean(person_correct)), 4),
        "region_type_accuracy": {r: round(float(np.mean(v)), 4) for r, v in region_hits.items()},
        "mean_confidence": round(float(np.mean(confidences)), 4),
        "chance_accuracy": round(float(present.max() / total), 4),
        "chance_macro_f1": round(float((present / total).sum() / len(present)), 4) if len(present) else 0.0,
        "confusion": confusion.tolist(),
        "labels": list(TYPES),
        "regions_from_landmarks": int(fallbacks),
    }
    if synthetic_labels:
        metrics["note"] = SYNTHETIC_NOTE
    return metrics


def format_metrics(metrics: dict) -> str:
    """A plain-text table of the metrics."""
    lines = []
    if metrics.get("synthetic_labels"):
        lines += ["!! " + SYNTHETIC_NOTE, ""]
    rows = [
        ("held-out photos / people", f"{metrics.get('n_photos')} / {metrics.get('n_people')}"),
        ("type accuracy (chance)", f"{metrics.get('type_accuracy', float('nan')):.3f} ({metrics.get('chance_accuracy', float('nan')):.3f})"),
        ("macro-F1 (chance)", f"{metrics.get('macro_f1', float('nan')):.3f} ({metrics.get('chance_macro_f1', float('nan')):.3f})"),
        ("person accuracy", f"{metrics.get('person_accuracy', float('nan')):.3f}"),
        ("box mAP@0.5", f"{metrics.get('box_map50', float('nan')):.3f}"),
    ]
    for r in REGIONS:
        rows.append((f"  {r}: mAP@0.5 / mean IoU / type acc",
                     f"{metrics.get('box_map50_per_region', {}).get(r, float('nan')):.3f} / "
                     f"{metrics.get('mean_iou', {}).get(r, float('nan')):.3f} / "
                     f"{metrics.get('region_type_accuracy', {}).get(r, float('nan')):.3f}"))
    if "regions_from_landmarks" in metrics:
        rows.append(("regions from landmarks (detector fallback)", str(metrics["regions_from_landmarks"])))
    if "folds" in metrics:
        rows.append(("folds", str(metrics["folds"])))
    width = max(len(k) for k, _ in rows)
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    confusion = metrics.get("confusion")
    if confusion:
        lines += ["", "confusion (rows true, columns predicted):", " " * 8 + "".join(f"{t[:5]:>7}" for t in TYPES)]
        lines += [f"{TYPES[i][:7]:<8}" + "".join(f"{v:>7}" for v in row) for i, row in enumerate(confusion)]
    return "\n".join(lines)


def kfold(kind: str = "head", k: int = 5, epochs: int | None = None, device: str = "auto", url=None, store=None,
          seed: int = 0, **train_kwargs) -> dict:
    """k-fold cross-validation by person (no models are registered). Returns mean metrics."""
    from models.dataset import kfold_by_person, load_samples
    from models.train import train

    snapshot = load_samples(url)
    folds = []
    for i, tr, va in kfold_by_person(snapshot.samples, k, seed):
        print(f"fold {i + 1}/{k}: {len({s.person_id for s in tr})} train people, {len({s.person_id for s in va})} held out")
        result = train(kind=kind, epochs=epochs, device=device, url=url, store=store, seed=seed, register=False,
                       split=(tr, va), synthetic=snapshot.synthetic_labels, **train_kwargs)
        folds.append(result.metrics)
    keys = ["type_accuracy", "macro_f1", "person_accuracy", "box_map50", "chance_accuracy", "chance_macro_f1"]
    out = {key: round(float(np.mean([f[key] for f in folds])), 4) for key in keys}
    out["std"] = {key: round(float(np.std([f[key] for f in folds])), 4) for key in keys}
    out["confusion"] = np.sum([f["confusion"] for f in folds], axis=0).tolist()
    out["n_photos"] = sum(f["n_photos"] for f in folds)
    out["n_people"] = sum(f["n_people"] for f in folds)
    for key in ("mean_iou", "box_map50_per_region", "region_type_accuracy"):
        out[key] = {r: round(float(np.mean([f[key][r] for f in folds])), 4) for r in REGIONS}
    out["synthetic_labels"] = snapshot.synthetic_labels
    out["folds"] = k
    return out


def recompute(model_id: int, url=None, store=None) -> dict:
    """Evaluate a stored model again on the held-out people recorded in its data snapshot."""
    from models import registry
    from models.dataset import ImageBank, load_samples
    from models.typemodel import load_model

    row = registry.get_run(model_id, url=url)
    held = set((row.data_snapshot or {}).get("split", {}).get("val_people", []))
    snapshot = load_samples(url)
    samples = [s for s in snapshot.samples if s.person_key in held]
    model = load_model(model_id, url=url, store=store)
    bank = ImageBank(store or registry.default_store(), model.config.get("max_side", 640))
    return evaluate_samples(model, samples, bank, snapshot.synthetic_labels)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate facetype type models on held-out people.")
    parser.add_argument("--model", type=int, help="ModelVersion id (default: the promoted model)")
    parser.add_argument("--recompute", action="store_true", help="re-run the evaluation instead of printing stored metrics")
    parser.add_argument("--kfold", type=int, default=0, help="k-fold cross-validation by person (trains k models)")
    parser.add_argument("--kind", default="head", choices=["head", "detector"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import sqlalchemy as sa

    from models import registry

    try:
        return _main(args, registry)
    except sa.exc.OperationalError as exc:
        print(f"cannot read the model registry ({str(exc).splitlines()[0]}); run `python -m app.setup` first",
              file=sys.stderr)
        return 2


def _main(args, registry) -> int:
    if args.kfold:
        metrics = kfold(args.kind, args.kfold, args.epochs, args.device, seed=args.seed)
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
    print(f"model {model_id} ({row.kind}, {row.status}{', promoted' if row.promoted else ''})")
    print(format_metrics(metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
