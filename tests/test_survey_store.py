"""Database side of survey labeling, on a temporary SQLite database."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlmodel import select

from app.core.auth import Account, PermissionDenied
from app.core.db import RatingBatch, ReferencePerson, SurveyRating, TypeProfile, session_scope
from labeling import survey, survey_store
from labeling.survey_csv import SurveyValidationError

TYPES = ["Alpha", "Beta", "Gamma"]
ANNOTATOR, LEAD, ADMIN = (Account(role[:3], role, "unused") for role in ("annotator", "lead", "admin"))


@pytest.fixture
def url(database_url):
    url = database_url
    with session_scope(url) as session:
        for i, name in enumerate(TYPES):
            session.add(TypeProfile(name=name, order=i, description=f"{name} people", share_percent=[50, 30, 20][i]))
        session.flush()
        for i in range(1, 6):
            session.add(ReferencePerson(person_key=f"p{i}", pseudonym=f"Person {i}", type_name="Gamma"))
    return url


def snapshot(url):
    with session_scope(url) as session:
        people = {p.person_key: (p.type_name, p.survey_score) for p in session.exec(select(ReferencePerson))}
        ratings = sorted((r.rater_id, r.person_id, r.score) for r in session.exec(select(SurveyRating)))
    return people, ratings


def labels_for(url):
    rows = [("a", f"p{i}", s) for i, s in zip(range(1, 6), [5, 4, 3, 2, 1])]
    rows += [("b", f"p{i}", s) for i, s in zip(range(1, 6), [5, 5, 3, 1, 1])]
    ratings = pd.DataFrame(rows, columns=["rater_id", "person_id", "score"])
    with session_scope(url) as session:
        people = survey_store.load_people(session)
    return survey.label_people(ratings, TYPES, [50, 30, 20], people).labels


def test_load_people_and_types(url):
    with session_scope(url) as session:
        people = survey_store.load_people(session)
        types = survey_store.load_types(session)
    assert people["person_id"].tolist() == ["p1", "p2", "p3", "p4", "p5"]
    assert people["name"][0] == "Person 1"
    assert [t.name for t in types] == TYPES


def test_storing_a_batch_replaces_the_stored_ratings(url):
    first = survey.parse_ratings(b"rater_id,person_id,score,age_group\nr1,p1,4,20s\nr2,p1,2,30s\n", (1, 5))
    second = survey.parse_ratings(b"rater_id,person_id,score\nr9,p2,7\n", (1, 10))
    with session_scope(url) as session:
        assert survey_store.store_ratings(session, LEAD, first, (1, 5), "first.csv").n_ratings == 2
    with session_scope(url) as session:
        stored, scale = survey_store.load_ratings(session)
    assert scale == (1.0, 5.0)
    assert stored[["rater_id", "person_id", "score", "age_group"]].values.tolist() == [
        ["r1", "p1", 4.0, "20s"], ["r2", "p1", 2.0, "30s"]]
    with session_scope(url) as session:
        survey_store.store_ratings(session, LEAD, second, (1, 10), "second.csv")
    with session_scope(url) as session:
        stored, scale = survey_store.load_ratings(session)
    assert scale == (1.0, 10.0) and stored["rater_id"].tolist() == ["r9"]


def test_storing_ratings_is_all_or_nothing(url):
    good = survey.parse_ratings(b"rater_id,person_id,score\nr1,p1,4\n")
    with session_scope(url) as session:
        survey_store.store_ratings(session, LEAD, good, (1, 5), "good.csv")
    before = snapshot(url)
    bad = survey.parse_ratings(b"rater_id,person_id,score\nr1,p2,4\nr1,p99,3\nr2,p3,5\n")
    with pytest.raises(SurveyValidationError) as exc:
        with session_scope(url) as session:
            survey_store.store_ratings(session, LEAD, bad, (1, 5), "bad.csv")
    assert [(p.line, p.message) for p in exc.value.problems] == [(3, "unknown person 'p99'")]
    assert snapshot(url) == before


def test_load_ratings_none_when_empty(url):
    with session_scope(url) as session:
        assert survey_store.load_ratings(session) is None


def test_plan_lists_exactly_the_type_moves(url):
    labels = labels_for(url)
    # Quotas of 50/30/20 % for 5 people: exact 2.5/1.5/1 -> floors 2/1/1, the last seat goes to
    # the tied .5 remainder with the larger exact share (Alpha) -> 3/1/1.
    assert labels["type"].tolist() == ["Alpha", "Alpha", "Alpha", "Beta", "Gamma"]
    with session_scope(url) as session:
        plan = survey_store.plan_label_changes(session, labels)
    assert plan == [
        ("p1", "Person 1", "Gamma", "Alpha"),
        ("p2", "Person 2", "Gamma", "Alpha"),
        ("p3", "Person 3", "Gamma", "Alpha"),
        ("p4", "Person 4", "Gamma", "Beta"),
    ]
    assert snapshot(url)[0]["p1"] == ("Gamma", None)  # planning writes nothing


def test_apply_labels_writes_types_and_scores(url):
    labels = labels_for(url)
    with session_scope(url) as session:
        changes = survey_store.apply_labels(session, LEAD, labels)
    assert len(changes) == 4
    people, _ = snapshot(url)
    assert people["p1"] == ("Alpha", 5.0)
    assert people["p4"] == ("Beta", 1.5)
    assert people["p5"] == ("Gamma", 1.0)
    with session_scope(url) as session:
        assert survey_store.plan_label_changes(session, labels) == []


@pytest.mark.parametrize("bad", ["unknown_type", "unknown_person", "twice"])
def test_apply_rejects_bad_labels_and_changes_nothing(url, bad):
    labels = labels_for(url)
    if bad == "unknown_type":
        labels.loc[3, "type"] = "Zeta"  # the 4th row: the first three would already be written
    elif bad == "unknown_person":
        labels.loc[4, "person_id"] = "p404"
    else:
        labels.loc[4, "person_id"] = "p1"
    before = snapshot(url)
    with pytest.raises(SurveyValidationError) as exc:
        with session_scope(url) as session:
            survey_store.apply_labels(session, LEAD, labels)
    assert {"unknown_type": "Zeta", "unknown_person": "p404", "twice": "labeled twice"}[bad] in str(exc.value)
    assert snapshot(url) == before


def test_apply_failing_midway_rolls_everything_back(url, monkeypatch):
    labels = labels_for(url)
    before = snapshot(url)
    calls = []
    real = survey_store._set_label

    def flaky(person, type_name, score):
        calls.append(person.person_key)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        real(person, type_name, score)

    monkeypatch.setattr(survey_store, "_set_label", flaky)
    with pytest.raises(RuntimeError):
        with session_scope(url) as session:
            survey_store.apply_labels(session, LEAD, labels)
    assert calls == ["p1", "p2", "p3"]  # two people were changed in the session before the failure
    assert snapshot(url) == before


def test_apply_rolls_back_even_if_the_caller_swallows_the_error(url, monkeypatch):
    labels = labels_for(url)
    before = snapshot(url)
    monkeypatch.setattr(survey_store, "_set_label", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with session_scope(url) as session:
        with pytest.raises(RuntimeError):
            survey_store.apply_labels(session, LEAD, labels)
    # session_scope committed, but apply_labels had rolled its writes back.
    assert snapshot(url) == before


# ------------------------------------------------------------------ batches and roles
FIRST = b"rater_id,person_id,score\nr1,p1,4\nr1,p2,3\nr2,p1,5\n"
SECOND = b"rater_id,person_id,score\nr1,p1,2\nr3,p3,1\n"


def store(url, data, name, account=LEAD):
    with session_scope(url) as session:
        return survey_store.store_ratings(session, account, survey.parse_ratings(data), (1, 5), name).id


def test_each_batch_records_who_when_file_and_counts(url):
    store(url, FIRST, "first.csv")
    store(url, SECOND, "second.csv", ADMIN)
    with session_scope(url) as session:
        batches = survey_store.list_batches(session)
    assert [(b.file_name, b.stored_by, b.n_ratings, b.n_raters, b.n_people, b.active) for b in batches] == [
        ("second.csv", "adm", 2, 2, 2, True), ("first.csv", "lea", 3, 2, 2, False)]
    assert batches[0].stored_at >= batches[1].stored_at


def test_the_plan_says_what_storing_changes(url):
    store(url, FIRST, "first.csv")
    with session_scope(url) as session:
        change = survey_store.plan_ratings_change(session, survey.parse_ratings(SECOND), (1, 5))
    assert change.current.file_name == "first.csv"
    assert (change.ratings, change.raters, change.people) == ((3, 2), (2, 2), (2, 2))
    assert change.raters_dropped == ["r2"] and change.raters_added == ["r3"]
    assert change.ratings_removed == 2 and change.ratings_changed == 1  # (r1,p2), (r2,p1) gone; (r1,p1) 4 -> 2
    assert snapshot(url)[1] == sorted(snapshot(url)[1]) and len(snapshot(url)[1]) == 3  # planning wrote nothing


def test_restoring_brings_the_previous_batch_back(url):
    first = store(url, FIRST, "first.csv")
    after_first = snapshot(url)
    second = store(url, SECOND, "second.csv")
    assert snapshot(url) != after_first
    with session_scope(url) as session:
        survey_store.restore_batch(session, LEAD, first)
    assert snapshot(url)[1] == after_first[1]
    with session_scope(url) as session:
        assert survey_store.active_batch(session).id == first
        survey_store.restore_batch(session, LEAD, second)  # and forward again
        assert survey_store.load_ratings(session)[0]["rater_id"].tolist() == ["r1", "r3"]


def test_restoring_an_unknown_batch_changes_nothing(url):
    store(url, FIRST, "first.csv")
    before = snapshot(url)
    with pytest.raises(SurveyValidationError, match="no ratings batch 99"):
        with session_scope(url) as session:
            survey_store.restore_batch(session, LEAD, 99)
    assert snapshot(url) == before


@pytest.mark.parametrize("account, allowed", [(None, False), (ANNOTATOR, False), (LEAD, True), (ADMIN, True)])
def test_each_survey_action_checks_the_role(url, account, allowed):
    """Called directly, as each role: an annotator (or nobody) is refused and nothing changes."""
    first = store(url, FIRST, "first.csv")
    store(url, SECOND, "second.csv")
    labels = labels_for(url)
    actions = {
        "store_ratings": lambda s: survey_store.store_ratings(s, account, survey.parse_ratings(FIRST), (1, 5), "x.csv"),
        "restore_batch": lambda s: survey_store.restore_batch(s, account, first),
        "apply_labels": lambda s: survey_store.apply_labels(s, account, labels),
    }
    for name, action in actions.items():
        before = snapshot(url)
        with session_scope(url) as session:
            batches_before = len(survey_store.list_batches(session))
        if allowed:
            with session_scope(url) as session:
                action(session)
            continue
        with pytest.raises(PermissionDenied, match="needs the lead role"):
            with session_scope(url) as session:
                action(session)
        assert snapshot(url) == before, name
        with session_scope(url) as session:
            assert len(survey_store.list_batches(session)) == batches_before, name


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def test_ratings_stored_before_batches_become_the_first_batch(tmp_path, request, kind):
    """The 0004 migration turns ratings already stored into batch 1, active."""
    from app.core import db

    url = (f"sqlite:///{tmp_path / 'old.db'}" if kind == "sqlite"
           else request.getfixturevalue("postgres_server").create_database(f"batches_{tmp_path.name[-20:]}".lower()))
    db.migrate(url, "0002")
    with session_scope(url) as session:
        session.add(ReferencePerson(person_key="p1", pseudonym="P 1"))
        session.flush()
        session.add(SurveyRating(rater_id="r1", person_id=1, score=4, scale_min=1, scale_max=7, age_group="20s"))
    db.migrate(url)
    with session_scope(url) as session:
        (batch,) = session.exec(select(RatingBatch)).all()
    db.get_engine(url).dispose()
    assert batch.active and batch.n_ratings == 1 and (batch.scale_min, batch.scale_max) == (1, 7)
    assert batch.ratings == [["r1", "p1", 4.0, "20s", None]]
