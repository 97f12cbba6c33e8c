from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlmodel import select

from app.core import db
from app.core.db import ModelVersion, Photo, ReferencePerson, RegionBox, Submission, TypeProfile, session_scope


def test_migrations_create_every_table_and_run_twice(database_url):
    db.migrate(database_url)  # a second upgrade is a no-op
    names = set(sa.inspect(db.get_engine(database_url)).get_table_names())
    assert {
        "typeprofile", "referenceperson", "photo", "regionbox", "boxaudit", "surveyrating",
        "submission", "modelversion", "boxsuggestion", "alembic_version",
    } <= names


def test_photo_rows_hold_keys_not_bytes(database_url):
    columns = {c["name"] for c in sa.inspect(db.get_engine(database_url)).get_columns("photo")}
    assert "object_key" in columns and "sha256" in columns
    assert not {"data", "image", "base64", "bytes"} & columns


def test_roundtrip_of_related_rows(database_url):
    with session_scope(database_url) as s:
        s.add(TypeProfile(name="Alpha", order=0, description="Bold.", share_percent=21.8))
        s.flush()
        person = ReferencePerson(person_key="p01", pseudonym="Composite 01", type_name="Alpha")
        s.add(person)
        s.flush()
        photo = Photo(object_key="reference/p01/a.jpg", size_bytes=3, sha256="0" * 64, width=10, height=10,
                      source="reference", person_id=person.id, boxes_version=1)
        s.add(photo)
        s.flush()
        s.add(RegionBox(photo_id=photo.id, version=1, region="jaw", x0=1, y0=2, x1=3, y1=4, source="auto", confidence=0.9))
        s.add(ModelVersion(kind="head", config={"epochs": 3}, metrics={"accuracy": 0.5}))
        s.add(Submission(result_code="ABC123", delete_code_hash="h", mbti="ESTJ", birth_date=date(1990, 1, 2),
                         type_name="Alpha", score=90, confidence=0.8, result={"per_region": {}},
                         expires_at=datetime.now(timezone.utc) + timedelta(days=30)))
    with session_scope(database_url) as s:
        photo = s.exec(select(Photo)).one()
        assert [b.as_list() for b in db.current_boxes(s, photo)] == [[1, 2, 3, 4]]
        assert s.exec(select(ModelVersion)).one().config == {"epochs": 3}
        sub = s.exec(select(Submission)).one()
        assert sub.birth_date == date(1990, 1, 2) and sub.expires_at.tzinfo is not None


def test_the_same_photo_is_stored_once_per_source(database_url):
    with pytest.raises(sa.exc.IntegrityError):
        with session_scope(database_url) as s:
            for key in ("reference/a.jpg", "reference/b.jpg"):
                s.add(Photo(object_key=key, size_bytes=1, sha256="f" * 64, width=1, height=1, source="reference"))
                s.flush()


def test_session_scope_rolls_back_on_error(database_url):
    with pytest.raises(RuntimeError):
        with session_scope(database_url) as s:
            s.add(TypeProfile(name="Beta", order=1, description="d", share_percent=21.4))
            s.flush()
            raise RuntimeError("boom")
    with session_scope(database_url) as s:
        assert s.exec(select(TypeProfile)).all() == []


def test_unreachable_database_names_the_setting():
    from tests.servers import free_port

    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nope"
    with pytest.raises(db.DatabaseUnavailable, match="FACETYPE_DATABASE_URL"):
        db.migrate(url)


def test_upgrading_an_existing_database_keeps_its_rows(postgres_server, tmp_path):
    for url in (f"sqlite:///{tmp_path / 'old.db'}", postgres_server.create_database("upgrade_from_0001")):
        db.migrate(url, revision="0001")
        with db.get_engine(url).begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO modelversion (kind, status, progress, promoted, created_at) "
                "VALUES ('head', 'done', 1.0, true, CURRENT_TIMESTAMP)"))
        db.migrate(url)
        columns = {c["name"] for c in sa.inspect(db.get_engine(url)).get_columns("modelversion")}
        assert "updated_at" in columns
        with session_scope(url) as s:
            (row,) = s.exec(select(ModelVersion)).all()
            assert (row.kind, row.status, row.promoted, row.updated_at) == ("head", "done", True, None)
        db.get_engine(url).dispose()


def test_the_sqlite_database_is_private(tmp_path):
    from app.core import db as core_db

    url = f"sqlite:///{tmp_path / 'var' / 'facetype.db'}"
    core_db.migrate(url)
    assert (tmp_path / "var").stat().st_mode & 0o777 == 0o700
    files = [p for p in (tmp_path / "var").iterdir()]
    assert files and all(p.stat().st_mode & 0o777 == 0o600 for p in files), [(p.name, oct(p.stat().st_mode)) for p in files]
    core_db.get_engine(url).dispose()


def test_making_the_database_private_keeps_this_process_locks(tmp_path):
    """Opening and closing the database file while this process has SQLite connections on it would
    drop their locks (POSIX locks belong to the process and the file). Another process closing its
    connection then thinks it is the last one and removes the write-ahead log, and what this
    process writes next goes to a removed file that no one else sees."""
    import sqlite3
    import subprocess
    import sys

    from app.core.private_files import private_file

    path = tmp_path / "facetype.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("create table t (x)")
    path.chmod(0o644)
    private_file(path)
    assert path.stat().st_mode & 0o777 == 0o600

    def count_elsewhere() -> str:
        reader = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute('select count(*) from t').fetchone()[0]); c.close()"
        return subprocess.run([sys.executable, "-c", reader, str(path)], capture_output=True, text=True,
                              timeout=60).stdout.strip()

    assert count_elsewhere() == "0"  # that reader closes its connection: it must not be the last one
    conn.execute("insert into t values (1)")
    assert count_elsewhere() == "1"
    conn.close()
