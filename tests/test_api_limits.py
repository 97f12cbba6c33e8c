"""The JSON API (app/api): every bad input as a 4xx with a JSON message, request size limits,
the rate limit, presigned S3 URLs and the MBTI schema.

Classify needs a promoted model: ``served_app_env`` (tests/conftest.py).
"""

from __future__ import annotations

import base64
import json
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient

from app.core import settings, storage
from app.core.vocabulary import MBTI_TYPES
from tests.api_helpers import BAD, assert_error, b64, source_request, visitor_rows


# ============================================================================ bad input: 4xx with a message


BAD_JSON_CASES = {
    "not base64": ({"user_img": "this is *not* base64!!"}, 400, "not_base64"),
    "not an image": ({"user_img": b64(BAD / "not_an_image.jpg")}, 422, "not_an_image"),
    "empty photo": ({"user_img": ""}, 422, "invalid_request"),
    "only whitespace": ({"user_img": "  \n "}, 422, "empty"),
    "bad padding": ({"user_img": "===="}, 400, "not_base64"),
    "truncated": ({"user_img": b64(BAD / "truncated.jpg")}, 422, "truncated"),
    "too few pixels": ({"user_img": b64(BAD / "tiny_8x8.png")}, 422, "too_small"),
    "pixel bomb": ({"user_img": b64(BAD / "pixel_bomb.png")}, 413, "too_large"),
    "bad MBTI": ({"mbti": "ABCD"}, 422, "invalid_request"),
    "MBTI too long": ({"mbti": "ESTJX"}, 422, "invalid_request"),
    "MBTI not a string": ({"mbti": 42}, 422, "invalid_request"),
    "date not ISO": ({"age": "02.01.1990"}, 422, "invalid_request"),
    "date not real": ({"age": "1990-02-30"}, 422, "invalid_request"),
    "date in the future": ({"age": (date.today() + timedelta(days=1)).isoformat()}, 422, "invalid_request"),
    "date too early": ({"age": "1899-12-31"}, 422, "invalid_request"),
    "age as a number": ({"age": 34}, 422, "invalid_request"),
    "consent not boolean": ({"consent_store": "maybe"}, 422, "invalid_request"),
}


@pytest.mark.parametrize("case", list(BAD_JSON_CASES), ids=list(BAD_JSON_CASES))
def test_bad_json_input_is_4xx_with_message(client, case):
    change, status, error = BAD_JSON_CASES[case]
    body = {**source_request(), **change}
    body = assert_error(client.post("/v1/classify", json=body), status, error)
    if error == "invalid_request":
        assert body["fields"] and body["fields"][0]["field"] in ("user_img", "age", "mbti", "consent_store")
    assert visitor_rows() == (0, 0)


@pytest.mark.parametrize("field", ["user_img", "age", "mbti"])
def test_missing_field_is_422_naming_it(client, field):
    body = source_request()
    del body[field]
    err = assert_error(client.post("/v1/classify", json=body), 422, "invalid_request")
    assert field in err["message"] and "missing" in err["message"]
    assert "obama" not in json.dumps(err) and "/9j/" not in json.dumps(err)  # the input is not echoed


def test_missing_file_in_multipart_is_422(client):
    err = assert_error(client.post("/v1/classify", data={"age": "1990-01-02", "mbti": "ESTJ"},
                                   files={"other": ("x.txt", b"x")}), 422, "invalid_request")
    assert "user_img" in err["message"]


def test_malformed_requests_are_4xx(client):
    assert_error(client.post("/v1/classify", content=b"{not json", headers={"content-type": "application/json"}),
                 400, "invalid_json")
    assert_error(client.post("/v1/classify", json=["a", "list"]), 422)
    assert_error(client.post("/v1/classify", content=b"", headers={"content-type": "application/json"}), 400)
    assert_error(client.post("/v1/classify", content=b"abc", headers={"content-type": "image/jpeg"}), 415)
    assert_error(client.post("/v1/classify", content=b"--x\r\nbroken",
                             headers={"content-type": "multipart/form-data; boundary=x"}), 422)
    assert_error(client.get("/v1/classify"), 405)
    assert_error(client.get("/nowhere"), 404, "not_found")


