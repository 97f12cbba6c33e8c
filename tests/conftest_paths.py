"""Where the shared, read-only test data lives (../shared/data from the project root)."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
