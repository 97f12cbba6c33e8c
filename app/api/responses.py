"""Building the API's responses from the services' results (reference image links included)."""

from __future__ import annotations

import logging
import time

from fastapi import Request

from app.api.errors import (
    BAD_UPLOAD_REASONS,
    PAYLOAD_TOO_LARGE_REASONS,
    ApiError,
)
from app.api.schemas import ClassifyResponse, ModelInfo, RegionResult
from app.core import storage
from app.core.db import Photo, session_scope
from app.core.storage import LocalStore, ObjectNotFound
from app.core.vocabulary import PhotoSource
from app.services import analysis, gallery, submissions
from models.serving import NoServedModel

log = logging.getLogger("facetype.api")


# ---------------------------------------------------------------------------- reference images


def reference_urls(request: Request, type_name: str) -> list[str | None]:
    """Four URLs of reference photos of the type: presigned from S3, else served by this API."""
    chosen = gallery.pick_reference_photos(type_name)[:4]
    store = None
    try:
        store = storage.get_store()
        if isinstance(store, LocalStore):  # file:// URLs mean nothing to a phone
            store = None
    except Exception as exc:  # fall back to URLs of this API
        log.warning("the store is unavailable for presigning (%s)", type(exc).__name__)
    urls: list[str | None] = []
    for ref in chosen:
        url = None
        if store is not None:
            try:
                url = store.url(ref.object_key)
            except Exception as exc:
                log.warning("presigning failed (%s)", type(exc).__name__)
        urls.append(url or str(request.url_for("reference_image", photo_id=ref.photo_id)))
    return (urls + [None] * 4)[:4]


def reference_key(photo_id: int) -> str | None:
    """The object key of a reference photo (None for unknown ids and visitor photos)."""
    from sqlmodel import select

    with session_scope() as session:
        return session.exec(select(Photo.object_key)
                            .where(Photo.id == photo_id, Photo.source == PhotoSource.REFERENCE)).first()


def reference_bytes(photo_id: int) -> bytes | None:
    key = reference_key(photo_id)
    if key is None:
        return None
    try:
        return storage.get_visitor_store().get(key)
    except ObjectNotFound:
        return None


# ---------------------------------------------------------------------------- responses


def model_info(visit_or_stored) -> ModelInfo | None:
    mid = getattr(visit_or_stored, "model_version_id", None)
    kind = getattr(visit_or_stored, "model_kind", None)
    if mid is None and kind is None:
        return None
    return ModelInfo(id=mid, kind=kind)


def per_region(per_region: dict, boxes: dict) -> dict[str, RegionResult]:
    out = {}
    for region, values in (per_region or {}).items():
        box = boxes.get(region) if boxes else None
        out[region] = RegionResult(**{**values, "box": [round(float(v), 1) for v in box] if box else None})
    return out


def refusal_body(visit: analysis.VisitResult) -> ClassifyResponse:
    return ClassifyResponse(
        human=False, male_type=None, dsc=None, img1=None, img2=None, img3=None, img4=None,
        reason=visit.reason, message=visit.message, score=None, confidence=None, per_region=None,
        model=None, notes=[], stored=False, result_code=None, delete_code=None,
    )


def classify_sync(request: Request, data: bytes, fields) -> ClassifyResponse:
    started = time.perf_counter()
    try:
        visit = analysis.analyse_photo(data)
    except analysis.ModelUnavailable as exc:
        raise ApiError(503, "no_model", exc.message) from None
    except NoServedModel:
        raise ApiError(503, "no_model", analysis.MESSAGES[analysis.NO_MODEL]) from None
    if not visit.ok:
        log.info("classify: refused (%s) in %.0f ms", visit.reason, 1000 * (time.perf_counter() - started))
        if visit.reason in PAYLOAD_TOO_LARGE_REASONS:
            raise ApiError(413, visit.reason, visit.message)
        if visit.reason in BAD_UPLOAD_REASONS:
            raise ApiError(422, visit.reason, visit.message)
        return refusal_body(visit)

    result_code = delete_code = store_message = None
    if fields.consent_store:
        try:
            result_code, delete_code = submissions.store_submission(
                visit, data, fields.mbti.value, fields.age, fields.consent_training)
        except analysis.NotStored as exc:
            store_message = exc.message
    imgs = reference_urls(request, visit.type_name)
    log.info("classify: ok%s in %.0f ms", f", stored as {result_code}" if result_code else "",
             1000 * (time.perf_counter() - started))
    return ClassifyResponse(
        human=True, male_type=visit.type_name, dsc=visit.description,
        img1=imgs[0], img2=imgs[1], img3=imgs[2], img4=imgs[3],
        reason=None, message=analysis.FOR_FUN_LINE,
        score=round(float(visit.score), 4), confidence=round(float(visit.confidence), 4),
        per_region=per_region(visit.per_region, visit.boxes), model=model_info(visit),
        notes=[str(n) for n in visit.notes], stored=result_code is not None, store_message=store_message,
        result_code=result_code, delete_code=delete_code,
        created_at=visit.created_at.isoformat(timespec="seconds") if result_code else None,
    )
