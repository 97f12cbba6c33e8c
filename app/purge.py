"""Remove expired visitor data: ``python -m app.purge``.

Visitor submissions are kept for ``settings.retention_days`` (default 30) after they were made;
this deletes every Submission past its ``expires_at`` together with its visitor Photo row and
the photo object, visitor photos past their own ``expires_at``, and visitor objects that no row
references (left behind when a store failed halfway through a save). Reference photos are never
touched. The app's startup calls :func:`purge_expired`; run this command from cron as well when
the app may stay up for days.
"""

from __future__ import annotations

import argparse
import logging
from datetime import datetime

from app.visits import purge_expired

__all__ = ["purge_expired", "main"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--now", type=datetime.fromisoformat, default=None,
                        help="pretend it is this ISO time (for checks); default: now")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from app.core.db import migrate

    migrate()
    count = purge_expired(now=args.now)
    print(f"removed {count} expired visitor submission(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
