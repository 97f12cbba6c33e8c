"""Database side of the survey labeling (see ``labeling.survey`` for the pure logic).

Every writer here is all-or-nothing: it checks the whole input first, then writes inside the
caller's session; if anything fails midway it rolls the session back and re-raises, so a
half-written state can never be committed (note: that rollback also discards any other pending
changes in the same session). Use it with ``app.core.db.session_scope()``, which commits on success.

Person ids in the survey files are ``ReferencePerson.person_key``; names are ``pseudonym``.

Ratings are stored as batches (``RatingBatch``: who, when, which file, counts, its rows): the active
batch's rows are the ``SurveyRating`` table; storing a batch or restoring an earlier one swaps them.
Writers take the signed-in account and check its role (``app.core.auth.require``) before anything
else, so a replayed widget message or a direct call by an annotator is refused.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import pandas as pd
from sqlmodel import Session, delete, select

from app.core.auth import Account, require
from app.core.db import RatingBatch, ReferencePerson, SurveyRating, TypeProfile, utcnow
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


class RatingsChange(NamedTuple):
    """What storing a batch would change, for the confirmation."""

    current: RatingBatch | None
    ratings: tuple[int, int]  # before, after
    raters: tuple[int, int]
    people: tuple[int, int]
    raters_dropped: list[str]
    raters_added: list[str]
    #: Stored (rater, person) ratings the new batch has no longer, or scores differently.
    ratings_removed: int
    ratings_changed: int
    scale: tuple[tuple[float, float] | None, tuple[float, float]]


def _rows_from_frame(session: Session, ratings_df: pd.DataFrame, scale: Sequence[float]) -> list[list]:
    """Check ``ratings_df`` (as from ``parse_ratings``) against the database and the scale; the batch
    rows ``[rater_id, person_key, score, age_group, gender]``. Raises ``SurveyValidationError``."""
    low, high = float(scale[0]), float(scale[1])
    known = set(session.exec(select(ReferencePerson.person_key)))
    problems, seen, rows = [], set(), []
    for row in ratings_df.to_dict("records"):
        line = _line(row)
        person, rater, score = str(row["person_id"]), str(row["rater_id"]), float(row["score"])
        if person not in known:
            problems.append(Problem(line, f"unknown person {person!r}"))
        if not low <= score <= high:
            problems.append(Problem(line, f"score {score:g} is outside the scale {low:g}–{high:g}"))
        if (rater, person) in seen:
            problems.append(Problem(line, f"duplicate rating of {person!r} by rater {rater!r}"))
        seen.add((rater, person))
        extra = [None if row.get(c) is None or pd.isna(row.get(c)) else str(row[c]) for c in BREAKDOWN_COLUMNS]
        rows.append([rater, person, score, *extra])
    if problems:
        raise SurveyValidationError(problems, "ratings")
    return rows


def active_batch(session: Session) -> RatingBatch | None:
    return session.exec(select(RatingBatch).where(RatingBatch.active)).first()


def list_batches(session: Session) -> list[RatingBatch]:
    """Every stored batch, newest first."""
    return list(session.exec(select(RatingBatch).order_by(RatingBatch.id.desc())))


def plan_ratings_change(session: Session, ratings_df: pd.DataFrame, scale: Sequence[float]) -> RatingsChange:
    """What ``store_ratings`` would change (raises ``SurveyValidationError`` as it would)."""
    rows = _rows_from_frame(session, ratings_df, scale)
    current = active_batch(session)
    old_rows = current.ratings if current else []
    old = {(r[0], r[1]): r[2] for r in old_rows}
    new = {(r[0], r[1]): r[2] for r in rows}
    old_raters, new_raters = {r[0] for r in old_rows}, {r[0] for r in rows}
    return RatingsChange(
        current=current,
        ratings=(len(old_rows), len(rows)),
        raters=(len(old_raters), len(new_raters)),
        people=(len({r[1] for r in old_rows}), len({r[1] for r in rows})),
        raters_dropped=sorted(old_raters - new_raters),
        raters_added=sorted(new_raters - old_raters),
        ratings_removed=sum(1 for key in old if key not in new),
        ratings_changed=sum(1 for key, score in old.items() if key in new and new[key] != score),
        scale=((current.scale_min, current.scale_max) if current else None, (float(scale[0]), float(scale[1]))),
    )


def _activate(session: Session, batch: RatingBatch) -> None:
    """Make ``batch`` the stored ratings: its rows replace ``SurveyRating``'s, flushed; on any failure
    the session is rolled back (nothing written) and the error raised."""
    try:
        ids = dict(session.exec(select(ReferencePerson.person_key, ReferencePerson.id)).all())
        missing = sorted({r[1] for r in batch.ratings} - set(ids))
        if missing:
            raise SurveyValidationError([Problem(None, f"person {key!r} is no longer in the database")
                                         for key in missing], "ratings")
        for other in session.exec(select(RatingBatch).where(RatingBatch.active)):
            other.active = False
            session.add(other)
        batch.active = True
        session.add(batch)
        session.exec(delete(SurveyRating))
        session.add_all(
            SurveyRating(rater_id=rater, person_id=ids[person], score=score, scale_min=batch.scale_min,
                         scale_max=batch.scale_max, **dict(zip(BREAKDOWN_COLUMNS, extra)))
            for rater, person, score, *extra in batch.ratings
        )
        session.flush()
    except BaseException:
        session.rollback()
        raise


def store_ratings(session: Session, account: Account, ratings_df: pd.DataFrame, scale: Sequence[float],
                  file_name: str) -> RatingBatch:
    """Store ``ratings_df`` (as from ``parse_ratings``) as a new batch and make it the stored ratings,
    in one transaction; earlier batches are kept for ``restore_batch``. Needs the ``store_ratings``
    role. Raises ``SurveyValidationError`` (nothing written) for unknown people, scores outside
    ``scale`` or duplicate (rater, person) pairs."""
    require(account, "store_ratings")
    rows = _rows_from_frame(session, ratings_df, scale)
    batch = RatingBatch(stored_by=account.name, stored_at=utcnow(), file_name=file_name[:255], n_ratings=len(rows),
                        n_raters=len({r[0] for r in rows}), n_people=len({r[1] for r in rows}),
                        scale_min=float(scale[0]), scale_max=float(scale[1]), ratings=rows)
    _activate(session, batch)
    return batch


def restore_batch(session: Session, account: Account, batch_id: int) -> RatingBatch:
    """Make an earlier batch the stored ratings again (the one replaced stays stored). Needs the
    ``store_ratings`` role."""
    require(account, "store_ratings")
    batch = session.get(RatingBatch, batch_id)
    if batch is None:
        raise SurveyValidationError([Problem(None, f"there is no ratings batch {batch_id}")], "ratings")
    _activate(session, batch)
    return batch


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


def apply_labels(session: Session, account: Account, labels_df: pd.DataFrame) -> list[LabelChange]:
    """Write each labeled person's type (and ``survey_score`` = ``mean_score`` when given). Needs the
    ``apply_labels`` role.

    All or nothing: everything is checked first; if a write fails midway the session is rolled
    back and the error re-raised. Returns the type changes (as ``plan_label_changes``).
    """
    require(account, "apply_labels")
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
