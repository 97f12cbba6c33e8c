"""The ``detector`` type model: the source's torchvision Faster R-CNN (FPN) with 16 classes.

Class ``3·t + r``: t = 0..4 for Alpha..Omega, r = 1 face, 2 T-zone, 3 jaw; 0 is background.
No weights are ever downloaded (``weights=None, weights_backbone=None``): it trains from
scratch unless a local checkpoint is given (``load_local_weights``; shapes that do not fit,
such as a COCO box predictor, are skipped).

From detections to regions (:func:`region_predictions`): for each region, the best detection
of that region's five classes with score ≥ ``detection_threshold`` (0.75, the source's) gives
the box; the region's type probabilities are the best scores of each type among detections
overlapping that box (IoU ≥ 0.5), normalised. When no detection of a region reaches the
threshold, the landmark region is used (source ``landmarks``), with probabilities from any
low-score detections overlapping it, or equal probabilities when there are none.
"""

from __future__ import annotations

import logging
import random
from typing import Sequence

import numpy as np
import torch
from torchvision.models import detection as tvd

from app.core.settings import get_settings
from app.core.vocabulary import REGIONS, TYPES
from models.geometry import box_iou, landmark_regions
from models.kinds.base import CheckpointedModel, Recipe, RegionPrediction
from models.transforms import augment, resize_max_side

log = logging.getLogger(__name__)

NUM_CLASSES = 1 + len(TYPES) * len(REGIONS)  # 16
ARCHS = {
    "fasterrcnn_mobilenet_v3_large_320_fpn": tvd.fasterrcnn_mobilenet_v3_large_320_fpn,
    "fasterrcnn_mobilenet_v3_large_fpn": tvd.fasterrcnn_mobilenet_v3_large_fpn,
    "fasterrcnn_resnet50_fpn": tvd.fasterrcnn_resnet50_fpn,
}
DEFAULT_ARCH = "fasterrcnn_mobilenet_v3_large_320_fpn"
DEFAULT_CONFIG = {
    "arch": DEFAULT_ARCH,
    "min_size": None,  # None: the architecture's own (320 for the 320 variant, 800 otherwise)
    "max_size": None,
    "max_side": 640,  # images are downscaled to this before the model's own transform
    "box_score_thresh": 0.01,  # keep low scores: they give the per-type probabilities
}


def label_of(type_index: int, region_index: int) -> int:
    return 3 * type_index + region_index + 1


def decode_label(label: int) -> tuple[int, int]:
    """(type index, region index) of a class label 1..15."""
    return (label - 1) // 3, (label - 1) % 3


def build_detector(config: dict | None = None) -> torch.nn.Module:
    config = {**DEFAULT_CONFIG, **(config or {})}
    arch = config["arch"]
    if arch not in ARCHS:
        raise ValueError(f"unknown detector architecture {arch!r}; choose from {sorted(ARCHS)}")
    kwargs = {"box_score_thresh": config["box_score_thresh"]}
    if config.get("min_size"):
        kwargs["min_size"] = int(config["min_size"])
    if config.get("max_size"):
        kwargs["max_size"] = int(config["max_size"])
    return ARCHS[arch](weights=None, weights_backbone=None, num_classes=NUM_CLASSES, **kwargs)


