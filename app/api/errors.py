"""The API's configuration-derived limits and its one JSON error shape."""

from __future__ import annotations

import logging
import math

from fastapi.responses import JSONResponse

from app.core.settings import get_settings
from app.services import analysis
from models.intake import INTAKE_MESSAGES

log = logging.getLogger("facetype.api")

API_VERSION = "1.0"
#: Room for the JSON keys, the other fields and a ``data:`` URL prefix around the base64 photo.
JSON_OVERHEAD_BYTES = 64 * 1024
#: Intake reasons that mean the upload itself is unusable (a 4xx, not a ``human: false`` answer).
PAYLOAD_TOO_LARGE_REASONS = {"too_large", analysis.UPLOAD_TOO_LARGE}
BAD_UPLOAD_REASONS = set(INTAKE_MESSAGES) - PAYLOAD_TOO_LARGE_REASONS



# ============================================================================ configuration


def max_photo_bytes() -> int:
    return get_settings().max_upload_mb * 1024 * 1024


def photo_too_large_message() -> str:
    return (f"The photo is larger than {get_settings().max_upload_mb} MB. "
            "Upload a smaller photo (a normal phone photo is fine).")


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


STATUS_ERRORS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                  405: "method_not_allowed", 406: "not_acceptable", 413: "request_too_large",
                  415: "unsupported_media_type", 422: "invalid_request", 429: "rate_limited",
                  503: "unavailable"}


PLAIN_MESSAGES = {
    (404, "Not Found"): "There is nothing at this address. The API is described at /docs.",
    (405, "Method Not Allowed"): "This address does not take this method. The API is described at /docs.",
}


def validation_message(errors: list[dict]) -> tuple[str, list[dict]]:
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
