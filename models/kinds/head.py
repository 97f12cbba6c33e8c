"""The ``head`` type model: landmark regions + a small CNN per region on the region crops.

The boxes come from the landmark locator (the gate's regions), so the head only classifies:
each region is cropped with some context by ``roi_align`` to ``crop_size``² RGB, and a
three-layer CNN per region gives logits over the five types. Small enough to train on the
sample project on a 2-core CPU in well under three minutes.
"""

from __future__ import annotations

import math
import operator
import random
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.ops import roi_align

from app.core.settings import get_settings
from app.core.vocabulary import REGIONS, TYPES
from models.geometry import landmark_regions
from models.kinds.base import CheckpointedModel, Recipe, RegionPrediction
from models.transforms import augment, resize_max_side

DEFAULT_CONFIG = {
    "crop_size": 32,
    "context": 0.1,  # fraction of the box size added on every side
    "width": 16,  # channels of the first conv layer
    "dropout": 0.2,
    "max_side": 640,  # images are downscaled to this before cropping
    # Share of each target moved to the two neighbouring types: the types are ordered, so
    # mistaking Alpha for Beta is a smaller error than for Omega.
    "ordinal_smoothing": 0.3,
    # > 0: targets spread over the types by where the person's survey score sits inside their type's
    # band (a Gaussian of this width, in types, around that position) instead of ``ordinal_smoothing``.
    # The quota cut between two types is arbitrary; the survey score says how close to it a person is.
    "target_sigma": 0.8,
    # Weight of a loss on the served score itself: the regions' expected type positions weighted
    # by ``region_points`` (the score is linear in it), against the person's position. Without it
    # each region learns the whole type alone; with it they learn the score together.
    "score_loss": 1.0,
}


class RegionNet(nn.Module):
    def __init__(self, width: int = 16, dropout: float = 0.2, num_types: int = len(TYPES)):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(
            block(3, width), nn.MaxPool2d(2),
            block(width, 2 * width), nn.MaxPool2d(2),
            block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * width, num_types))

    def forward(self, x):
        return self.classifier(self.features(x))


class HeadNet(nn.Module):
    """One RegionNet per region; input R×B×3×S×S crops (REGIONS order), output R×B×5 logits."""

    def __init__(self, width: int = 16, dropout: float = 0.2):
        super().__init__()
        self.regions = nn.ModuleDict({r: RegionNet(width, dropout) for r in REGIONS})

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.regions[r](crops[i]) for i, r in enumerate(REGIONS)])


class FusedHeadNet(nn.Module):
    """A :class:`HeadNet` in eval mode as one network: the regions' convolutions become grouped
    convolutions (one group per region), so all three crops go through one forward instead of
    three. Input B×(R·3)×S×S (the regions' crops side by side in channels), output R×B×5 logits;
    equal to the HeadNet's up to float rounding. Built for inference only (dropout is off), so each
    batch norm is folded into its convolution, and it runs channels-last: on the CPU that halves a
    forward, most of it in the max pooling, which is slow on channels-first tensors this small."""

    def __init__(self, head: HeadNet):
        super().__init__()
        nets = [head.regions[r] for r in REGIONS]
        groups = len(nets)
        layers = []
        for index, module in enumerate(nets[0].features):
            parts = [net.features[index] for net in nets]
            if isinstance(module, nn.Sequential):  # conv, batch norm, relu
                layers += [fuse_conv_bn_eval(_grouped_conv([p[0] for p in parts]), _stacked_norm([p[1] for p in parts])),
                           nn.ReLU(inplace=True)]
            elif isinstance(module, nn.Flatten):
                layers.append(nn.Flatten())
            else:  # pooling works channel by channel: one for all regions
                layers.append(module)
        self.features = nn.Sequential(*layers)
        linears = [net.classifier[-1] for net in nets]
        self.register_buffer("weight", torch.stack([lin.weight.detach() for lin in linears]).contiguous())  # R×5×F
        self.register_buffer("bias", torch.stack([lin.bias.detach() for lin in linears])[:, None, :].contiguous())
        self.groups = groups
        self.eval()
        self.to(memory_format=torch.channels_last)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        features = self.features(crops.contiguous(memory_format=torch.channels_last))  # B×(R·F)
        features = features.view(features.shape[0], self.groups, -1).transpose(0, 1)  # R×B×F
        return torch.baddbmm(self.bias, features, self.weight.transpose(1, 2))


