"""app.services.submissions: result and delete codes; store, load and delete a kept visit.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import select

from app.services import analysis, result_codes, submissions, visitor_photos
from app.core import settings, storage
from app.core.db import BoxSuggestion, ModelVersion, Photo, RegionBox, Submission, as_utc, session_scope, utcnow
from tests.visit_helpers import fake_visit, synthetic_jpeg, visitor_counts


# ============================================================================ codes


def test_codes_are_random_hashed_and_normalised():
    codes = {result_codes.new_result_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 8 and set(c) <= set(result_codes.CROCKFORD) for c in codes)
    code = result_codes.new_result_code()
    delete_code = result_codes.new_delete_code(code)
    assert delete_code.startswith(code + "-")
    first, second = result_codes.hash_delete_code(delete_code), result_codes.hash_delete_code(delete_code)
    assert first != second  # per-row salt
    assert first.startswith("scrypt$") and len(first) <= 128
    assert result_codes.normalise_code(delete_code) not in first
    assert result_codes.verify_delete_code(delete_code, first)
    assert result_codes.verify_delete_code(delete_code.lower().replace("0", "o").replace("-", " "), first)
    other = result_codes.new_delete_code(code)
    assert not result_codes.verify_delete_code(other, first)
    assert not result_codes.verify_delete_code(delete_code, "garbage")


# ============================================================================ store / load / delete


def test_store_load_and_delete(database_url, object_store):
    data = synthetic_jpeg(1)
    result_code, delete_code = submissions.store_submission(
        fake_visit(), data, "INTJ", date(1990, 4, 5), True, url=database_url, store=object_store)
    assert visitor_counts(database_url, object_store) == (1, 1, 1)
    with session_scope(database_url) as session:
        row = session.exec(select(Submission)).one()
        photo = session.get(Photo, row.photo_id)
    assert row.result_code == result_code and row.mbti == "INTJ" and row.birth_date == date(1990, 4, 5)
    assert result_codes.normalise_code(delete_code) not in row.delete_code_hash
    assert photo.source == "visitor" and photo.consent_store and photo.consent_training
    days = settings.get_settings().retention_days
    assert abs(as_utc(row.expires_at) - (utcnow() + timedelta(days=days))) < timedelta(minutes=5)
    assert photo.expires_at is not None
    kept = visitor_photos.without_metadata(data)  # the photo as kept: upright, without metadata
    assert object_store.get(photo.object_key) == kept
    assert photo.sha256 == visitor_photos.visitor_digest(photo.object_key, kept)

    # The same photo may be kept twice (two visits), each with its own codes.
    second = submissions.store_submission(fake_visit(), data, "ENFP", date(1991, 1, 1), False, url=database_url,
                                     store=object_store)
    assert visitor_counts(database_url, object_store) == (2, 2, 2)

    stored = submissions.load_submission(result_code.lower(), url=database_url)
    assert stored.result_code == result_code and stored.type_name == "Beta"
    assert "mbti" not in stored.to_dict() and "birth_date" not in stored.to_dict()
    assert submissions.load_submission("ZZZZZZZZ", url=database_url) is None
    assert submissions.load_submission("not a code!", url=database_url) is None

    wrong = delete_code[:-1] + ("A" if delete_code[-1] != "A" else "B")
    assert not submissions.delete_submission(None, wrong, url=database_url, store=object_store)
    assert not submissions.delete_submission(second[0], delete_code, url=database_url, store=object_store)
    assert not submissions.delete_submission(None, "nonsense", url=database_url, store=object_store)
    assert visitor_counts(database_url, object_store) == (2, 2, 2)

    assert submissions.delete_submission(result_code, delete_code, url=database_url, store=object_store)
    assert visitor_counts(database_url, object_store) == (1, 1, 1)
    assert submissions.load_submission(result_code, url=database_url) is None
    assert not submissions.delete_submission(None, delete_code, url=database_url, store=object_store)
    assert submissions.delete_submission(None, second[1], url=database_url, store=object_store)
    assert visitor_counts(database_url, object_store) == (0, 0, 0)


def test_store_refuses_invalid_answers(database_url, tmp_path):
    store = storage.LocalStore(tmp_path / "s")
    for mbti, born in (("XXXX", date(1990, 1, 1)), ("INTJ", date(1800, 1, 1)),
                       ("INTJ", date.today() + timedelta(days=1))):
        with pytest.raises(analysis.NotStored) as info:
            submissions.store_submission(fake_visit(), synthetic_jpeg(), mbti, born, True, url=database_url, store=store)
        assert info.value.cause == "invalid"
    with pytest.raises(analysis.NotStored):
        submissions.store_submission(analysis.VisitResult(ok=False, reason="no_face"), synthetic_jpeg(), "INTJ",
                                date(1990, 1, 1), True, url=database_url, store=store)
    assert visitor_counts(database_url, store) == (0, 0, 0)


def test_labeled_visitor_photo_is_deleted_with_its_boxes(database_url, tmp_path):
    store = storage.LocalStore(tmp_path / "s")
    result_code, delete_code = submissions.store_submission(fake_visit(), synthetic_jpeg(), "INTJ", date(1990, 1, 1),
                                                       True, url=database_url, store=store)
    with session_scope(database_url) as session:
        photo_id = session.exec(select(Submission)).one().photo_id
        session.add(RegionBox(photo_id=photo_id, version=1, region="face", x0=0, y0=0, x1=1, y1=1, source="human"))
        model = ModelVersion(kind="detector", status="done")
        session.add(model)
        session.flush()
        session.add(BoxSuggestion(photo_id=photo_id, boxes_version=1, model_version_id=model.id, regions={},
                                  uncertainty=1.0, disagreement=1.0))
    assert submissions.delete_submission(None, delete_code, url=database_url, store=store)
    with session_scope(database_url) as session:
        assert session.exec(select(RegionBox)).all() == []
        assert session.exec(select(BoxSuggestion)).all() == []  # the served model's boxes for it go too
    assert visitor_counts(database_url, store) == (0, 0, 0)


def test_analysing_a_kept_photo_again_updates_the_one_submission(database_url, object_store):
    result_code, delete_code = submissions.store_submission(fake_visit("Beta"), synthetic_jpeg(), "INTJ",
                                                            date(1990, 1, 1), True, url=database_url,
                                                            store=object_store)
    keys = object_store.list("")
    assert submissions.update_submission(result_code, fake_visit("Delta"), analysis.MBTI_UNKNOWN,
                                         date(1991, 2, 3), url=database_url)
    assert visitor_counts(database_url, object_store) == (1, 1, 1)
    assert object_store.list("") == keys
    with session_scope(database_url) as session:
        row = session.exec(select(Submission)).one()
        assert (row.result_code, row.mbti, row.birth_date, row.type_name) == (
            result_code, analysis.MBTI_UNKNOWN, date(1991, 2, 3), "Delta")
        assert row.result["type"] == "Delta"
    assert submissions.load_submission(result_code, url=database_url).type_name == "Delta"
    with pytest.raises(analysis.NotStored):
        submissions.update_submission(result_code, fake_visit(), "INTJ", date.today(), url=database_url)
    assert submissions.delete_submission(None, delete_code, url=database_url, store=object_store)
    assert not submissions.update_submission(result_code, fake_visit(), "INTJ", date(1990, 1, 1), url=database_url)
    assert visitor_counts(database_url, object_store) == (0, 0, 0)


def _jpeg_with_gps_and_serial(orientation: int = 6) -> bytes:
    import io

    from PIL import Image

    image = Image.new("RGB", (120, 80), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, 60, 80))  # left half blue: shows which way is up
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0xA431] = "SERIAL-1234567"  # BodySerialNumber
    exif[0x8825] = {1: "N", 2: (37.0, 33.0, 59.0), 3: "E", 4: (126.0, 58.0, 41.0)}  # GPS
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, comment=b"taken at home")
    return out.getvalue()


def test_kept_photos_lose_their_metadata_but_stay_upright(database_url, tmp_path):
    import io

    from PIL import Image

    from app.core.storage import LocalStore
    from models.intake import decode_image

    data = _jpeg_with_gps_and_serial()
    assert b"SERIAL-1234567" in data and b"taken at home" in data
    store = LocalStore(tmp_path / "store")
    submissions.store_submission(fake_visit(size=(80, 120)), data, "INTJ", date(1990, 4, 5), False,
                                 url=database_url, store=store)
    (key,) = store.list("visitor/")
    kept = store.get(key)
    assert b"SERIAL-1234567" not in kept and b"taken at home" not in kept
    with Image.open(io.BytesIO(kept)) as image:
        assert not image.getexif() and "comment" not in image.info and "exif" not in image.info
        assert image.size == (80, 120)  # orientation 6 applied before the EXIF went
    upright = decode_image(kept)
    assert abs(upright.astype(int) - decode_image(data).astype(int)).mean() < 3
