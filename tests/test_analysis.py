"""app.services.analysis: analyse a photo in memory (nothing written), result cards, and no
personal data in the logs.

Tests that classify use ``served_app_env`` (tests/conftest.py): a copy of a project with the
sample project (synthetic composite people) and a promoted, briefly trained head.
"""

from __future__ import annotations

import io
import logging
from datetime import date, timedelta

import pytest
from PIL import Image

from app.services import analysis, cards, result_codes, retention, submissions
from app.core import db, settings, vocabulary
from app.core.db import utcnow
from models.gate import GATE_MESSAGES
from tests.conftest import clear_caches
from tests.visit_helpers import (
    BAD,
    BAD_REASONS,
    NO_FACE,
    PASSING,
    fake_visit,
    snapshot,
)


# ============================================================================ analyse (in memory)


def test_passing_photo_gives_a_type_and_writes_nothing(served_app_env):
    before = snapshot()
    steps = []
    visit = analysis.analyse_photo(PASSING.read_bytes(), progress=lambda step, label: steps.append(step))
    assert visit.ok, visit.message
    assert visit.type_name in vocabulary.TYPES
    assert visit.description  # from the TypeProfile
    assert 0.0 <= visit.confidence <= 1.0
    assert set(visit.per_region) == set(vocabulary.REGIONS)
    assert all({"type", "points"} <= set(v) for v in visit.per_region.values())
    assert set(visit.boxes) == set(vocabulary.REGIONS)
    assert steps == ["check", "regions", "type"]
    assert visit.image is not None and visit.image.shape[1::-1] == visit.image_size
    assert "image" not in visit.to_dict()
    assert snapshot() == before


def test_no_face_photo_is_refused_with_the_gate_message(served_app_env):
    visit = analysis.analyse_photo(NO_FACE.read_bytes())
    assert not visit.ok
    assert visit.reason == "no_face"
    assert visit.message == GATE_MESSAGES["no_face"]


@pytest.mark.parametrize("name", sorted(BAD_REASONS))
def test_bad_files_are_refused_with_their_reason(served_app_env, name):
    visit = analysis.analyse_photo((BAD / name).read_bytes())
    assert not visit.ok
    assert visit.reason == BAD_REASONS[name]
    assert visit.message == GATE_MESSAGES[BAD_REASONS[name]]


def test_upload_over_the_size_limit_is_refused(served_app_env, monkeypatch):
    monkeypatch.setenv("FACETYPE_MAX_UPLOAD_MB", "1")
    settings.get_settings.cache_clear()
    visit = analysis.analyse_photo(b"\xff" * (1024 * 1024 + 1))
    assert visit.reason == analysis.UPLOAD_TOO_LARGE and "1 MB" in visit.message


def test_without_a_promoted_model_it_says_so(app_env):
    clear_caches()
    db.migrate()
    assert "no model has been promoted" in analysis.model_status()
    with pytest.raises(analysis.ModelUnavailable):
        analysis.analyse_photo(PASSING.read_bytes())


# ============================================================================ card


def test_result_card_png():
    visit = fake_visit("Gamma")
    visit.image = __import__("numpy").zeros((150, 120, 3), dtype="uint8")
    png = cards.visit_card_png(visit)
    assert png.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(png)) as card:
        assert card.size == (900, 540)
    plain = cards.result_card_png("Gamma", "A description " * 20, None, None, date(2024, 5, 6), 0.42)
    assert plain.startswith(b"\x89PNG")
    overlay = cards.draw_regions(visit.image, visit.boxes, max_side=60)
    assert max(overlay.size) == 60


# ============================================================================ logs


