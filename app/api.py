"""JSON API for mobile clients: ``uvicorn app.api:api --host 0.0.0.0 --port 8000``.

Keeps the source's Flutter contract — post a base64 photo, a birth date (``age``) and an MBTI
type, get back ``{human, male_type, dsc, img1..img4}`` — and adds the cascade's details. It is a
thin layer over :mod:`app.visits` (the same gate, model, scoring, storage and privacy rules as the
Try it page); nothing here touches the cascade or the visitor storage directly.

Endpoints (schema with examples at ``/openapi.json``, browsable at ``/docs``):

* ``POST /v1/classify`` — JSON ``{"user_img": base64, "age": "YYYY-MM-DD", "mbti": "ESTJ",
  "consent_store": false}`` or ``multipart/form-data`` with the photo as file ``user_img``.
  ``POST /RegisterResult`` is the same handler under the source's path (not in the schema).
* ``GET /v1/results/{code}``, ``DELETE /v1/results/{code}`` (header ``X-Delete-Code``).
* ``GET /v1/types``, ``GET /v1/reference-images/{photo_id}``, ``GET /healthz``.

Limits: request body (``max_upload_mb``, default 10 MB of photo; a JSON body may be 4/3 of that
plus some room, since base64 grows the photo by a third), the pixel budget (``max_pixels``, checked
on the image header), MBTI one of the 16 types, birth date between 1900-01-01 and today, and a
token bucket per client IP (``FACETYPE_API_RATE_PER_MINUTE``, default 30, and
``FACETYPE_API_RATE_BURST``, default 10; 0 turns it off). The client IP is the socket's peer;
behind a reverse proxy run uvicorn with ``--proxy-headers --forwarded-allow-ips=<proxy>``.

Errors are JSON ``{"error": code, "message": text}`` with a 4xx status (503 when the service is
not ready: no promoted model, database or store unreachable). Privacy: nothing is stored unless
``consent_store`` is true; logs name reasons, result codes, statuses and timings — never photo
bytes, birth dates or MBTI types.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import threading
import time
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import visits
from app.core.settings import get_settings
from app.core.vocabulary import MBTI_TYPES, REGIONS, TYPES
from app.startup import ConfigurationError, prepare
from models.intake import INTAKE_MESSAGES, photo_file_type
from models.typemodel import NoServedModel

log = logging.getLogger("facetype.api")

API_VERSION = "1.0"
MBTI_PATTERN = r"^[EIei][SNsn][TFtf][JPjp]$"
#: Room for the JSON keys, the other fields and a ``data:`` URL prefix around the base64 photo.
JSON_OVERHEAD_BYTES = 64 * 1024
#: Intake reasons that mean the upload itself is unusable (a 4xx, not a ``human: false`` answer).
PAYLOAD_TOO_LARGE_REASONS = {"too_large", visits.UPLOAD_TOO_LARGE}
BAD_UPLOAD_REASONS = set(INTAKE_MESSAGES) - PAYLOAD_TOO_LARGE_REASONS


# ============================================================================ configuration


def max_photo_bytes() -> int:
    return get_settings().max_upload_mb * 1024 * 1024


def _photo_too_large_message() -> str:
    return (f"The photo is larger than {get_settings().max_upload_mb} MB. "
            "Upload a smaller photo (a normal phone photo is fine).")


def _aware(moment):
    from datetime import timezone

    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def max_request_bytes() -> int:
    """The largest request body: a base64-encoded photo of ``max_upload_mb`` plus room."""
    return math.ceil(max_photo_bytes() * 4 / 3) + JSON_OVERHEAD_BYTES


# ============================================================================ errors


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, headers: dict | None = None):
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers
        super().__init__(f"{status} {error}")


def error_response(status: int, error: str, message: str, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status, headers=headers)


_STATUS_ERRORS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                  405: "method_not_allowed", 406: "not_acceptable", 413: "request_too_large",
                  415: "unsupported_media_type", 422: "invalid_request", 429: "rate_limited",
                  503: "unavailable"}


_PLAIN_MESSAGES = {
    (404, "Not Found"): "There is nothing at this address. The API is described at /docs.",
    (405, "Method Not Allowed"): "This address does not take this method. The API is described at /docs.",
}


def _validation_message(errors: list[dict]) -> tuple[str, list[dict]]:
    """A one-line message and a field list (without the submitted values) from pydantic errors."""
    fields = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "header")]
        name = ".".join(loc) or "body"
        kind = e.get("type", "")
        text = "missing field" if kind == "missing" else str(e.get("msg", "invalid value"))
        text = text.removeprefix("Value error, ")
        fields.append({"field": name, "problem": text})
    message = "; ".join(f"{f['field']}: {f['problem']}" for f in fields) or "invalid request"
    return message, fields


# ============================================================================ rate limiting


class RateLimiter:
    """A token bucket per client key: ``burst`` tokens, refilled at ``per_minute`` a minute.
    ``per_minute`` 0 turns it off. Memory is bounded: full buckets are dropped when the table grows."""

    MAX_CLIENTS = 10_000

    def __init__(self, per_minute: int, burst: int, clock=time.monotonic):
        self.rate = per_minute / 60.0
        self.burst = float(max(1, burst))
        self.enabled = per_minute > 0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 when the request may go on, else the seconds until a token is free."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                if len(self._buckets) > self.MAX_CLIENTS:
                    self._prune(now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        for k, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * self.rate >= self.burst:
                del self._buckets[k]
        if len(self._buckets) > self.MAX_CLIENTS:  # still too many active clients: forget the oldest half
            for k, _ in sorted(self._buckets.items(), key=lambda item: item[1][1])[: len(self._buckets) // 2]:
                del self._buckets[k]


def limiter_from_settings() -> RateLimiter:
    settings = get_settings()
    return RateLimiter(max(0, settings.api_rate_per_minute), max(0, settings.api_rate_burst))


def _rate_limited(path: str) -> bool:
    """Classify costs CPU and the result endpoints must not be enumerated; the rest is cheap."""
    return path == "/RegisterResult" or path.startswith("/v1/classify") or path.startswith("/v1/results")


# ============================================================================ pure ASGI middleware


class _BodyTooLarge(Exception):
    pass


class LimitsMiddleware:
    """Before the app sees a request: refuse a service that could not start (503), a client over
    its rate (429) and a body over the size limit (413; by Content-Length, and while streaming for
    bodies without one)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        app_state = getattr(scope.get("app"), "state", None)

        config_error = getattr(app_state, "config_error", None)
        if config_error and path not in ("/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"):
            return await error_response(503, "unavailable", f"The service cannot start: {config_error}")(scope, receive, send)

        if _rate_limited(path):
            limiter = getattr(app_state, "limiter", None)
            if limiter is not None:
                client = scope.get("client") or ("unknown", 0)
                wait = limiter.take(str(client[0]))
                if wait > 0:
                    retry = str(max(1, math.ceil(wait)))
                    return await error_response(
                        429, "rate_limited", f"Too many requests from this address; try again in {retry} s.",
                        headers={"Retry-After": retry})(scope, receive, send)

        limit = max_request_bytes()
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return await error_response(400, "bad_request", "The Content-Length header is not a number.")(scope, receive, send)
            if size > limit:
                return await _too_large(limit)(scope, receive, send)

        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    mb = get_settings().max_upload_mb
    return error_response(413, "request_too_large",
                          f"The request is larger than allowed ({limit // 1024} KiB for a photo of at most {mb} MB).")


