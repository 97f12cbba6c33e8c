"""Survey quotas: type shares -> whole quotas (largest remainder / Hamilton) -> ranked labels.

The source's team labeled its reference people by hand: the type shares measured by a survey
question (e.g. 21.8 / 21.4 / 22.5 / 19.2 / 15.2 %) times the number of people gave each type's
exact share (23.98 / 23.54 / 24.75 / 21.12 / 16.72 of 110), rounded to whole quotas that still
sum to the total (24 / 23 / 25 / 21 / 17), and the people, ranked by their mean survey score,
were given the types in that order: the top ``quota[0]`` people get type 1, and so on.

Pure (no Streamlit, no database). Rules that decide close calls (all deterministic, documented
here once):

* **Quotas** use the largest-remainder (Hamilton) method. The exact share of type *i* is
  ``total * share_i / sum(shares)`` computed in exact rational arithmetic from the decimal
  shares (so the result does not depend on float rounding or on the order of the sum); each
  type first gets the floor of its exact share, and the seats left over go one each to the
  largest remainders. **Tie rule:** among equal remainders, the type with the larger exact share
  wins; if those are equal too, the type that comes first in the canonical type order
  (``TypeProfile.order`` / ``app.core.vocabulary.TYPES``, i.e. type 1 before type 2) wins. The listing
  order of the input never matters.
* **Ranking** sorts people by mean score (highest first). **Tie rule:** equal means are broken by
  the number of ratings (more ratings first: the better-supported score ranks higher), then by
  the person id in natural order (``p2`` before ``p10``). Ties are reported in ``tie_note`` and
  a tie that straddles a quota boundary is flagged in ``boundary_tie``.
* Shares entered as percentages must sum to 100 +/- 0.5 (the source's numbers sum to 100.1).
"""

from __future__ import annotations

import io
import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from app.core.vocabulary import TYPES
from labeling.survey_csv import Problem, SurveyValidationError, read_bytes, read_table

#: Tolerance on the sum of percentages (the source's shares sum to 100.1).
SHARE_SUM_TOLERANCE = 0.5


# --------------------------------------------------------------------------------------------
# Shares
# --------------------------------------------------------------------------------------------


def parse_type_choices(source: bytes | str | Path | io.IOBase, type_names: Sequence[str] = TYPES) -> pd.DataFrame:
    """Read a question CSV (``rater_id,type``: one row per rater) and count the choices.

    Returns one row per type (in ``type_names`` order): ``type, count, share_percent``.
    Type names are matched case-insensitively.
    """
    table, problems = read_table(read_bytes(source), ("rater_id", "type"))
    if table is None:
        raise SurveyValidationError(problems)
    by_folded = {name.casefold(): name for name in type_names}
    counts = dict.fromkeys(type_names, 0)
    seen: dict[str, int] = {}
    for line, row in table.rows:
        rater, choice = row["rater_id"], row["type"]
        if not rater:
            problems.append(Problem(line, "rater_id is empty"))
        elif rater in seen:
            problems.append(Problem(line, f"rater {rater!r} answered twice (first on line {seen[rater]})"))
            continue
        else:
            seen[rater] = line
        name = by_folded.get(choice.casefold())
        if name is None:
            problems.append(Problem(line, f"unknown type {choice!r} (expected one of {', '.join(type_names)})"))
        elif rater:
            counts[name] += 1
    if problems:
        raise SurveyValidationError(problems)
    total = sum(counts.values())
    return pd.DataFrame({
        "type": list(counts),
        "count": list(counts.values()),
        "share_percent": [100.0 * c / total for c in counts.values()],
    })


def validate_shares(shares: Sequence[float], n_types: int | None = None) -> list[Problem]:
    """Problems with a list of percentages (no line numbers: they were typed in)."""
    problems = []
    if n_types is not None and len(shares) != n_types:
        problems.append(Problem(None, f"{len(shares)} shares given for {n_types} types"))
    bad = [s for s in shares if not (isinstance(s, (int, float)) and math.isfinite(s) and s >= 0)]
    if bad:
        problems.append(Problem(None, f"shares must be non-negative numbers (got {', '.join(map(str, bad))})"))
    elif shares:
        total = sum(shares)
        if abs(total - 100.0) > SHARE_SUM_TOLERANCE:
            problems.append(Problem(None, f"shares sum to {total:g} %, not 100 ± {SHARE_SUM_TOLERANCE:g}"))
    else:
        problems.append(Problem(None, "no shares given"))
    return problems


def parse_shares(text: str | Sequence[float], n_types: int | None = None) -> list[float]:
    """``"21.8,21.4,22.5,19.2,15.2"`` -> list of floats, validated (sum 100 ± 0.5)."""
    if isinstance(text, str):
        parts = [p.strip().rstrip("%") for p in re.split(r"[,;/\s]+", text.strip()) if p.strip()]
        values, problems = [], []
        for i, part in enumerate(parts, 1):
            try:
                values.append(float(part))
            except ValueError:
                problems.append(Problem(None, f"share {i} ({part!r}) is not a number"))
        if problems:
            raise SurveyValidationError(problems)
    else:
        values = [float(v) for v in text]
    problems = validate_shares(values, n_types)
    if problems:
        raise SurveyValidationError(problems)
    return values

# --------------------------------------------------------------------------------------------
# Quotas (largest remainder / Hamilton)
# --------------------------------------------------------------------------------------------