def _grouped_conv(convs: list[nn.Conv2d]) -> nn.Conv2d:
    first = convs[0]
    grouped = nn.Conv2d(first.in_channels * len(convs), first.out_channels * len(convs), first.kernel_size,
                        stride=first.stride, padding=first.padding, groups=len(convs), bias=False)
    grouped.weight.data.copy_(torch.cat([c.weight.detach() for c in convs]))
    return grouped.eval()


def _stacked_norm(norms: list[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    stacked = nn.BatchNorm2d(sum(n.num_features for n in norms), eps=norms[0].eps)
    for name in ("weight", "bias"):
        getattr(stacked, name).data.copy_(torch.cat([getattr(n, name).detach() for n in norms]))
    for name in ("running_mean", "running_var"):
        getattr(stacked, name).copy_(torch.cat([getattr(n, name) for n in norms]))
    return stacked.eval()


def _with_context(boxes: Sequence[Sequence[float]], context: float) -> np.ndarray:
    """N×4 float32 boxes grown by ``context`` times their size (at least 1 px) on every side. In numpy
    float32, the arithmetic torch's float32 ops do (the crops depend on it bit for bit), without a
    torch op's dispatch cost for a few numbers."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    w = np.maximum(boxes[:, 2] - boxes[:, 0], np.float32(1.0))
    h = np.maximum(boxes[:, 3] - boxes[:, 1], np.float32(1.0))
    return boxes + np.stack([-w, -h, w, h], axis=1) * np.float32(context)


def extract_crops(image: np.ndarray | torch.Tensor, boxes: Sequence[Sequence[float]], size: int, context: float) -> torch.Tensor:
    """R×3×size×size float crops in [-0.5, 0.5] of ``boxes`` (REGIONS order) from an RGB image."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(image if image.flags.writeable else np.array(image)).permute(2, 0, 1)
    # One contiguous float buffer scaled in place: temporaries of a large image would each be a
    # fresh mapping (the serving process's mmap threshold) and page-fault on every request.
    x = torch.empty((1, *image.shape), dtype=torch.float32, device=image.device)
    x[0].copy_(image)
    x.div_(255.0).sub_(0.5)
    grown = _with_context(boxes, context)
    rois = torch.from_numpy(np.concatenate([np.zeros((len(grown), 1), np.float32), grown], axis=1)).to(x.device)
    return roi_align(x, rois, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


def crops_at_max_side(image: np.ndarray, boxes: Sequence[Sequence[float]], max_side: int, size: int,
                      context: float) -> torch.Tensor:
    """``extract_crops`` of the image downscaled by ``resize_max_side``, computed on the boxes' window
    only: the same values (PIL's resize with a source box reads the filter's support beyond the box),
    without converting and resizing the whole photo on every request."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w)) if max_side else 1.0
    small_w, small_h = (max(1, round(w * scale)), max(1, round(h * scale))) if scale < 1.0 else (w, h)
    small_boxes = [[v * scale for v in box] for box in boxes]
    reach = _with_context(small_boxes, context)
    x0 = max(0, math.floor(reach[:, 0].min()) - 2)
    y0 = max(0, math.floor(reach[:, 1].min()) - 2)
    x1 = min(small_w, math.ceil(reach[:, 2].max()) + 2)
    y1 = min(small_h, math.ceil(reach[:, 3].max()) + 2)
    if x1 <= x0 or y1 <= y0:  # boxes wholly outside the photo: nothing to save
        small, _ = resize_max_side(image, max_side)
        return extract_crops(small, small_boxes, size, context)
    if scale >= 1.0:
        window = image[y0:y1, x0:x1]
    else:
        fx, fy = w / small_w, h / small_h
        pad = math.ceil(2 * max(fx, fy)) + 2  # the bilinear filter's support when downscaling
        cx0, cy0 = max(0, math.floor(x0 * fx) - pad), max(0, math.floor(y0 * fy) - pad)
        cx1, cy1 = min(w, math.ceil(x1 * fx) + pad), min(h, math.ceil(y1 * fy) + pad)
        source = Image.fromarray(np.ascontiguousarray(image[cy0:cy1, cx0:cx1]))
        window = np.asarray(source.resize((x1 - x0, y1 - y0), Image.BILINEAR,
                                          box=(x0 * fx - cx0, y0 * fy - cy0, x1 * fx - cx0, y1 * fy - cy0)))
    shifted = [[bx0 - x0, by0 - y0, bx1 - x0, by1 - y0] for bx0, by0, bx1, by1 in small_boxes]
    return extract_crops(window, shifted, size, context)


def jitter_boxes(boxes: dict, rng: random.Random, amount: float = 0.08) -> dict:
    out = {}
    for r, (x0, y0, x1, y1) in boxes.items():
        w, h = x1 - x0, y1 - y0
        dx, dy = rng.uniform(-amount, amount) * w, rng.uniform(-amount, amount) * h
        s = 1 + rng.uniform(-amount, amount)
        cx, cy = (x0 + x1) / 2 + dx, (y0 + y1) / 2 + dy
        out[r] = [cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2]
    return out


def survey_positions(samples) -> list[float]:
    """Per sample, a continuous type position: the type index, moved by up to ±0.5 by where the
    person's survey score ranks among the people of that type (the best-scored person of a type
    sits at index − 0.5, towards the better type). People without a survey score sit at the index."""
    by_type: dict[int, list] = {}
    for s in samples:
        if s.survey_score is not None:
            by_type.setdefault(s.type_index, {})[s.person_key] = s.survey_score
    offset = {}
    for people in by_type.values():
        ranked = sorted(people, key=lambda k: -people[k])
        for rank, key in enumerate(ranked):
            offset[key] = (rank + 0.5) / len(ranked) - 0.5
    return [s.type_index + offset.get(s.person_key, 0.0) for s in samples]


class HeadDataset:
    """(crops R×3×S×S, type position) per photo; training mode augments (boxes follow the pixels).
    The position is the type index, or with ``target_sigma`` the survey position (``survey_positions``)."""

    def __init__(self, samples, bank, config: dict, train: bool = True, seed: int = 0, landmarks: bool = False):
        self.samples = list(samples)
        self.bank = bank
        self.config = {**DEFAULT_CONFIG, **config}
        self.train = train
        self.landmarks = landmarks
        self.rng = random.Random(seed)
        self.positions = (survey_positions(self.samples) if self.config["target_sigma"] > 0
                          else [float(s.type_index) for s in self.samples])

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        s = self.samples[i]
        image, boxes = self.bank.get(s, landmarks=self.landmarks)
        if self.train:
            image, boxes = augment(image, boxes, self.rng, scale=False)
            boxes = jitter_boxes(boxes, self.rng)
        crops = extract_crops(image, [boxes[r] for r in REGIONS], self.config["crop_size"], self.config["context"])
        return crops, self.positions[i]


def collate_head(batch):
    crops = torch.stack([c for c, _ in batch], dim=1)  # R×B×3×S×S
    positions = torch.tensor([t for _, t in batch], dtype=torch.float32)
    return crops, positions


def ordinal_targets(labels: torch.Tensor, smoothing: float, num_types: int = len(TYPES)) -> torch.Tensor:
    """Soft targets: ``1 - smoothing`` on the label, ``smoothing`` split over its neighbours."""
    targets = nn.functional.one_hot(labels, num_types).float()
    if smoothing <= 0:
        return targets
    neighbours = torch.zeros_like(targets)
    neighbours[:, 1:] += targets[:, :-1]
    neighbours[:, :-1] += targets[:, 1:]
    neighbours = neighbours / neighbours.sum(dim=1, keepdim=True)
    return (1 - smoothing) * targets + smoothing * neighbours


def position_targets(positions: torch.Tensor, sigma: float, num_types: int = len(TYPES)) -> torch.Tensor:
    """Soft targets: a Gaussian of width ``sigma`` (in types) around each continuous type position."""
    types = torch.arange(num_types, dtype=torch.float32, device=positions.device)
    weights = torch.exp(-0.5 * ((types[None, :] - positions[:, None]) / sigma) ** 2)
    return weights / weights.sum(dim=1, keepdim=True)


def head_loss(net: HeadNet, crops: torch.Tensor, positions: torch.Tensor, smoothing: float = 0.0,
              sigma: float = 0.0, score_weight: float = 0.0, region_points: Sequence[float] | None = None) -> dict:
    """Cross-entropy per region against soft targets: ``position_targets`` when ``sigma`` > 0, else
    ``ordinal_targets`` of the (rounded) positions. With ``score_weight`` > 0 also the squared error
    of the score's position: the regions' expected type positions weighted by ``region_points``."""
    logits = net(crops)
    if sigma > 0:
        targets = position_targets(positions, sigma)
    else:
        targets = ordinal_targets(positions.round().long(), smoothing)
    losses = {f"loss_{r}": nn.functional.cross_entropy(logits[i], targets) for i, r in enumerate(REGIONS)}
    if score_weight > 0:
        weights = torch.as_tensor(region_points or get_settings().region_points, dtype=logits.dtype,
                                  device=logits.device)
        expected = (logits.softmax(-1) * torch.arange(logits.shape[-1], device=logits.device)).sum(-1)  # R×B
        combined = (weights[:, None] * expected).sum(0) / weights.sum()
        losses["loss_score"] = score_weight * nn.functional.mse_loss(combined, positions)
    return losses


def held_values(net: nn.Module) -> list[tuple[dict, str, object]]:
    """Each submodule, parameter and buffer of ``net``: the dict of its module that holds it, its name
    there, and the object held now (to tell, by identity, when another has been put in its place)."""
    return [(held, name, value) for module in net.modules()
            for held in (module._modules, module._parameters, module._buffers)
            for name, value in held.items() if value is not None]


class HeadModel(CheckpointedModel):
    kind = "head"

    def __init__(self, config: dict | None = None, device=None, net: HeadNet | None = None):
        self.config = {**DEFAULT_CONFIG, **(config or {})}
        self.device = torch.device(device or "cpu")
        self.net = (net or HeadNet(self.config["width"], self.config["dropout"])).to(self.device)
        self.model_version_id = None

    def predict_probs(self, image: np.ndarray, boxes: dict) -> dict[str, list[float]]:
        crops = crops_at_max_side(image, [boxes[r] for r in REGIONS], self.config["max_side"],
                                  self.config["crop_size"], self.config["context"])  # R×3×S×S
        with torch.inference_mode():
            batch = crops.reshape(1, -1, *crops.shape[-2:]).to(self.device)  # 1×(R·3)×S×S
            probs = self.fused_net()(batch).softmax(-1)[:, 0].cpu().tolist()  # R×1×5 logits
        return {r: probs[i] for i, r in enumerate(REGIONS)}

    def fused_net(self) -> FusedHeadNet:
        """The net fused for inference; rebuilt when its weights have changed since (a training
        step or a loaded state dict changes them in place, which bumps the tensors' versions), when
        one was put in place of another (``load_state_dict(assign=True)``, a new Parameter or
        submodule: the new tensor's version may equal the old one's) or ``self.net`` is another net.
        Where the net holds each of its tensors is listed once per net, then looked up per request:
        walking its modules on every request cost more than the rest of this check."""
        source = getattr(self, "_fused_source", None)
        if source is None or source[0] is not self.net or not all(
                map(operator.is_, map(dict.get, *source[1]), source[2])):  # per slot: held.get(name) is value
            holders, names, values = zip(*held_values(self.net))
            self._fused_source = (self.net, (holders, names), values,
                                  [v for v in values if isinstance(v, torch.Tensor)])
            self._fused_version = None
        version = tuple(t._version for t in self._fused_source[3])
        if self._fused_version != version:
            self.net.eval()
            self._fused = FusedHeadNet(self.net).to(self.device)
            self._fused_version = version
        return self._fused

    def predict(self, image: np.ndarray, gate_result) -> dict[str, RegionPrediction]:
        boxes = landmark_regions(image, gate_result)
        probs = self.predict_probs(image, boxes)
        return {r: RegionPrediction(box=boxes[r], probs=probs[r], source="landmarks") for r in REGIONS}


def _head_loss(net, batch, device, config: dict) -> dict:
    crops, positions = batch
    return head_loss(net, crops.to(device), positions.to(device), config.get("ordinal_smoothing", 0.0),
                     config.get("target_sigma", 0.0), config.get("score_loss", 0.0))


RECIPE = Recipe(
    defaults={"epochs": 15, "batch_size": 16, "lr": 3e-3, "weight_decay": 1e-4, "max_side": 640},
    model_config=lambda options: {**DEFAULT_CONFIG, "max_side": options["max_side"]},
    dataset=lambda samples, bank, config, train, seed: HeadDataset(samples, bank, config, train=train, seed=seed),
    collate=collate_head,
    loss=_head_loss,
    optimizer=lambda params, lr, weight_decay: torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay),
    drop_last=True,
    eval_every=1,
)
