"""What every type-model kind shares: the prediction record, the interface and the checkpoint format.

A type model takes a photo (HxWx3 uint8 RGB) and the face gate's result and returns, for every
region, a box and probabilities over the five types (:class:`RegionPrediction`). Kinds (after
Label Studio's ML backend: ``predict`` for serving, a training recipe for ``fit``) live beside
this module: ``head`` and ``detector``.

Checkpoints are ``torch.save`` of a plain dict ``{"format": 1, "kind", "config", "state_dict"}``
and are read back with ``weights_only=True``.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch

CHECKPOINT_FORMAT = 1


@dataclass
class RegionPrediction:
    box: list  # [x0, y0, x1, y1] in the input image's pixels
    probs: list  # five probabilities, TYPES order
    source: str  # "model" (the model placed the box) or "landmarks" (the landmark locator's region)
    score: float | None = None  # detector score of the box, when it came from the detector

    def as_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class TypeModel(Protocol):
    kind: str
    config: dict

    def predict(self, image: np.ndarray, gate_result: Any) -> dict[str, RegionPrediction]: ...

    def checkpoint(self) -> dict: ...


class CheckpointedModel:
    """What the two kinds share: a config dict and a torch ``net``, saved as a checkpoint dict.

    ``places_boxes`` says whether the kind finds the regions itself; if so ``region_boxes(image)``
    gives its own box per region it found (source ``model``, with its score and type probabilities),
    with no landmark fallback: what the Labeling page offers annotators as pre-annotations. A kind
    that only types the landmark regions (``head``) places none, and says so."""

    kind: str
    places_boxes = False

    def region_boxes(self, image: np.ndarray) -> dict[str, RegionPrediction]:
        return {}

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device=None):
        model = cls(ckpt["config"], device=device)
        model.net.load_state_dict(ckpt["state_dict"])
        model.net.eval()
        return model

    def checkpoint(self) -> dict:
        net = self.net.module if hasattr(self.net, "module") else self.net  # unwrap DDP
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": self.kind,
            "config": dict(self.config),
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        }


def save_checkpoint(model: TypeModel) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.checkpoint(), buffer)
    return buffer.getvalue()


def read_checkpoint(data: bytes | dict) -> dict:
    ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True) if isinstance(data, (bytes, bytearray)) else data
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"unknown checkpoint format {ckpt.get('format')!r}")
    return ckpt


@dataclass(frozen=True)
class Recipe:
    """How a kind is trained; the training loop has no per-kind branches.

    ``dataset(samples, bank, model_config, train, seed)`` gives items that ``collate`` batches;
    ``loss(net, batch, device, model_config)`` returns a dict of losses; ``optimizer(params, lr, weight_decay)``.
    """

    defaults: dict
    model_config: Callable[[dict], dict]
    dataset: Callable
    collate: Callable
    loss: Callable
    optimizer: Callable
    warmup_steps: Callable[[int], int] = lambda total: 0
    clip_grad_norm: float | None = None
    drop_last: bool = False
    eval_every: int = 0
