"""``python -m models.evaluate``: the command-line entry point of :mod:`models.training.evaluate`."""

from models.training.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
