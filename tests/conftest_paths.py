"""Where the tests' own photos and broken files live (tests/data, with their provenance in its README)."""

from pathlib import Path

TEST_DATA = Path(__file__).resolve().parent / "data"
