"""Serving: a checkpoint becomes a model, the promoted model is held once per process (the one
cache of it, with the outage fallback), ``warm_load`` starts a serving process, and ``classify``
scores a prediction with :mod:`models.scoring`. It is what the Try it page, the API and the CLI
call.
"""

from __future__ import annotations

import logging
import threading
import dataclasses
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa

from app.core.settings import get_settings
from app.core.storage import StorageError
from app.core.vocabulary import REGIONS, TYPES
from models import registry
from models.gate import get_face_gate
from models.geometry import landmark_regions
from models.kinds import model_class
from models.kinds.base import RegionPrediction, TypeModel, read_checkpoint
from models.runtime import configure_serving_process, pick_device
from models.scoring import ScoreResult, score_regions


log = logging.getLogger(__name__)

#: What an unreachable database or store raises while the served model is looked up and loaded.
OUTAGE_ERRORS = (sa.exc.SQLAlchemyError, StorageError, OSError, LookupError)


class NoServedModel(RuntimeError):
    """No model is promoted yet (run setup, or train and promote one on the Models page)."""


def model_from_checkpoint(data: bytes | dict, device=None) -> TypeModel:
    ckpt = read_checkpoint(data)
    return model_class(ckpt["kind"]).from_checkpoint(ckpt, device=device or pick_device())


# ----------------------------------------------------------------------------- loading & serving

_lock = threading.Lock()
_loaded: dict[tuple, TypeModel] = {}
_served: dict[str, tuple[int, TypeModel]] = {}


def _key(url):
    return url or get_settings().resolved_database_url


def load_model(model_version_id: int, url: str | None = None, store=None) -> TypeModel:
    """The model of a ModelVersion row, loaded once per process."""

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

    If the database or the store cannot be reached, the model this process served last for that
    database is returned, so visitors still get results during an outage (the error is raised
    only when none was served before). Raises :class:`NoServedModel` when nothing is promoted."""

    key = _key(url)
    try:
        promoted = registry.promoted_id(url=url)
    except OUTAGE_ERRORS as exc:
        return _last_served(key, exc)
    if promoted is None:
        raise NoServedModel("No model is promoted yet. Run the setup or train one on the Models page.")
    with _lock:
        cached = _served.get(key)
        if cached and cached[0] == promoted:
            return cached[1]
    try:
        model = load_model(promoted, url=url, store=store)
    except OUTAGE_ERRORS as exc:
        return _last_served(key, exc)
    with _lock:
        _served[key] = (promoted, model)
        # drop other cached models for this database so old weights do not pile up
        for k in [k for k in _loaded if k[0] == key and k[1] != promoted]:
            del _loaded[k]
    return model


def _last_served(key, error: Exception) -> TypeModel:
    with _lock:
        cached = _served.get(key)
    if cached is None:
        raise error
    log.warning("model lookup failed (%s); serving the model loaded before", type(error).__name__)
    return cached[1]


def warm_load(url: str | None = None, store=None) -> None:
    """Start a serving process: thread and memory settings, then the face gate and the served model
    loaded now, not on the first visitor's request. A missing model or store is not fatal here:
    the request that needs them says what is missing."""
    configure_serving_process()
    get_face_gate()
    try:
        get_served_model(url=url, store=store)
    except (NoServedModel, *OUTAGE_ERRORS) as exc:
        log.warning("served model not loaded at start (%s)", type(exc).__name__)


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


def model_thresholds(model: TypeModel, settings=None) -> tuple | None:
    """The bands to read ``model``'s scores with: its calibrated ones (stored in its config when it
    was trained) unless ``threshold_mode`` is ``source`` or the model has none; None means the
    source's fixed bands."""
    mode = (settings or get_settings()).threshold_mode
    if mode not in ("calibrated", "source"):
        raise ValueError(f"threshold_mode must be 'calibrated' or 'source', got {mode!r}")
    calibrated = (getattr(model, "config", None) or {}).get("type_thresholds")
    return tuple(calibrated) if mode == "calibrated" and calibrated else None


def decode_side(model: TypeModel, settings=None) -> int:
    """The side a photo to classify with ``model`` is decoded reduced to at least (the ``min_side`` of
    :meth:`models.gate.FaceGate.decode_and_check`): the gate's ``gate_decode_side``, or the model's
    own ``max_side`` when it works on larger images than that; 0 (whole) for a model without one."""
    max_side = (getattr(model, "config", None) or {}).get("max_side")
    if not max_side:
        return 0
    return max(int(max_side), (settings or get_settings()).gate_decode_side)


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
        thresholds=model_thresholds(model, settings),
    )
    precision = (getattr(model, "config", None) or {}).get("type_precision")
    if precision and precision[result.type_index] is not None:
        result = dataclasses.replace(result, confidence=float(precision[result.type_index]))
    notes = notes + list(result.notes)
    return Classification(
        result=result,
        regions={r: predictions[r] for r in REGIONS},
        model_kind=model.kind,
        model_version_id=getattr(model, "model_version_id", None),
        notes=notes,
    )