def test_huge_requests_are_413(client, monkeypatch):
    monkeypatch.setenv("FACETYPE_MAX_UPLOAD_MB", "1")
    settings.get_settings.cache_clear()
    # declared too large: refused on the Content-Length header, before the body is read
    big = json.dumps({**source_request(), "user_img": "A" * 1_500_000})
    assert_error(client.post("/v1/classify", content=big, headers={"content-type": "application/json"}),
                 413, "request_too_large")
    # streamed without a Content-Length: refused while reading
    def chunks():
        for _ in range(40):
            yield b"A" * 65536
    assert_error(client.post("/v1/classify", content=chunks(), headers={"content-type": "application/json"}),
                 413, "request_too_large")
    # the body fits, the decoded photo does not
    photo = base64.b64encode(b"\xff\xd8\xff" + b"\0" * (1024 * 1024 + 10)).decode()
    assert_error(client.post("/v1/classify", json=source_request(user_img=photo)), 413, "photo_too_large")
    # multipart file over the limit
    assert_error(client.post("/v1/classify", data={"age": "1990-01-02", "mbti": "ESTJ"},
                             files={"user_img": ("big.jpg", b"\0" * (1024 * 1024 + 10), "image/jpeg")}), 413)


# ============================================================================ rate limit, S3 URLs


def test_rate_limit_per_client_is_429_json(served_env, monkeypatch):
    from app.api import api

    monkeypatch.setenv("FACETYPE_API_RATE_PER_MINUTE", "1")
    monkeypatch.setenv("FACETYPE_API_RATE_BURST", "2")
    settings.get_settings.cache_clear()
    with TestClient(api) as c:
        assert c.get("/v1/results/AAAAAAAA").status_code == 404
        assert c.get("/v1/results/AAAAAAAA").status_code == 404
        err = assert_error(c.get("/v1/results/AAAAAAAA"), 429, "rate_limited")
        assert int(c.get("/v1/results/AAAAAAAA").headers["retry-after"]) >= 1
        assert "try again" in err["message"]
        assert c.get("/healthz").status_code == 200  # cheap endpoints are not limited
        assert c.get("/v1/types").status_code == 200


def test_rate_limiter_refills():
    from app.api.limits import RateLimiter

    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    assert limiter.take("a") == 0 and limiter.take("a") == 0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0  # per client
    now[0] += 1.0
    assert limiter.take("a") == 0
    assert RateLimiter(per_minute=0, burst=1).take("a") == 0  # 0 turns it off


def test_reference_urls_are_presigned_on_s3(client, monkeypatch):
    """On S3 the img URLs are the store's presigned URLs (here a stand-in for the S3 store)."""
    local = storage.get_store()

    class PresigningStore:
        def __getattr__(self, name):
            return getattr(local, name)

        def url(self, key):
            return f"https://s3.example.test/bucket/{key}?X-Amz-Signature=abc"

    def presigning_get_store():
        return PresigningStore()

    presigning_get_store.cache_clear = lambda: None  # the fixtures clear the caches on the way out
    monkeypatch.setattr(storage, "get_store", presigning_get_store)
    body = client.post("/v1/classify", json=source_request("obama_rgba.png")).json()
    assert body["human"] is True
    assert all(body[f"img{i}"].startswith("https://s3.example.test/bucket/") for i in range(1, 5))


def test_mbti_types_all_accepted_by_schema():
    from app.api.schemas import ClassifyRequest

    for mbti in MBTI_TYPES:
        assert ClassifyRequest(user_img="x", age="2000-01-01", mbti=mbti.lower()).mbti == mbti