# ============================================================================ schema models


class ClassifyRequest(BaseModel):
    """The source's request: a base64 photo, a birth date and an MBTI type."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{
            "user_img": "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/...",
            "age": "1994-05-17",
            "mbti": "ESTJ",
            "consent_store": False,
        }]},
    )

    user_img: str = Field(
        min_length=1,
        description="The photo (JPEG, PNG, WebP…) as standard base64; a `data:image/...;base64,` prefix "
        "and line breaks are accepted. At most `max_upload_mb` (default 10 MB) decoded.",
    )
    age: str = Field(
        description="Birth date, `YYYY-MM-DD` (the source called it `age`), between 1900-01-01 and today.",
        json_schema_extra={"format": "date"}, examples=["1994-05-17"],
    )
    mbti: str = Field(
        pattern=MBTI_PATTERN,
        description="One of the 16 MBTI types: " + ", ".join(MBTI_TYPES) + " (case does not matter).",
        examples=["ESTJ"],
    )
    consent_store: bool = Field(
        default=False,
        description="Keep the photo and result for `retention_days` (default 30) and return a result code "
        "and a delete code. Without it nothing is stored.",
    )
    consent_training: bool = Field(
        default=False,
        description="With `consent_store`: the team may use the kept photo to improve the model.",
    )

    @field_validator("mbti")
    @classmethod
    def _known_mbti(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in MBTI_TYPES:
            raise ValueError("must be one of the 16 MBTI types, e.g. ESTJ or INFP")
        return value

    @field_validator("age")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        birth = parse_birth_date(value)
        try:  # the Try it page's rule (the MBTI part is checked by the field above)
            visits.check_answers(MBTI_TYPES[0], birth)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return birth.isoformat()


def parse_birth_date(value: str) -> date:
    value = (value or "").strip()
    if len(value) != 10 or value[4] != "-" or value[7] != "-":
        raise ValueError("must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a real date written YYYY-MM-DD") from None


class ClassifyFields(ClassifyRequest):
    """The multipart form: the same fields, the photo as a file."""

    user_img: str | None = None  # the file comes separately


class RegionResult(BaseModel):
    type: str = Field(description="The most likely type for this region.", examples=["Beta"])
    probability: float = Field(description="Its probability.")
    points: float = Field(description="Expected points of this region (the source's table, probability-weighted).")
    probs: list[float] = Field(description="Probabilities of " + ", ".join(TYPES) + ", in that order.")
    source: str = Field(description="`model` (the model placed the box) or `landmarks` (the face landmarks did).")
    box: list[float] | None = Field(default=None, description="[x0, y0, x1, y1] in pixels of the upright photo.")


class ModelInfo(BaseModel):
    id: int | None = Field(description="The served model version.")
    kind: str | None = Field(description="`head` or `detector`.")


_RESPONSE_EXAMPLE = {
    "human": True,
    "male_type": "Beta",
    "dsc": "Betas are the reliable teammates everyone is glad to have around.",
    "img1": "http://localhost:8000/v1/reference-images/12",
    "img2": "http://localhost:8000/v1/reference-images/4",
    "img3": "http://localhost:8000/v1/reference-images/27",
    "img4": "http://localhost:8000/v1/reference-images/9",
    "reason": None,
    "message": "For fun only: the face types are made up from a survey.",
    "score": 71.3,
    "confidence": 0.42,
    "per_region": {
        "face": {"type": "Beta", "probability": 0.61, "points": 39.0, "probs": [0.1, 0.61, 0.2, 0.05, 0.04],
                 "source": "model", "box": [120.0, 80.0, 380.0, 400.0]},
    },
    "model": {"id": 3, "kind": "head"},
    "notes": [],
    "stored": False,
    "result_code": None,
    "delete_code": None,
}


class ClassifyResponse(BaseModel):
    """The source's fields (``human``, ``male_type``, ``dsc``, ``img1``–``img4``) and the details."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        _RESPONSE_EXAMPLE,
        {**{k: None for k in _RESPONSE_EXAMPLE}, "human": False, "reason": "no_face",
         "message": "We could not find a face in this photo. Choose a photo framed like the example: one face, "
         "looking at the camera, whole head inside the picture.", "per_region": None, "notes": [], "stored": False},
    ]})

    human: bool = Field(description="True when the photo shows one usable face and was classified.")
    male_type: str | None = Field(description="The type (" + ", ".join(TYPES) + "); null when `human` is false.")
    dsc: str | None = Field(description="The type's description; null when `human` is false.")
    img1: str | None = Field(description="URL of a reference photo of the same type (or null).")
    img2: str | None = Field(description="URL of a reference photo of the same type (or null).")
    img3: str | None = Field(description="URL of a reference photo of the same type (or null).")
    img4: str | None = Field(description="URL of a reference photo of the same type (or null).")
    reason: str | None = Field(description="Why the photo was refused (`no_face`, `several_faces`, `face_cut_off`, "
                               "`face_too_small`, `face_turned`); null when classified.")
    message: str = Field(description="A sentence to show the person.")
    score: float | None = Field(description="The score (0–100, the source's points) or null.")
    confidence: float | None = Field(description="Probability of the reported type under the model's own "
                                     "probabilities (0–1) or null.")
    per_region: dict[str, RegionResult] | None = Field(description="Per region (" + ", ".join(REGIONS) + ").")
    model: ModelInfo | None = Field(description="The model that answered.")
    notes: list[str] = Field(default_factory=list, description="Remarks of the cascade (e.g. a region the model "
                             "could not place).")
    stored: bool = Field(description="True when the result was kept (only with `consent_store`).")
    store_message: str | None = Field(default=None, description="Why the result was not kept although "
                                      "`consent_store` was true.")
    result_code: str | None = Field(description="Open the result again with GET /v1/results/{result_code}.")
    delete_code: str | None = Field(description="Delete it with DELETE /v1/results/{result_code} and this code "
                                    "in the X-Delete-Code header. Shown once, never stored in clear.")
    created_at: str | None = Field(default=None, description="ISO time the result was made (stored results).")
    expires_at: str | None = Field(default=None, description="ISO time a stored result is deleted.")


class ErrorResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"error": "not_base64", "message": "user_img is not valid base64."},
        {"error": "invalid_request", "message": "mbti: must be one of the 16 MBTI types, e.g. ESTJ or INFP",
         "fields": [{"field": "mbti", "problem": "must be one of the 16 MBTI types, e.g. ESTJ or INFP"}]},
    ]})

    error: str = Field(description="A short code: `not_base64`, `not_an_image`, `invalid_request`, `rate_limited`…")
    message: str = Field(description="What went wrong and what to do, in a sentence.")
    fields: list[dict[str, str]] | None = Field(default=None, description="Per-field problems (validation errors).")


class DeleteResponse(BaseModel):
    deleted: bool
    message: str


class TypeInfo(BaseModel):
    name: str = Field(examples=["Alpha"])
    order: int
    description: str
    share_percent: float | None = Field(description="Share of the survey's reference people of this type.")


class TypesResponse(BaseModel):
    types: list[TypeInfo]
    disclaimer: str


class HealthResponse(BaseModel):
    status: str = Field(description="`ok`, or `unavailable` with a message.")
    message: str | None = None
    database: str | None = None
    store: str | None = None
    model_ready: bool = False
    model: ModelInfo | None = None


def _errors(*codes: int) -> dict:
    text = {400: "Malformed request (not JSON, not base64, a broken multipart body).",
            404: "Unknown or expired code.",
            413: "Request or photo too large (size or pixels).",
            415: "Unsupported Content-Type.",
            422: "A field is missing or invalid, or the upload is not a usable image.",
            429: "Rate limit reached; see Retry-After.",
            503: "Not ready: no promoted model, or the database or store cannot be reached."}
    return {c: {"model": ErrorResponse, "description": text[c]} for c in codes}


