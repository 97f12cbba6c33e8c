"""Analyse a visitor's photo in memory: intake, face gate, type model, score. Nothing is written:
no database row, no object, no log line with the photo, birth date or MBTI."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable

import numpy as np
import sqlalchemy as sa
from sqlmodel import select

from app.core.db import TypeProfile, session_scope, utcnow
from app.core.settings import get_settings
from app.core.storage import ObjectStore
from app.core.vocabulary import MBTI_TYPES, MBTI_UNKNOWN
from models import registry, warmup
from models.gate import get_face_gate

log = logging.getLogger(__name__)

FOR_FUN_LINE = (
    "For fun only: the face types are made up from a survey. They are not a measure of anyone's "
    "worth, character or abilities."
)
#: The cascade's steps, in order, as shown while a photo is analysed.
STEPS: tuple[tuple[str, str], ...] = (
    ("check", "Checking the photo"),
    ("regions", "Finding the face regions"),
    ("type", "Judging the type"),
)
EARLIEST_BIRTH_DATE = date(1900, 1, 1)
BIRTH_DATE_FORMATS = "day/month/year (17/05/1994) or year-month-day (1994-05-17)"
UPLOAD_TOO_LARGE = "file_too_large"
NO_MODEL = "no_model"
MESSAGES = {
    NO_MODEL: "The face-type model is not ready yet: no model has been promoted. "
    "Please come back later (the team trains and promotes one on the Models page).",
}


def upload_too_large_message() -> str:
    return (
        f"The file is larger than {get_settings().max_upload_mb} MB. "
        "Upload a smaller photo (a normal phone photo is fine)."
    )


# ----------------------------------------------------------------------------- errors


class VisitError(RuntimeError):
    """Base class of this module's errors; ``message`` is safe to show to a visitor."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


class ModelUnavailable(VisitError):
    """No model is promoted (or it cannot be loaded and none was loaded before)."""


class NotStored(VisitError):
    """The submission could not be stored; nothing of it was kept. ``cause`` is ``database``,
    ``store`` or ``invalid``."""

    def __init__(self, message: str, cause: str):
        self.cause = cause
        super().__init__(message)


class ResultsUnavailable(VisitError):
    """The database cannot be reached to look a kept result up."""


class DeleteFailed(VisitError):
    """The database or the store could not be reached while deleting; nothing was deleted."""


# ----------------------------------------------------------------------------- the result


@dataclass
class VisitResult:
    """The outcome of :func:`analyse_photo`: a refusal (``ok`` false, ``reason``, ``message``) or
    a result (type, description, confidence, per-region breakdown, boxes)."""

    ok: bool
    reason: str | None = None
    message: str = ""
    type_name: str | None = None
    description: str = ""
    score: float | None = None
    confidence: float | None = None
    #: region -> {type, probability, points, probs, source} (see models.scoring)
    per_region: dict = field(default_factory=dict)
    #: region -> [x0, y0, x1, y1] in pixels of the upright photo as uploaded (``image`` may be smaller:
    #: :meth:`image_boxes` gives them in its pixels)
    boxes: dict = field(default_factory=dict)
    #: how the type was reached: each region's type and points, the total and its band
    explanation: str = ""
    model_kind: str | None = None
    model_version_id: int | None = None
    notes: list = field(default_factory=list)
    #: (width, height) of the upright photo as uploaded
    image_size: tuple[int, int] = (0, 0)
    created_at: datetime = field(default_factory=utcnow)
    #: The upright RGB photo, reduced (kept in memory only, for display and the result card).
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: Pixels of the uploaded photo per pixel of ``image`` (1 when it was not reduced).
    scale: float = 1.0
    classification: Any = field(default=None, repr=False, compare=False)
    gate_result: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-safe summary (no pixels, no landmarks); this is what a stored submission keeps."""
        return {
            "ok": self.ok,
            "reason": self.reason,
            "message": self.message,
            "type": self.type_name,
            "description": self.description,
            "score": self.score,
            "confidence": self.confidence,
            "per_region": self.per_region,
            "explanation": self.explanation,
            "boxes": {r: [round(float(v), 1) for v in b] for r, b in self.boxes.items()},
            "model_kind": self.model_kind,
            "model_version_id": self.model_version_id,
            "notes": list(self.notes),
            "image_size": list(self.image_size),
            "created_at": self.created_at.isoformat(timespec="seconds"),
        }

    def image_boxes(self) -> dict:
        """``boxes`` in pixels of ``image``, to draw them on it."""
        return {r: [v / self.scale for v in b] for r, b in self.boxes.items()}


# ----------------------------------------------------------------------------- models

_profiles: dict[str, str] = {}


def forget_cached_state() -> None:
    """Drop the type descriptions kept for outages; for tests and reloads."""
    _profiles.clear()


def default_gate():
    """The process's face gate, once the warm-load under way (if any) is done."""
    warmup.wait()
    return get_face_gate()


