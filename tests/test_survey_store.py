"""Database side of survey labeling, on a temporary SQLite database."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlmodel import select

from app.core.db import ReferencePerson, SurveyRating, TypeProfile, session_scope
from labeling import survey, survey_store
from labeling.survey_csv import SurveyValidationError

TYPES = ["Alpha", "Beta", "Gamma"]


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


def test_import_ratings_replaces_stored_ratings(url):
    first = survey.parse_ratings(b"rater_id,person_id,score,age_group\nr1,p1,4,20s\nr2,p1,2,30s\n", (1, 5))
    second = survey.parse_ratings(b"rater_id,person_id,score\nr9,p2,7\n", (1, 10))
    with session_scope(url) as session:
        assert survey_store.import_ratings(session, first, (1, 5)) == 2
    with session_scope(url) as session:
        stored, scale = survey_store.load_ratings(session)
    assert scale == (1.0, 5.0)
    assert stored[["rater_id", "person_id", "score", "age_group"]].values.tolist() == [
        ["r1", "p1", 4.0, "20s"], ["r2", "p1", 2.0, "30s"]]
    with session_scope(url) as session:
        survey_store.import_ratings(session, second, (1, 10))
    with session_scope(url) as session:
        stored, scale = survey_store.load_ratings(session)
    assert scale == (1.0, 10.0) and stored["rater_id"].tolist() == ["r9"]


def test_import_ratings_is_all_or_nothing(url):
    good = survey.parse_ratings(b"rater_id,person_id,score\nr1,p1,4\n")
    with session_scope(url) as session:
        survey_store.import_ratings(session, good, (1, 5))
    before = snapshot(url)
    bad = survey.parse_ratings(b"rater_id,person_id,score\nr1,p2,4\nr1,p99,3\nr2,p3,5\n")
    with pytest.raises(SurveyValidationError) as exc:
        with session_scope(url) as session:
            survey_store.import_ratings(session, bad, (1, 5))
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
        changes = survey_store.apply_labels(session, labels)
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
            survey_store.apply_labels(session, labels)
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
            survey_store.apply_labels(session, labels)
    assert calls == ["p1", "p2", "p3"]  # two people were changed in the session before the failure
    assert snapshot(url) == before


def test_apply_rolls_back_even_if_the_caller_swallows_the_error(url, monkeypatch):
    labels = labels_for(url)
    before = snapshot(url)
    monkeypatch.setattr(survey_store, "_set_label", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with session_scope(url) as session:
        with pytest.raises(RuntimeError):
            survey_store.apply_labels(session, labels)
    # session_scope committed, but apply_labels had rolled its writes back.
    assert snapshot(url) == before
