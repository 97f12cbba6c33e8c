"""A visitor's visit: analyse a photo, and — only when the visitor opts in — keep, reopen and delete it.

Plain Python (no Streamlit): the Try it page, the Privacy page, the JSON API and the purge all
use this module.

Privacy rules kept here
-----------------------
* :func:`analyse_photo` works in memory only: it writes nothing to the database, the object store
  or the logs. Without opt-in nothing about a visit is written anywhere.
* :func:`store_submission` (opt-in only) keeps the photo upright and without metadata (no EXIF
  GPS position or camera serial: see :func:`app.services.visitor_photos.without_metadata`); it writes the photo object **first**, then the Photo and
  Submission rows in **one** transaction; when the rows fail the object is deleted again. If that
  delete fails too (the store went away in between), the object is an *orphan*: its key carries
  its creation time (``visitor/photos/<YYYYmmddTHHMMSS>-<random>.<ext>``) and
  :func:`sweep_orphans` (run by :func:`app.services.retention.purge_expired`) deletes visitor objects that no
  row references once they are older than :data:`ORPHAN_GRACE`. So a half-written submission
  never stays: either both parts exist, or nothing does (at most until the next purge).
* Deleting (:func:`delete_submission`, and the purge) removes the rows and the object inside one
  transaction: the rows are deleted and flushed, the object is deleted, then the transaction
  commits. If the store cannot delete, the transaction is rolled back and both parts stay (the
  visitor is told to try again); a missing object counts as deleted, so a retry always finishes.
* Result codes and delete codes, and how a delete code is hashed and checked:
  :mod:`app.services.result_codes` (only the delete code's salted hash is stored).
* Logs name row ids, reasons and counts; never photo bytes, birth dates, MBTI types or codes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import select

from app.core.db import (
    BoxAudit,
    BoxSuggestion,
    Photo,
    RegionBox,
    Submission,
    TypeProfile,
    as_utc,
    checkpoint,
    session_scope,
    utcnow,
)
from app.core.settings import get_settings
from app.core.vocabulary import PhotoSource, ReviewStatus
from app.core.storage import (
    ObjectNotFound,
    ObjectStore,
    StorageError,
    get_visitor_store,
)
from app.services.analysis import (
    DeleteFailed,
    NotStored,
    ResultsUnavailable,
    VisitResult,
    check_answers,
)
from app.services.result_codes import (
    CROCKFORD,
    RESULT_CODE_LENGTH,
    burn_time,
    hash_delete_code,
    new_delete_code,
    new_result_code,
    normalise_code,
    split_delete_code,
    verify_delete_code,
)
from app.services.visitor_photos import visitor_digest, visitor_key, without_metadata
from models.intake import IntakeError, photo_file_type

log = logging.getLogger(__name__)


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
    explanation: str = ""

    def to_dict(self) -> dict:
        return {
            "result_code": self.result_code,
            "type": self.type_name,
            "description": self.description,
            "score": self.score,
            "confidence": self.confidence,
            "per_region": self.per_region,
            "explanation": self.explanation,
            "boxes": self.boxes,
            "created_at": as_utc(self.created_at).isoformat(timespec="seconds"),
            "expires_at": as_utc(self.expires_at).isoformat(timespec="seconds"),
            "model_version_id": self.model_version_id,
        }


# ----------------------------------------------------------------------------- store / load / delete


def _check_keepable(visit: VisitResult, mbti: str, birth_date: date) -> None:
    """Raise :class:`NotStored` unless the visit is classified and the answers are valid."""
    if not visit.ok or not visit.type_name:
        raise NotStored("Only a classified photo can be kept.", "invalid")
    try:
        check_answers(mbti, birth_date)
    except ValueError as exc:
        raise NotStored(f"Not stored: {exc}.", "invalid") from None


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
    _check_keepable(visit, mbti, birth_date)
    settings = get_settings()
    try:
        store = store or get_visitor_store()
    except (StorageError, ValueError) as exc:
        log.error("visitor submission not stored: store unavailable (%s)", type(exc).__name__)
        raise NotStored("The photo store cannot be reached, so nothing was kept.", "store") from exc
    try:
        data = without_metadata(data)
    except IntakeError as exc:
        raise NotStored("Only a readable photo can be kept.", "invalid") from exc
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
                width=int(width), height=int(height), source=PhotoSource.VISITOR, consent_store=True,
                consent_training=bool(consent_training), review_status=ReviewStatus.PENDING, created_at=now,
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


def update_submission(result_code: str, visit: VisitResult, mbti: str, birth_date: date,
                      url: str | None = None) -> bool:
    """Analysing the same kept photo again in one visit: replace the kept answers and result of
    ``result_code`` in place (the photo object, the codes and the expiry stay). True when updated;
    False when the submission no longer exists (deleted or expired): then keep it anew.

    Raises :class:`NotStored` for an unusable visit or answers, or when the database fails."""
    _check_keepable(visit, mbti, birth_date)
    try:
        with session_scope(url) as session:
            row = _find_submission(session, normalise_code(result_code), utcnow())
            if row is None:
                return False
            row.mbti, row.birth_date, row.type_name = mbti, birth_date, visit.type_name
            row.score, row.confidence = float(visit.score or 0.0), float(visit.confidence or 0.0)
            row.result, row.model_version_id = visit.to_dict(), visit.model_version_id
            session.add(row)
            submission_id = row.id
    except sa.exc.SQLAlchemyError as exc:
        log.error("visitor submission not updated: database error (%s)", type(exc).__name__)
        raise NotStored("The database cannot be reached, so the kept copy was not updated.", "database") from exc
    log.info("visitor submission %s updated by a new analysis", submission_id)
    return True


def _forget_object(store, key: str) -> None:
    """Best-effort removal of an object whose rows were not written; failures leave an orphan
    that :func:`sweep_orphans` removes later."""
    try:
        store.delete(key)
    except Exception as exc:
        log.warning("could not remove an unreferenced visitor object now (%s); the purge will", type(exc).__name__)


def _find_submission(session, result_code: str, now: datetime) -> Submission | None:
    row = session.exec(select(Submission).where(Submission.result_code == result_code)).first()
    if row is None or as_utc(row.expires_at) <= now:
        return None
    return row


def load_submission(code: str, url: str | None = None) -> StoredResult | None:
    """The stored result for a result code (or a delete code), or None when unknown or expired.
    Raises :class:`ResultsUnavailable` when the database cannot be reached."""
    flat = normalise_code(code)
    split = split_delete_code(code) if len(flat) > RESULT_CODE_LENGTH else None
    result_code = split[0] if split else flat
    if len(result_code) != RESULT_CODE_LENGTH or any(c not in CROCKFORD for c in result_code):
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
        explanation=stored.get("explanation", ""),
    )


def delete_rows_and_object(session, store, submission: Submission | None, photo: Photo | None) -> None:
    """Delete the rows (flushed, not committed) and then the object; raises before commit when
    the store fails, so the caller's transaction rolls back and nothing is half-deleted."""
    if submission is not None:
        session.delete(submission)
        session.flush()
    if photo is not None:
        # Boxes and their audit trail, if the team labeled this (training-consented) photo.
        session.exec(sa.delete(BoxAudit).where(BoxAudit.photo_id == photo.id))
        session.exec(sa.delete(RegionBox).where(RegionBox.photo_id == photo.id))
        session.exec(sa.delete(BoxSuggestion).where(BoxSuggestion.photo_id == photo.id))
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
    split = split_delete_code(delete_code or "")
    if split is None:
        burn_time(delete_code)
        return False
    code_result, _secret = split
    if result_code and normalise_code(result_code) != code_result:
        burn_time(delete_code)
        return False
    try:
        store = store or get_visitor_store()
        with session_scope(url) as session:
            row = session.exec(select(Submission).where(Submission.result_code == code_result)).first()
            if row is None or not verify_delete_code(delete_code, row.delete_code_hash):
                if row is None:
                    burn_time(delete_code)
                return False
            submission_id = row.id
            photo = session.get(Photo, row.photo_id) if row.photo_id else None
            delete_rows_and_object(session, store, row, photo)
    except (StorageError, ValueError) as exc:
        log.error("deleting a submission failed: store unavailable (%s)", type(exc).__name__)
        finish_at_purge = _expire_soon(code_result, url)
        raise DeleteFailed(
            "The photo store cannot be reached, so nothing was deleted yet. Please try again later"
            + (f"; if you do not, the purge deletes it within {DELETE_RETRY_GRACE.seconds // 60} minutes."
               if finish_at_purge else ".")) from exc
    except sa.exc.SQLAlchemyError as exc:
        log.error("deleting a submission failed: database error (%s)", type(exc).__name__)
        raise DeleteFailed("The database could not be used just now, so nothing was deleted. "
                           "Please try again later.") from exc
    checkpoint(url)
    log.info("visitor submission %s deleted by its owner", submission_id)
    return True


#: After a delete the store failed (it may still have removed the object), the submission expires
#: this soon, so the first purge after it finishes the delete if the visitor does not retry.
DELETE_RETRY_GRACE = timedelta(minutes=10)


def _expire_soon(result_code: str, url: str | None) -> bool:
    """Move a submission's (and its photo's) expiry to ``DELETE_RETRY_GRACE`` from now; False when
    the database cannot be written either."""
    soon = utcnow() + DELETE_RETRY_GRACE
    try:
        with session_scope(url) as session:
            row = session.exec(select(Submission).where(Submission.result_code == result_code)).first()
            if row is None:
                return False
            row.expires_at = min(as_utc(row.expires_at), as_utc(soon))
            photo = session.get(Photo, row.photo_id) if row.photo_id else None
            if photo is not None:
                photo.expires_at = row.expires_at
    except sa.exc.SQLAlchemyError as exc:
        log.error("could not mark a failed delete for the purge (%s)", type(exc).__name__)
        return False
    log.info("visitor submission %s: delete unfinished, expires in %s", row.id, DELETE_RETRY_GRACE)
    return True
