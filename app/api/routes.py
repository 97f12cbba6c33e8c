"""The FastAPI app and its routes."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

import sqlalchemy as sa
from fastapi import FastAPI, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.errors import (
    API_VERSION,
    PLAIN_MESSAGES,
    STATUS_ERRORS,
    ApiError,
    error_response,
    validation_message,
)
from app.api.limits import LimitsMiddleware, limiter_from_settings
from app.api.parsing import FieldError, parse_classify_request
from app.api.responses import classify_sync, per_region, reference_bytes, reference_urls
from app.api.schemas import (
    ClassifyForm,
    ClassifyRequest,
    ClassifyResponse,
    DeleteResponse,
    HealthResponse,
    ModelInfo,
    TypeInfo,
    TypesResponse,
    error_responses,
)
from app.core import db, storage
from app.core.db import TypeProfile, session_scope
from app.core.storage import StorageError
from app.services import analysis, result_codes, submissions
from app.services.bootstrap import ConfigurationError, prepare, public_message
from models.intake import photo_file_type
from models.serving import warm_load

log = logging.getLogger("facetype.api")




# ============================================================================ app


def _prepare(state) -> None:
    """Read the settings (the rate limiter's too) and prepare the project. Raises ConfigurationError, or
    ValueError: a setting of the wrong kind (SettingsError), a storage URL of an unknown kind."""
    state.limiter = limiter_from_settings()
    prepare()


async def _startup(app: FastAPI) -> None:
    app.state.config_error = None
    app.state.limiter = None
    app.state.last_prepare = time.monotonic()
    try:
        await run_in_threadpool(_prepare, app.state)
    except (ConfigurationError, ValueError) as exc:
        app.state.config_error = public_message(exc)
        log.error("facetype API is not ready: %s", exc)
        return
    try:  # threads, the face gate and the served model now, not on the first visitor's request
        await run_in_threadpool(warm_load)
    except Exception as exc:  # never fatal: /healthz and classify report what is missing
        log.warning("warm-up incomplete (%s)", type(exc).__name__)


@asynccontextmanager
async def lifespan(app: FastAPI):
    await _startup(app)
    yield


api = FastAPI(
    title="facetype API",
    version=API_VERSION,
    summary="Which of five made-up, survey-derived face types a photo falls into. For fun only.",
    description=(
        "JSON API for mobile clients, compatible with the source's `RegisterResult` protocol.\n\n"
        + analysis.FOR_FUN_LINE
        + "\n\nNothing is stored unless `consent_store` is true."
    ),
    lifespan=lifespan,
)
api.add_middleware(LimitsMiddleware)


@api.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError):
    return error_response(exc.status, exc.error, exc.message, headers=exc.headers)


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException):
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    message = PLAIN_MESSAGES.get((exc.status_code, message), message)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:  # every method of the path, not only those of the first matching route
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request.scope))}
    return error_response(exc.status_code, STATUS_ERRORS.get(exc.status_code, "error"), message, headers=headers)


def _allowed_methods(scope) -> list[str]:
    from starlette.routing import Match

    methods: set[str] = set()
    for route in api.router.routes:
        if getattr(route, "methods", None) and route.matches({**scope, "method": "__none__"})[0] != Match.NONE:
            methods |= set(route.methods)
    return sorted(methods)


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError):
    message, fields = validation_message(list(exc.errors()))
    return error_response(422, "invalid_request", message, fields=fields)


@api.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception):
    log.error("unexpected error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return error_response(500, "internal_error", "Something went wrong on our side. Please try again later.")


_SOURCE_EXAMPLE = ClassifyRequest.model_config["json_schema_extra"]["examples"][0]
#: One handler reads both body formats (parsing.py: its own 4xx for each bad body), so FastAPI cannot
#: declare the body itself: the OpenAPI body is the two models' schemas, as FastAPI's docs do it.
_CLASSIFY_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": ClassifyRequest.model_json_schema(),
            "examples": {
                "source": {"summary": "The source's Flutter request", "value": _SOURCE_EXAMPLE},
                "keep": {"summary": "Keep the result (returns result and delete codes)",
                         "value": {**_SOURCE_EXAMPLE, "mbti": "infp", "consent_store": True}},
            },
        },
        "multipart/form-data": {"schema": ClassifyForm.model_json_schema()},
    },
}


async def _classify(request: Request) -> ClassifyResponse | JSONResponse:
    try:
        data, fields = await parse_classify_request(request)
    except FieldError as exc:
        return error_response(422, "invalid_request", exc.message, fields=exc.fields)
    return await run_in_threadpool(classify_sync, request, data, fields)


@api.post(
    "/v1/classify",
    response_model=ClassifyResponse,
    summary="Classify a photo (the source's RegisterResult)",
    description=(
        "Checks the photo with the face gate and classifies it with the promoted model. A photo without one "
        "usable face answers 200 with `human: false` and the `reason`; an unusable upload (not base64, not an "
        "image, too large, damaged) or an invalid field answers 4xx. With `consent_store` the photo and result "
        "are kept and `result_code` / `delete_code` come back; without it nothing is stored. The birth date and "
        "MBTI type are checked, and kept only with `consent_store`."
    ),
    openapi_extra={"requestBody": _CLASSIFY_BODY},
    responses=error_responses(400, 413, 415, 422, 429, 503),
    tags=["classify"],
)
async def classify(request: Request):
    return await _classify(request)


@api.post("/RegisterResult", include_in_schema=False)
async def register_result(request: Request):
    """The source's path, for old clients: same handler as POST /v1/classify."""
    return await _classify(request)


# ---------------------------------------------------------------------------- results

CODE_PATH = Path(description="The 8-character result code (Crockford base32; case, dashes and O/0, I/L/1 do not "
                 "matter).", min_length=1, max_length=64, examples=["7K3M9QZD"])


def _result_code(code: str) -> str:
    flat = result_codes.normalise_code(code)
    if len(flat) != result_codes.RESULT_CODE_LENGTH:
        raise ApiError(404, "not_found", "No stored result has this code (it may have expired or been deleted).")
    return flat


@api.get("/v1/results/{code}", response_model=ClassifyResponse, responses=error_responses(404, 422, 429, 503),
         summary="A stored result", tags=["results"])
def get_result(request: Request, code: str = CODE_PATH):
    """The result kept with `consent_store`, in the classify response's shape (without the delete code,
    the birth date or the MBTI type). Reference images are drawn again."""
    flat = _result_code(code)
    try:
        stored = submissions.load_submission(flat)
    except analysis.ResultsUnavailable as exc:
        raise ApiError(503, "unavailable", exc.message) from None
    if stored is None:
        raise ApiError(404, "not_found", "No stored result has this code (it may have expired or been deleted).")
    imgs = reference_urls(request, stored.type_name)
    return ClassifyResponse(
        human=True, male_type=stored.type_name, dsc=stored.description,
        img1=imgs[0], img2=imgs[1], img3=imgs[2], img4=imgs[3],
        reason=None, message=analysis.FOR_FUN_LINE, score=stored.score, confidence=stored.confidence,
        per_region=per_region(stored.per_region, stored.boxes),
        model=ModelInfo(id=stored.model_version_id, kind=None) if stored.model_version_id is not None else None,
        notes=[], stored=True, result_code=stored.result_code, delete_code=None,
        created_at=db.as_utc(stored.created_at).isoformat(timespec="seconds"),
        expires_at=db.as_utc(stored.expires_at).isoformat(timespec="seconds"),
    )


@api.delete("/v1/results/{code}", response_model=DeleteResponse, responses=error_responses(404, 422, 429, 503),
            summary="Delete a stored result", tags=["results"])
def delete_result(
    code: str = CODE_PATH,
    x_delete_code: str = Header(min_length=1, max_length=128, description="The delete code given when the result "
                                "was stored.", examples=["7K3M9QZD-ABCD-EFGH-JKMN-PQRS"]),
):
    """Deletes the photo and the result for good. A wrong or unknown code gives 404 (no hint which)."""
    flat = _result_code(code)
    try:
        deleted = submissions.delete_submission(flat, x_delete_code)
    except analysis.DeleteFailed as exc:
        raise ApiError(503, "unavailable", exc.message) from None
    if not deleted:
        raise ApiError(404, "not_found", "No stored result matches this code and delete code.")
    return DeleteResponse(deleted=True, message="The photo and the result were deleted.")


# ---------------------------------------------------------------------------- types, images, health


@api.get("/v1/types", response_model=TypesResponse, responses=error_responses(503), summary="The five types",
         tags=["types"])
def list_types():
    from sqlmodel import select

    try:
        with session_scope() as session:
            rows = list(session.exec(select(TypeProfile).order_by(TypeProfile.order)))
    except sa.exc.SQLAlchemyError:
        raise ApiError(503, "unavailable", "The database cannot be reached. Please try again later.") from None
    return TypesResponse(
        types=[TypeInfo(name=r.name, order=r.order, description=r.description, share_percent=r.share_percent)
               for r in rows],
        disclaimer=analysis.FOR_FUN_LINE,
    )


@api.get("/v1/reference-images/{photo_id}", name="reference_image", tags=["types"],
         summary="A reference photo",
         responses={200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "The photo."},
                    **error_responses(404, 422, 503)},
         response_class=Response)
