"""The one interface for a type model, model loading, and ``classify``.

A type model takes a photo (HxWx3 uint8 RGB) and the face gate's result and returns, for
every region, a box and probabilities over the five types (:class:`RegionPrediction`). Two
kinds implement it: ``head`` (:mod:`models.head`: landmark regions + a small classifier per
region) and ``detector`` (:mod:`models.detector`: Faster R-CNN with the source's 16 classes).

``classify`` scores a prediction with :mod:`models.scoring`; it is what the Try it page, the
API and the CLI call. ``get_served_model`` returns the promoted model, loaded once per process
and reloaded only when the promoted model changes.

Checkpoints are ``torch.save`` of a plain dict ``{"format": 1, "kind", "config", "state_dict"}``
and are read back with ``weights_only=True``.
"""

from __future__ import annotations

import io
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from app.core.settings import get_settings
from app.core.vocabulary import REGIONS, TYPES
from models.scoring import ScoreResult, score_regions

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
    """What the two kinds share: a config dict and a torch ``net``, saved as a checkpoint dict."""

    kind: str

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


class NoServedModel(RuntimeError):
    """No model is promoted yet (run setup, or train and promote one on the Models page)."""


# ----------------------------------------------------------------------------- gate helpers


def box_list(box) -> list[float]:
    """[x0, y0, x1, y1] from a RegionBox-like object (``as_list()`` or x0..y1) or a sequence."""
    if box is None:
        raise ValueError("no box")
    if hasattr(box, "as_list"):
        return [float(v) for v in box.as_list()]
    if hasattr(box, "x0"):
        return [float(box.x0), float(box.y0), float(box.x1), float(box.y1)]
    values = [float(v) for v in box]
    if len(values) != 4:
        raise ValueError(f"a box needs 4 numbers, got {values}")
    return values


def regions_from_face(face, width: int | None = None, height: int | None = None) -> dict[str, list[float]]:
    """Rough regions inside a face box, for when the gate gives a face but no landmark regions."""
    x0, y0, x1, y1 = box_list(face)
    w, h = x1 - x0, y1 - y0
    return {
        "face": [x0, y0, x1, y1],
        "tzone": [x0 + 0.3 * w, y0 + 0.15 * h, x0 + 0.7 * w, y0 + 0.7 * h],
        "jaw": [x0 + 0.1 * w, y0 + 0.65 * h, x0 + 0.9 * w, y1],
    }


def landmark_regions(image: np.ndarray, gate_result) -> dict[str, list[float]]:
    """The landmark locator's regions from the gate result; derived from the face box, or
    from the whole image, when the gate did not provide them (never empty)."""
    regions = getattr(gate_result, "regions", None) or {}
    out = {}
    for r in REGIONS:
        if regions.get(r) is not None:
            out[r] = box_list(regions[r])
    if len(out) == len(REGIONS):
        return out
    face = getattr(gate_result, "face", None)
    h, w = image.shape[:2]
    derived = regions_from_face(face if face is not None else (0, 0, w, h))
    return {r: out.get(r, derived[r]) for r in REGIONS}


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(model: TypeModel) -> bytes:
    buffer = io.BytesIO()
    import torch

    torch.save(model.checkpoint(), buffer)
    return buffer.getvalue()


def model_from_checkpoint(data: bytes | dict, device=None) -> TypeModel:
    import torch

    from models.runtime import pick_device

    if isinstance(data, (bytes, bytearray)):
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    else:
        ckpt = data
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"unknown checkpoint format {ckpt.get('format')!r}")
    device = device or pick_device()
    if ckpt["kind"] == "head":
        from models.head import HeadModel

        return HeadModel.from_checkpoint(ckpt, device=device)
    if ckpt["kind"] == "detector":
        from models.detector import DetectorModel

        return DetectorModel.from_checkpoint(ckpt, device=device)
    raise ValueError(f"unknown model kind {ckpt['kind']!r}")


