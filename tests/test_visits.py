"""app.visits: analyse in memory, keep only on opt-in, codes, delete, purge, failures, logs.

Tests that classify use ``served_app_env`` (tests/conftest.py): a copy of a project with the
sample project (synthetic composite people) and a promoted, briefly trained head.
"""

from __future__ import annotations

import io
import logging
import random
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from PIL import Image
from sqlmodel import func, select

from app.services import analysis, cards, gallery, retention, submissions
from app.core import db, settings, storage, vocabulary
from app.core.db import Photo, ReferencePerson, RegionBox, Submission, TypeProfile, session_scope, utcnow
from models.gate import GATE_MESSAGES
from tests.conftest import clear_caches
from tests.conftest_paths import TEST_DATA
from tests.servers import SeaweedServer

FACES = TEST_DATA / "faces"
BAD = TEST_DATA / "bad"
PASSING = FACES / "obama.jpg"
NO_FACE = FACES / "no_face_coffee.jpg"
BAD_REASONS = {
    "empty.png": "empty",
    "not_an_image.jpg": "not_an_image",
    "pixel_bomb.png": "too_large",
    "tiny_8x8.png": "too_small",
    "truncated.jpg": "truncated",
}
UNREACHABLE_DB = "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"


# ============================================================================ shared fixtures


def synthetic_jpeg(seed: int = 0, size=(120, 150), exif_orientation: int | None = None) -> bytes:
    """A made-up picture (gradient and shapes, no face)."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = rng.randrange(size[0] // 2), rng.randrange(size[1] // 2)
        draw.ellipse([x0, y0, x0 + size[0] // 3, y0 + size[1] // 3], fill=tuple(rng.randrange(256) for _ in range(3)))
    buffer = io.BytesIO()
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(buffer, format="JPEG", exif=exif)
    else:
        image.save(buffer, format="JPEG")
    return buffer.getvalue()


def snapshot(url: str | None = None, store=None) -> dict:
    """Row counts of every table and the store's keys: to show that nothing was written."""
    engine = db.get_engine(url)
    with engine.connect() as conn:
        counts = {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in db.SQLModel.metadata.sorted_tables
        }
    store = store or storage.get_store()
    try:
        keys = store.list("")
    except storage.StorageError:
        keys = []
    return {"rows": counts, "keys": keys}


def row_counts(url: str | None = None) -> tuple[int, int]:
    """(submissions, visitor photos) in the database."""
    with session_scope(url) as session:
        submissions = session.exec(select(func.count()).select_from(Submission)).one()
        photos = session.exec(select(func.count()).select_from(Photo).where(Photo.source == "visitor")).one()
    return submissions, photos


def visitor_counts(url: str | None = None, store=None) -> tuple[int, int, int]:
    with session_scope(url) as session:
        n_submissions = session.exec(select(func.count()).select_from(Submission)).one()
        photos = session.exec(select(func.count()).select_from(Photo).where(Photo.source == "visitor")).one()
    store = store or storage.get_store()
    try:
        objects = len(store.list(submissions.VISITOR_PREFIX + "/"))
    except storage.StorageError:
        objects = 0
    return n_submissions, photos, objects


def fake_visit(type_name: str = "Beta", size=(120, 150)) -> analysis.VisitResult:
    """A classified visit without running the models (for the storage tests)."""
    regions = {r: {"type": type_name, "probability": 0.9, "points": 10.0, "probs": [0.2] * 5, "source": "landmarks"}
               for r in vocabulary.REGIONS}
    return analysis.VisitResult(
        ok=True, type_name=type_name, description=f"{type_name} description", score=50.0, confidence=0.5,
        per_region=regions, boxes={r: [10, 10, 60, 80] for r in vocabulary.REGIONS}, model_version_id=None,
        image_size=size,
    )


