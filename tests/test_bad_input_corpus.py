"""Every test file — good photos, refused photos and broken files — through the three entry
points (the page's intake, the command line, the API): each gets a result or a clear reason, and
the app is still healthy afterwards."""

import base64
import json
import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from app.services import analysis
from app.core.settings import PROJECT_ROOT
from app.core.vocabulary import TYPES
from models.gate import GATE_MESSAGES
from tests.conftest_paths import TEST_DATA

EXPECTED = json.loads((TEST_DATA / "faces" / "expected.json").read_text())
CORPUS = sorted(p for folder in ("faces", "bad") for p in (TEST_DATA / folder).iterdir() if p.name != "expected.json")
BAD_REASONS = {"empty.png": "empty", "not_an_image.jpg": "not_an_image", "pixel_bomb.png": "too_large",
               "tiny_8x8.png": "too_small", "truncated.jpg": "truncated"}


def expected_reason(name: str) -> str | None:
    """None for a photo that passes, else the reason it must be refused with."""
    if name in BAD_REASONS:
        return BAD_REASONS[name]
    verdict = EXPECTED[name]["gate"]
    return None if verdict == "pass" else verdict


def test_corpus_is_complete():
    assert len(CORPUS) == len(EXPECTED) + len(BAD_REASONS)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_page_intake(served_app_env, path):
    visit = analysis.analyse_photo(path.read_bytes())
    reason = expected_reason(path.name)
    if reason is None:
        assert visit.ok and visit.type_name in TYPES and set(visit.per_region) == {"face", "tzone", "jaw"}
    else:
        assert (visit.ok, visit.reason) == (False, reason)
        assert visit.message == GATE_MESSAGES[reason]


def test_command_line(served_app_env):
    done = subprocess.run([sys.executable, "-m", "models.cascade", "classify", "--json", *map(str, CORPUS)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = {os.path.basename(line["file"]): line for line in map(json.loads, done.stdout.splitlines())}
    assert set(lines) == {p.name for p in CORPUS}
    for name, line in lines.items():
        reason = expected_reason(name)
        assert line["reason"] == reason and line["message"]
        assert (line["type"] in TYPES) if reason is None else line["type"] is None


def test_api_then_still_healthy(served_app_env, monkeypatch):
    from app.api import api
    from app.core.settings import get_settings

    monkeypatch.setenv("FACETYPE_API_RATE_PER_MINUTE", "0")  # one client sends the whole corpus
    get_settings.cache_clear()
    with TestClient(api) as client:
        for path in CORPUS:
            body = {"user_img": base64.b64encode(path.read_bytes()).decode(), "age": "1990-01-02",
                    "mbti": "ESTJ", "consent_store": False}
            response = client.post("/v1/classify", json=body)
            reason = expected_reason(path.name)
            assert response.status_code < 500, (path.name, response.text)
            answer = response.json()
            if reason is None:
                assert response.status_code == 200 and answer["human"] is True and answer["male_type"] in TYPES
            elif path.name in BAD_REASONS:
                assert 400 <= response.status_code < 500 and answer["message"], (path.name, answer)
            else:
                assert response.status_code == 200 and answer["human"] is False and answer["reason"] == reason
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["model_ready"] is True
