"""A visitor's visit: analyse a photo, and — only when the visitor opts in — keep, reopen and delete it.

Plain Python (no Streamlit): the Try it page, the Privacy page, the JSON API and the purge all
use this module.

Privacy rules kept here
-----------------------
* :func:`analyse_photo` works in memory only: it writes nothing to the database, the object store
  or the logs. Without opt-in nothing about a visit is written anywhere.
* :func:`store_submission` (opt-in only) writes the photo object **first**, then the Photo and
  Submission rows in **one** transaction; when the rows fail the object is deleted again. If that
  delete fails too (the store went away in between), the object is an *orphan*: its key carries
  its creation time (``visitor/photos/<YYYYmmddTHHMMSS>-<random>.<ext>``) and
  :func:`sweep_orphans` (run by :func:`app.purge.purge_expired`) deletes visitor objects that no
  row references once they are older than :data:`ORPHAN_GRACE`. So a half-written submission
  never stays: either both parts exist, or nothing does (at most until the next purge).
* Deleting (:func:`delete_submission`, and the purge) removes the rows and the object inside one
  transaction: the rows are deleted and flushed, the object is deleted, then the transaction
  commits. If the store cannot delete, the transaction is rolled back and both parts stay (the
  visitor is told to try again); a missing object counts as deleted, so a retry always finishes.
* Delete codes come from :mod:`secrets` (80 random bits) and are stored only as a salted scrypt
  hash ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`` (16-byte random salt per row); they are
  compared with :func:`hmac.compare_digest`. A delete code is ``<result code>-<secret>``, so the
  delete code alone finds its row (the result code is not secret; the 80-bit secret is).
* Result codes are 8 characters of Crockford base32 (40 random bits; input is normalised, so
  ``O``/``0`` and ``I``/``L``/``1`` are the same).
* Logs name row ids, reasons and counts; never photo bytes, birth dates, MBTI types or codes.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import random
import secrets
import textwrap
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

import numpy as np
import sqlalchemy as sa
from PIL import Image, ImageDraw, ImageFont
from sqlmodel import select

from app.core.db import BoxAudit, Photo, ReferencePerson, RegionBox, Submission, TypeProfile, session_scope, utcnow
from app.core.settings import get_settings
from app.core.vocabulary import MBTI_TYPES, REGION_LABELS, REGIONS, region_rgb
from app.core.storage import ObjectNotFound, ObjectStore, StorageError, check_key, get_store
from models.intake import IntakeError, decode_image, photo_file_type

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
VISITOR_PREFIX = "visitor/photos"
ORPHAN_GRACE = timedelta(hours=1)
EARLIEST_BIRTH_DATE = date(1900, 1, 1)

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_NORMALISE = str.maketrans({"O": "0", "I": "1", "L": "1"})
RESULT_CODE_LENGTH = 8
DELETE_SECRET_LENGTH = 16
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1

UPLOAD_TOO_LARGE = "file_too_large"
NO_MODEL = "no_model"
MESSAGES = {
    NO_MODEL: "The face-type model is not ready yet: no model has been promoted. "
    "Please come back later (the team trains and promotes one on the Models page).",
}


def _upload_too_large_message() -> str:
    return (
        f"The file is larger than {get_settings().max_upload_mb} MB. "
        "Upload a smaller photo (a normal phone photo is fine)."
    )


# ============================================================================ errors


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


# ============================================================================ results


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
    #: region -> [x0, y0, x1, y1] in pixels of ``image``
    boxes: dict = field(default_factory=dict)
    model_kind: str | None = None
    model_version_id: int | None = None
    notes: list = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)
    created_at: datetime = field(default_factory=utcnow)
    #: The upright RGB photo (kept in memory only, for display and the result card).
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
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
            "boxes": {r: [round(float(v), 1) for v in b] for r, b in self.boxes.items()},
            "model_kind": self.model_kind,
            "model_version_id": self.model_version_id,
            "notes": list(self.notes),
            "image_size": list(self.image_size),
            "created_at": self.created_at.isoformat(timespec="seconds"),
        }


@dataclass
class StoredResult:
    """A stored submission as it is shown again through its result code. The visitor's birth date
    and MBTI type are deliberately not part of it (a result link may be shared)."""

    result_code: str
    type_name: str
    description: str
    score: float
    confidence: float
    per_region: dict
    boxes: dict
    created_at: datetime
    expires_at: datetime
    model_version_id: int | None
    image_size: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict:
        return {
            "result_code": self.result_code,
            "type": self.type_name,
            "description": self.description,
            "score": self.score,
            "confidence": self.confidence,
            "per_region": self.per_region,
            "boxes": self.boxes,
            "created_at": _aware(self.created_at).isoformat(timespec="seconds"),
            "expires_at": _aware(self.expires_at).isoformat(timespec="seconds"),
            "model_version_id": self.model_version_id,
        }


@dataclass
class ReferenceImage:
    photo_id: int
    pseudonym: str
    image: np.ndarray = field(repr=False)


# ============================================================================ models (cached per process)

_model_lock = threading.Lock()
_last_model: Any = None
_profiles: dict[str, str] = {}


def forget_cached_state() -> None:
    """Drop the outage fallbacks (last served model, type descriptions); for tests and reloads."""
    global _last_model
    with _model_lock:
        _last_model = None
    _profiles.clear()


def _default_gate():
    from models.gate import get_face_gate

    return get_face_gate()


def served_model(url: str | None = None, store: ObjectStore | None = None):
    """The promoted model (loaded once per process by :mod:`models.typemodel`).

    If the database or the store cannot be reached, the model this process served last is used,
    so visitors still get results during an outage. Raises :class:`ModelUnavailable` when no
    model is promoted (or none could ever be loaded)."""
    global _last_model
    from models.typemodel import NoServedModel, get_served_model

    try:
        model = get_served_model(url=url, store=store)
    except NoServedModel as exc:
        raise ModelUnavailable(MESSAGES[NO_MODEL]) from exc
    except (sa.exc.SQLAlchemyError, StorageError, OSError, LookupError) as exc:
        with _model_lock:
            if _last_model is not None:
                log.warning("model lookup failed (%s); serving the model loaded before", type(exc).__name__)
                return _last_model
        log.error("no model could be loaded: %s", type(exc).__name__)
        raise ModelUnavailable(
            "The face-type model cannot be loaded right now. Please try again in a few minutes."
        ) from exc
    with _model_lock:
        _last_model = model
    return model


def model_status(url: str | None = None) -> str | None:
    """``None`` when a model can be served, else a message for the visitor."""
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


# ============================================================================ analyse


def _refusal(reason: str, message: str, image_size=(0, 0), image=None, gate_result=None) -> VisitResult:
    return VisitResult(ok=False, reason=reason, message=message, image_size=tuple(image_size), image=image,
                       gate_result=gate_result)


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
    """
    from models.typemodel import classify

    model = model or served_model(url=url)
    gate = gate or _default_gate()

    def step(name):
        if progress:
            progress(name, dict(STEPS)[name])

    step("check")
    if data is not None and len(data) > get_settings().max_upload_mb * 1024 * 1024:
        return _refusal(UPLOAD_TOO_LARGE, _upload_too_large_message())
    try:
        image = decode_image(data or b"", max_pixels=get_settings().max_pixels)
    except IntakeError as error:
        log.info("photo refused: %s", error.reason)
        return _refusal(error.reason, error.message)
    gate_result = gate.check(image)
    size = (int(image.shape[1]), int(image.shape[0]))
    if not gate_result.ok:
        log.info("photo refused by the gate: %s", gate_result.reason)
        return _refusal(gate_result.reason, gate_result.message, size, image, gate_result)

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
        boxes={r: [float(v) for v in p.box] for r, p in classification.regions.items()},
        model_kind=classification.model_kind,
        model_version_id=classification.model_version_id,
        notes=list(classification.notes),
        image_size=size,
        image=image,
        classification=classification,
        gate_result=gate_result,
    )