class FlakyStore:
    """Wraps a store; ``dead`` makes every call raise StorageError, ``die_after_put`` kills it
    right after the next successful put (the store failing between the two writes)."""

    def __init__(self, inner, on_death=None):
        self.inner = inner
        self.dead = False
        self.die_after_put = False
        self.fail_put = False
        self.on_death = on_death

    def _check(self):
        if self.dead:
            raise storage.StorageError("store is down (test)")

    def put(self, key, data, content_type="application/octet-stream"):
        self._check()
        if self.fail_put:
            raise storage.StorageError("put refused (test)")
        self.inner.put(key, data, content_type)
        if self.die_after_put:
            self.dead = True
            if self.on_death:
                self.on_death()

    def get(self, key):
        self._check()
        return self.inner.get(key)

    def delete(self, key):
        self._check()
        return self.inner.delete(key)

    def list(self, prefix=""):
        self._check()
        return self.inner.list(prefix)

    def url(self, key):
        return self.inner.url(key)

    def ping(self):
        self._check()


def fail_rows(monkeypatch):
    """Make the database part of store_submission fail after the Photo row was flushed."""

    def broken(*_args, **_kwargs):
        raise sa.exc.OperationalError("INSERT", {}, Exception("database went away (test)"))

    monkeypatch.setattr(submissions, "hash_delete_code", broken)


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


# ============================================================================ codes


def test_codes_are_random_hashed_and_normalised():
    codes = {submissions.new_result_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 8 and set(c) <= set(submissions._CROCKFORD) for c in codes)
    code = submissions.new_result_code()
    delete_code = submissions.new_delete_code(code)
    assert delete_code.startswith(code + "-")
    first, second = submissions.hash_delete_code(delete_code), submissions.hash_delete_code(delete_code)
    assert first != second  # per-row salt
    assert first.startswith("scrypt$") and len(first) <= 128
    assert submissions.normalise_code(delete_code) not in first
    assert submissions.verify_delete_code(delete_code, first)
    assert submissions.verify_delete_code(delete_code.lower().replace("0", "o").replace("-", " "), first)
    other = submissions.new_delete_code(code)
    assert not submissions.verify_delete_code(other, first)
    assert not submissions.verify_delete_code(delete_code, "garbage")


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
    assert submissions.normalise_code(delete_code) not in row.delete_code_hash
    assert photo.source == "visitor" and photo.consent_store and photo.consent_training
    days = settings.get_settings().retention_days
    assert abs(submissions.as_utc(row.expires_at) - (utcnow() + timedelta(days=days))) < timedelta(minutes=5)
    assert photo.expires_at is not None
    assert object_store.get(photo.object_key) == data
    assert photo.sha256 == submissions.visitor_digest(photo.object_key, data)

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
    assert submissions.delete_submission(None, delete_code, url=database_url, store=store)
    with session_scope(database_url) as session:
        assert session.exec(select(RegionBox)).all() == []
    assert visitor_counts(database_url, store) == (0, 0, 0)


# ============================================================================ failures: nothing half-written


def test_store_down_stores_nothing(database_url, tmp_path):
    store = FlakyStore(storage.LocalStore(tmp_path / "s"))
    store.fail_put = True
    with pytest.raises(analysis.NotStored) as info:
        submissions.store_submission(fake_visit(), synthetic_jpeg(), "INTJ", date(1990, 1, 1), True,
                                url=database_url, store=store)
    assert info.value.cause == "store"
    assert visitor_counts(database_url, store.inner) == (0, 0, 0)


def test_database_down_removes_the_object(tmp_path):
    store = storage.LocalStore(tmp_path / "s")
    with pytest.raises(analysis.NotStored) as info:
        submissions.store_submission(fake_visit(), synthetic_jpeg(), "INTJ", date(1990, 1, 1), True,
                                url=UNREACHABLE_DB, store=store)
    assert info.value.cause == "database"
    assert store.list("") == []


def test_rows_failing_after_the_object_roll_back_and_remove_it(database_url, tmp_path, monkeypatch):
    store = storage.LocalStore(tmp_path / "s")
    fail_rows(monkeypatch)
    with pytest.raises(analysis.NotStored):
        submissions.store_submission(fake_visit(), synthetic_jpeg(), "INTJ", date(1990, 1, 1), True,
                                url=database_url, store=store)
    assert visitor_counts(database_url, store) == (0, 0, 0)  # the flushed Photo row was rolled back


