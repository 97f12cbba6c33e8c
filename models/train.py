"""``python -m models.train``: the command-line entry point of :mod:`models.training.train`."""

from models.training.train import main

if __name__ == "__main__":
    raise SystemExit(main())