# ============================================================================ codes


def new_result_code() -> str:
    return "".join(secrets.choice(_CROCKFORD) for _ in range(RESULT_CODE_LENGTH))


def normalise_code(code: str | None) -> str:
    """Upper-case, drop spaces and dashes, map O->0 and I/L->1 (Crockford base32)."""
    return "".join((code or "").upper().split()).replace("-", "").translate(_NORMALISE)


def new_delete_code(result_code: str) -> str:
    secret = "".join(secrets.choice(_CROCKFORD) for _ in range(DELETE_SECRET_LENGTH))
    groups = "-".join(secret[i:i + 4] for i in range(0, DELETE_SECRET_LENGTH, 4))
    return f"{result_code}-{groups}"


def _split_delete_code(delete_code: str) -> tuple[str, str] | None:
    flat = normalise_code(delete_code)
    if len(flat) != RESULT_CODE_LENGTH + DELETE_SECRET_LENGTH or any(c not in _CROCKFORD for c in flat):
        return None
    return flat[:RESULT_CODE_LENGTH], flat[RESULT_CODE_LENGTH:]


def hash_delete_code(delete_code: str, salt: bytes | None = None) -> str:
    """Salted scrypt hash of the normalised code: ``scrypt$n$r$p$salt_hex$hash_hex``."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(normalise_code(delete_code).encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_delete_code(delete_code: str, stored: str) -> bool:
    """Constant-time check of a delete code against its stored hash."""
    try:
        scheme, n, r, p, salt_hex, hash_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(normalise_code(delete_code).encode(), salt=bytes.fromhex(salt_hex), n=int(n),
                                r=int(r), p=int(p), dklen=len(hash_hex) // 2)
    except (ValueError, AttributeError):
        return False
    return hmac.compare_digest(digest.hex(), hash_hex)


_DUMMY_HASH = None


def _burn_time(delete_code: str) -> None:
    """Spend a hash's time when no row matched, so timing does not tell whether a code exists."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_delete_code("0" * (RESULT_CODE_LENGTH + DELETE_SECRET_LENGTH))
    verify_delete_code(delete_code or "", _DUMMY_HASH)


