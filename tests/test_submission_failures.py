"""Saving a visit when the store or the database fails: nothing half-written, orphans purged
(app.services.submissions, app.services.retention).

Tests that classify use ``served_app_env`` (tests/conftest.py).
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.services import analysis, gallery, retention, submissions
from app.core import db, storage
from app.core.db import Submission, session_scope, utcnow
from sqlmodel import select
from tests.servers import SeaweedServer
from tests.visit_helpers import (
    PASSING,
    UNREACHABLE_DB,
    FlakyStore,
    fail_rows,
    fake_visit,
    row_counts,
    synthetic_jpeg,
    visitor_counts,
)


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


def test_database_down_during_a_visit_still_gives_the_result(served_app_env):
    first = analysis.analyse_photo(PASSING.read_bytes())  # model and descriptions loaded while all is up
    take_the_database_away(served_app_env)
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


def take_the_database_away(app_settings):
    """The same database URL stops answering: its SQLite file is replaced by bytes that are not a
    database, so every new connection fails as an unreachable server does (the served model is
    cached per database URL, so a different URL would not be the same outage)."""
    db.get_engine(app_settings.resolved_database_url).dispose()
    db.get_engine.cache_clear()
    path = app_settings.var_dir / "facetype.db"
    path.rename(path.with_suffix(".away"))
    path.write_bytes(b"not a database " * 512)


class DeletesThenTimesOut(FlakyStore):
    """The store removes the object but the answer never arrives (a timeout after the effect)."""

    def delete(self, key):
        self.inner.delete(key)
        raise storage.StorageError("read timeout (test)")


def test_a_delete_that_timed_out_finishes_on_retry(database_url, tmp_path):
    inner = storage.LocalStore(tmp_path / "s")
    _, delete_code = submissions.store_submission(fake_visit(), synthetic_jpeg(), "INTJ", date(1990, 1, 1), True,
                                                  url=database_url, store=inner)
    with pytest.raises(analysis.DeleteFailed, match="nothing was deleted"):
        submissions.delete_submission(None, delete_code, url=database_url, store=DeletesThenTimesOut(inner))
    assert visitor_counts(database_url, inner) == (1, 1, 0)  # the row without its object
    assert submissions.delete_submission(None, delete_code, url=database_url, store=inner)
    assert visitor_counts(database_url, inner) == (0, 0, 0)


def test_a_delete_that_timed_out_is_finished_by_the_purge(database_url, tmp_path):
    inner = storage.LocalStore(tmp_path / "s")
    result_code, delete_code = submissions.store_submission(fake_visit(), synthetic_jpeg(), "INTJ", date(1990, 1, 1),
                                                            True, url=database_url, store=inner)
    with pytest.raises(analysis.DeleteFailed, match="purge deletes it"):
        submissions.delete_submission(None, delete_code, url=database_url, store=DeletesThenTimesOut(inner))
    assert retention.purge_expired(url=database_url, store=inner) == 0  # not before the grace
    later = utcnow() + submissions.DELETE_RETRY_GRACE + timedelta(minutes=1)
    assert retention.purge_expired(now=later, url=database_url, store=inner) == 1
    assert visitor_counts(database_url, inner) == (0, 0, 0)


def test_deleted_answers_do_not_stay_in_the_sqlite_files(tmp_path):
    url = f"sqlite:///{tmp_path / 'facetype.db'}"
    db.migrate(url)
    store = storage.LocalStore(tmp_path / "s")
    kept = [submissions.store_submission(fake_visit(), synthetic_jpeg(i), "INTJ", date(1990, 1, 1), True, url=url,
                                         store=store) for i in range(2)]
    assert submissions.delete_submission(None, kept[0][1], url=url, store=store)
    with session_scope(url) as session:  # the second expires and is purged
        row = session.exec(select(Submission).where(Submission.result_code == kept[1][0])).one()
        row.expires_at = utcnow() - timedelta(days=1)
    retention.purge_expired(url=url, store=store)
    files = list(tmp_path.glob("facetype.db*"))
    for result_code, _ in kept:
        assert not any(result_code.encode() in f.read_bytes() for f in files), result_code
