"""`python -m models.cascade classify` on every shared photo, with the promoted model."""

import json
import os
import subprocess
import sys

from app.core.settings import PROJECT_ROOT
from tests.conftest_paths import TEST_DATA

FACES = TEST_DATA / "faces"
EXPECTED = json.loads((FACES / "expected.json").read_text())


def run_cascade(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a child process, on the settings the fixture put in the environment."""
    return subprocess.run(
        [sys.executable, "-m", "models.cascade", *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )


def test_classify_prints_a_type_for_every_passing_photo(served_app_env):
    photos = sorted(FACES / name for name in EXPECTED)
    done = run_cascade("classify", *map(str, photos), str(TEST_DATA / "bad" / "truncated.jpg"), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == len(photos) + 1
    for line in lines:
        name = os.path.basename(line["file"])
        if name == "truncated.jpg":
            assert (line["ok"], line["reason"], line["type"]) == (False, "truncated", None)
            continue
        expected = EXPECTED[name]["gate"]
        if expected != "pass":
            assert (line["ok"], line["reason"], line["type"]) == (False, expected, None)
            continue
        assert line["ok"] and line["type"] in ("Alpha", "Beta", "Gamma", "Delta", "Omega")
        assert set(line["per_region"]) == {"face", "tzone", "jaw"}
        assert all(0 <= r["probability"] <= 1 and r["type"] for r in line["per_region"].values())
        assert 0 <= line["score"] <= 100 and 0 <= line["confidence"] <= 1
        assert isinstance(line["model"], int)


def test_classify_without_a_promoted_model_says_so(app_env):
    from app.core.db import migrate

    migrate()
    done = run_cascade("classify", str(FACES / "obama.jpg"))
    assert done.returncode == 2
    assert "No model is promoted" in done.stderr
