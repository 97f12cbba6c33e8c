"""Turn per-region type probabilities into the facetype result. Pure: no torch, no I/O.

The source's rule, kept as the default configuration (from :class:`app.core.settings.Settings`):
region r of type t earns ``region_points[r] * (1 - type_decay * t)`` points — face 50/40/30/20/10,
T-zone 40/32/24/16/8, jaw 10/8/6/4/2 — and a total above ``type_thresholds[i]`` (85, 68, 48, 20)
gives ``TYPES[i]``, otherwise the last type (Omega).

With probabilities instead of hard detections, the **score** is the probability-weighted sum
of the region points (the expected total). With one-hot probabilities it is exactly the
source's total, so the source's table is reproduced.

**Confidence** is the probability that the reported type is right *under the model's own
probabilities*: regions are treated as independent draws from their probability vectors, every
one of the 5^3 combinations is scored with the source's rule, and the confidence is the total
probability of the combinations that land in the reported type's band. It is 1.0 only when the
model is certain of every region, it says nothing about whether the model's probabilities are
calibrated, and with synthetic labels it measures nothing real. With calibrated (narrow) bands few
of the 125 point totals fall inside a band, so it can read 0 % for a typical result: a served model
that was evaluated on held-out people replaces it by that evaluation's precision for the reported
type (``models.serving.classify``, the model's ``type_precision``).

A region absent from the input is scored with uniform probabilities (and a note says so),
so a result always comes back.

**Thresholds.** The source's fixed bands (85 / 68 / 48 / 20) are one option
(``threshold_mode = "source"``). The default, ``"calibrated"``, uses bands fitted to the survey's
type shares: :func:`calibrate_thresholds` places them at the quantiles of the training people's
scores, so that the share of training people above the first threshold is Alpha's share, and so
on. They are stored with the model version (its config), because they belong to that model's
scores.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np

from app.core.settings import Settings, get_settings
from app.core.vocabulary import REGION_LABELS, REGIONS, TYPES

_ROUND = 9  # decimals kept before comparing with thresholds (68 must not become 68.0000000001)


@dataclass(frozen=True)
class ScoreResult:
    type: str
    type_index: int
    score: float
    confidence: float
    #: region -> {type, probability, points, probs, source}
    per_region: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    #: The four thresholds the type was read from (highest first).
    thresholds: tuple = ()

    @property
    def band(self) -> tuple[float | None, float | None]:
        """(lower, upper) bound of the score band of the reported type; None where open."""
        return type_band(self.type_index, self.thresholds)

    def explanation(self) -> str:
        """How the type was reached, e.g. ``Face Omega 10 + T-zone Omega 8 + Jaw Beta 8 = 26 → Delta (20–48)``."""
        parts = " + ".join(f"{REGION_LABELS[r]} {v['type']} {v['points']:.0f}" for r, v in self.per_region.items())
        low, high = self.band
        if low is None:
            band = f"up to {high:.0f}"
        elif high is None:
            band = f"above {low:.0f}"
        else:
            band = f"{low:.0f}–{high:.0f}"
        return f"{parts} = {self.score:.0f} → {self.type} ({band})"

    def as_dict(self) -> dict:
        return asdict(self)


def region_points_table(settings: Settings | None = None) -> dict[str, list[float]]:
    """Points per region and type index: ``{"face": [50, 40, 30, 20, 10], ...}``."""
    s = settings or get_settings()
    if len(s.region_points) != len(REGIONS):
        raise ValueError(f"region_points needs {len(REGIONS)} values, got {s.region_points}")
    return {
        region: [round(s.region_points[r] * (1.0 - s.type_decay * t), _ROUND) for t in range(len(TYPES))]
        for r, region in enumerate(REGIONS)
    }


def type_for_score(score: float, settings: Settings | None = None, thresholds: Sequence[float] | None = None) -> int:
    """The bands: above ``thresholds[i]`` gives type i, else the last type. ``thresholds`` default
    to the source's (settings.type_thresholds)."""
    thresholds = (settings or get_settings()).type_thresholds if thresholds is None else thresholds
    score = round(score, _ROUND)
    for i, threshold in enumerate(thresholds):
        if score > threshold:
            return i
    return len(TYPES) - 1


def type_band(type_index: int, thresholds: Sequence[float]) -> tuple[float | None, float | None]:
    """(lower, upper) score bound of a type's band; None where the band is open."""
    if not thresholds:
        return None, None
    low = thresholds[type_index] if type_index < len(thresholds) else None
    high = thresholds[type_index - 1] if type_index > 0 else None
    return low, high


