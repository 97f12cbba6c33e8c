"""The visitor's answers: birth dates typed in common formats, impossible ages refused with a
message that says what is expected, and "I don't know" as an MBTI answer."""

from __future__ import annotations

from datetime import date

import pytest

from app.services import analysis

TODAY = date(2026, 11, 26)


@pytest.mark.parametrize("text, expected", [
    ("17/05/1994", date(1994, 5, 17)),
    ("1994-5-7", date(1994, 5, 7)),
    ("1994-05-17", date(1994, 5, 17)),
    ("17.5.1994", date(1994, 5, 17)),
    (" 7-5-1994 ", date(1994, 5, 7)),
    ("25/11/2026", date(2026, 11, 25)),
])
def test_common_birth_date_formats_are_read(text, expected):
    assert analysis.parse_birth_date(text, today=TODAY) == expected


@pytest.mark.parametrize("text, said", [
    ("May 17th", "Write your birth date as day/month/year (17/05/1994) or year-month-day (1994-05-17)."),
    ("17051994", "Write your birth date as day/month/year"),
    ("17/05/94", "Write the year with four digits"),
    ("31/02/1994", "31/02/1994 is not a date in the calendar"),
    ("1994-13-01", "is not a date in the calendar"),
    ("26/11/2026", "26/11/2026 is not in the past"),
    ("2030-01-01", "01/01/2030 is not in the past"),
    ("1850-01-01", "01/01/1850 is before 1900"),
])
def test_unreadable_or_impossible_birth_dates_say_what_is_expected(text, said):
    with pytest.raises(ValueError) as info:
        analysis.parse_birth_date(text, today=TODAY)
    assert said in str(info.value)


def test_answers_refuse_today_and_accept_i_dont_know():
    analysis.check_answers(analysis.MBTI_UNKNOWN, date(1990, 1, 1), today=TODAY)
    analysis.check_answers("INFP", date(2026, 11, 25), today=TODAY)
    with pytest.raises(ValueError):
        analysis.check_answers("INFP", TODAY, today=TODAY)
    with pytest.raises(ValueError):
        analysis.check_answers("XXXX", date(1990, 1, 1), today=TODAY)
    assert len(analysis.MBTI_UNKNOWN) <= 4  # fits the mbti column
