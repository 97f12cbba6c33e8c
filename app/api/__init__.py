"""JSON API for mobile clients: ``uvicorn app.api:api --host 0.0.0.0 --port 8000``.

Keeps the source's Flutter contract — post a base64 photo, a birth date (``age``) and an MBTI
type, get back ``{human, male_type, dsc, img1..img4}`` — and adds the cascade's details. It is a
thin layer over :mod:`app.services` (the same gate, model, scoring, storage and privacy rules as the
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

from app.api.routes import api

__all__ = ["api"]