def _exact(value: float | int | Fraction) -> Fraction:
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    return Fraction(repr(float(value)))  # the decimal the user typed, not the binary float


def largest_remainder(
    shares: Sequence[float], total: int, tie_keys: Sequence | None = None
) -> list[int]:
    """Whole quotas summing to ``total``, by the largest-remainder (Hamilton) method.

    ``shares`` are non-negative weights (percentages need not sum exactly to 100: they are
    normalized). Leftover seats go to the largest remainders; equal remainders go to the larger
    exact share, then to the smaller ``tie_key`` (default: the position in ``shares``; pass
    the canonical type order to make the result independent of the listing order).
    """
    if total < 0 or int(total) != total:
        raise ValueError(f"total must be a non-negative integer (got {total})")
    total = int(total)
    weights = [_exact(s) for s in shares]
    if any(w < 0 for w in weights) or not weights:
        raise ValueError("shares must be non-negative and not empty")
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise ValueError("shares must not all be zero")
    keys = list(range(len(weights))) if tie_keys is None else list(tie_keys)
    if len(keys) != len(weights):
        raise ValueError("tie_keys must have one key per share")
    exact = [total * w / weight_sum for w in weights]
    floors = [math.floor(e) for e in exact]
    left = total - sum(floors)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), -exact[i], keys[i]))
    quotas = list(floors)
    for i in order[:left]:
        quotas[i] += 1
    return quotas


def quota_steps(
    names: Sequence[str], shares: Sequence[float], total: int, type_order: Sequence[int] | None = None
) -> pd.DataFrame:
    """The quota computation step by step, one row per type in ``names`` order.

    Columns: ``type, share_percent, share_x_total`` (share / 100 × total, as the source wrote it),
    ``exact`` (total × share / sum of shares: the same when the shares sum to exactly 100), ``floor``,
    ``remainder``, ``extra_seat`` (1 when the type got one of the leftover seats), ``quota``.
    ``type_order`` is the canonical rank used by the tie rule (default: the position in names).
    """
    if len(names) != len(shares):
        raise ValueError(f"{len(shares)} shares for {len(names)} types")
    keys = list(type_order) if type_order is not None else list(range(len(names)))
    quotas = largest_remainder(shares, total, tie_keys=keys)
    weights = [_exact(s) for s in shares]
    weight_sum = sum(weights)
    exact = [total * w / weight_sum for w in weights]
    floors = [math.floor(e) for e in exact]
    return pd.DataFrame({
        "type": list(names),
        "share_percent": [float(s) for s in shares],
        "share_x_total": [float(s) * total / 100.0 for s in shares],
        "exact": [float(e) for e in exact],
        "floor": floors,
        "remainder": [float(e - f) for e, f in zip(exact, floors)],
        "extra_seat": [q - f for q, f in zip(quotas, floors)],
        "quota": quotas,
    })


# --------------------------------------------------------------------------------------------
# Ranking and assignment
# --------------------------------------------------------------------------------------------


def _natural_key(value: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(value)))



def rank_people(stats: pd.DataFrame, decimals: int = 9) -> pd.DataFrame:
    """Sort by mean score, highest first; ties by more ratings, then natural person id.

    Adds ``rank`` (1-based) and ``tie_note`` (empty unless the mean is shared with others).
    Means are compared rounded to ``decimals`` places so float noise does not split a tie.
    """
    frame = stats.copy()
    frame["_mean_key"] = frame["mean_score"].round(decimals)
    frame["_id_key"] = frame["person_id"].map(_natural_key)
    frame = frame.sort_values(
        ["_mean_key", "n_ratings", "_id_key"], ascending=[False, False, True], kind="mergesort"
    ).reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    notes = []
    groups = frame.groupby("_mean_key", sort=False)["person_id"].agg(list)
    for key, person in zip(frame["_mean_key"], frame["person_id"]):
        tied = groups[key]
        if len(tied) > 1:
            others = ", ".join(p for p in tied if p != person)
            notes.append(f"tied at {key:.3f} with {others}; order: more ratings, then id")
        else:
            notes.append("")
    frame["tie_note"] = notes
    return frame.drop(columns=["_id_key"])


def assign_types(ranked: pd.DataFrame, quotas: Sequence[int], names: Sequence[str]) -> pd.DataFrame:
    """Give the top ``quotas[0]`` ranked people ``names[0]``, the next ``quotas[1]`` ``names[1]``…

    Adds ``type`` and ``boundary_tie`` (True when the person is tied in mean score with someone
    on the other side of a quota boundary: the tie rule, not the score, decided their type).
    """
    if len(quotas) != len(names):
        raise ValueError(f"{len(quotas)} quotas for {len(names)} types")
    if sum(quotas) != len(ranked):
        raise ValueError(f"quotas sum to {sum(quotas)} but {len(ranked)} people are ranked")
    frame = ranked.copy()
    frame["type"] = [name for name, q in zip(names, quotas) for _ in range(q)]
    key = frame["_mean_key"] if "_mean_key" in frame else frame["mean_score"].round(9)
    types_per_mean = frame.groupby(key)["type"].transform("nunique")
    frame["boundary_tie"] = types_per_mean.to_numpy() > 1
    return frame.drop(columns=["_mean_key"], errors="ignore")