def served_model(url: str | None = None, store: ObjectStore | None = None):
    """The promoted model, from :mod:`models.serving` (loaded once per process; during an outage of
    the database or the store, the model served before). Raises :class:`ModelUnavailable` when no
    model is promoted (or none could ever be loaded). Waits for a warm-load under way (torch is
    imported there, not when a page imports this module)."""
    warmup.wait()
    from models.serving import OUTAGE_ERRORS, NoServedModel, get_served_model

    try:
        return get_served_model(url=url, store=store)
    except NoServedModel as exc:
        raise ModelUnavailable(MESSAGES[NO_MODEL]) from exc
    except OUTAGE_ERRORS as exc:
        log.error("no model could be loaded: %s", type(exc).__name__)
        raise ModelUnavailable(
            "The face-type model cannot be loaded right now. Please try again in a few minutes."
        ) from exc


def model_status(url: str | None = None, load: bool = True) -> str | None:
    """``None`` when a model can be served, else a message for the visitor. With ``load`` false and
    a warm-load under way, the model is not waited for here (a page is drawn without waiting for
    torch): only whether one is promoted is looked up; the analysis waits for it."""
    if not load and warmup.in_progress():
        try:
            promoted = registry.promoted_id(url=url)
        except sa.exc.SQLAlchemyError:
            return None  # the analysis says what is down
        return MESSAGES[NO_MODEL] if promoted is None else None
    try:
        served_model(url=url)
    except ModelUnavailable as exc:
        return exc.message
    return None


def type_profiles(url: str | None = None) -> dict[str, str]:
    """Type name -> description, from the database; the last good answer when it is unreachable."""
    try:
        with session_scope(url) as session:
            rows = list(session.exec(select(TypeProfile).order_by(TypeProfile.order)))
    except sa.exc.SQLAlchemyError:
        log.warning("type profiles unavailable; using the cached descriptions")
        return dict(_profiles)
    _profiles.clear()
    _profiles.update({row.name: row.description for row in rows})
    return dict(_profiles)


# ----------------------------------------------------------------------------- analyse


def _refusal(reason: str, message: str, image_size=(0, 0), image=None, gate_result=None,
             scale: float = 1.0) -> VisitResult:
    return VisitResult(ok=False, reason=reason, message=message, image_size=tuple(image_size), image=image,
                       gate_result=gate_result, scale=scale)