def test_store_dying_between_the_writes_leaves_nothing_half_written(database_url, tmp_path, monkeypatch):
    """Object written, then the store dies and the rows fail: the object cannot be removed now,
    no row exists, and the next purge (once the store is back) sweeps the orphan."""
    inner = storage.LocalStore(tmp_path / "s")
    store = FlakyStore(inner)
    store.die_after_put = True
    fail_rows(monkeypatch)
    with pytest.raises(analysis.NotStored):
        submissions.store_submission(fake_visit(), synthetic_jpeg(), "INTJ", date(1990, 1, 1), True,
                                url=database_url, store=store)
    n_submissions, photos, objects = visitor_counts(database_url, inner)
    assert (n_submissions, photos, objects) == (0, 0, 1)
    monkeypatch.undo()
    # A young orphan may belong to a save in progress: kept; after the grace period: swept.
    assert retention.purge_expired(url=database_url, store=inner) == 0
    assert visitor_counts(database_url, inner) == (0, 0, 1)
    retention.purge_expired(now=utcnow() + retention.ORPHAN_GRACE + timedelta(minutes=1), url=database_url, store=inner)
    assert visitor_counts(database_url, inner) == (0, 0, 0)


def test_store_dying_after_the_rows_keeps_a_whole_submission(database_url, tmp_path):
    """Object and rows written, then the store dies: the submission is whole; deleting it fails
    as a whole (rows kept) until the store is back."""
    inner = storage.LocalStore(tmp_path / "s")
    store = FlakyStore(inner)
    store.die_after_put = True
    result_code, delete_code = submissions.store_submission(fake_visit(), synthetic_jpeg(), "INTJ", date(1990, 1, 1),
                                                       True, url=database_url, store=store)
    assert visitor_counts(database_url, inner) == (1, 1, 1)
    with pytest.raises(analysis.DeleteFailed):
        submissions.delete_submission(None, delete_code, url=database_url, store=store)
    assert visitor_counts(database_url, inner) == (1, 1, 1)
    assert submissions.load_submission(result_code, url=database_url) is not None
    assert retention.purge_expired(now=utcnow() + timedelta(days=400), url=database_url, store=store) == 0
    assert visitor_counts(database_url, inner) == (1, 1, 1)
    store.dead = False
    assert submissions.delete_submission(None, delete_code, url=database_url, store=store)
    assert visitor_counts(database_url, inner) == (0, 0, 0)


