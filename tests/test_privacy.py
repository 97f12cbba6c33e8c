"""Privacy page (delete by code) and the retention purge (app.services.retention)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta

from sqlmodel import select
from streamlit.testing.v1 import AppTest

from app.services import retention, submissions
from app.core import db, settings, storage
from app.core.db import Photo, ReferencePerson, Submission, session_scope, utcnow
from app.core.settings import PROJECT_ROOT
from tests.visit_helpers import FlakyStore, fake_visit, synthetic_jpeg, visitor_counts

PAGE = "pages/privacy.py"


def open_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def submit_code(at: AppTest, code: str) -> None:
    at.text_input(key="privacy_delete_code").input(code)
    at.button[0].click()
    at.run()
    assert not at.exception, at.exception


def keep_one(url=None, store=None, **answers) -> tuple[str, str]:
    return submissions.store_submission(fake_visit(), synthetic_jpeg(), answers.get("mbti", "INTJ"),
                                   answers.get("birth_date", date(1990, 1, 1)), True, url=url, store=store)


def page_text(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in at.markdown)


def test_page_says_what_is_kept_and_for_how_long(app_env, monkeypatch):
    monkeypatch.setenv("FACETYPE_RETENTION_DAYS", "12")
    settings.get_settings.cache_clear()
    at = open_page()
    text = page_text(at)
    assert "**12 days**" in text
    assert "nothing" in text.lower() and "delete code" in text.lower()
    assert "location, camera serial number" in text  # what visitor_photos.without_metadata strips


def test_delete_by_code_on_the_page(app_env):
    db.migrate()
    result_code, delete_code = keep_one()
    other = keep_one()
    assert visitor_counts() == (2, 2, 2)

    at = open_page()
    submit_code(at, "")
    assert at.warning and "Enter the delete code" in at.warning[0].value

    wrong = delete_code[:-1] + ("A" if delete_code[-1] != "A" else "B")
    submit_code(at, wrong)
    assert at.error and "No kept result matches" in at.error[0].value
    assert visitor_counts() == (2, 2, 2)

    submit_code(at, delete_code.lower())  # codes are not case-sensitive
    assert at.success and "Deleted" in at.success[0].value
    assert visitor_counts() == (1, 1, 1)
    assert submissions.load_submission(result_code) is None
    assert submissions.load_submission(other[0]) is not None

    submit_code(at, delete_code)  # twice: nothing left to delete
    assert at.error and "No kept result matches" in at.error[0].value


def test_delete_with_the_store_down_deletes_nothing_and_says_so(app_env, monkeypatch):
    db.migrate()
    store = FlakyStore(storage.get_store())
    _, delete_code = keep_one(store=store)
    store.dead = True
    monkeypatch.setattr(submissions, "get_visitor_store", lambda: store)
    at = open_page()
    submit_code(at, delete_code)
    assert at.error and "nothing was deleted" in at.error[0].value
    assert visitor_counts(store=store.inner) == (1, 1, 1)


# ============================================================================ purge


def _age(url, result_code: str, days: int) -> None:
    """Move a submission (and its photo) ``days`` into the past."""
    with session_scope(url) as session:
        row = session.exec(select(Submission).where(Submission.result_code == result_code)).one()
        photo = session.get(Photo, row.photo_id)
        for item in (row, photo):
            item.created_at = item.created_at - timedelta(days=days)
            item.expires_at = item.expires_at - timedelta(days=days)
            session.add(item)


def test_purge_removes_only_expired_visitor_data(database_url, object_store):
    url, store = database_url, object_store
    with session_scope(url) as session:
        person = ReferencePerson(person_key="ref1", pseudonym="Synthetic 1")
        session.add(person)
        session.flush()
        data = synthetic_jpeg(9)
        store.put("reference/1/ref.jpg", data, "image/jpeg")
        # A reference photo with an expiry in the past: purge must never touch reference photos.
        session.add(Photo(object_key="reference/1/ref.jpg", size_bytes=len(data), sha256="r" * 64, width=120,
                          height=150, source="reference", person_id=person.id,
                          expires_at=utcnow() - timedelta(days=1)))
    old_code, _ = keep_one(url, store)
    new_code, _ = keep_one(url, store)
    days = settings.get_settings().retention_days
    _age(url, old_code, days + 1)
    assert visitor_counts(url, store) == (2, 2, 2)

    assert retention.purge_expired(url=url, store=store) == 1
    assert visitor_counts(url, store) == (1, 1, 1)
    assert submissions.load_submission(old_code, url=url) is None
    assert submissions.load_submission(new_code, url=url) is not None
    assert store.get("reference/1/ref.jpg") == data
    with session_scope(url) as session:
        assert session.exec(select(Photo).where(Photo.source == "reference")).one()

    assert retention.purge_expired(url=url, store=store) == 0
    assert retention.purge_expired(now=utcnow() + timedelta(days=days + 1), url=url, store=store) == 1
    assert visitor_counts(url, store) == (0, 0, 0)


def test_expired_but_not_yet_purged_results_cannot_be_opened(database_url, tmp_path):
    store = storage.LocalStore(tmp_path / "s")
    code, _ = keep_one(database_url, store)
    _age(database_url, code, settings.get_settings().retention_days + 1)
    assert submissions.load_submission(code, url=database_url) is None


def test_purge_command(app_env):
    db.migrate()
    code, _ = keep_one()
    _age(None, code, 400)
    keep_one()
    db.get_engine().dispose()
    # app_env put the database and store settings in the environment the child inherits
    done = subprocess.run([sys.executable, "-m", "app.services.retention"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "removed 1 expired visitor submission(s)" in done.stdout
    assert "INTJ" not in done.stdout + done.stderr and "1990" not in done.stdout + done.stderr
    assert visitor_counts() == (1, 1, 1)


def test_purge_removes_stale_partial_files(tmp_path):
    import os

    from app.services.retention import purge_expired

    url = f"sqlite:///{tmp_path / 'facetype.db'}"
    db.migrate(url)
    store = storage.LocalStore(tmp_path / "store")
    store.put("visitor/photos/x.jpg", b"x")
    partial = tmp_path / "store" / "visitor" / "photos" / "20200101t000000-dead.jpg.part"
    partial.write_bytes(b"most of a face")
    os.utime(partial, (0, 0))
    purge_expired(url=url, store=store)
    assert not partial.exists()