# ============================================================================ app


async def _startup(app: FastAPI) -> None:
    app.state.config_error = None
    app.state.limiter = limiter_from_settings()
    app.state.last_prepare = time.monotonic()
    try:
        await run_in_threadpool(prepare)
    except (ConfigurationError, ValueError) as exc:  # ValueError: a storage URL of an unknown kind
        app.state.config_error = str(exc)
        log.error("facetype API is not ready: %s", exc)
        return
    try:  # load the face gate and the served model now, not on the first visitor's request
        from models.gate import get_face_gate

        await run_in_threadpool(get_face_gate)
        await run_in_threadpool(visits.model_status)
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
        + visits.FOR_FUN_LINE
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
    message = _PLAIN_MESSAGES.get((exc.status_code, message), message)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:  # every method of the path, not only those of the first matching route
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request.scope))}
    return error_response(exc.status_code, _STATUS_ERRORS.get(exc.status_code, "error"), message, headers=headers)


def _allowed_methods(scope) -> list[str]:
    from starlette.routing import Match

    methods: set[str] = set()
    for route in api.router.routes:
        if getattr(route, "methods", None) and route.matches({**scope, "method": "__none__"})[0] != Match.NONE:
            methods |= set(route.methods)
    return sorted(methods)


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError):
    message, fields = _validation_message(list(exc.errors()))
    return error_response(422, "invalid_request", message, fields=fields)


