"""Pure survey logic: parsing/validation, encodings, people and type choices, CLI."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from app.core.settings import PROJECT_ROOT
from labeling import quotas, survey
from labeling.survey_csv import Problem, SurveyValidationError
from tests.survey_helpers import KOREAN, SOURCE_SHARES, TYPES, problems_of, ratings_csv


# ------------------------------------------------------------------------------ validation


def test_missing_columns_name_the_header_line():
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_ratings(ratings_csv("r1,p01", header="rater_id,person_id"))
    [problem] = problems_of(exc)
    assert problem.line == 1 and "score" in problem.message
    assert "line 1: missing column" in str(exc.value)


def test_non_numeric_score_names_the_line():
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_ratings(ratings_csv("r1,p01,4", "r1,p02,four"))
    assert problems_of(exc) == [Problem(3, "score 'four' is not a number")]


def test_out_of_range_score_names_the_line():
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_ratings(ratings_csv("r1,p01,4", "r1,p02,6", "r1,p03,0"), scale=(1, 5))
    assert [p.line for p in problems_of(exc)] == [3, 4]
    assert "outside the scale 1–5" in problems_of(exc)[0].message
    # The same score is fine on a 1-10 scale.
    assert len(survey.parse_ratings(ratings_csv("r1,p01,4", "r1,p02,6"), scale=(1, 10))) == 2


def test_duplicate_rater_person_names_both_lines():
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_ratings(ratings_csv("r1,p01,4", "r2,p01,3", "r1,p01,5"))
    [problem] = problems_of(exc)
    assert problem.line == 4 and "first on line 2" in problem.message


def test_unknown_person_names_the_line():
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_ratings(ratings_csv("r1,p01,4", "r1,p99,3"), known_people={"p01", "p02"})
    assert problems_of(exc) == [Problem(3, "unknown person 'p99'")]


def test_empty_file_names_line_one():
    for data in (b"", b"\xef\xbb\xbf", b"\n\n  \n"):
        with pytest.raises(SurveyValidationError) as exc:
            survey.parse_ratings(data)
        assert problems_of(exc) == [Problem(1, "the file is empty")]
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_ratings(b"rater_id,person_id,score\n")
    assert problems_of(exc) == [Problem(1, "the file has a header but no data rows")]


def test_shares_not_summing_to_100():
    with pytest.raises(SurveyValidationError) as exc:
        quotas.parse_shares("21.8,21.4,22.5,19.2,16.0", 5)  # 100.9
    [problem] = problems_of(exc)
    assert problem.line is None and "sum to 100.9" in problem.message and "100 ± 0.5" in str(exc.value)
    assert quotas.parse_shares("21.8,21.4,22.5,19.2,15.2", 5) == SOURCE_SHARES  # 100.1 is within tolerance
    with pytest.raises(SurveyValidationError) as exc:
        quotas.parse_shares("20,20,x,20,20", 5)
    assert "share 3" in str(exc.value)
    with pytest.raises(SurveyValidationError) as exc:
        quotas.parse_shares("50,50", 5)
    assert "2 shares given for 5 types" in str(exc.value)


def test_every_problem_is_reported_and_nothing_is_loaded():
    data = ratings_csv(
        "r1,p01,4",
        "r1,p02,abc",    # 3: not a number
        "r2,p01,9",      # 4: out of range
        "r1,p01,2",      # 5: duplicate
        "r3,p77,3",      # 6: unknown person
        ",p01,3",        # 7: empty rater
        "r4,p02,3,extra",  # 8: too many fields
    )
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_ratings(data, known_people={"p01", "p02"})
    assert [p.line for p in problems_of(exc)] == [3, 4, 5, 6, 7, 8]
    text = str(exc.value)
    assert text.startswith("6 problems") and all(f"line {n}:" in text for n in range(3, 9))


def test_line_numbers_count_blank_and_quoted_multiline_rows():
    data = b'rater_id,person_id,score,gender\n\nr1,p01,4,"f\nx"\nr2,p02,z,m\n'
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_ratings(data)
    assert [p.line for p in problems_of(exc)] == [5]


def test_scale_parsing():
    assert survey.parse_scale("1,10") == (1.0, 10.0)
    assert survey.parse_scale("1–5") == (1.0, 5.0)
    assert survey.parse_scale("1-7") == (1.0, 7.0)
    with pytest.raises(SurveyValidationError):
        survey.parse_scale("5,1")


# ------------------------------------------------------------------------------ encodings


@pytest.mark.parametrize("encoding", ["cp949", "euc-kr", "utf-8", "utf-8-sig"])
def test_korean_files_decode(encoding):
    frame = survey.parse_ratings(KOREAN.encode(encoding))
    assert frame["age_group"].tolist() == ["20대", "30대"]
    assert frame["gender"].tolist() == ["여성", "남성"]
    assert frame["score"].tolist() == [4.0, 5.0]


def test_bom_does_not_hide_the_first_column():
    frame = survey.parse_ratings(b"\xef\xbb\xbfrater_id,person_id,score\r\nr1,p01,3\r\n")
    assert frame["rater_id"].tolist() == ["r1"]
    people = survey.parse_people("\ufeffperson_id,name\np01,김민수\n".encode("utf-8-sig"))
    assert people.to_dict("records") == [{"person_id": "p01", "name": "김민수"}]
    assert survey.parse_people("person_id,name\np01,김민수\n".encode("cp949"))["name"][0] == "김민수"


def test_undecodable_file_names_the_line():
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_ratings(b"rater_id,person_id,score\nr1,p01,3\nr2,p01,\xff\xff\n")
    assert problems_of(exc)[0].line == 3


def test_rater_groups_must_be_consistent():
    data = ratings_csv("r1,p01,4,20s", "r1,p02,3,30s", header="rater_id,person_id,score,age_group")
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_ratings(data)
    assert problems_of(exc)[0].line == 3 and "line 2" in problems_of(exc)[0].message


# ------------------------------------------------------------------- people and type choices


def test_people_validation():
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_people(b"person_id,name\np01,A\np01,B\n,C\n")
    assert [p.line for p in problems_of(exc)] == [3, 4]
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_people(b"id,name\n")
    assert problems_of(exc)[0].line == 1


def test_shares_from_type_choices():
    rows = ["rater_id,type"] + [f"r{i},{t}" for i, t in enumerate(["Alpha"] * 3 + ["beta"] * 1)]
    table = quotas.parse_type_choices("\n".join(rows).encode(), TYPES)
    assert table.set_index("type")["share_percent"].to_dict() == {
        "Alpha": 75.0, "Beta": 25.0, "Gamma": 0.0, "Delta": 0.0, "Omega": 0.0}
    with pytest.raises(SurveyValidationError) as exc:
        quotas.parse_type_choices(b"rater_id,type\nr1,Alpha\nr1,Beta\nr2,Zeta\n", TYPES)
    assert [p.line for p in problems_of(exc)] == [3, 4]


# ------------------------------------------------------------------------------------- CLI


def test_cli_quotas_prints_the_source_numbers():
    out = subprocess.run(
        [sys.executable, "-m", "labeling.survey", "quotas", "--shares", "21.8,21.4,22.5,19.2,15.2", "--total", "110"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    )
    assert out.stdout == "Alpha 24\nBeta 23\nGamma 25\nDelta 21\nOmega 17\n"


def _run(*args, cwd=PROJECT_ROOT):
    return subprocess.run([sys.executable, "-m", "labeling.survey", *args], cwd=cwd, capture_output=True, text=True)


def test_cli_assign_writes_labels(tmp_path):
    people = tmp_path / "people.csv"
    people.write_bytes("person_id,name\np01,김\np02,이\np03,박\np04,최\np05,정\np06,강\n".encode("cp949"))
    ratings = tmp_path / "ratings.csv"
    lines = ["rater_id,person_id,score,age_group"]
    for r, age in (("r1", "20대"), ("r2", "30대")):
        for i in range(1, 6):
            lines.append(f"{r},p0{i},{6 - i if r == 'r1' else max(1, 6 - i - 1)},{age}")
    ratings.write_bytes(("\n".join(lines) + "\n").encode("cp949"))
    out = tmp_path / "labels.csv"
    proc = _run("assign", str(ratings), "--shares", "40,20,20,20,0", "--out", str(out),
                "--people", str(people), "--scale", "1,5")
    assert proc.returncode == 0, proc.stderr
    labels = pd.read_csv(out)
    assert {"person_id", "mean_score", "type"} <= set(labels.columns)
    assert labels["person_id"].tolist() == ["p01", "p02", "p03", "p04", "p05"]
    assert labels["type"].tolist() == ["Alpha", "Alpha", "Beta", "Gamma", "Delta"]
    assert labels["name"][0] == "김"
    assert "p06" in proc.stderr  # not labeled: no ratings


def test_cli_assign_reports_problems_with_lines(tmp_path):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("rater_id,person_id,score\nr1,p01,3\nr1,p02,7\nr1,p01,2\n", encoding="utf-8")
    proc = _run("assign", str(ratings), "--shares", "21.8,21.4,22.5,19.2,15.2", "--out", str(tmp_path / "x.csv"))
    assert proc.returncode == 2
    assert "line 3: score 7 is outside the scale 1–5" in proc.stderr
    assert "line 4: duplicate rating" in proc.stderr
    assert not (tmp_path / "x.csv").exists()


def test_cli_assign_with_question_csv(tmp_path):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("rater_id,person_id,score\nr1,p1,5\nr1,p2,4\nr2,p1,4\nr2,p2,2\n", encoding="utf-8")
    choices = tmp_path / "choices.csv"
    choices.write_text("rater_id,type\nr1,Alpha\nr2,Omega\n", encoding="utf-8")
    proc = _run("assign", str(ratings), "--choices", str(choices), "--out", "-", "--scale", "1,5")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("person_id,name,mean_score")
    assert [line.rsplit(",", 2)[1] for line in proc.stdout.splitlines()[1:]] == ["Alpha", "Omega"]


def test_cli_main_in_process(capsys):
    assert survey.main(["quotas", "--shares", "50,50", "--names", "A,B", "--total", "3"]) == 0
    assert capsys.readouterr().out == "A 2\nB 1\n"


# ------------------------------------------------------------------------------ hostile files


@pytest.mark.parametrize("text", [
    "person_id,name\np01,たなか はなこ\np02,すずき\n",
    "rater_id,person_id,score\nサトウ,p01,3\nタナカ,p02,4\n",
])
def test_shift_jis_files_are_refused_by_name(text):
    with pytest.raises(SurveyValidationError, match="Shift-JIS"):
        survey_csv_decode(text.encode("shift_jis"))


@pytest.mark.parametrize("text, encoding, named", [
    ("person_id,name\np01,やまだ たろう\np02,すずき はなこ\n", "euc_jp", "not Korean"),
    ("person_id,name\np01,山田やまだ\n", "iso2022_jp", "ISO-2022-JP"),
])
def test_other_east_asian_encodings_are_refused_not_read_as_korean(text, encoding, named):
    with pytest.raises(SurveyValidationError, match=named):
        survey_csv_decode(text.encode(encoding))


def test_korean_with_a_few_hanja_is_still_read():
    text = "person_id,name\np01,김민준 (金敏俊)\np02,이서연\np03,박지호\n"
    assert survey_csv_decode(text.encode("cp949")) == text


def test_korean_with_rare_syllables_is_not_taken_for_shift_jis():
    text = "person_id,name\np01,똠얌꿍\np02,쌰뱌\n"  # CP949 extension syllables (not in EUC-KR)
    assert survey_csv_decode(text.encode("cp949")) == text


def survey_csv_decode(data: bytes) -> str:
    from labeling.survey_csv import decode_text

    return decode_text(data)


@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\",\"click\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx",
                                  "  =1+1", "\n=1+1", "＝1+1", "＋1", "－1", "＠SUM(A1)", "\u3000=1+1"])
def test_exported_labels_cannot_carry_formulas(name):
    people = pd.DataFrame({"person_id": ["p01", "=cmd|' /C calc'!A0"], "name": [name, "Kim"]})
    ratings = pd.DataFrame({"rater_id": ["r1", "r1", "r2", "r2"], "person_id": ["p01", "=cmd|' /C calc'!A0"] * 2,
                            "score": [4.0, 2.0, 5.0, 1.0]})
    out = survey.label_people(ratings, list(TYPES[:2]), [50, 50], people).label_csv()
    cells = [str(c) for c in out[["person_id", "name", "type"]].to_numpy().ravel()]
    assert not any(c.startswith(survey.FORMULA_STARTS) for c in cells)
    assert "'" + name in cells and "'=cmd|' /C calc'!A0" in cells
