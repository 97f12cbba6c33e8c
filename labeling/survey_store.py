"""Database side of the survey labeling (see ``labeling.survey`` for the pure logic).

Every writer here is all-or-nothing: it checks the whole input first, then writes inside the
caller's session; if anything fails midway it rolls the session back and re-raises, so a
half-written state can never be committed (note: that rollback also discards any other pending
changes in the same session). Use it with ``app.core.db.session_scope()``, which commits on success.

Person ids in the survey files are ``ReferencePerson.person_key``; names are ``pseudonym``.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import pandas as pd
from sqlmodel import Session, delete, select

from app.core.db import ReferencePerson, SurveyRating, TypeProfile, utcnow
from labeling.survey_csv import BREAKDOWN_COLUMNS, Problem, SurveyValidationError


class LabelChange(NamedTuple):
    person_key: str
    pseudonym: str
    old_type: str | None
    new_type: str


def load_types(session: Session) -> list[TypeProfile]:
    """The type profiles in their canonical order (type 1 first)."""
    return list(session.exec(select(TypeProfile).order_by(TypeProfile.order)))


def load_people(session: Session) -> pd.DataFrame:
    """Reference people as ``person_id, name, type_name, survey_score`` (person_id = person_key)."""
    rows = session.exec(select(ReferencePerson).order_by(ReferencePerson.id)).all()
    return pd.DataFrame(
        [(p.person_key, p.pseudonym, p.type_name, p.survey_score) for p in rows],
        columns=["person_id", "name", "type_name", "survey_score"],
    )


def load_ratings(session: Session) -> tuple[pd.DataFrame, tuple[float, float]] | None:
    """The stored ratings in the shape ``labeling.survey.parse_ratings`` returns, with their
    scale; ``None`` when no ratings are stored."""
    rows = session.exec(
        select(SurveyRating, ReferencePerson.person_key)
        .join(ReferencePerson, SurveyRating.person_id == ReferencePerson.id)
        .order_by(SurveyRating.id)
    ).all()
    if not rows:
        return None
    frame = pd.DataFrame(
        [(None, r.rater_id, key, float(r.score), r.age_group, r.gender) for r, key in rows],
        columns=["line", "rater_id", "person_id", "score", *BREAKDOWN_COLUMNS],
    )
    first = rows[0][0]  # import_ratings stores one scale for all rows
    return frame, (float(first.scale_min), float(first.scale_max))


def _line(row) -> int | None:
    line = row.get("line") if hasattr(row, "get") else None
    return None if line is None or pd.isna(line) else int(line)


def import_ratings(session: Session, ratings_df: pd.DataFrame, scale: Sequence[float]) -> int:
    """Replace all stored ratings by ``ratings_df`` (as from ``parse_ratings``), in one
    transaction. Raises ``SurveyValidationError`` (nothing written) for unknown people, scores
    outside ``scale`` or duplicate (rater, person) pairs. Returns the number of ratings stored."""
    low, high = float(scale[0]), float(scale[1])
    ids = dict(session.exec(select(ReferencePerson.person_key, ReferencePerson.id)).all())
    problems, seen, new_rows = [], set(), []
    for row in ratings_df.to_dict("records"):
        line = _line(row)
        person, rater, score = str(row["person_id"]), str(row["rater_id"]), float(row["score"])
        if person not in ids:
            problems.append(Problem(line, f"unknown person {person!r}"))
        if not low <= score <= high:
            problems.append(Problem(line, f"score {score:g} is outside the scale {low:g}–{high:g}"))
        if (rater, person) in seen:
            problems.append(Problem(line, f"duplicate rating of {person!r} by rater {rater!r}"))
        seen.add((rater, person))
        if person in ids:
            extra = {c: (None if row.get(c) is None or pd.isna(row.get(c)) else str(row[c])) for c in BREAKDOWN_COLUMNS}
            new_rows.append(SurveyRating(rater_id=rater, person_id=ids[person], score=score,
                                         scale_min=low, scale_max=high, **extra))
    if problems:
        raise SurveyValidationError(problems, "ratings")
    try:
        session.exec(delete(SurveyRating))
        session.add_all(new_rows)
        session.flush()
    except BaseException:
        session.rollback()
        raise
    return len(new_rows)


def _people_by_key(session: Session) -> dict[str, ReferencePerson]:
    return {p.person_key: p for p in session.exec(select(ReferencePerson))}


def plan_label_changes(session: Session, labels_df: pd.DataFrame) -> list[LabelChange]:
    """What ``apply_labels`` would change: one entry per person whose type moves.

    ``labels_df`` needs ``person_id`` and ``type`` columns (``mean_score`` optional). Raises
    ``SurveyValidationError`` for unknown people, unknown types or a person listed twice.
    """
    _check_labels(session, labels_df)
    people = _people_by_key(session)
    changes = []
    for person_id, type_name in zip(labels_df["person_id"].astype(str), labels_df["type"].astype(str)):
        person = people[person_id]
        if person.type_name != type_name:
            changes.append(LabelChange(person.person_key, person.pseudonym, person.type_name, type_name))
    return changes


def _check_labels(session: Session, labels_df: pd.DataFrame) -> None:
    missing = [c for c in ("person_id", "type") if c not in labels_df]
    if missing:
        raise SurveyValidationError([Problem(None, f"labels lack column(s): {', '.join(missing)}")], "labels")
    known_people = set(session.exec(select(ReferencePerson.person_key)))
    known_types = set(session.exec(select(TypeProfile.name)))
    problems, seen = [], set()
    for person_id, type_name in zip(labels_df["person_id"].astype(str), labels_df["type"].astype(str)):
        if person_id not in known_people:
            problems.append(Problem(None, f"person {person_id!r} is not a reference person in the database"))
        if type_name not in known_types:
            problems.append(Problem(None, f"type {type_name!r} is not a type profile in the database"))
        if person_id in seen:
            problems.append(Problem(None, f"person {person_id!r} is labeled twice"))
        seen.add(person_id)
    if problems:
        raise SurveyValidationError(problems, "labels")


def _set_label(person: ReferencePerson, type_name: str, score: float | None) -> None:
    person.type_name = type_name
    if score is not None:
        person.survey_score = score
    person.updated_at = utcnow()


def apply_labels(session: Session, labels_df: pd.DataFrame) -> list[LabelChange]:
    """Write each labeled person's type (and ``survey_score`` = ``mean_score`` when given).

    All or nothing: everything is checked first; if a write fails midway the session is rolled
    back and the error re-raised. Returns the type changes (as ``plan_label_changes``).
    """
    changes = plan_label_changes(session, labels_df)
    people = _people_by_key(session)
    scores = labels_df["mean_score"] if "mean_score" in labels_df else [None] * len(labels_df)
    try:
        for person_id, type_name, score in zip(labels_df["person_id"].astype(str), labels_df["type"].astype(str), scores):
            person = people[person_id]
            _set_label(person, type_name, None if score is None or pd.isna(score) else float(score))
            session.add(person)
        session.flush()
    except BaseException:
        session.rollback()
        raise
    return changes