@api.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception):
    log.error("unexpected error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return error_response(500, "internal_error", "Something went wrong on our side. Please try again later.")


# ---------------------------------------------------------------------------- request parsing


def decode_base64_photo(text: str) -> bytes:
    """Photo bytes from base64 text (standard or URL-safe alphabet, optional ``data:`` prefix,
    whitespace ignored); raises ApiError 400/413."""
    text = text.strip()
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    compact = "".join(text.split())
    if len(compact) * 3 // 4 > max_photo_bytes() + 3:
        raise ApiError(413, "photo_too_large", _photo_too_large_message())
    if "-" in compact or "_" in compact:
        compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "not_base64", "user_img is not valid base64. Send the photo file's bytes "
                       "base64-encoded (or upload it as multipart/form-data).") from None
    if not data:
        raise ApiError(422, "empty", INTAKE_MESSAGES["empty"])
    return data


def _validated(model: type[BaseModel], fields: dict) -> BaseModel:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        message, problems = _validation_message(exc.errors())
        raise _FieldError(message, problems) from None


class _FieldError(Exception):
    def __init__(self, message: str, fields: list[dict]):
        self.message = message
        self.fields = fields


async def parse_classify_request(request: Request) -> tuple[bytes, ClassifyRequest | ClassifyFields]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("", "application/json", "text/plain") or content_type.endswith("+json"):
        body = await request.body()
        if not body:
            raise ApiError(400, "empty_body", "The request has no body. Send JSON with user_img, age and mbti.")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
        if not isinstance(payload, dict):
            raise ApiError(422, "invalid_request", "The JSON body must be an object with user_img, age and mbti.")
        fields = _validated(ClassifyRequest, payload)
        return decode_base64_photo(fields.user_img), fields
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        limit = max_photo_bytes()
        try:
            form = await request.form(max_files=2, max_fields=20, max_part_size=limit + 1024)
        except StarletteHTTPException as exc:
            raise ApiError(400, "bad_multipart", f"The form could not be read: {exc.detail}") from None
        except Exception:  # a malformed multipart body
            raise ApiError(400, "bad_multipart", "The form could not be read.") from None
        try:
            values: dict[str, Any] = {}
            upload = None
            for name in ("user_img", "file", "photo"):
                item = form.get(name)
                if item is None:
                    continue
                if hasattr(item, "read"):
                    upload = item
                else:
                    values["user_img"] = item
                break
            for name in ("age", "mbti", "consent_store", "consent_training"):
                if form.get(name) is not None and not hasattr(form.get(name), "read"):
                    values[name] = form.get(name)
            fields = _validated(ClassifyFields, values)
            if upload is not None:
                data = await upload.read(limit + 1)
                if len(data) > limit:
                    raise ApiError(413, "photo_too_large", _photo_too_large_message())
                if not data:
                    raise ApiError(422, "empty", INTAKE_MESSAGES["empty"])
            elif fields.user_img:
                data = decode_base64_photo(fields.user_img)
            else:
                raise _FieldError("user_img: missing field (a photo file or base64 text)",
                                  [{"field": "user_img", "problem": "missing field"}])
        finally:
            await form.close()
        return data, fields
    raise ApiError(415, "unsupported_media_type",
                   "Send application/json (the source's format) or multipart/form-data with the photo as a file.")


