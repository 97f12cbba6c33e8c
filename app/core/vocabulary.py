"""The project's words: the five types, the three regions, MBTI, region colours and the statuses
stored in the database. StrEnum members compare equal to their stored strings."""

from __future__ import annotations

from enum import StrEnum

#: The five survey-derived types, in score order (index t in the source's formulas).
TYPES: tuple[str, ...] = ("Alpha", "Beta", "Gamma", "Delta", "Omega")
#: The three face regions, in the source's class order (r = 1, 2, 3).
REGIONS: tuple[str, ...] = ("face", "tzone", "jaw")
REGION_LABELS: dict[str, str] = {"face": "Face", "tzone": "T-zone", "jaw": "Jaw"}
#: One colour per region wherever boxes are drawn (result overlay, labeling canvas).
REGION_COLORS: dict[str, str] = {"face": "#2ecc71", "tzone": "#3498db", "jaw": "#e74c3c"}
MBTI_TYPES: tuple[str, ...] = tuple(a + b + c + d for a in "EI" for b in "SN" for c in "TF" for d in "JP")
#: The answer "I don't know" to the MBTI question, stored as such (the column holds four letters).
MBTI_UNKNOWN = "none"
#: An MBTI answer: one of the 16 types (member name = value) or UNKNOWN.
Mbti = StrEnum("Mbti", [*((t, t) for t in MBTI_TYPES), ("UNKNOWN", MBTI_UNKNOWN)])


def region_rgb(region: str) -> tuple[int, int, int]:
    """A region's colour as an RGB triple (for PIL drawing)."""
    value = REGION_COLORS[region].lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


class PhotoSource(StrEnum):
    REFERENCE = "reference"
    VISITOR = "visitor"


class ReviewStatus(StrEnum):
    PENDING = "pending"
    FLAGGED = "flagged"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class BoxSource(StrEnum):
    AUTO = "auto"
    HUMAN = "human"


class RunStatus(StrEnum):
    """A training run (ModelVersion row): queued until a worker claims it, then running, then one of
    the finished states."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