def load_local_weights(model: torch.nn.Module, path: str) -> dict:
    """Load a local checkpoint (ours, a torchvision state dict, or {"model": ...}) leniently."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    report = {"loaded": len(fitting), "skipped": len(state) - len(fitting), "missing": len(own) - len(fitting)}
    log.info("weights %s: %s", path, report)
    return report


def region_predictions(detections: dict, fallback_boxes: dict, threshold: float | None = None) -> dict[str, RegionPrediction]:
    """Turn one image's detections (boxes/labels/scores) into one prediction per region (a region
    with no detection at ``threshold`` and no fallback box is left out)."""
    threshold = get_settings().detection_threshold if threshold is None else threshold
    boxes = detections["boxes"].tolist() if hasattr(detections["boxes"], "tolist") else list(detections["boxes"])
    labels = [int(x) for x in detections["labels"]]
    scores = [float(x) for x in detections["scores"]]
    out = {}
    for r_index, region in enumerate(REGIONS):
        cands = [(b, decode_label(lab)[0], s) for b, lab, s in zip(boxes, labels, scores)
                 if 1 <= lab < NUM_CLASSES and decode_label(lab)[1] == r_index]
        best = max(cands, key=lambda c: c[2], default=None)
        if best is not None and best[2] >= threshold:
            box, source, best_score = best[0], "model", best[2]
        elif region in fallback_boxes:
            box, source, best_score = fallback_boxes[region], "landmarks", None
        else:
            continue
        per_type = [0.0] * len(TYPES)
        for b, t, s in cands:
            if box_iou(b, box) >= 0.5:
                per_type[t] = max(per_type[t], s)
        total = sum(per_type)
        probs = [p / total for p in per_type] if total > 0 else [1.0 / len(TYPES)] * len(TYPES)
        out[region] = RegionPrediction(box=[float(v) for v in box], probs=probs, source=source, score=best_score)
    return out


class DetectorModel(CheckpointedModel):
    kind = "detector"
    places_boxes = True

    def __init__(self, config: dict | None = None, device=None, net=None):
        self.config = {**DEFAULT_CONFIG, **(config or {})}
        self.device = torch.device(device or "cpu")
        self.net = (net or build_detector(self.config)).to(self.device)
        self.model_version_id = None

    @torch.no_grad()
    def detect(self, image: np.ndarray) -> dict:
        """Raw detections in the input image's pixels."""
        small, scale = resize_max_side(image, self.config["max_side"])
        tensor = torch.from_numpy(np.array(small)).permute(2, 0, 1).float().div(255.0)
        self.net.eval()
        out = self.net([tensor.to(self.device)])[0]
        return {"boxes": out["boxes"].cpu() / scale, "labels": out["labels"].cpu(), "scores": out["scores"].cpu()}

    def predict(self, image: np.ndarray, gate_result, threshold: float | None = None) -> dict[str, RegionPrediction]:
        return region_predictions(self.detect(image), landmark_regions(image, gate_result), threshold)

    def region_boxes(self, image: np.ndarray) -> dict[str, RegionPrediction]:
        """The best detection of each region at any score (kept ones are ≥ ``box_score_thresh``)."""
        return region_predictions(self.detect(image), {}, threshold=0.0)


# ----------------------------------------------------------------------------- training recipe


def detection_labels(type_index: int) -> list[int]:
    """The source's classes for one person: 3·t + r with r = 1 face, 2 T-zone, 3 jaw."""
    return [label_of(type_index, r) for r in range(len(REGIONS))]


class DetectionDataset:
    """torch-style dataset for the detector: (image float CxHxW in [0,1], target dict)."""

    def __init__(self, samples: Sequence, bank, train: bool = True, seed: int = 0):
        self.samples = list(samples)
        self.bank = bank
        self.train = train
        self.rng = random.Random(seed)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        s = self.samples[i]
        image, boxes = self.bank.get(s)
        if self.train:
            image, boxes = augment(image, boxes, self.rng)
        tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0
        target = {
            "boxes": torch.tensor([boxes[r] for r in REGIONS], dtype=torch.float32),
            "labels": torch.tensor(detection_labels(s.type_index), dtype=torch.int64),
        }
        return tensor, target


def collate_detection(batch):
    return tuple(zip(*batch))


def _detector_loss(net, batch, device, config: dict) -> dict:
    images, targets = batch
    images = [im.to(device) for im in images]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    return net(images, targets)


def _model_config(options: dict) -> dict:
    return {**DEFAULT_CONFIG, "max_side": options["max_side"], "arch": options.get("arch") or DEFAULT_CONFIG["arch"],
            "min_size": options.get("min_size"), "max_size": options.get("max_size")}


RECIPE = Recipe(
    defaults={"epochs": 20, "batch_size": 2, "lr": 0.01, "weight_decay": 1e-4, "max_side": 640},
    model_config=_model_config,
    dataset=lambda samples, bank, config, train, seed: DetectionDataset(samples, bank, train=train, seed=seed),
    collate=collate_detection,
    loss=_detector_loss,
    optimizer=lambda params, lr, weight_decay: torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay),
    warmup_steps=lambda total: min(100, max(1, total // 10)),
    clip_grad_norm=10.0,
)
