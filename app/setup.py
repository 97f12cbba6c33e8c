"""Set up a fresh install: database schema, sample project, a team account, and a served model.

``python -m app.setup`` (run by ``make run``) is idempotent: each step does only what is missing.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from app.core import auth
from app.startup import ConfigurationError, prepare


def main() -> int:
    try:
        prepare()
    except ConfigurationError as error:
        print(f"facetype cannot start: {error}", file=sys.stderr)
        return 1
    auth.main(["init"])

    from models.registry import ensure_served_model

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
