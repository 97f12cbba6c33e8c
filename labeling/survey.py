"""Survey labeling: ratings -> per-person scores -> type shares -> quotas -> ranked labels.

The source's team labeled its reference people by hand: the type shares measured by a survey
question (e.g. 21.8 / 21.4 / 22.5 / 19.2 / 15.2 %) times the number of people gave each type's
exact share (23.98 / 23.54 / 24.75 / 21.12 / 16.72 of 110), rounded to whole quotas that still
sum to the total (24 / 23 / 25 / 21 / 17), and the people, ranked by their mean survey score,
were given the types in that order: the top ``quota[0]`` people get type 1, and so on.

This module is pure (no Streamlit, no database): it reads and validates the ratings and people
CSVs, runs the whole pipeline (:func:`label_people`) and has a small command line::

    python -m labeling.survey quotas --shares 21.8,21.4,22.5,19.2,15.2 --total 110
    python -m labeling.survey assign RATINGS.csv --shares ... --out labels.csv [--scale 1,5]

The parts live beside it: :mod:`labeling.survey_csv` (reading CSV files, validation errors),
:mod:`labeling.quotas` (shares, Hamilton quotas, ranking and assignment, with the tie rules that
decide close calls) and :mod:`labeling.survey_stats` (per-person statistics, rater agreement).
"""

from __future__ import annotations

import argparse
import io
import math
import re
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Sequence

import pandas as pd

from app.core.vocabulary import TYPES
from labeling.quotas import assign_types, parse_shares, parse_type_choices, quota_steps, rank_people
from labeling.survey_csv import BREAKDOWN_COLUMNS, Problem, SurveyValidationError, read_bytes, read_table
from labeling.survey_stats import krippendorff_alpha, person_stats

DEFAULT_SCALE: tuple[float, float] = (1.0, 5.0)


# --------------------------------------------------------------------------------------------
# Inputs: ratings, people
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
    table, problems = read_table(read_bytes(source), ("rater_id", "person_id", "score"))
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
    table, problems = read_table(read_bytes(source), ("person_id", "name"))
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
        """The labels as written to a CSV file, text cells made safe for spreadsheets."""
        cols = ["person_id", "name", "mean_score", "n_ratings", "ci_low", "ci_high", "rank", "type", "boundary_tie"]
        out = self.labels[cols].copy()
        for col in ("person_id", "name", "type"):
            out[col] = out[col].map(spreadsheet_safe)
        return out


#: A cell starting with one of these is run as a formula by spreadsheet programs.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_safe(value):
    """Text that a spreadsheet would run as a formula, prefixed with ``'`` so it shows as text: also
    after leading spaces or line breaks, and in full-width forms (``＝``, ``＋``, ``－``, ``＠``), which
    spreadsheets in East Asian locales read as the ASCII ones."""
    if not isinstance(value, str):
        return value
    text = unicodedata.normalize("NFKC", value)
    if text.startswith(FORMULA_STARTS) or text.lstrip().startswith(FORMULA_STARTS):
        return "'" + value
    return value


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
