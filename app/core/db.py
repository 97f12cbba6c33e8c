"""Database schema (sqlmodel) and engine helpers.

The schema is created and upgraded only by the Alembic migrations in ``app/core/migrations``;
the same migrations run on SQLite and PostgreSQL. Photos are stored as objects in the
object store; the database keeps their key, size and hash, never their bytes.
"""

from __future__ import annotations

import contextlib
import functools
from datetime import date, datetime, timezone
from typing import Any, Iterator, Optional

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, Session, SQLModel, create_engine

from app.core.private_files import private_file, private_folder
from app.core.settings import PROJECT_ROOT, get_settings
from app.core.vocabulary import ReviewStatus, RunStatus


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """A time read back without its zone (the database keeps UTC) as UTC-aware; an aware one as it is."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class TypeProfile(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=32)
    order: int = Field(unique=True)
    description: str
    share_percent: float


class ReferencePerson(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    person_key: str = Field(unique=True, max_length=64)
    pseudonym: str = Field(max_length=128)
    survey_score: Optional[float] = None
    type_name: Optional[str] = Field(default=None, foreign_key="typeprofile.name", index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class Photo(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("source", "sha256"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    object_key: str = Field(unique=True, max_length=255)
    size_bytes: int
    sha256: str = Field(max_length=64, index=True)
    width: int
    height: int
    source: str = Field(max_length=16, index=True)  # PhotoSource
    #: The uploaded file's own name (reference photos), for exports; never a path.
    original_name: Optional[str] = Field(default=None, max_length=255)
    person_id: Optional[int] = Field(default=None, foreign_key="referenceperson.id", index=True)
    consent_store: bool = False
    consent_training: bool = False
    #: pending (auto boxes only), accepted, rejected, flagged
    review_status: str = Field(default=ReviewStatus.PENDING.value, max_length=16, index=True)
    review_note: Optional[str] = None
    #: Incremented on every save of this photo's boxes; saves are checked against it.
    boxes_version: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: Optional[datetime] = Field(default=None, index=True)


class RegionBox(SQLModel, table=True):
    """One region box of one version of a photo's boxes. Rows are never updated:
    a save writes a new version, so earlier versions stay for audits and snapshots."""

    __table_args__ = (sa.UniqueConstraint("photo_id", "version", "region"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    photo_id: int = Field(foreign_key="photo.id", index=True)
    version: int
    region: str = Field(max_length=8)  # face, tzone, jaw
    x0: float
    y0: float
    x1: float
    y1: float
    source: str = Field(max_length=8)  # BoxSource
    confidence: Optional[float] = None
    annotator: Optional[str] = Field(default=None, max_length=64)
    review_status: str = Field(default=ReviewStatus.PENDING.value, max_length=16)
    created_at: datetime = Field(default_factory=utcnow)

    def as_list(self) -> list[float]:
        return [self.x0, self.y0, self.x1, self.y1]


class BoxAudit(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    photo_id: int = Field(foreign_key="photo.id", index=True)
    annotator: str = Field(max_length=64)
    action: str = Field(max_length=32)
    from_version: int
    to_version: int
    before: Any = Field(default=None, sa_column=Column(JSON))
    after: Any = Field(default=None, sa_column=Column(JSON))
    at: datetime = Field(default_factory=utcnow)


class SurveyRating(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("rater_id", "person_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    rater_id: str = Field(max_length=64, index=True)
    person_id: int = Field(foreign_key="referenceperson.id", index=True)
    score: float
    scale_min: float
    scale_max: float
    age_group: Optional[str] = Field(default=None, max_length=32)
    gender: Optional[str] = Field(default=None, max_length=32)


class RatingBatch(SQLModel, table=True):
    """One stored upload of survey ratings. ``SurveyRating`` holds the active batch's rows; every batch
    keeps its own rows in ``ratings`` so an earlier one can be restored."""

    id: Optional[int] = Field(default=None, primary_key=True)
    stored_by: str = Field(max_length=64)
    stored_at: datetime = Field(default_factory=utcnow)
    file_name: str = Field(max_length=255)
    n_ratings: int
    n_raters: int
    n_people: int
    scale_min: float
    scale_max: float
    #: ``[rater_id, person_key, score, age_group, gender]`` per rating.
    ratings: Any = Field(default=None, sa_column=Column(JSON))
    active: bool = Field(default=False, index=True)


class TeamSession(SQLModel, table=True):
    """A team member's sign-in. The browser holds the token in a signed HttpOnly cookie; the table
    holds only its SHA-256, so a copy of the database cannot be replayed as a cookie."""

    token_sha256: str = Field(primary_key=True, max_length=64)
    account: str = Field(max_length=64, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)
    revoked_at: Optional[datetime] = None
    client: Optional[str] = Field(default=None, max_length=64)


class Submission(SQLModel, table=True):
    """A visitor's stored result; exists only when the visitor opted in."""

    id: Optional[int] = Field(default=None, primary_key=True)
    result_code: str = Field(unique=True, max_length=16)
    delete_code_hash: str = Field(max_length=128)
    mbti: str = Field(max_length=4)
    birth_date: date
    type_name: str = Field(max_length=32)
    score: float
    confidence: float
    result: Any = Field(default=None, sa_column=Column(JSON))
    model_version_id: Optional[int] = Field(default=None, foreign_key="modelversion.id")
    photo_id: Optional[int] = Field(default=None, foreign_key="photo.id")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)