def reference_image(photo_id: int = Path(ge=1, le=2**31 - 1)):
    """A reference person's photo (only reference photos; visitor photos are never served)."""
    try:
        data = reference_bytes(photo_id)
    except sa.exc.SQLAlchemyError as exc:
        log.error("reference image %s: database unavailable (%s)", photo_id, type(exc).__name__)
        raise ApiError(503, "unavailable", "The database cannot be reached. Please try again later.") from None
    except StorageError as exc:
        log.error("reference image %s: store unavailable (%s)", photo_id, type(exc).__name__)
        raise ApiError(503, "unavailable", "The photo store cannot be reached. Please try again later.") from None
    if data is None:
        raise ApiError(404, "not_found", "No reference photo has this id.")
    return Response(data, media_type=photo_file_type(data)[1], headers={"Cache-Control": "public, max-age=3600"})


@api.get("/healthz", response_model=HealthResponse, responses={503: {"model": HealthResponse}}, tags=["health"],
         summary="Ready to serve?")
def healthz(request: Request, response: Response):
    """200 when the database and the store answer; 503 (with the setting to fix) when the service could not
    start or they cannot be reached. `model_ready` says whether classify can answer."""
    state = request.app.state
    if getattr(state, "config_error", None):
        if time.monotonic() - getattr(state, "last_prepare", 0.0) > 10:  # try again, at most every 10 s
            state.last_prepare = time.monotonic()
            try:
                _prepare(state)
                state.config_error = None
            except (ConfigurationError, ValueError) as exc:
                log.error("facetype API is still not ready: %s", exc)
                state.config_error = public_message(exc)
            except Exception as exc:
                log.error("facetype API is still not ready: %s", exc)
                state.config_error = f"startup failed ({type(exc).__name__})"
    if getattr(state, "config_error", None):
        response.status_code = 503
        return HealthResponse(status="unavailable", message=state.config_error)
    database = store = "ok"
    try:
        with db.get_engine().connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        database = f"unreachable ({type(exc).__name__})"
    try:
        storage.get_visitor_store().ping()
    except Exception as exc:
        store = f"unreachable ({type(exc).__name__})"
    model = None
    model_message = None
    try:
        served = analysis.served_model()
        model = ModelInfo(id=getattr(served, "model_version_id", None), kind=getattr(served, "kind", None))
    except analysis.ModelUnavailable as exc:
        model_message = exc.message
    ok = database == "ok" and store == "ok"
    response.status_code = 200 if ok else 503
    return HealthResponse(status="ok" if ok else "unavailable", message=model_message, database=database,
                          store=store, model_ready=model is not None, model=model)
