"""The classify body parser on hostile JSON (no server, no model)."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from app.api.errors import ApiError
from app.api.parsing import parse_classify_request


def parse(body: bytes, content_type: str = "application/json"):
    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/v1/classify", "headers": [(b"content-type", content_type.encode())]}
    return asyncio.run(parse_classify_request(Request(scope, receive)))


@pytest.mark.parametrize("body", [
    b"[" * 1000 + b"]" * 1000,
    b'{"user_img": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b"[" * 200000,
])
@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/vnd.x+json"])
def test_deeply_nested_json_is_400_invalid_json(body, content_type):
    with pytest.raises(ApiError) as info:
        parse(body, content_type)
    assert (info.value.status, info.value.error) == (400, "invalid_json")


@pytest.mark.parametrize("failure, blamed", [
    ("database", "The database cannot be reached"),
    ("store", "The photo store cannot be reached"),
])
def test_reference_images_blame_the_part_that_failed(monkeypatch, failure, blamed):
    import sqlalchemy as sa
    from fastapi.testclient import TestClient

    from app.api import api, routes
    from app.core.storage import StorageError

    def broken(photo_id):
        if failure == "database":
            raise sa.exc.OperationalError("SELECT", {}, Exception("down (test)"))
        raise StorageError("timed out (test)")

    monkeypatch.setattr(routes, "reference_bytes", broken)
    monkeypatch.setattr(api.state, "config_error", None, raising=False)  # whatever an earlier test's start left
    answer = TestClient(api).get("/v1/reference-images/1")  # no lifespan: the handler alone
    assert answer.status_code == 503 and answer.json()["message"].startswith(blamed)
