"""The training engine, after torchvision's ``references/detection/engine.py``: a metric logger,
``train_one_epoch`` and ``evaluate``, plus the distributed helpers. Kinds differ only by their
:class:`~models.kinds.base.Recipe`; nothing here branches on the kind."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections import Counter, defaultdict, deque
from types import SimpleNamespace
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from scipy.stats import spearmanr
from torchmetrics.detection import MeanAveragePrecision
from tqdm import tqdm

from app.core.settings import get_settings
from app.core.vocabulary import REGIONS, TYPES
from models.geometry import box_iou, landmark_regions
from models.kinds.detector import NUM_CLASSES, decode_label, region_predictions
from models.registry import SYNTHETIC_NOTE
from models.scoring import calibrate_thresholds
from models.serving import classify, model_thresholds
from models.training.data import sample_ceiling

# ----------------------------------------------------------------------------- metric logger


class SmoothedValue:
    """Track a series of values; the window's median/avg and the global average."""

    def __init__(self, window_size: int = 20, fmt: str = "{median:.4f} ({global_avg:.4f})"):
        self.deque: deque = deque(maxlen=window_size)
        self.total = 0.0
        self.count = 0
        self.fmt = fmt

    def update(self, value: float, n: int = 1) -> None:
        self.deque.append(value)
        self.count += n
        self.total += value * n

    @property
    def median(self) -> float:
        return float(np.median(self.deque)) if self.deque else float("nan")

    @property
    def avg(self) -> float:
        return float(np.mean(self.deque)) if self.deque else float("nan")

    @property
    def global_avg(self) -> float:
        return self.total / max(self.count, 1)

    @property
    def value(self) -> float:
        return self.deque[-1] if self.deque else float("nan")

    def __str__(self) -> str:
        return self.fmt.format(median=self.median, avg=self.avg, global_avg=self.global_avg, value=self.value)


class MetricLogger:
    def __init__(self, delimiter: str = "  "):
        self.meters: dict[str, SmoothedValue] = defaultdict(SmoothedValue)
        self.delimiter = delimiter

    def update(self, **kwargs) -> None:
        for k, v in kwargs.items():
            if isinstance(v, torch.Tensor):
                v = v.item()
            self.meters[k].update(float(v))

    def averages(self) -> dict:
        return {k: round(m.global_avg, 6) for k, m in self.meters.items()}

    def __str__(self) -> str:
        return self.delimiter.join(f"{name}: {meter}" for name, meter in self.meters.items())

    def log_every(self, iterable, header: str = "", disable: bool = False):
        """Iterate with a tqdm progress bar whose postfix shows the smoothed meters."""
        bar = tqdm(iterable, desc=header, leave=False, disable=disable, dynamic_ncols=True, file=sys.stderr)
        for i, item in enumerate(bar):
            yield item
            if i % 5 == 0 or i == len(bar) - 1:
                bar.set_postfix_str(" ".join(f"{k}={m.median:.3f}" for k, m in self.meters.items()))
        bar.close()


# ----------------------------------------------------------------------------- distributed


def init_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); starts the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
        dist.init_process_group(backend)
    return rank, world, local


def reduce_mean(value: float, world: int) -> float:
    if world <= 1:
        return value
    t = torch.tensor([value], device="cuda" if torch.cuda.is_available() else "cpu")
    dist.all_reduce(t)
    return float(t.item() / world)


# ----------------------------------------------------------------------------- one epoch


def lr_lambda(total_steps: int, warmup: int):
    def f(step):
        if step < warmup:
            return 0.001 + (1 - 0.001) * step / max(1, warmup)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


def train_one_epoch(net, recipe, model_config, optimizer, scheduler, loader, device, header: str, *, step: int = 0,
                    max_steps: int | None = None, on_step: Callable | None = None, quiet: bool = False,
                    amp: bool = False):
    """One pass over ``loader``; returns (the epoch's MetricLogger, the global step reached).

    ``on_step(step, loss, logger)`` is called after every optimiser step. ``amp``: mixed
    precision (autocast and a gradient scaler, as torchvision's reference does with --amp), CUDA only."""
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    logger = MetricLogger()
    amp = amp and torch.device(device).type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    for batch in logger.log_every(loader, header, disable=quiet):
        with torch.autocast("cuda") if amp else contextlib.nullcontext():
            loss_dict = recipe.loss(net, batch, device, model_config)
            loss = sum(loss_dict.values())
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if recipe.clip_grad_norm:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, recipe.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        step += 1
        logger.update(loss=loss, lr=optimizer.param_groups[0]["lr"], **loss_dict)
        if on_step:
            on_step(step, loss.item(), logger)
        if max_steps is not None and step >= max_steps:
            break
    return logger, step


# ----------------------------------------------------------------------------- evaluation


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


