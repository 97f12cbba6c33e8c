"""Inputs and probes shared by the visit tests (analysis, submissions, failures, gallery),
tests/test_privacy.py and tests/test_try_it_page.py."""

from __future__ import annotations

import io
import random

import sqlalchemy as sa
from PIL import Image
from sqlmodel import func, select

from app.services import analysis, submissions, visitor_photos
from app.core import db, storage, vocabulary
from app.core.db import Photo, Submission, session_scope
from app.core.settings import PROJECT_ROOT
from tests.conftest_paths import TEST_DATA

FACES = TEST_DATA / "faces"
BAD = TEST_DATA / "bad"
#: A photo that passes the face gate and is given a type: the sample project's synthetic portrait (see
#: data/sample/README.md), never a photo of a real person (tests/data/faces show real, named people).
PASSING = PROJECT_ROOT / "data" / "sample" / "framing_example.jpg"
NO_FACE = FACES / "no_face_coffee.jpg"
BAD_REASONS = {
    "empty.png": "empty",
    "not_an_image.jpg": "not_an_image",
    "pixel_bomb.png": "too_large",
    "tiny_8x8.png": "too_small",
    "truncated.jpg": "truncated",
}
UNREACHABLE_DB = "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"


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
        objects = len(store.list(visitor_photos.VISITOR_PREFIX + "/"))
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

    def sweep_partial(self, older_than: float = storage.PARTIAL_GRACE_S) -> int:
        self._check()
        return self.inner.sweep_partial(older_than)


def fail_rows(monkeypatch):
    """Make the database part of store_submission fail after the Photo row was flushed."""

    def broken(*_args, **_kwargs):
        raise sa.exc.OperationalError("INSERT", {}, Exception("database went away (test)"))

    monkeypatch.setattr(submissions, "hash_delete_code", broken)