def analyse_photo(
    data: bytes,
    *,
    gate=None,
    model=None,
    progress: Callable[[str, str], None] | None = None,
    url: str | None = None,
) -> VisitResult:
    """Check the photo with the face gate and classify it; in memory only, nothing is written.

    Returns a refusal (``ok`` false with the gate's or the intake's ``reason`` and ``message``)
    or a result. ``progress(step, label)`` is called as each of :data:`STEPS` starts. Raises
    :class:`ModelUnavailable` when no model is promoted (checked first, before the photo).

    A JPEG is decoded reduced to what the gate and the model need (``FaceGate.decode_and_check``;
    a refusal is decided on the whole photo); boxes and sizes are in the uploaded photo's pixels.
    """
    model = model or served_model(url=url)
    gate = gate or default_gate()
    from models.serving import classify, decode_side  # imported with the model above

    def step(name):
        if progress:
            progress(name, dict(STEPS)[name])

    step("check")
    if data is not None and len(data) > get_settings().max_upload_mb * 1024 * 1024:
        return _refusal(UPLOAD_TOO_LARGE, upload_too_large_message())
    gate_result, image = gate.decode_and_check(data or b"", min_side=decode_side(model),
                                               max_side=get_settings().analysis_max_side)
    if image is None:
        log.info("photo refused: %s", gate_result.reason)
        return _refusal(gate_result.reason, gate_result.message)
    scale = float(gate_result.scale)
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    if not gate_result.ok:
        log.info("photo refused by the gate: %s", gate_result.reason)
        return _refusal(gate_result.reason, gate_result.message, size, image, gate_result, scale)

    step("regions")
    # The gate has located the landmark regions; the model may place its own boxes below.

    step("type")
    classification = classify(image, gate_result, model=model)
    result = classification.result
    description = type_profiles(url).get(result.type, "")
    log.info("photo classified (model %s)", classification.model_version_id)
    return VisitResult(
        ok=True,
        type_name=result.type,
        description=description,
        score=float(result.score),
        confidence=float(result.confidence),
        per_region={r: dict(v) for r, v in result.per_region.items()},
        explanation=result.explanation(),
        boxes={r: [float(v) * scale for v in p.box] for r, p in classification.regions.items()},
        model_kind=classification.model_kind,
        model_version_id=classification.model_version_id,
        notes=list(classification.notes),
        image_size=size,
        image=image,
        scale=scale,
        classification=classification,
        gate_result=gate_result,
    )


def check_answers(mbti: str, birth_date: date, today: date | None = None) -> None:
    """Raise ``ValueError`` for an unknown MBTI type (:data:`MBTI_UNKNOWN` is allowed) or a birth
    date outside 1900..yesterday."""
    if mbti not in MBTI_TYPES and mbti != MBTI_UNKNOWN:
        raise ValueError("choose one of the 16 MBTI types")
    if not isinstance(birth_date, date) or isinstance(birth_date, datetime):
        raise ValueError("the birth date must be a date")
    check_birth_date(birth_date, today)


def check_birth_date(birth_date: date, today: date | None = None) -> None:
    """Raise ``ValueError`` (its text is for the visitor) for a birth date today or later, or
    before :data:`EARLIEST_BIRTH_DATE`."""
    today = today or date.today()
    if birth_date >= today:
        raise ValueError("the birth date must be before today")
    if birth_date < EARLIEST_BIRTH_DATE:
        raise ValueError(f"the birth date must be on or after {EARLIEST_BIRTH_DATE:%d/%m/%Y}")


_DATE_PARTS = re.compile(r"^\s*(\d{1,4})\s*[-/.\s]\s*(\d{1,2})\s*[-/.\s]\s*(\d{1,4})\s*$")


def parse_birth_date(text: str, today: date | None = None) -> date:
    """A birth date typed as day/month/year (``17/05/1994``, ``17.5.1994``, ``17-05-1994``) or
    year-month-day (``1994-05-17``, ``1994-5-7``). Raises ``ValueError`` whose text says what is
    expected, for an unreadable, impossible, future or pre-1900 date."""
    match = _DATE_PARTS.match(text or "")
    if not match:
        raise ValueError(f"Write your birth date as {BIRTH_DATE_FORMATS}.")
    first, middle, last = match.groups()
    if len(first) == 4:
        year, month, day = int(first), int(middle), int(last)
    elif len(last) == 4:
        day, month, year = int(first), int(middle), int(last)
    else:
        raise ValueError(f"Write the year with four digits: {BIRTH_DATE_FORMATS}.")
    try:
        born = date(year, month, day)
    except ValueError:
        raise ValueError(f"{text.strip()} is not a date in the calendar. Write it as {BIRTH_DATE_FORMATS}.") from None
    if born >= (today or date.today()):
        raise ValueError(f"{born:%d/%m/%Y} is not in the past: enter the day you were born.")
    if born < EARLIEST_BIRTH_DATE:
        raise ValueError(f"{born:%d/%m/%Y} is before {EARLIEST_BIRTH_DATE.year}: enter the day you were born.")
    return born
