"""app.services.gallery: reference images of a type (random, no repeats, upright).
"""

from __future__ import annotations

import random

import pytest

from app.services import gallery
from app.core import db, storage, vocabulary
from app.core.db import Photo, ReferencePerson, TypeProfile, session_scope
from tests.visit_helpers import UNREACHABLE_DB, FlakyStore, synthetic_jpeg


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


class CountingStore:
    """Wraps a store, counting gets; ``fail`` maps a key to the exception its get raises."""

    def __init__(self, inner, fail=None, delay_s: float = 0.0):
        self.inner, self.fail, self.delay_s, self.gets = inner, fail or {}, delay_s, []

    def get(self, key):
        import time

        self.gets.append(key)
        time.sleep(self.delay_s)
        if key in self.fail:
            raise self.fail[key]
        return self.inner.get(key)


def test_reference_images_fetch_only_what_they_show(references):
    url, store = references
    counting = CountingStore(store)
    picks = gallery.reference_images("Alpha", k=4, url=url, store=counting)
    assert len(picks) == 4 and len(counting.gets) == 4 and picks.missing is None


def test_a_missing_reference_photo_is_replaced_by_the_next(references):
    url, store = references
    order = [p.object_key for p in gallery.pick_reference_photos("Alpha", random.Random(3), url)]
    counting = CountingStore(store, fail={order[0]: storage.ObjectNotFound(order[0])})
    picks = gallery.reference_images("Alpha", k=4, rng=random.Random(3), url=url, store=counting)
    assert len(picks) == 4 and len(counting.gets) == 5 and picks.missing is None


def test_a_failing_store_ends_the_search_at_the_first_failure(references):
    url, store = references
    order = [p.object_key for p in gallery.pick_reference_photos("Alpha", random.Random(5), url)]
    counting = CountingStore(store, fail={key: storage.StorageError("timed out (test)") for key in order[1:]})
    picks = gallery.reference_images("Alpha", k=4, rng=random.Random(5), url=url, store=counting)
    assert len(picks) == 1 and len(counting.gets) == 2  # not every reference photo at a timeout each
    assert picks.missing == gallery.STORE_DOWN


def test_the_deadline_ends_a_slow_store(references):
    url, store = references
    counting = CountingStore(store, delay_s=0.2)
    picks = gallery.reference_images("Alpha", k=9, url=url, store=counting, deadline_s=0.3)
    assert 1 <= len(counting.gets) <= 3 and len(picks) == len(counting.gets)
    assert picks.missing == gallery.STORE_SLOW


def test_an_unreachable_database_is_named(references):
    _, store = references
    picks = gallery.reference_images("Alpha", url=UNREACHABLE_DB, store=store)
    assert picks == [] and picks.missing == gallery.DATABASE_DOWN