# ---------------------------------------------------------------------------- reference images


def _reference_urls(request: Request, type_name: str) -> list[str | None]:
    """Four URLs of reference photos of the type: presigned from S3, else served by this API."""
    chosen = visits.pick_reference_photos(type_name)[:4]
    store = None
    try:
        from app.core.storage import LocalStore, get_store

        store = get_store()
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


def _reference_key(photo_id: int) -> str | None:
    """The object key of a reference photo (None for unknown ids and visitor photos)."""
    from sqlmodel import select

    from app.core.db import Photo, session_scope

    with session_scope() as session:
        return session.exec(select(Photo.object_key)
                            .where(Photo.id == photo_id, Photo.source == "reference")).first()


def _reference_bytes(photo_id: int) -> bytes | None:
    from app.core.storage import ObjectNotFound, get_store

    key = _reference_key(photo_id)
    if key is None:
        return None
    try:
        return get_store().get(key)
    except ObjectNotFound:
        return None


# ---------------------------------------------------------------------------- responses


def _model_info(visit_or_stored) -> ModelInfo | None:
    mid = getattr(visit_or_stored, "model_version_id", None)
    kind = getattr(visit_or_stored, "model_kind", None)
    if mid is None and kind is None:
        return None
    return ModelInfo(id=mid, kind=kind)


def _per_region(per_region: dict, boxes: dict) -> dict[str, RegionResult]:
    out = {}
    for region, values in (per_region or {}).items():
        box = boxes.get(region) if boxes else None
        out[region] = RegionResult(**{**values, "box": [round(float(v), 1) for v in box] if box else None})
    return out


def _refusal_body(visit: visits.VisitResult) -> ClassifyResponse:
    return ClassifyResponse(
        human=False, male_type=None, dsc=None, img1=None, img2=None, img3=None, img4=None,
        reason=visit.reason, message=visit.message, score=None, confidence=None, per_region=None,
        model=None, notes=[], stored=False, result_code=None, delete_code=None,
    )


def _classify_sync(request: Request, data: bytes, fields) -> ClassifyResponse:
    started = time.perf_counter()
    try:
        visit = visits.analyse_photo(data)
    except visits.ModelUnavailable as exc:
        raise ApiError(503, "no_model", exc.message) from None
    except NoServedModel:
        raise ApiError(503, "no_model", visits.MESSAGES[visits.NO_MODEL]) from None
    if not visit.ok:
        log.info("classify: refused (%s) in %.0f ms", visit.reason, 1000 * (time.perf_counter() - started))
        if visit.reason in PAYLOAD_TOO_LARGE_REASONS:
            raise ApiError(413, visit.reason, visit.message)
        if visit.reason in BAD_UPLOAD_REASONS:
            raise ApiError(422, visit.reason, visit.message)
        return _refusal_body(visit)

    result_code = delete_code = store_message = None
    if fields.consent_store:
        try:
            result_code, delete_code = visits.store_submission(
                visit, data, fields.mbti, date.fromisoformat(fields.age), bool(fields.consent_training))
        except visits.NotStored as exc:
            store_message = exc.message
    imgs = _reference_urls(request, visit.type_name)
    log.info("classify: ok%s in %.0f ms", f", stored as {result_code}" if result_code else "",
             1000 * (time.perf_counter() - started))
    return ClassifyResponse(
        human=True, male_type=visit.type_name, dsc=visit.description,
        img1=imgs[0], img2=imgs[1], img3=imgs[2], img4=imgs[3],
        reason=None, message=visits.FOR_FUN_LINE,
        score=round(float(visit.score), 4), confidence=round(float(visit.confidence), 4),
        per_region=_per_region(visit.per_region, visit.boxes), model=_model_info(visit),
        notes=[str(n) for n in visit.notes], stored=result_code is not None, store_message=store_message,
        result_code=result_code, delete_code=delete_code,
        created_at=visit.created_at.isoformat(timespec="seconds") if result_code else None,
    )