def test_no_personal_data_in_logs(served_app_env, caplog):
    caplog.set_level(logging.DEBUG)
    data = PASSING.read_bytes()
    visit = analysis.analyse_photo(data)
    result_code, delete_code = submissions.store_submission(visit, data, "ENFP", date(1987, 6, 5), True)
    submissions.load_submission(result_code)
    submissions.delete_submission(None, delete_code)
    retention.purge_expired(now=utcnow() + timedelta(days=400))
    messages = [record.getMessage() for record in caplog.records]
    text = "\n".join(messages)
    assert messages, "the flow logs something"
    for secret in ("ENFP", "1987", "06-05", result_code, delete_code, result_codes.normalise_code(delete_code)):
        assert secret not in text
    assert all(len(m) < 2000 for m in messages)
    for record in caplog.records:
        for arg in record.args or ():
            assert not isinstance(arg, (bytes, bytearray, date))


def portrait_on_canvas(factor: float, canvas: tuple[int, int], at: tuple[int, int], fmt: str = "JPEG") -> bytes:
    """The synthetic portrait (PASSING) scaled by ``factor``, pasted at ``at`` on a grey canvas."""
    portrait = Image.open(PASSING).convert("RGB")
    portrait = portrait.resize((round(portrait.width * factor), round(portrait.height * factor)), Image.LANCZOS)
    photo = Image.new("RGB", canvas, (120, 120, 120))
    photo.paste(portrait, at)
    buffer = io.BytesIO()
    photo.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {"compress_level": 1}))
    return buffer.getvalue()


#: The synthetic portrait's regions, as the gate finds them at its own size (480x600).
PORTRAIT_REGIONS = {"face": [119.2, 134.7, 366.8, 419.7], "tzone": [135.3, 179.9, 337.0, 302.6],
                    "jaw": [130.8, 302.6, 359.0, 426.8]}
PORTRAIT_BROW_TO_CHIN = 233.0


@pytest.mark.parametrize("fmt, scale", [("JPEG", 4.0), ("PNG", 3.0)])
def test_a_large_photo_is_kept_reduced_with_its_boxes_on_the_face(served_app_env, monkeypatch, fmt, scale):
    """A JPEG is decoded reduced (DCT scaling, to the model's side); a PNG is decoded whole and shrunk
    to ``analysis_max_side`` for keeping; either way the boxes are in the uploaded photo's pixels and,
    divided by ``scale``, sit on the face in the kept image."""
    from models.geometry import box_iou

    monkeypatch.setenv("FACETYPE_ANALYSIS_MAX_SIDE", "1000")
    settings.get_settings.cache_clear()
    at, factor = (1800, 1000), 2.0
    visit = analysis.analyse_photo(portrait_on_canvas(factor, (3000, 2400), at, fmt))
    assert visit.ok, visit.message
    assert visit.image_size == (3000, 2400) and visit.scale == scale
    assert visit.image.shape[:2] == (round(2400 / scale), round(3000 / scale))  # never 7 M pixels kept
    drawn = visit.image_boxes()
    for region, box in PORTRAIT_REGIONS.items():
        expected = [at[0] + factor * box[0], at[1] + factor * box[1], at[0] + factor * box[2], at[1] + factor * box[3]]
        assert box_iou(visit.boxes[region], expected) > 0.8, region
        assert box_iou(drawn[region], [v / scale for v in expected]) > 0.8, region
    assert visit.to_dict()["image_size"] == [3000, 2400]


def test_the_minimum_face_size_is_in_the_uploaded_photos_pixels(served_app_env, monkeypatch):
    """A photo over ``analysis_max_side`` is analysed reduced: the minimum face size still holds for the
    face as uploaded (a large face passes, a small one is refused), not for its reduced pixels."""
    from models.gate import get_face_gate

    gate = get_face_gate()  # the process's gate, which analyse_photo uses, read its settings when made
    monkeypatch.setattr(gate, "settings", gate.settings.model_copy(
        update={"min_face_px": round(0.85 * PORTRAIT_BROW_TO_CHIN)}))
    large = analysis.analyse_photo(portrait_on_canvas(1.0, (2800, 2100), (1200, 700)))
    assert large.ok, large.message  # 233 px brow to chin in the photo; 170 px in a 2048-px copy of it
    small = analysis.analyse_photo(portrait_on_canvas(0.7, (2800, 2100), (1200, 700)))
    assert small.reason == "face_too_small"
