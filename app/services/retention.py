"""Remove expired visitor data: ``python -m app.services.retention``.

Visitor submissions are kept for ``settings.retention_days`` (default 30) after they were made;
this deletes every Submission past its ``expires_at`` together with its visitor Photo row and
the photo object, visitor photos past their own ``expires_at``, visitor objects that no row
references (left behind when a store failed halfway through a save), and the folder store's
temporary ``.part`` files of writes that died. Reference photos are never
touched. The app's startup calls :func:`purge_expired`; run this command from cron as well when
the app may stay up for days.
"""

from __future__ import annotations

import argparse
import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import select

from app.core.db import Photo, Submission, as_utc, checkpoint, migrate, session_scope, utcnow
from app.core.storage import ObjectStore, StorageError, get_store
from app.core.vocabulary import PhotoSource
from app.services.submissions import delete_rows_and_object
from app.services.visitor_photos import VISITOR_PREFIX, key_time

log = logging.getLogger(__name__)

ORPHAN_GRACE = timedelta(hours=1)




def purge_expired(now: datetime | None = None, url: str | None = None, store: ObjectStore | None = None) -> int:
    """Delete visitor data past its ``expires_at``: submissions with their photo rows and objects,
    and visitor photos without a submission. Then sweep orphan visitor objects. Returns the number
    of expired submissions removed. A submission whose object cannot be deleted is kept (and
    counted out) until a later run; the run goes on with the others."""
    now = as_utc(now or utcnow())
    store = store or get_store()
    removed = 0
    with session_scope(url) as session:
        expired = [
            (row.id, row.photo_id)
            for row in session.exec(select(Submission).where(Submission.expires_at <= now))
        ]
        lone_photos = [
            photo.id
            for photo in session.exec(
                select(Photo).where(Photo.source == PhotoSource.VISITOR, Photo.expires_at != None, Photo.expires_at <= now)  # noqa: E711
            )
        ]
    for submission_id, photo_id in expired:
        try:
            with session_scope(url) as session:
                submission = session.get(Submission, submission_id)
                photo = session.get(Photo, photo_id) if photo_id else None
                if photo is not None and photo.source != PhotoSource.VISITOR:
                    photo = None  # never touch reference photos
                delete_rows_and_object(session, store, submission, photo)
            removed += 1
        except (StorageError, sa.exc.SQLAlchemyError) as exc:
            log.warning("expired submission %s kept for the next purge (%s)", submission_id, type(exc).__name__)
    for photo_id in lone_photos:
        try:
            with session_scope(url) as session:
                photo = session.get(Photo, photo_id)
                if photo is None:
                    continue
                if session.exec(select(Submission.id).where(Submission.photo_id == photo_id)).first() is not None:
                    continue
                delete_rows_and_object(session, store, None, photo)
        except (StorageError, sa.exc.SQLAlchemyError) as exc:
            log.warning("expired visitor photo %s kept for the next purge (%s)", photo_id, type(exc).__name__)
    try:
        swept = sweep_orphans(now=now, url=url, store=store)
    except (StorageError, sa.exc.SQLAlchemyError) as exc:
        log.warning("orphan sweep skipped (%s)", type(exc).__name__)
        swept = 0
    try:
        checkpoint(url)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("WAL checkpoint skipped (%s)", type(exc).__name__)
    try:
        partial = store.sweep_partial()
    except (StorageError, OSError) as exc:
        log.warning("partial-file sweep skipped (%s)", type(exc).__name__)
        partial = 0
    log.info("purge: %d expired submission(s) removed, %d orphan object(s) and %d partial file(s) removed",
             removed, swept, partial)
    return removed


def sweep_orphans(now: datetime | None = None, url: str | None = None, store: ObjectStore | None = None,
                  grace: timedelta = ORPHAN_GRACE) -> int:
    """Delete visitor objects that no Photo row references and that are older than ``grace``
    (younger ones may belong to a submission being written right now). Returns the count."""
    now = as_utc(now or utcnow())
    store = store or get_store()
    keys = store.list(VISITOR_PREFIX + "/")
    if not keys:
        return 0
    with session_scope(url) as session:
        known = set(session.exec(select(Photo.object_key).where(Photo.source == PhotoSource.VISITOR)))
    removed = 0
    for key in keys:
        if key in known:
            continue
        born = key_time(key)
        if born is not None and now - born < grace:
            continue
        store.delete(key)
        removed += 1
    return removed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--now", type=datetime.fromisoformat, default=None,
                        help="pretend it is this ISO time (for checks); default: now")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    migrate()
    count = purge_expired(now=args.now)
    print(f"removed {count} expired visitor submission(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