_CLASSIFY_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": ClassifyRequest.model_json_schema(),
            "examples": {
                "source": {"summary": "The source's Flutter request",
                           "value": ClassifyRequest.model_config["json_schema_extra"]["examples"][0]},
                "keep": {"summary": "Keep the result (returns result and delete codes)",
                         "value": {**ClassifyRequest.model_config["json_schema_extra"]["examples"][0],
                                   "mbti": "infp", "consent_store": True}},
            },
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["user_img", "age", "mbti"],
                "properties": {
                    "user_img": {"type": "string", "format": "binary", "description": "The photo file."},
                    "age": {"type": "string", "format": "date", "description": "Birth date, YYYY-MM-DD."},
                    "mbti": {"type": "string", "pattern": MBTI_PATTERN, "description": "One of the 16 MBTI types."},
                    "consent_store": {"type": "boolean", "default": False},
                    "consent_training": {"type": "boolean", "default": False},
                },
            },
        },
    },
}


async def _classify(request: Request) -> JSONResponse:
    try:
        data, fields = await parse_classify_request(request)
    except _FieldError as exc:
        return error_response(422, "invalid_request", exc.message, fields=exc.fields)
    body = await run_in_threadpool(_classify_sync, request, data, fields)
    return JSONResponse(body.model_dump(mode="json"))


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
    responses=_errors(400, 413, 415, 422, 429, 503),
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
    flat = visits.normalise_code(code)
    if len(flat) != visits.RESULT_CODE_LENGTH:
        raise ApiError(404, "not_found", "No stored result has this code (it may have expired or been deleted).")
    return flat


@api.get("/v1/results/{code}", response_model=ClassifyResponse, responses=_errors(404, 422, 429, 503),
         summary="A stored result", tags=["results"])
def get_result(request: Request, code: str = CODE_PATH):
    """The result kept with `consent_store`, in the classify response's shape (without the delete code,
    the birth date or the MBTI type). Reference images are drawn again."""
    flat = _result_code(code)
    try:
        stored = visits.load_submission(flat)
    except sa.exc.SQLAlchemyError:
        raise ApiError(503, "unavailable", "The database cannot be reached. Please try again later.") from None
    if stored is None:
        raise ApiError(404, "not_found", "No stored result has this code (it may have expired or been deleted).")
    imgs = _reference_urls(request, stored.type_name)
    return ClassifyResponse(
        human=True, male_type=stored.type_name, dsc=stored.description,
        img1=imgs[0], img2=imgs[1], img3=imgs[2], img4=imgs[3],
        reason=None, message=visits.FOR_FUN_LINE, score=stored.score, confidence=stored.confidence,
        per_region=_per_region(stored.per_region, stored.boxes),
        model=ModelInfo(id=stored.model_version_id, kind=None) if stored.model_version_id is not None else None,
        notes=[], stored=True, result_code=stored.result_code, delete_code=None,
        created_at=_aware(stored.created_at).isoformat(timespec="seconds"),
        expires_at=_aware(stored.expires_at).isoformat(timespec="seconds"),
    )


@api.delete("/v1/results/{code}", response_model=DeleteResponse, responses=_errors(404, 422, 429, 503),
            summary="Delete a stored result", tags=["results"])