# ============================================================================ store / load / delete


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def visitor_key(extension: str, now: datetime | None = None) -> str:
    """``visitor/photos/<UTC time>-<32 random hex>.<ext>``; the time lets the orphan sweep judge age."""
    stamp = _aware(now or utcnow()).astimezone(timezone.utc).strftime("%Y%m%dt%H%M%S")
    return check_key(f"{VISITOR_PREFIX}/{stamp}-{secrets.token_hex(16)}.{extension}")


def key_time(key: str) -> datetime | None:
    """The creation time encoded in a visitor key, or None for a key of another shape."""
    name = key.rsplit("/", 1)[-1]
    try:
        return datetime.strptime(name[:15], "%Y%m%dt%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def visitor_digest(key: str, data: bytes) -> str:
    """The ``sha256`` kept for a visitor photo: SHA-256 of its object key followed by its bytes.

    Keyed by the (unique, random) object key so the same photo stored twice does not clash with
    the ``(source, sha256)`` uniqueness that deduplicates reference photos, and so a visitor
    photo's hash cannot be matched against the same photo elsewhere. The object can still be
    verified: ``visitor_digest(row.object_key, store.get(row.object_key)) == row.sha256``."""
    return hashlib.sha256(key.encode() + data).hexdigest()


def check_answers(mbti: str, birth_date: date, today: date | None = None) -> None:
    """Raise ``ValueError`` for an unknown MBTI type or a birth date outside 1900..today."""
    today = today or date.today()
    if mbti not in MBTI_TYPES:
        raise ValueError("choose one of the 16 MBTI types")
    if not isinstance(birth_date, date) or isinstance(birth_date, datetime):
        raise ValueError("the birth date must be a date")
    if not EARLIEST_BIRTH_DATE <= birth_date <= today:
        raise ValueError(f"the birth date must lie between {EARLIEST_BIRTH_DATE.isoformat()} and today")


def store_submission(
    visit: VisitResult,
    data: bytes,
    mbti: str,
    birth_date: date,
    consent_training: bool,
    url: str | None = None,
    store: ObjectStore | None = None,
) -> tuple[str, str]:
    """Keep an opted-in visit: the photo object, then its Photo and Submission rows (one
    transaction). Returns ``(result_code, delete_code)``; the delete code is not kept anywhere
    (only its hash), so it must be shown to the visitor now.

    Raises :class:`NotStored` when anything fails; then nothing of the visit remains (an object
    whose clean-up failed is removed by the orphan sweep of the next purge)."""
    if not visit.ok or not visit.type_name:
        raise NotStored("Only a classified photo can be kept.", "invalid")
    try:
        check_answers(mbti, birth_date)
    except ValueError as exc:
        raise NotStored(f"Not stored: {exc}.", "invalid") from None
    settings = get_settings()
    try:
        store = store or get_store()
    except (StorageError, ValueError) as exc:
        log.error("visitor submission not stored: store unavailable (%s)", type(exc).__name__)
        raise NotStored("The photo store cannot be reached, so nothing was kept.", "store") from exc
    extension, content_type = photo_file_type(data)
    key = visitor_key(extension)
    now = utcnow()
    expires = now + timedelta(days=settings.retention_days)
    width, height = visit.image_size

    try:
        store.put(key, data, content_type)
    except Exception as exc:  # StorageError, or anything a broken backend raises
        _forget_object(store, key)
        log.error("visitor submission not stored: store write failed (%s)", type(exc).__name__)
        raise NotStored("The photo store cannot be reached, so nothing was kept.", "store") from exc

    delete_code = ""
    try:
        with session_scope(url) as session:
            photo = Photo(
                object_key=key, size_bytes=len(data), sha256=visitor_digest(key, data),
                width=int(width), height=int(height), source="visitor", consent_store=True,
                consent_training=bool(consent_training), review_status="pending", created_at=now,
                expires_at=expires,
            )
            session.add(photo)
            session.flush()
            for _attempt in range(5):
                result_code = new_result_code()
                taken = session.exec(select(Submission.id).where(Submission.result_code == result_code)).first()
                if taken is None:
                    break
            else:  # pragma: no cover - 40 random bits colliding five times
                raise RuntimeError("could not draw an unused result code")
            delete_code = new_delete_code(result_code)
            submission = Submission(
                result_code=result_code, delete_code_hash=hash_delete_code(delete_code), mbti=mbti,
                birth_date=birth_date, type_name=visit.type_name, score=float(visit.score or 0.0),
                confidence=float(visit.confidence or 0.0), result=visit.to_dict(),
                model_version_id=visit.model_version_id, photo_id=photo.id, created_at=now, expires_at=expires,
            )
            session.add(submission)
            session.flush()
            submission_id = submission.id
    except Exception as exc:
        _forget_object(store, key)
        log.error("visitor submission not stored: database write failed (%s)", type(exc).__name__)
        raise NotStored("The database cannot be reached, so nothing was kept.", "database") from exc
    log.info("visitor submission %s stored", submission_id)
    return result_code, delete_code


def _forget_object(store, key: str) -> None:
    """Best-effort removal of an object whose rows were not written; failures leave an orphan
    that :func:`sweep_orphans` removes later."""
    try:
        store.delete(key)
    except Exception as exc:
        log.warning("could not remove an unreferenced visitor object now (%s); the purge will", type(exc).__name__)


def _find_submission(session, result_code: str, now: datetime) -> Submission | None:
    row = session.exec(select(Submission).where(Submission.result_code == result_code)).first()
    if row is None or _aware(row.expires_at) <= now:
        return None
    return row


def load_submission(code: str, url: str | None = None) -> StoredResult | None:
    """The stored result for a result code (or a delete code), or None when unknown or expired.
    Raises :class:`ResultsUnavailable` when the database cannot be reached."""
    flat = normalise_code(code)
    split = _split_delete_code(code) if len(flat) > RESULT_CODE_LENGTH else None
    result_code = split[0] if split else flat
    if len(result_code) != RESULT_CODE_LENGTH or any(c not in _CROCKFORD for c in result_code):
        return None
    try:
        with session_scope(url) as session:
            row = _find_submission(session, result_code, utcnow())
            if row is None:
                return None
            description = session.exec(
                select(TypeProfile.description).where(TypeProfile.name == row.type_name)).first()
    except sa.exc.SQLAlchemyError as exc:
        log.error("looking up a kept result failed: database error (%s)", type(exc).__name__)
        raise ResultsUnavailable("Kept results cannot be reached right now. Please try again later.") from exc
    stored = dict(row.result or {})
    return StoredResult(
        result_code=row.result_code,
        type_name=row.type_name,
        description=description or stored.get("description", ""),
        score=row.score,
        confidence=row.confidence,
        per_region=stored.get("per_region", {}),
        boxes=stored.get("boxes", {}),
        created_at=row.created_at,
        expires_at=row.expires_at,
        model_version_id=row.model_version_id,
        image_size=tuple(stored.get("image_size", (0, 0))),
    )


def _delete_rows_and_object(session, store, submission: Submission | None, photo: Photo | None) -> None:
    """Delete the rows (flushed, not committed) and then the object; raises before commit when
    the store fails, so the caller's transaction rolls back and nothing is half-deleted."""
    if submission is not None:
        session.delete(submission)
        session.flush()
    if photo is not None:
        # Boxes and their audit trail, if the team labeled this (training-consented) photo.
        session.exec(sa.delete(BoxAudit).where(BoxAudit.photo_id == photo.id))
        session.exec(sa.delete(RegionBox).where(RegionBox.photo_id == photo.id))
        session.delete(photo)
        session.flush()
    if photo is not None:
        try:
            store.delete(photo.object_key)
        except ObjectNotFound:
            pass


def delete_submission(
    result_code: str | None,
    delete_code: str,
    url: str | None = None,
    store: ObjectStore | None = None,
) -> bool:
    """Delete a stored submission: its rows and its photo object. True when something was
    deleted; False when the code is wrong, unknown or already deleted (no hint which).

    ``result_code`` may be None (the delete code names its result). Raises :class:`DeleteFailed`
    when the database or the store cannot be reached; then nothing was deleted."""
    split = _split_delete_code(delete_code or "")
    if split is None:
        _burn_time(delete_code)
        return False
    code_result, _secret = split
    if result_code and normalise_code(result_code) != code_result:
        _burn_time(delete_code)
        return False
    try:
        store = store or get_store()
        with session_scope(url) as session:
            row = session.exec(select(Submission).where(Submission.result_code == code_result)).first()
            if row is None or not verify_delete_code(delete_code, row.delete_code_hash):
                if row is None:
                    _burn_time(delete_code)
                return False
            submission_id = row.id
            photo = session.get(Photo, row.photo_id) if row.photo_id else None
            _delete_rows_and_object(session, store, row, photo)
    except (StorageError, ValueError) as exc:
        log.error("deleting a submission failed: store unavailable (%s)", type(exc).__name__)
        raise DeleteFailed("The photo store cannot be reached, so nothing was deleted. Please try again later.") from exc
    except sa.exc.SQLAlchemyError as exc:
        log.error("deleting a submission failed: database error (%s)", type(exc).__name__)
        raise DeleteFailed("The database could not be used just now, so nothing was deleted. "
                           "Please try again later.") from exc
    log.info("visitor submission %s deleted by its owner", submission_id)
    return True


# ============================================================================ purge


def purge_expired(now: datetime | None = None, url: str | None = None, store: ObjectStore | None = None) -> int:
    """Delete visitor data past its ``expires_at``: submissions with their photo rows and objects,
    and visitor photos without a submission. Then sweep orphan visitor objects. Returns the number
    of expired submissions removed. A submission whose object cannot be deleted is kept (and
    counted out) until a later run; the run goes on with the others."""
    now = _aware(now or utcnow())
    store = store or get_store()
    removed = 0
    with session_scope(url) as session:
        expired = [
            (row.id, row.photo_id)
            for row in session.exec(select(Submission).where(Submission.expires_at <= now))
        ]
        lone_photos = [
            photo.id
            for photo in session.exec(
                select(Photo).where(Photo.source == "visitor", Photo.expires_at != None, Photo.expires_at <= now)  # noqa: E711
            )
        ]
    for submission_id, photo_id in expired:
        try:
            with session_scope(url) as session:
                submission = session.get(Submission, submission_id)
                photo = session.get(Photo, photo_id) if photo_id else None
                if photo is not None and photo.source != "visitor":
                    photo = None  # never touch reference photos
                _delete_rows_and_object(session, store, submission, photo)
            removed += 1
        except (StorageError, sa.exc.SQLAlchemyError) as exc:
            log.warning("expired submission %s kept for the next purge (%s)", submission_id, type(exc).__name__)
    for photo_id in lone_photos:
        try:
            with session_scope(url) as session:
                photo = session.get(Photo, photo_id)
                if photo is None:
                    continue
                if session.exec(select(Submission.id).where(Submission.photo_id == photo_id)).first() is not None:
                    continue
                _delete_rows_and_object(session, store, None, photo)
        except (StorageError, sa.exc.SQLAlchemyError) as exc:
            log.warning("expired visitor photo %s kept for the next purge (%s)", photo_id, type(exc).__name__)
    try:
        swept = sweep_orphans(now=now, url=url, store=store)
    except (StorageError, sa.exc.SQLAlchemyError) as exc:
        log.warning("orphan sweep skipped (%s)", type(exc).__name__)
        swept = 0
    log.info("purge: %d expired submission(s) removed, %d orphan object(s) removed", removed, swept)
    return removed


def sweep_orphans(now: datetime | None = None, url: str | None = None, store: ObjectStore | None = None,
                  grace: timedelta = ORPHAN_GRACE) -> int:
    """Delete visitor objects that no Photo row references and that are older than ``grace``
    (younger ones may belong to a submission being written right now). Returns the count."""
    now = _aware(now or utcnow())
    store = store or get_store()
    keys = store.list(VISITOR_PREFIX + "/")
    if not keys:
        return 0
    with session_scope(url) as session:
        known = set(session.exec(select(Photo.object_key).where(Photo.source == "visitor")))
    removed = 0
    for key in keys:
        if key in known:
            continue
        born = key_time(key)
        if born is not None and now - born < grace:
            continue
        store.delete(key)
        removed += 1
    return removed


# ============================================================================ reference images


@dataclass(frozen=True)
class ReferencePhoto:
    photo_id: int
    object_key: str
    pseudonym: str


def pick_reference_photos(type_name: str, rng: random.Random | None = None,
                          url: str | None = None) -> list[ReferencePhoto]:
    """Every reference photo of people of ``type_name`` in a random order without repeats,
    one photo of each person first, then their further photos. Empty when the database is down."""
    rng = rng or random.Random()
    try:
        with session_scope(url) as session:
            rows = list(session.exec(
                select(Photo.id, Photo.object_key, ReferencePerson.pseudonym)
                .join(ReferencePerson, Photo.person_id == ReferencePerson.id)
                .where(Photo.source == "reference", ReferencePerson.type_name == type_name)
                .order_by(Photo.id)
            ))
    except sa.exc.SQLAlchemyError as exc:
        log.warning("reference photos unavailable (%s)", type(exc).__name__)
        return []
    seen: set[str] = set()
    first, rest = [], []
    for photo_id, key, pseudonym in rng.sample(rows, len(rows)):
        (rest if pseudonym in seen else first).append(ReferencePhoto(int(photo_id), key, pseudonym))
        seen.add(pseudonym)
    return first + rest


def reference_images(
    type_name: str,
    k: int = 4,
    rng: random.Random | None = None,
    url: str | None = None,
    store: ObjectStore | None = None,
) -> list[ReferenceImage]:
    """Up to ``k`` decoded reference photos of ``type_name`` (see :func:`pick_reference_photos`).

    Fewer when fewer exist or some cannot be read; never raises (an unreachable database or store
    gives fewer or no images)."""
    picked = pick_reference_photos(type_name, rng, url)
    try:
        store = store or get_store()
    except (StorageError, ValueError):
        return []
    out: list[ReferenceImage] = []
    for ref in picked:
        if len(out) >= k:
            break
        try:
            image = decode_image(store.get(ref.object_key))
        except (StorageError, IntakeError, ValueError) as exc:
            log.warning("reference photo %s skipped (%s)", ref.photo_id, type(exc).__name__)
            continue
        out.append(ReferenceImage(photo_id=ref.photo_id, pseudonym=ref.pseudonym, image=image))
    return out


# ============================================================================ drawing


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def draw_regions(image: np.ndarray | Image.Image, boxes: dict, max_side: int | None = None,
                 crop_margin: float | None = None) -> Image.Image:
    """The photo with the region boxes drawn and labelled (a new RGB image).

    ``crop_margin`` crops to the regions' bounding box grown by that fraction on every side;
    ``max_side`` scales the result down before drawing, so lines and labels stay readable."""
    canvas = (image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))).convert("RGB")
    boxes = {r: [float(v) for v in b] for r, b in (boxes or {}).items() if r in REGIONS}
    if crop_margin is not None and boxes:
        xs0, ys0, xs1, ys1 = zip(*boxes.values())
        x0, y0, x1, y1 = min(xs0), min(ys0), max(xs1), max(ys1)
        mx, my = (x1 - x0) * crop_margin, (y1 - y0) * crop_margin
        left, top = max(0, int(x0 - mx)), max(0, int(y0 - my))
        right, bottom = min(canvas.width, int(x1 + mx)), min(canvas.height, int(y1 + my))
        if right - left > 8 and bottom - top > 8:
            canvas = canvas.crop((left, top, right, bottom))
            boxes = {r: [b[0] - left, b[1] - top, b[2] - left, b[3] - top] for r, b in boxes.items()}
    canvas = canvas.copy()
    if max_side and max(canvas.size) > max_side:
        scale = max_side / max(canvas.size)
        canvas = canvas.resize((max(1, round(canvas.width * scale)), max(1, round(canvas.height * scale))),
                               Image.LANCZOS)
        boxes = {r: [v * scale for v in b] for r, b in boxes.items()}
    line = max(2, round(max(canvas.size) / 250))
    draw = ImageDraw.Draw(canvas)
    font = _font(max(12, round(max(canvas.size) / 40)))
    for region in REGIONS:
        if region not in boxes:
            continue
        x0, y0, x1, y1 = boxes[region]
        color = region_rgb(region)
        draw.rectangle([x0, y0, x1, y1], outline=color, width=line)
        label = REGION_LABELS[region]
        size = getattr(font, "size", 12)
        tx = x0 + line
        ty = max(0.0, y0 - size - 2 * line) if region == "face" else y0 + line
        bbox = draw.textbbox((tx, ty), label, font=font)
        draw.rectangle([bbox[0] - 2, bbox[1] - 2, bbox[2] + 2, bbox[3] + 2], fill=color)
        draw.text((tx, ty), label, fill=(255, 255, 255), font=font)
    return canvas


