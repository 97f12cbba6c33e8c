"""Reading a classify request: JSON with a base64 photo, or a multipart form."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.errors import (
    ApiError,
    max_photo_bytes,
    photo_too_large_message,
    validation_message,
)
from app.api.schemas import ClassifyForm, ClassifyRequest
from models.intake import INTAKE_MESSAGES

log = logging.getLogger("facetype.api")




# ---------------------------------------------------------------------------- request parsing


def decode_base64_photo(text: str) -> bytes:
    """Photo bytes from base64 text (standard or URL-safe alphabet, optional ``data:`` prefix,
    whitespace ignored); raises ApiError 400/413."""
    text = text.strip()
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    compact = "".join(text.split())
    if len(compact) * 3 // 4 > max_photo_bytes() + 3:
        raise ApiError(413, "photo_too_large", photo_too_large_message())
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
        message, problems = validation_message(exc.errors())
        raise FieldError(message, problems) from None


class FieldError(Exception):
    def __init__(self, message: str, fields: list[dict]):
        self.message = message
        self.fields = fields


async def parse_classify_request(request: Request) -> tuple[bytes, ClassifyRequest]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("", "application/json", "text/plain") or content_type.endswith("+json"):
        body = await request.body()
        if not body:
            raise ApiError(400, "empty_body", "The request has no body. Send JSON with user_img, age and mbti.")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
        except RecursionError:
            raise ApiError(400, "invalid_json", "The request body is JSON nested too deeply.") from None
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
            photo = next((form[name] for name in ("user_img", "file", "photo") if name in form), None)
            if photo is not None:
                values["user_img"] = photo
            for name in ("age", "mbti", "consent_store", "consent_training"):
                if form.get(name) is not None and not hasattr(form.get(name), "read"):
                    values[name] = form.get(name)
            fields = _validated(ClassifyForm, values)
            if isinstance(fields.user_img, str):
                data = decode_base64_photo(fields.user_img)
            else:
                data = await fields.user_img.read(limit + 1)
                if len(data) > limit:
                    raise ApiError(413, "photo_too_large", photo_too_large_message())
                if not data:
                    raise ApiError(422, "empty", INTAKE_MESSAGES["empty"])
        finally:
            await form.close()
        return data, fields
    raise ApiError(415, "unsupported_media_type",
                   "Send application/json (the source's format) or multipart/form-data with the photo as a file.")