# ----------------------------------------------------------------------------- loading & serving

_lock = threading.Lock()
_loaded: dict[tuple, TypeModel] = {}
_served: dict[str, tuple[int, TypeModel]] = {}


def _key(url):
    return url or get_settings().resolved_database_url


def load_model(model_version_id: int, url: str | None = None, store=None) -> TypeModel:
    """The model of a ModelVersion row, loaded once per process."""
    from models import registry

    cache_key = (_key(url), int(model_version_id))
    with _lock:
        if cache_key in _loaded:
            return _loaded[cache_key]
    row = registry.get_run(model_version_id, url=url)
    if row is None or not row.object_key:
        raise LookupError(f"model {model_version_id} has no stored weights (status {getattr(row, 'status', None)})")
    store = store or registry.default_store()
    model = model_from_checkpoint(store.get(row.object_key))
    model.model_version_id = int(model_version_id)
    with _lock:
        _loaded[cache_key] = model
    return model


def get_served_model(url: str | None = None, store=None) -> TypeModel:
    """The promoted model, cached; reloaded only when another model is promoted.

    Raises :class:`NoServedModel` when nothing is promoted."""
    from models import registry

    promoted = registry.promoted_id(url=url)
    if promoted is None:
        raise NoServedModel("No model is promoted yet. Run the setup or train one on the Models page.")
    key = _key(url)
    with _lock:
        cached = _served.get(key)
        if cached and cached[0] == promoted:
            return cached[1]
    model = load_model(promoted, url=url, store=store)
    with _lock:
        _served[key] = (promoted, model)
        # drop other cached models for this database so old weights do not pile up
        for k in [k for k in _loaded if k[0] == key and k[1] != promoted]:
            del _loaded[k]
    return model


def clear_cache() -> None:
    with _lock:
        _loaded.clear()
        _served.clear()


# ----------------------------------------------------------------------------- classify


@dataclass
class Classification:
    result: ScoreResult
    regions: dict  # region -> RegionPrediction
    model_kind: str
    model_version_id: int | None = None
    notes: list = field(default_factory=list)

    @property
    def boxes(self) -> dict:
        return {r: p.box for r, p in self.regions.items()}

    def as_dict(self) -> dict:
        return {
            "result": self.result.as_dict(),
            "regions": {r: p.as_dict() for r, p in self.regions.items()},
            "model_kind": self.model_kind,
            "model_version_id": self.model_version_id,
            "notes": list(self.notes),
        }


def classify(image: np.ndarray, gate_result, model: TypeModel | None = None, settings=None) -> Classification:
    """Predict regions with ``model`` (default: the served model) and score them.

    Regions the model could not place are filled from the landmark locator (source
    ``landmarks``) and named in the notes, so an answer always comes back."""
    model = model or get_served_model()
    predictions = dict(model.predict(image, gate_result))
    notes: list[str] = []
    missing = [r for r in REGIONS if r not in predictions]
    if missing:
        fallback = landmark_regions(image, gate_result)
        for r in missing:
            predictions[r] = RegionPrediction(box=fallback[r], probs=[1 / len(TYPES)] * len(TYPES), source="landmarks")
        notes.append(f"no prediction for {', '.join(missing)}: landmark region used, all types equally likely")
    if model.kind == "detector":
        fell_back = [r for r in REGIONS if predictions[r].source == "landmarks" and r not in missing]
        if fell_back:
            notes.append(
                f"the detector found no confident box for {', '.join(fell_back)}; "
                "the landmark region was used instead"
            )
    result = score_regions(
        {r: predictions[r].probs for r in REGIONS},
        settings=settings,
        sources={r: predictions[r].source for r in REGIONS},
    )
    notes = notes + list(result.notes)
    return Classification(
        result=result,
        regions={r: predictions[r] for r in REGIONS},
        model_kind=model.kind,
        model_version_id=getattr(model, "model_version_id", None),
        notes=notes,
    )