def result_card_png(
    type_name: str,
    description: str,
    image: np.ndarray | Image.Image | None = None,
    boxes: dict | None = None,
    when: date | datetime | None = None,
    confidence: float | None = None,
) -> bytes:
    """A shareable PNG card: type, description, a thumbnail of the face with the three regions,
    the date and the for-fun line. ``image`` may be None (a card without photo)."""
    width, height = 900, 540
    card = Image.new("RGB", (width, height), (250, 248, 244))
    draw = ImageDraw.Draw(card)
    draw.rectangle([0, 0, width, 10], fill=(90, 70, 160))
    title_font, body_font, small_font = _font(44), _font(20), _font(16)
    text_x = 40
    if image is not None:
        thumb = draw_regions(image, boxes or {}, max_side=400, crop_margin=0.35 if boxes else None)
        thumb.thumbnail((340, 400), Image.LANCZOS)
        card.paste(thumb, (40, 50))
        draw.rectangle([39, 49, 40 + thumb.width, 50 + thumb.height], outline=(200, 200, 200))
        text_x = 40 + max(thumb.width, 200) + 40
    y = 50
    draw.text((text_x, y), "My facetype", fill=(110, 110, 110), font=body_font)
    y += 32
    draw.text((text_x, y), type_name, fill=(90, 70, 160), font=title_font)
    y += 64
    if confidence is not None:
        draw.text((text_x, y), f"Confidence {confidence:.0%}", fill=(80, 80, 80), font=body_font)
        y += 36
    chars = max(20, (width - text_x - 30) // 11)
    for line in textwrap.wrap(description or "", chars)[:10]:
        draw.text((text_x, y), line, fill=(40, 40, 40), font=body_font)
        y += 28
    moment = when or date.today()
    day = moment.date() if isinstance(moment, datetime) else moment
    draw.text((40, height - 62), day.isoformat(), fill=(110, 110, 110), font=small_font)
    draw.text((40, height - 36), "For fun, not a measure of worth.", fill=(110, 110, 110), font=small_font)
    buffer = io.BytesIO()
    card.save(buffer, format="PNG")
    return buffer.getvalue()


def visit_card_png(visit: VisitResult) -> bytes:
    """:func:`result_card_png` for a fresh visit."""
    return result_card_png(visit.type_name or "", visit.description, visit.image, visit.boxes,
                           visit.created_at, visit.confidence)


def image_to_png(image: np.ndarray | Image.Image) -> bytes:
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))).save(buffer, format="PNG")
    return buffer.getvalue()


__all__ = [
    # constants
    "FOR_FUN_LINE", "STEPS", "REGION_LABELS", "MESSAGES", "NO_MODEL", "UPLOAD_TOO_LARGE",
    "EARLIEST_BIRTH_DATE", "VISITOR_PREFIX", "ORPHAN_GRACE",
    # results and errors
    "VisitResult", "StoredResult", "ReferenceImage",
    "VisitError", "ModelUnavailable", "NotStored", "ResultsUnavailable", "DeleteFailed",
    # models
    "served_model", "model_status", "type_profiles", "forget_cached_state", "ReferencePhoto",
    "pick_reference_photos",
    # the visit
    "analyse_photo", "check_answers", "store_submission", "load_submission", "delete_submission",
    "purge_expired", "sweep_orphans", "reference_images",
    # pictures
    "draw_regions", "result_card_png", "visit_card_png", "image_to_png",
    # codes
    "new_result_code", "new_delete_code", "normalise_code", "hash_delete_code", "verify_delete_code",
]
