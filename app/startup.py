"""What the app (and ``python -m app.setup``) does before serving: migrate the database, check
the store, load the sample project into an empty database, purge expired visitor data."""

from __future__ import annotations

import logging

from sqlmodel import select

from app.core.db import TypeProfile, migrate, session_scope
from app.core.settings import Settings, get_settings
from app.core.storage import StorageError, get_store

log = logging.getLogger(__name__)


class ConfigurationError(RuntimeError):
    """The app cannot start with the current settings; the message says which setting."""


def prepare(settings: Settings | None = None) -> None:
    from app.core.db import DatabaseUnavailable
    from app.purge import purge_expired
    from app.sample import load_sample_project

    settings = settings or get_settings()
    try:
        migrate()
    except DatabaseUnavailable as exc:
        raise ConfigurationError(str(exc)) from exc
    try:
        get_store().ping()
    except (StorageError, ValueError) as exc:
        raise ConfigurationError(f"{exc} (setting FACETYPE_STORAGE_URL = {settings.resolved_storage_url!r})") from exc
    with session_scope() as session:
        empty = session.exec(select(TypeProfile.id).limit(1)).first() is None
    if empty:
        report = load_sample_project()
        log.info("loaded the sample project: %s photos", report.photos)
    from models.registry import fail_stale_runs

    fail_stale_runs()
    purged = purge_expired()
    if purged:
        log.info("purged %d expired visitor results", purged)