class ModelVersion(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # "head" or "detector"
    #: queued -> running -> done, failed or cancelled (models/jobs.py)
    status: str = Field(default=RunStatus.RUNNING.value, max_length=16, index=True)
    object_key: Optional[str] = Field(default=None, max_length=255)
    config: Any = Field(default=None, sa_column=Column(JSON))
    data_snapshot: Any = Field(default=None, sa_column=Column(JSON))
    metrics: Any = Field(default=None, sa_column=Column(JSON))
    #: Per-epoch training history, written while the run goes on.
    history: Any = Field(default=None, sa_column=Column(JSON))
    progress: float = 0.0
    message: Optional[str] = None
    promoted: bool = Field(default=False, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    #: Heartbeat: set on every update, so a run whose process died can be told from a slow one.
    updated_at: Optional[datetime] = Field(default_factory=utcnow)
    finished_at: Optional[datetime] = None
    #: A job's requested settings (train() keyword arguments), kept as asked so Retry can copy them.
    job: Any = Field(default=None, sa_column=Column(JSON))
    requested_by: Optional[str] = Field(default=None, max_length=64)
    #: The worker that claimed the job (host:pid) and the device(s) it trains on.
    worker: Optional[str] = Field(default=None, max_length=128)
    devices: Optional[str] = Field(default=None, max_length=255)
    started_at: Optional[datetime] = None
    cancel_requested: bool = False


class BoxSuggestion(SQLModel, table=True):
    """The served model's own boxes for one version of a photo's boxes (labeling/assist.py): what
    the Labeling page offers as pre-annotations and orders the queue by, stored so that ordering
    never runs the model. Rows of an older photo version or another model are simply not used."""

    __table_args__ = (sa.UniqueConstraint("photo_id", "boxes_version", "model_version_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    photo_id: int = Field(foreign_key="photo.id", index=True)
    boxes_version: int
    model_version_id: int = Field(foreign_key="modelversion.id", index=True)
    #: region -> {"box": [x0, y0, x1, y1] original pixels, "score": float, "probs": [five]}; absent: not found
    regions: Any = Field(default=None, sa_column=Column(JSON))
    #: 1 - the least sure region's detection score × top type probability (1 when a region is not found)
    uncertainty: float
    #: 1 - mean IoU of the model's and the photo's boxes over the three regions (0 for a missing pair)
    disagreement: float
    created_at: datetime = Field(default_factory=utcnow)


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be reached or migrated."""


@functools.cache
def get_engine(url: str | None = None) -> sa.Engine:
    url = url or get_settings().resolved_database_url
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            from pathlib import Path

            private_folder(Path(path).parent)
            private_file(Path(path))  # SQLite gives its -wal and -shm files the database file's mode
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left in free pages
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, connect_args=_connect_args(url))


def checkpoint(url: str | None = None) -> None:
    """SQLite: move the write-ahead log into the database file and truncate it, so deleted rows
    do not stay readable in ``-wal`` until later writes (call after deleting visitor data)."""
    engine = get_engine(url)
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _connect_args(url: str) -> dict:
    if url.startswith("postgresql"):
        return {"connect_timeout": 5}
    return {}


def migrate(url: str | None = None, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision`` (the newest migration by default)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "app" / "core" / "migrations"))
    config.attributes["engine"] = get_engine(url)
    try:
        command.upgrade(config, revision)
    except sa.exc.OperationalError as exc:
        raise DatabaseUnavailable(describe_database_error(url, exc)) from exc


def describe_database_error(url: str | None, exc: Exception) -> str:
    shown = sa.engine.make_url(url or get_settings().resolved_database_url)
    return (
        f"Cannot reach the database at {shown.render_as_string(hide_password=True)} "
        f"(setting FACETYPE_DATABASE_URL): {str(exc).splitlines()[0]}"
    )


@contextlib.contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def current_boxes(session: Session, photo: Photo) -> list[RegionBox]:
    """The boxes of the photo's current version."""
    from sqlmodel import select

    return list(
        session.exec(
            select(RegionBox)
            .where(RegionBox.photo_id == photo.id, RegionBox.version == photo.boxes_version)
            .order_by(RegionBox.region)
        )
    )