def calibrate_thresholds(scores: Sequence[float], shares: Sequence[float]) -> tuple[float, ...]:
    """Four thresholds so that the types' shares among ``scores`` match ``shares`` (TYPES order,
    any positive scale): the top ``shares[0]`` of the scores read Alpha, and so on.

    Each threshold sits at the quantile of the scores where the cumulative share ends (linear
    interpolation), so scores from the same distribution fall into the types in those shares.
    Raises ``ValueError`` for fewer than two scores or shares that are not five positive numbers."""
    values = sorted(float(v) for v in scores)
    if len(values) < 2:
        raise ValueError("calibration needs at least two scores")
    if len(shares) != len(TYPES) or any(not math.isfinite(x) or x <= 0 for x in shares):
        raise ValueError(f"shares must be {len(TYPES)} positive numbers, got {list(shares)}")
    total = float(sum(shares))
    thresholds = []
    cumulative = 0.0
    for share in shares[:-1]:
        cumulative += share / total
        thresholds.append(round(float(np.quantile(values, 1.0 - cumulative)), 6))
    # bands must stay strictly ordered even when many scores tie
    for i in range(1, len(thresholds)):
        thresholds[i] = min(thresholds[i], thresholds[i - 1] - 1e-6)
    return tuple(thresholds)


def _normalise(region: str, probs: Sequence[float] | None, notes: list) -> list[float]:
    n = len(TYPES)
    if probs is None:
        notes.append(f"{region}: no prediction; scored with equal probabilities for every type")
        return [1.0 / n] * n
    values = [float(p) for p in probs]
    if len(values) != n:
        raise ValueError(f"{region}: expected {n} probabilities, got {len(values)}")
    if any(not math.isfinite(p) or p < 0 for p in values):
        raise ValueError(f"{region}: probabilities must be finite and non-negative: {values}")
    total = sum(values)
    if total <= 0:
        notes.append(f"{region}: all probabilities were zero; scored with equal probabilities")
        return [1.0 / n] * n
    if abs(total - 1.0) > 1e-6:
        notes.append(f"{region}: probabilities summed to {total:.3f}; rescaled to 1")
    return [p / total for p in values]


def score_regions(
    region_probs: Mapping[str, Sequence[float] | None],
    settings: Settings | None = None,
    sources: Mapping[str, str] | None = None,
    thresholds: Sequence[float] | None = None,
) -> ScoreResult:
    """Score per-region type probabilities (``{"face": [p_Alpha..p_Omega], ...}``).

    ``sources`` optionally says where each region came from ("model", "landmarks"); it is
    copied into the per-region breakdown. ``thresholds`` are the bands to read the type from
    (default: the source's). Unknown region names raise ``ValueError``.
    """
    s = settings or get_settings()
    thresholds = tuple(s.type_thresholds if thresholds is None else thresholds)
    unknown = set(region_probs) - set(REGIONS)
    if unknown:
        raise ValueError(f"unknown regions {sorted(unknown)}; expected {REGIONS}")
    table = region_points_table(s)
    notes: list[str] = []
    sources = dict(sources or {})
    probs = {r: _normalise(r, region_probs.get(r), notes) for r in REGIONS}

    per_region = {}
    score = 0.0
    for region in REGIONS:
        p = probs[region]
        points = sum(pi * pts for pi, pts in zip(p, table[region]))
        score += points
        best = max(range(len(TYPES)), key=lambda t: p[t])
        per_region[region] = {
            "type": TYPES[best],
            "probability": round(p[best], 6),
            "points": round(points, 6),
            "probs": [round(x, 6) for x in p],
            "source": sources.get(region, "missing" if region_probs.get(region) is None else "model"),
        }
    score = round(score, _ROUND)
    type_index = type_for_score(score, s, thresholds)

    # Confidence: P(band of a joint draw == reported band), regions independent.
    confidence = 0.0
    for combo, band in _combination_bands(tuple(tuple(table[r]) for r in REGIONS), thresholds):
        if band != type_index:
            continue
        weight = 1.0
        for region, t in zip(REGIONS, combo):
            weight *= probs[region][t]
        confidence += weight
    return ScoreResult(
        type=TYPES[type_index],
        type_index=type_index,
        score=score,
        confidence=round(min(1.0, confidence), 6),
        per_region=per_region,
        notes=notes,
        thresholds=thresholds,
    )


@functools.lru_cache(maxsize=32)
def _combination_bands(points: tuple[tuple[float, ...], ...], thresholds: tuple[float, ...]) -> tuple:
    """((type per region), band its points fall in) for every combination of one type per region:
    the same for every request with these points and bands, so computed once."""
    return tuple(
        (combo, type_for_score(sum(points[r][t] for r, t in enumerate(combo)), thresholds=thresholds))
        for combo in itertools.product(range(len(TYPES)), repeat=len(points))
    )


def one_hot(type_name_or_index: str | int) -> list[float]:
    """Probabilities that are certain of one type (handy for tests and hard detections)."""
    t = TYPES.index(type_name_or_index) if isinstance(type_name_or_index, str) else int(type_name_or_index)
    return [1.0 if i == t else 0.0 for i in range(len(TYPES))]
