"""Inputs shared by the survey tests (tests/test_survey.py, tests/test_survey_quotas.py)."""

from __future__ import annotations

from labeling.survey_csv import Problem

SOURCE_SHARES = [21.8, 21.4, 22.5, 19.2, 15.2]
TYPES = ["Alpha", "Beta", "Gamma", "Delta", "Omega"]
KOREAN = "rater_id,person_id,score,age_group,gender\nr1,p01,4,20대,여성\nr2,p01,5,30대,남성\n"


def problems_of(excinfo) -> list[Problem]:
    return excinfo.value.problems


def ratings_csv(*rows: str, header: str = "rater_id,person_id,score") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode("utf-8")
