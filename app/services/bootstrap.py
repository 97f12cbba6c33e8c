"""Bootstrap: what the app (and ``python -m app.services.bootstrap``, run by ``make run``) does
before serving: migrate the database, check the store, load the sample project into an empty
database, fail stale training runs, purge expired visitor data; and, from the command line, a
team account and a served model. Idempotent: each step does only what is missing.
"""

from __future__ import annotations

import logging
import sys
import threading

from sqlmodel import select
from tqdm import tqdm

from app.core import auth
from app.core.db import DatabaseUnavailable, TypeProfile, migrate, session_scope
from app.core.settings import Settings, get_settings
from app.core.storage import StorageError, get_store
from app.services.retention import purge_expired
from app.services.sample import load_sample_project
from models.registry import fail_stale_runs

log = logging.getLogger(__name__)
#: The app's server prepares as it starts (app/web.py) while its first script run may prepare too:
#: one at a time, so that two never migrate a new database or load the sample project at once.
_preparing = threading.Lock()


class ConfigurationError(RuntimeError):
    """The app cannot start with the current settings. The message, for the operator's log, has
    the detail (host, port, user, paths); ``public_message`` names only the part and the setting,
    for visitors' pages and API answers."""

    def __init__(self, message: str, public_message: str = "The service is not configured correctly."):
        super().__init__(message)
        self.public_message = public_message


def public_message(error: Exception) -> str:
    """What visitors may be told about a start-up failure (never hosts, users or paths)."""
    return getattr(error, "public_message", "The service is not configured correctly.")


def prepare(settings: Settings | None = None) -> None:
    with _preparing:
        _prepare(settings or get_settings())


def _prepare(settings: Settings) -> None:
    try:
        migrate()
    except DatabaseUnavailable as exc:
        raise ConfigurationError(str(exc), "The database cannot be reached (setting FACETYPE_DATABASE_URL).") from exc
    try:
        get_store().ping()
    except (StorageError, ValueError) as exc:
        raise ConfigurationError(f"{exc} (setting FACETYPE_STORAGE_URL = {settings.resolved_storage_url!r})",
                                 "The photo store cannot be used (setting FACETYPE_STORAGE_URL).") from exc
    with session_scope() as session:
        empty = session.exec(select(TypeProfile.id).limit(1)).first() is None
    if empty:
        report = load_sample_project()
        log.info("loaded the sample project: %s photos", report.photos)
    fail_stale_runs()
    purged = purge_expired()
    if purged:
        log.info("purged %d expired visitor results", purged)


def main() -> int:
    try:
        prepare()
    except ConfigurationError as error:
        print(f"facetype cannot start: {error}", file=sys.stderr)
        return 1
    auth.main(["init"])
    # Here only, in the setup command: the app process that imports prepare() never trains.
    from models.training.train import ensure_served_model

    bar = tqdm(total=100, desc="training the first model (head)", unit="%", leave=False)

    def progress(fraction: float, message: str = "") -> None:
        bar.n = round(100 * fraction)
        bar.set_postfix_str(message)
        bar.refresh()

    ensure_served_model(progress=progress)
    bar.close()
    print("facetype is set up.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