def evaluate(model, samples: Sequence, bank, synthetic_labels: bool = False, settings=None) -> dict:
    """Run ``model`` on the held-out ``samples`` (images from ``bank``) and compute the metrics."""
    if not samples:
        raise ValueError("no held-out photos to evaluate on")
    n = len(TYPES)
    confusion = np.zeros((n, n), dtype=int)
    ious: dict[str, list[float]] = defaultdict(list)
    region_hits: dict[str, list[bool]] = defaultdict(list)
    votes: dict[str, list[int]] = defaultdict(list)
    truth_of: dict[str, int] = {}
    scores: dict[str, list[float]] = defaultdict(list)
    survey_of: dict[str, float] = {}
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
        scores[s.person_key].append(out.result.score)
        if s.survey_score is not None:
            survey_of[s.person_key] = s.survey_score
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
    calibrated = model_thresholds(model, settings)
    metrics = {
        "n_photos": total,
        "n_people": len(votes),
        "synthetic_labels": bool(synthetic_labels),
        "box_map50": round(float(m["map_50"]), 4),
        "box_map50_per_region": per_region,
        "mean_iou": {r: round(float(np.mean(v)), 4) for r, v in ious.items()},
        "type_accuracy": round(float(np.trace(confusion) / total), 4),
        "within_one_accuracy": round(within_one(confusion), 4),
        "spearman": person_spearman(scores, survey_of),
        "type_shares": {t: round(float(confusion[:, i].sum() / total), 4) for i, t in enumerate(TYPES)},
        "type_precision": type_precision(confusion),
        "true_type_shares": {t: round(float(confusion[i].sum() / total), 4) for i, t in enumerate(TYPES)},
        "type_thresholds": list(calibrated or (settings or get_settings()).type_thresholds),
        "threshold_mode": "calibrated" if calibrated else "source",
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
        metrics.update(sample_ceiling())
    return metrics


def type_precision(confusion: np.ndarray) -> dict[str, float | None]:
    """Per result type, the share of held-out photos given that type whose survey type it was
    (None for a type the model never gave)."""
    given = confusion.sum(axis=0)
    return {t: round(float(confusion[i, i] / given[i]), 4) if given[i] else None for i, t in enumerate(TYPES)}


def within_one(confusion: np.ndarray) -> float:
    """Share of photos whose predicted type is at most one type from the true one."""
    n = confusion.shape[0]
    near = sum(confusion[i, j] for i in range(n) for j in range(n) if abs(i - j) <= 1)
    return float(near / max(1, confusion.sum()))


def person_spearman(scores: dict[str, list[float]], survey: dict[str, float]) -> float | None:
    """Spearman correlation, over people, of the mean result score with the survey mean score."""
    people = [k for k in scores if k in survey]
    if len(people) < 3:
        return None
    rho = spearmanr([float(np.mean(scores[k])) for k in people], [survey[k] for k in people]).statistic
    return round(float(rho), 4) if np.isfinite(rho) else None


@torch.no_grad()
def calibrate(model, samples, bank, shares, settings=None) -> tuple[float, ...]:
    """Bands for ``model`` fitted to ``shares`` on its scores of ``samples`` (the training photos,
    at their landmark boxes, as they will be seen when served)."""
    values = []
    for s in samples:
        image, _ = bank.get(s)
        _, landmarks = bank.get(s, landmarks=True)
        values.append(classify(image, gate_stand_in(landmarks, image), model, settings=settings).result.score)
    model.net.eval()
    return calibrate_thresholds(values, shares)


def format_metrics(metrics: dict) -> str:
    """A plain-text table of the metrics."""
    lines = []
    if metrics.get("synthetic_labels"):
        lines += ["!! " + SYNTHETIC_NOTE, ""]
    rows = [
        ("held-out photos / people", f"{metrics.get('n_photos')} / {metrics.get('n_people')}"),
        ("type accuracy (chance)", f"{metrics.get('type_accuracy', float('nan')):.3f} ({metrics.get('chance_accuracy', float('nan')):.3f})"),
        ("macro-F1 (chance)", f"{metrics.get('macro_f1', float('nan')):.3f} ({metrics.get('chance_macro_f1', float('nan')):.3f})"),
        ("within one type", f"{metrics.get('within_one_accuracy', float('nan')):.3f}"),
        ("Spearman (score vs survey mean, by person)", f"{metrics.get('spearman') if metrics.get('spearman') is not None else float('nan'):.3f}"),
        ("ceiling (the planted rule itself)", f"{metrics.get('ceiling_accuracy', float('nan')):.3f}"),
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


@torch.no_grad()
def quick_val(model, val_samples, bank, calibration_samples=(), shares=None) -> dict:
    """Held-out type accuracy per epoch (head: cheap; detector: only with --eval-every).

    With ``shares`` the bands are first calibrated on ``calibration_samples`` (training photos; an
    evenly spread ~120 of them, to keep it cheap), as the finished model's will be; otherwise the
    bands in the model's config (the source's, before calibration) are used."""
    calibration = list(calibration_samples)[:: max(1, len(calibration_samples) // 120)]
    calibrated = bool(shares) and len(calibration) >= 2
    if calibrated:
        model.config["type_thresholds"] = list(calibrate(model, calibration, bank, shares))
    hits = []
    for s in val_samples:
        image, _ = bank.get(s)
        _, landmarks = bank.get(s, landmarks=True)
        out = classify(image, gate_stand_in(landmarks, image), model)
        hits.append(out.result.type_index == s.type_index)
    if calibrated:
        model.config.pop("type_thresholds")
    model.net.train()
    return {"val_type_accuracy": round(float(np.mean(hits)), 4)}