def delete_result(
    code: str = CODE_PATH,
    x_delete_code: str = Header(min_length=1, max_length=128, description="The delete code given when the result "
                                "was stored.", examples=["7K3M9QZD-ABCD-EFGH-JKMN-PQRS"]),
):
    """Deletes the photo and the result for good. A wrong or unknown code gives 404 (no hint which)."""
    flat = _result_code(code)
    try:
        deleted = visits.delete_submission(flat, x_delete_code)
    except visits.DeleteFailed as exc:
        raise ApiError(503, "unavailable", exc.message) from None
    if not deleted:
        raise ApiError(404, "not_found", "No stored result matches this code and delete code.")
    return DeleteResponse(deleted=True, message="The photo and the result were deleted.")


# ---------------------------------------------------------------------------- types, images, health


@api.get("/v1/types", response_model=TypesResponse, responses=_errors(503), summary="The five types",
         tags=["types"])
def list_types():
    from sqlmodel import select

    from app.core.db import TypeProfile, session_scope

    try:
        with session_scope() as session:
            rows = list(session.exec(select(TypeProfile).order_by(TypeProfile.order)))
    except sa.exc.SQLAlchemyError:
        raise ApiError(503, "unavailable", "The database cannot be reached. Please try again later.") from None
    return TypesResponse(
        types=[TypeInfo(name=r.name, order=r.order, description=r.description, share_percent=r.share_percent)
               for r in rows],
        disclaimer=visits.FOR_FUN_LINE,
    )


@api.get("/v1/reference-images/{photo_id}", name="reference_image", tags=["types"],
         summary="A reference photo",
         responses={200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "The photo."},
                    **_errors(404, 422, 503)},
         response_class=Response)
def reference_image(photo_id: int = Path(ge=1, le=2**31 - 1)):
    """A reference person's photo (only reference photos; visitor photos are never served)."""
    from app.core.storage import StorageError

    try:
        data = _reference_bytes(photo_id)
    except (sa.exc.SQLAlchemyError, StorageError):
        raise ApiError(503, "unavailable", "The photo store cannot be reached. Please try again later.") from None
    if data is None:
        raise ApiError(404, "not_found", "No reference photo has this id.")
    return Response(data, media_type=photo_file_type(data)[1], headers={"Cache-Control": "public, max-age=3600"})


@api.get("/healthz", response_model=HealthResponse, responses={503: {"model": HealthResponse}}, tags=["health"],
         summary="Ready to serve?")
def healthz(request: Request):
    """200 when the database and the store answer; 503 (with the setting to fix) when the service could not
    start or they cannot be reached. `model_ready` says whether classify can answer."""
    state = request.app.state
    if getattr(state, "config_error", None):
        if time.monotonic() - getattr(state, "last_prepare", 0.0) > 10:  # try again, at most every 10 s
            state.last_prepare = time.monotonic()
            try:
                prepare()
                state.config_error = None
            except (ConfigurationError, ValueError) as exc:
                state.config_error = str(exc)
            except Exception as exc:
                state.config_error = f"startup failed ({type(exc).__name__})"
    if getattr(state, "config_error", None):
        return JSONResponse(HealthResponse(status="unavailable", message=state.config_error).model_dump(mode="json"),
                            status_code=503)
    from app.core.db import get_engine
    from app.core.storage import get_store

    database = store = "ok"
    try:
        with get_engine().connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        database = f"unreachable ({type(exc).__name__})"
    try:
        get_store().ping()
    except Exception as exc:
        store = f"unreachable ({type(exc).__name__})"
    model = None
    model_message = None
    try:
        served = visits.served_model()
        model = ModelInfo(id=getattr(served, "model_version_id", None), kind=getattr(served, "kind", None))
    except visits.ModelUnavailable as exc:
        model_message = exc.message
    ok = database == "ok" and store == "ok"
    body = HealthResponse(status="ok" if ok else "unavailable", message=model_message, database=database,
                          store=store, model_ready=model is not None, model=model)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)
