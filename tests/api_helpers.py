"""Inputs and checks shared by the API tests (tests/test_api.py, tests/test_api_limits.py).

Their fixtures ``served_env`` and ``client`` are in tests/conftest.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from sqlmodel import select

from app.core import db
from tests.conftest_paths import TEST_DATA

FACES = TEST_DATA / "faces"
BAD = TEST_DATA / "bad"
EXPECTED = json.loads((FACES / "expected.json").read_text())


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def source_request(photo: Path | str = "obama.jpg", **overrides) -> dict:
    """The source's Flutter request body."""
    path = photo if isinstance(photo, Path) else FACES / photo
    body = {"user_img": b64(path), "age": "1990-01-02", "mbti": "ESTJ", "consent_store": False}
    body.update(overrides)
    return body


def assert_error(response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and len(body["message"]) > 10
    if error is not None:
        assert body["error"] == error, body
    return body


def visitor_rows(url: str | None = None) -> tuple[int, int]:
    with db.session_scope() as session:
        subs = len(list(session.exec(select(db.Submission))))
        photos = len(list(session.exec(select(db.Photo).where(db.Photo.source == "visitor"))))
    return subs, photos