@pytest.fixture
def own_seaweed(monkeypatch):
    """A SeaweedFS server of this test only (it gets stopped mid-test).

    Its Iceberg and Lance listeners are switched off: they default to fixed ports (8181, 9101),
    which a second server (the session's shared one) already holds."""
    import subprocess

    real_popen = subprocess.Popen

    def popen(args, *rest, **kwargs):
        if isinstance(args, list) and args and str(args[0]).endswith("weed") and "-s3" in args:
            args = [*args, "-s3.port.iceberg=0", "-s3.port.lance=0"]
        return real_popen(args, *rest, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(subprocess, "Popen", popen)
        server = SeaweedServer().start()
    yield server
    server.stop()


def test_seaweed_stopped_mid_save(own_seaweed, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'facetype.db'}"
    db.migrate(url)
    client = own_seaweed.client()
    client.create_bucket(Bucket="visits")
    s3 = storage.S3Store(client, "visits", "facetype")

    kept_code, kept_delete = submissions.store_submission(fake_visit(), synthetic_jpeg(1), "INTJ", date(1990, 1, 1),
                                                     True, url=url, store=s3)
    assert visitor_counts(url, s3) == (1, 1, 1)

    # The object is written, then the server stops, then the rows fail: nothing of it stays in
    # the database, and the orphan object (if the stopped server kept it) is swept later.
    store = FlakyStore(s3, on_death=own_seaweed.stop)
    store.die_after_put = True
    with monkeypatch.context() as patch:
        fail_rows(patch)
        with pytest.raises(analysis.NotStored):
            submissions.store_submission(fake_visit(), synthetic_jpeg(2), "ENFP", date(1991, 1, 1), True, url=url,
                                    store=store)
    assert row_counts(url) == (1, 1)

    # With the real server gone: saving stores nothing, deleting deletes nothing, reading works.
    with pytest.raises(analysis.NotStored) as info:
        submissions.store_submission(fake_visit(), synthetic_jpeg(3), "ISTP", date(1992, 1, 1), True, url=url, store=s3)
    assert info.value.cause == "store"
    with pytest.raises(analysis.DeleteFailed):
        submissions.delete_submission(None, kept_delete, url=url, store=s3)
    assert submissions.load_submission(kept_code, url=url) is not None
    assert retention.purge_expired(now=utcnow() + timedelta(days=400), url=url, store=s3) == 0
    assert row_counts(url) == (1, 1)


def test_database_down_during_a_visit_still_gives_the_result(served_app_env, monkeypatch):
    first = analysis.analyse_photo(PASSING.read_bytes())  # model and descriptions loaded while all is up
    monkeypatch.setenv("FACETYPE_DATABASE_URL", UNREACHABLE_DB)
    settings.get_settings.cache_clear()
    db.get_engine.cache_clear()
    visit = analysis.analyse_photo(PASSING.read_bytes())
    assert visit.ok and visit.type_name == first.type_name and visit.description == first.description
    store = storage.get_store()
    keys = store.list("")
    with pytest.raises(analysis.NotStored) as info:
        submissions.store_submission(visit, PASSING.read_bytes(), "INTJ", date(1990, 1, 1), True)
    assert info.value.cause == "database"
    assert store.list("") == keys
    assert gallery.reference_images(visit.type_name) == []
    with pytest.raises(analysis.ResultsUnavailable):
        submissions.load_submission("ZZZZZZZZ")


# ============================================================================ reference images


@pytest.fixture
def references(tmp_path):
    url = f"sqlite:///{tmp_path / 'refs.db'}"
    db.migrate(url)
    store = storage.LocalStore(tmp_path / "refs")
    with session_scope(url) as session:
        for order, name in enumerate(vocabulary.TYPES):
            session.add(TypeProfile(name=name, order=order, description=name, share_percent=20))
        session.flush()
        n = 0
        for type_name, people, photos in (("Alpha", 3, 3), ("Beta", 1, 2)):
            for p in range(people):
                person = ReferencePerson(person_key=f"{type_name}{p}", pseudonym=f"{type_name} {p}", type_name=type_name)
                session.add(person)
                session.flush()
                for _ in range(photos):
                    data = synthetic_jpeg(n, exif_orientation=6 if n == 0 else None)
                    key = f"reference/{person.id}/{n}.jpg"
                    store.put(key, data, "image/jpeg")
                    session.add(Photo(object_key=key, size_bytes=len(data), sha256=f"{n:064d}", width=120,
                                      height=150, source="reference", person_id=person.id))
                    n += 1
        # A visitor photo must never show up as a reference.
        session.add(Photo(object_key="visitor/photos/x.jpg", size_bytes=1, sha256="v" * 64, width=1, height=1,
                          source="visitor"))
    return url, store


def test_reference_images_random_without_repeats(references):
    url, store = references
    picks = gallery.reference_images("Alpha", k=4, rng=random.Random(1), url=url, store=store)
    assert len(picks) == 4
    assert len({p.photo_id for p in picks}) == 4
    assert len({p.pseudonym for p in picks[:3]}) == 3  # different people first
    again = gallery.reference_images("Alpha", k=4, rng=random.Random(1), url=url, store=store)
    assert [p.photo_id for p in again] == [p.photo_id for p in picks]
    draws = {tuple(p.photo_id for p in gallery.reference_images("Alpha", url=url, store=store)) for _ in range(10)}
    assert len(draws) > 1
    assert len(gallery.reference_images("Beta", url=url, store=store)) == 2  # fewer exist
    assert gallery.reference_images("Omega", url=url, store=store) == []
    assert gallery.reference_images("Gamma", url=UNREACHABLE_DB, store=store) == []
    dead = FlakyStore(store)
    dead.dead = True
    assert gallery.reference_images("Alpha", url=url, store=dead) == []


def test_reference_images_are_upright(references):
    url, store = references
    picks = gallery.reference_images("Alpha", k=9, url=url, store=store)
    shapes = {p.photo_id: p.image.shape for p in picks}
    assert shapes[1] == (120, 150, 3)  # EXIF orientation 6: the 120x150 JPEG is shown rotated
    assert shapes[2] == (150, 120, 3)


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
    for secret in ("ENFP", "1987", "06-05", result_code, delete_code, submissions.normalise_code(delete_code)):
        assert secret not in text
    assert all(len(m) < 2000 for m in messages)
    for record in caplog.records:
        for arg in record.args or ():
            assert not isinstance(arg, (bytes, bytearray, date))
