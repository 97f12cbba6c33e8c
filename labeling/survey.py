"""Survey labeling: ratings -> per-person scores -> type shares -> quotas -> ranked labels.

The source's team labeled its reference people by hand: the type shares measured by a survey
question (e.g. 21.8 / 21.4 / 22.5 / 19.2 / 15.2 %) times the number of people gave each type's
exact share (23.98 / 23.54 / 24.75 / 21.12 / 16.72 of 110), rounded to whole quotas that still
sum to the total (24 / 23 / 25 / 21 / 17), and the people, ranked by their mean survey score,
were given the types in that order: the top ``quota[0]`` people get type 1, and so on.

This module is pure (no Streamlit, no database): parsing and validation of the CSV inputs,
the statistics, the quotas and the assignment, and a small command line::

    python -m labeling.survey quotas --shares 21.8,21.4,22.5,19.2,15.2 --total 110
    python -m labeling.survey assign RATINGS.csv --shares ... --out labels.csv [--scale 1,5]

Rules that decide close calls (all deterministic, documented here once):

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

import argparse
import csv
import io
import math
import re
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Collection, Iterable, Sequence

import numpy as np
import pandas as pd

from app.core.vocabulary import TYPES

#: Tolerance on the sum of percentages (the source's shares sum to 100.1).
SHARE_SUM_TOLERANCE = 0.5
DEFAULT_SCALE: tuple[float, float] = (1.0, 5.0)
#: Optional rater columns used for breakdowns.
BREAKDOWN_COLUMNS: tuple[str, ...] = ("age_group", "gender")
_HEADER_ALIASES = {
    "rater": "rater_id",
    "respondent": "rater_id",
    "respondent_id": "rater_id",
    "person": "person_id",
    "person_key": "person_id",
    "rating": "score",
    "age": "age_group",
    "agegroup": "age_group",
    "sex": "gender",
    "pseudonym": "name",
    "type_name": "type",
    "choice": "type",
}


# --------------------------------------------------------------------------------------------
# Validation errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One validation problem. ``line`` is the 1-based line in the file (header = line 1), or
    ``None`` when the problem is not tied to a line (e.g. shares typed in by hand)."""

    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


class SurveyValidationError(ValueError):
    """An input was rejected; ``problems`` lists every problem found, not only the first."""

    def __init__(self, problems: Iterable[Problem], source: str = ""):
        self.problems: list[Problem] = list(problems)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.source}: " if self.source else ""
        n = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        return f"{head}{n} problem{'s' if n != 1 else ''}\n{lines}"


# --------------------------------------------------------------------------------------------
# Reading CSV files
# --------------------------------------------------------------------------------------------


