"""Request and response models of the JSON API (with the OpenAPI examples)."""

from __future__ import annotations

import logging
from datetime import date

from typing import Annotated

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from app.core.vocabulary import MBTI_TYPES, MBTI_UNKNOWN, REGIONS, TYPES, Mbti
from app.services import analysis

log = logging.getLogger("facetype.api")




# ============================================================================ schema models


#: The MBTI field as it is documented: the enum inline, and any case accepted.
MbtiAnswer = Annotated[Mbti, WithJsonSchema({
    "type": "string", "enum": [m.value for m in Mbti],
    "description": "One of the 16 MBTI types (" + ", ".join(MBTI_TYPES) + f") or `{MBTI_UNKNOWN}` (I don't know); "
    "case does not matter.",
})]
#: The multipart photo: a file (documented), or base64 text as in the JSON body.
PhotoFile = Annotated[UploadFile | str, WithJsonSchema({
    "type": "string", "format": "binary",
    "description": "The photo file (JPEG, PNG, WebP…), at most `max_upload_mb` (default 10 MB).",
})]


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
    age: date = Field(
        description="Birth date, `YYYY-MM-DD` (the source called it `age`), between 1900-01-01 and today.",
        examples=["1994-05-17"],
    )
    mbti: MbtiAnswer = Field(examples=["ESTJ"])
    consent_store: bool = Field(
        default=False,
        description="Keep the photo and result for `retention_days` (default 30) and return a result code "
        "and a delete code. Without it nothing is stored.",
    )
    consent_training: bool = Field(
        default=False,
        description="With `consent_store`: the team may use the kept photo to improve the model.",
    )

    @field_validator("mbti", mode="before")
    @classmethod
    def _known_mbti(cls, value: object) -> Mbti:
        answer = value.strip().upper() if isinstance(value, str) else ""
        if answer == MBTI_UNKNOWN.upper():
            return Mbti.UNKNOWN
        if answer not in MBTI_TYPES:
            raise ValueError(f"must be one of the 16 MBTI types, e.g. ESTJ or INFP, or {MBTI_UNKNOWN}")
        return Mbti(answer)

    @field_validator("age", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> date:
        birth = parse_birth_date(value)
        try:  # the Try it page's rule
            analysis.check_birth_date(birth)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return birth


def parse_birth_date(value: object) -> date:
    """Only ``YYYY-MM-DD`` text: not a number (pydantic would read it as a timestamp), not a time."""
    value = value.strip() if isinstance(value, str) else ""
    if len(value) != 10 or value[4] != "-" or value[7] != "-":
        raise ValueError("must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a real date written YYYY-MM-DD") from None


class ClassifyForm(ClassifyRequest):
    """The multipart form: the same fields, the photo as a file (``file`` and ``photo`` are read as
    ``user_img`` too)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"age": "1994-05-17", "mbti": "none"}]})

    user_img: PhotoFile


class RegionResult(BaseModel):
    type: str = Field(description="The most likely type for this region.", examples=["Beta"])
    probability: float = Field(description="Its probability.")
    points: float = Field(description="Expected points of this region (the source's table, probability-weighted).")
    probs: list[float] = Field(description="Probabilities of " + ", ".join(TYPES) + ", in that order.")
    source: str = Field(description="`model` (the model placed the box) or `landmarks` (the face landmarks did).")
    box: list[float] | None = Field(default=None, description="[x0, y0, x1, y1] in pixels of the upright photo as uploaded (EXIF orientation applied).")


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
    confidence: float | None = Field(description="0–1 or null: the share of held-out photos the model gave "
                                     "this type that had it in the survey (its measured precision), or for a "
                                     "model without that evaluation the type's probability under its own "
                                     "probabilities.")
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


def error_responses(*codes: int) -> dict:
    text = {400: "Malformed request (not JSON, not base64, a broken multipart body).",
            404: "Unknown or expired code.",
            413: "Request or photo too large (size or pixels).",
            415: "Unsupported Content-Type.",
            422: "A field is missing or invalid, or the upload is not a usable image.",
            429: "Rate limit reached; see Retry-After.",
            503: "Not ready: no promoted model, or the database or store cannot be reached."}
    return {c: {"model": ErrorResponse, "description": text[c]} for c in codes}