def decode_text(data: bytes | str) -> str:
    """Decode a survey file: UTF-8 (with or without BOM), else CP949 (a superset of EUC-KR)."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("cp949")
        except UnicodeDecodeError:
            line = data[: utf8_error.start].count(b"\n") + 1
            raise SurveyValidationError(
                [Problem(line, "the file is neither UTF-8 nor CP949/EUC-KR text "
                               f"(byte 0x{data[utf8_error.start]:02x})")]
            ) from None


def _read_bytes(source: bytes | str | Path | io.IOBase) -> bytes | str:
    if isinstance(source, Path):
        return source.read_bytes()
    if isinstance(source, (bytes, str)):
        return source
    return source.read()


def _normalize_header(name: str) -> str:
    key = re.sub(r"[\s\-]+", "_", name.strip().lstrip("\ufeff").lower())
    return _HEADER_ALIASES.get(key, key)


@dataclass
class _Table:
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (line, values)


def _read_table(data: bytes | str, required: Sequence[str]) -> tuple[_Table | None, list[Problem]]:
    """Parse CSV text into rows keyed by normalized column names, with their line numbers.

    Returns ``(None, problems)`` when the file cannot be read at all (empty, missing columns).
    """
    text = decode_text(data)
    if not text.strip():
        return None, [Problem(1, "the file is empty")]
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[Problem] = []
    header: list[str] | None = None
    table: _Table | None = None
    last_line = 0
    try:
        for raw in reader:
            start = last_line + 1
            last_line = reader.line_num
            if not raw or all(not cell.strip() for cell in raw):
                continue
            if header is None:
                header = [_normalize_header(c) for c in raw]
                missing = [c for c in required if c not in header]
                if missing:
                    return None, [Problem(start, f"missing column{'s' if len(missing) > 1 else ''}: "
                                                 f"{', '.join(missing)} (found: {', '.join(raw)})")]
                dupes = sorted({c for c in header if c and header.count(c) > 1})
                if dupes:
                    return None, [Problem(start, f"duplicate column: {', '.join(dupes)}")]
                table = _Table(header)
                continue
            if len(raw) > len(header):
                extra = raw[len(header):]
                if any(cell.strip() for cell in extra):
                    problems.append(Problem(start, f"{len(raw)} fields, the header has {len(header)}"))
                    continue
            values = {col: (raw[i].strip() if i < len(raw) else "") for i, col in enumerate(header)}
            table.rows.append((start, values))
    except csv.Error as exc:
        problems.append(Problem(reader.line_num, f"unreadable CSV: {exc}"))
    if header is None:
        return None, [Problem(1, "the file is empty")]
    if not table.rows and not problems:
        return None, [Problem(1, "the file has a header but no data rows")]
    return table, problems


def _natural_key(value: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(value)))


# --------------------------------------------------------------------------------------------
# Inputs: ratings, people, type choices, shares
# --------------------------------------------------------------------------------------------


def parse_scale(text: str | Sequence[float]) -> tuple[float, float]:
    """``"1,5"`` (or ``1-5``, ``1–10``) -> ``(1.0, 5.0)``."""
    if isinstance(text, str):
        parts = [p for p in re.split(r"\s*[,–~:]\s*|\s+-\s*|(?<=\d)-(?=\d)", text.strip()) if p]
    else:
        parts = list(text)
    try:
        low, high = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise SurveyValidationError([Problem(None, f"scale must be two numbers like 1,5 (got {text!r})")])
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise SurveyValidationError([Problem(None, f"scale minimum must be below its maximum (got {low:g},{high:g})")])
    return low, high


def parse_ratings(
    source: bytes | str | Path | io.IOBase,
    scale: Sequence[float] = DEFAULT_SCALE,
    known_people: Collection[str] | None = None,
) -> pd.DataFrame:
    """Read and validate a ratings CSV (``rater_id,person_id,score`` [, ``age_group``, ``gender``]).

    Every problem is collected and raised together as :class:`SurveyValidationError`; nothing is
    returned unless the whole file is valid. ``known_people`` (person ids), when given, rejects
    ratings of unknown people. Returns columns ``line, rater_id, person_id, score, age_group,
    gender`` (the breakdown columns are ``None`` when the file has none).
    """
    low, high = parse_scale(scale)
    table, problems = _read_table(_read_bytes(source), ("rater_id", "person_id", "score"))
    if table is None:
        raise SurveyValidationError(problems)
    known = None if known_people is None else {str(p).strip() for p in known_people}
    seen: dict[tuple[str, str], int] = {}
    rater_groups: dict[tuple[str, str], tuple[str, int]] = {}
    records = []
    for line, row in table.rows:
        rater, person, raw_score = row["rater_id"], row["person_id"], row["score"]
        row_problems = []
        if not rater:
            row_problems.append(Problem(line, "rater_id is empty"))
        if not person:
            row_problems.append(Problem(line, "person_id is empty"))
        elif known is not None and person not in known:
            row_problems.append(Problem(line, f"unknown person {person!r}"))
        score = None
        if not raw_score:
            row_problems.append(Problem(line, "score is empty"))
        else:
            try:
                score = float(raw_score)
                if not math.isfinite(score):
                    raise ValueError
            except ValueError:
                row_problems.append(Problem(line, f"score {raw_score!r} is not a number"))
                score = None
            if score is not None and not (low <= score <= high):
                row_problems.append(Problem(line, f"score {raw_score} is outside the scale {low:g}–{high:g}"))
        if rater and person:
            first = seen.get((rater, person))
            if first is not None:
                row_problems.append(
                    Problem(line, f"duplicate rating of {person!r} by rater {rater!r} (first on line {first})")
                )
            else:
                seen[(rater, person)] = line
        for col in BREAKDOWN_COLUMNS:
            value = row.get(col) or ""
            if rater and value and col in table.columns:
                prior = rater_groups.setdefault((rater, col), (value, line))
                if prior[0] != value:
                    row_problems.append(Problem(
                        line, f"rater {rater!r} has {col} {value!r} here but {prior[0]!r} on line {prior[1]}"))
        problems.extend(row_problems)
        if not row_problems:
            records.append({
                "line": line,
                "rater_id": rater,
                "person_id": person,
                "score": score,
                **{col: (row.get(col) or None) for col in BREAKDOWN_COLUMNS},
            })
    if problems:
        raise SurveyValidationError(sorted(problems, key=lambda p: (p.line or 0)))
    frame = pd.DataFrame.from_records(records, columns=["line", "rater_id", "person_id", "score", *BREAKDOWN_COLUMNS])
    frame["score"] = frame["score"].astype(float)
    return frame


def parse_people(source: bytes | str | Path | io.IOBase) -> pd.DataFrame:
    """Read and validate a ``person_id,name`` CSV. Returns columns ``person_id, name``."""
    table, problems = _read_table(_read_bytes(source), ("person_id", "name"))
    if table is None:
        raise SurveyValidationError(problems)
    seen: dict[str, int] = {}
    records = []
    for line, row in table.rows:
        person, name = row["person_id"], row["name"]
        if not person:
            problems.append(Problem(line, "person_id is empty"))
            continue
        if person in seen:
            problems.append(Problem(line, f"duplicate person {person!r} (first on line {seen[person]})"))
            continue
        seen[person] = line
        records.append({"person_id": person, "name": name or person})
    if problems:
        raise SurveyValidationError(problems)
    return pd.DataFrame.from_records(records, columns=["person_id", "name"])


def parse_type_choices(source: bytes | str | Path | io.IOBase, type_names: Sequence[str] = TYPES) -> pd.DataFrame:
    """Read a question CSV (``rater_id,type``: one row per rater) and count the choices.

    Returns one row per type (in ``type_names`` order): ``type, count, share_percent``.
    Type names are matched case-insensitively.
    """
    table, problems = _read_table(_read_bytes(source), ("rater_id", "type"))
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
# Statistics
# --------------------------------------------------------------------------------------------


def person_stats(ratings: pd.DataFrame, people: pd.DataFrame | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """Per person: ``n_ratings, mean_score, sd, ci_low, ci_high`` (Student-t interval of the mean;
    NaN bounds with a single rating). People in ``people`` without ratings are left out."""
    from scipy import stats

    grouped = ratings.groupby("person_id", sort=False)["score"]
    out = pd.DataFrame({
        "n_ratings": grouped.size(),
        "mean_score": grouped.mean(),
        "sd": grouped.std(ddof=1),
    })
    out.index.name = "person_id"
    out = out.reset_index()
    n = out["n_ratings"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(n > 1, stats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)), np.nan)
        half = t * out["sd"].to_numpy(dtype=float) / np.sqrt(n)
    out["ci_low"] = out["mean_score"] - half
    out["ci_high"] = out["mean_score"] + half
    names = {}
    if people is not None and len(people):
        names = dict(zip(people["person_id"].astype(str), people["name"].astype(str)))
    out.insert(1, "name", [names.get(p, p) for p in out["person_id"]])
    return out


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


def krippendorff_alpha(ratings: pd.DataFrame) -> float:
    """Krippendorff's alpha (interval level) over raters × people; NaN when undefined
    (fewer than two raters, no person rated twice, or a single value in the data)."""
    import krippendorff

    if ratings.empty:
        return float("nan")
    matrix = ratings.pivot_table(index="rater_id", columns="person_id", values="score", aggfunc="first")
    if matrix.shape[0] < 2 or (matrix.notna().sum(axis=0) >= 2).sum() == 0:
        return float("nan")
    try:
        return float(krippendorff.alpha(reliability_data=matrix.to_numpy(dtype=float), level_of_measurement="interval"))
    except (ValueError, ZeroDivisionError):
        return float("nan")


def agreement_table(ratings: pd.DataFrame, breakdowns: Sequence[str] = BREAKDOWN_COLUMNS) -> pd.DataFrame:
    """Alpha for all raters and within each group of each breakdown column present.

    Columns: ``breakdown, group, raters, ratings, alpha``.
    """
    rows = [{"breakdown": "all", "group": "all raters", "raters": ratings["rater_id"].nunique(),
             "ratings": len(ratings), "alpha": krippendorff_alpha(ratings)}]
    for col in breakdowns:
        if col not in ratings or ratings[col].isna().all():
            continue
        for group, part in ratings.groupby(ratings[col].fillna("(none)"), sort=True):
            rows.append({"breakdown": col, "group": str(group), "raters": part["rater_id"].nunique(),
                         "ratings": len(part), "alpha": krippendorff_alpha(part)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# The whole pipeline
# --------------------------------------------------------------------------------------------


@dataclass
class SurveyResult:
    labels: pd.DataFrame  # ranked people with stats, rank, tie_note, type, boundary_tie
    quotas: pd.DataFrame  # quota_steps
    alpha: float
    unrated: list[str]  # people known but without ratings (not labeled)

    def label_csv(self) -> pd.DataFrame:
        cols = ["person_id", "name", "mean_score", "n_ratings", "ci_low", "ci_high", "rank", "type", "boundary_tie"]
        return self.labels[cols]


def label_people(
    ratings: pd.DataFrame,
    names: Sequence[str],
    shares: Sequence[float],
    people: pd.DataFrame | None = None,
    type_order: Sequence[int] | None = None,
) -> SurveyResult:
    """Rank every rated person and give them types by the quotas of ``shares`` (one per name)."""
    stats = person_stats(ratings, people)
    ranked = rank_people(stats)
    steps = quota_steps(names, shares, len(ranked), type_order)
    labels = assign_types(ranked, steps["quota"].tolist(), list(names))
    unrated = []
    if people is not None and len(people):
        rated = set(stats["person_id"])
        unrated = [p for p in people["person_id"] if p not in rated]
    return SurveyResult(labels=labels, quotas=steps, alpha=krippendorff_alpha(ratings), unrated=unrated)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _shares_for(args) -> tuple[list[str], list[float]]:
    if getattr(args, "choices", None):
        names = [n.strip() for n in args.names.split(",")] if args.names else list(TYPES)
        table = parse_type_choices(Path(args.choices), names)
        return names, table["share_percent"].tolist()
    names = [n.strip() for n in args.names.split(",") if n.strip()] if args.names else list(TYPES)
    return names, parse_shares(args.shares, len(names))


def _cmd_quotas(args) -> int:
    names, shares = _shares_for(args)
    steps = quota_steps(names, shares, args.total)
    if args.steps:
        print(steps.to_string(index=False, float_format=lambda v: f"{v:.4f}"), file=sys.stderr)
    for name, count in zip(steps["type"], steps["quota"]):
        print(f"{name} {count}")
    return 0


def _cmd_assign(args) -> int:
    scale = parse_scale(args.scale)
    people = parse_people(Path(args.people)) if args.people else None
    known = set(people["person_id"]) if people is not None else None
    ratings = parse_ratings(Path(args.ratings), scale, known)
    names, shares = _shares_for(args)
    result = label_people(ratings, names, shares, people)
    out = result.label_csv()
    if args.out == "-":
        out.to_csv(sys.stdout, index=False)
    else:
        out.to_csv(args.out, index=False)
        for name, count in zip(result.quotas["type"], result.quotas["quota"]):
            print(f"{name} {count}")
        print(f"wrote {len(out)} labels to {args.out}; Krippendorff's alpha (interval) = {result.alpha:.3f}")
    if result.unrated:
        print(f"not labeled (no ratings): {', '.join(result.unrated)}", file=sys.stderr)
    ties = out[out["boundary_tie"]]
    if len(ties):
        print(f"tie across a quota boundary, decided by the tie rule: {', '.join(ties['person_id'])}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m labeling.survey", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def share_options(p):
        group = p.add_mutually_exclusive_group(required=True)
        group.add_argument("--shares", help="percentages per type, comma-separated (sum 100 ± 0.5)")
        if p.prog.endswith("assign"):
            group.add_argument("--choices", help="question CSV rater_id,type: shares are computed from it")
        p.add_argument("--names", help=f"type names, comma-separated (default: {','.join(TYPES)})")

    q = sub.add_parser("quotas", help="print one 'Name Count' line per type")
    share_options(q)
    q.add_argument("--total", type=int, required=True, help="number of people")
    q.add_argument("--steps", action="store_true", help="also print the computation table (stderr)")
    q.set_defaults(func=_cmd_quotas)

    a = sub.add_parser("assign", help="rank people by mean score and write their types")
    a.add_argument("ratings", help="ratings CSV: rater_id,person_id,score[,age_group,gender]")
    share_options(a)
    a.add_argument("--out", required=True, help="labels CSV to write ('-' for stdout)")
    a.add_argument("--scale", default="1,5", help="score scale min,max (default 1,5)")
    a.add_argument("--people", help="person_id,name CSV; ratings of other people are rejected")
    a.set_defaults(func=_cmd_assign)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SurveyValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
