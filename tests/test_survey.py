"""Pure survey logic: parsing/validation, quotas, statistics, ranking, CLI."""

from __future__ import annotations

import math
import subprocess
import sys
from fractions import Fraction

import krippendorff
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from app.core.settings import PROJECT_ROOT
from labeling import survey
from labeling.survey import Problem, SurveyValidationError

SOURCE_SHARES = [21.8, 21.4, 22.5, 19.2, 15.2]
TYPES = ["Alpha", "Beta", "Gamma", "Delta", "Omega"]


def problems_of(excinfo) -> list[Problem]:
    return excinfo.value.problems


def ratings_csv(*rows: str, header: str = "rater_id,person_id,score") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode("utf-8")


# ------------------------------------------------------------------------------------ quotas


def test_quotas_reproduce_the_source():
    assert survey.largest_remainder(SOURCE_SHARES, 110) == [24, 23, 25, 21, 17]


def test_quota_steps_show_each_step():
    steps = survey.quota_steps(TYPES, SOURCE_SHARES, 110)
    assert steps["floor"].tolist() == [23, 23, 24, 21, 16]
    assert steps["extra_seat"].tolist() == [1, 0, 1, 0, 1]
    assert steps["quota"].tolist() == [24, 23, 25, 21, 17]
    # The source's "share x total" column, as they wrote it.
    assert steps["share_x_total"].round(2).tolist() == [23.98, 23.54, 24.75, 21.12, 16.72]
    assert steps["exact"].sum() == pytest.approx(110)
    assert steps["remainder"].tolist() == pytest.approx((steps["exact"] - steps["floor"]).tolist())


def test_cli_quotas_prints_the_source_numbers():
    out = subprocess.run(
        [sys.executable, "-m", "labeling.survey", "quotas", "--shares", "21.8,21.4,22.5,19.2,15.2", "--total", "110"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    )
    assert out.stdout == "Alpha 24\nBeta 23\nGamma 25\nDelta 21\nOmega 17\n"


def test_tie_rule_larger_exact_share_then_type_order():
    # Exact shares 1.5, 1.5, 1, 1: floors take 4 seats, one is left, the two .5 remainders tie
    # and so do their exact shares -> the type that comes first in the type order wins.
    assert survey.largest_remainder([30, 30, 20, 20], 5) == [2, 1, 1, 1]
    assert survey.largest_remainder([30, 30, 20, 20], 5, tie_keys=[1, 0, 2, 3]) == [1, 2, 1, 1]
    # Exact shares 0.5 and 1.5: equal remainders, the larger exact share wins, whatever the order.
    assert survey.largest_remainder([25, 75], 2) == [0, 2]
    assert survey.largest_remainder([75, 25], 2) == [2, 0]


def test_quotas_are_exact_in_decimals_not_floats():
    # 0.1 + 0.2 != 0.3 in floats; the decimals the user typed tie exactly.
    assert survey.largest_remainder([0.1, 0.2, 0.3, 0.4], 5) == [0, 1, 2, 2]
    assert survey.largest_remainder([33.3, 33.3, 33.4], 2) == [1, 0, 1]


share_lists = st.lists(
    st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False), min_size=1, max_size=8
).filter(lambda xs: sum(xs) > 0)


@settings(max_examples=300, deadline=None)
@given(shares=share_lists, total=st.integers(min_value=0, max_value=1000))
def test_quotas_sum_to_total_and_stay_within_one_of_exact(shares, total):
    quotas = survey.largest_remainder(shares, total)
    assert sum(quotas) == total
    weights = [Fraction(repr(s)) for s in shares]
    for q, w in zip(quotas, weights):
        exact = total * w / sum(weights)
        assert abs(q - exact) < 1
        assert q >= 0


@settings(max_examples=300, deadline=None)
@given(
    shares=st.lists(st.sampled_from([0, 5, 10, 12.5, 15.2, 20, 21.4, 21.8, 25, 33.3, 50]), min_size=1, max_size=7)
    .filter(lambda xs: sum(xs) > 0),
    total=st.integers(min_value=0, max_value=200),
    data=st.data(),
)
def test_quotas_do_not_depend_on_the_order_of_the_types(shares, total, data):
    # Repeated shares make exact remainder ties likely: the tie rule must follow the type, not its position.
    names = [f"T{i}" for i in range(len(shares))]
    base = dict(zip(names, survey.largest_remainder(shares, total, tie_keys=range(len(shares)))))
    perm = data.draw(st.permutations(range(len(shares))))
    permuted = survey.largest_remainder([shares[i] for i in perm], total, tie_keys=list(perm))
    assert dict(zip([names[i] for i in perm], permuted)) == base


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_quota_steps_by_type_order_do_not_depend_on_listing(data):
    shares = data.draw(st.lists(st.sampled_from([20.0, 20.0, 10.0, 30.0, 15.2]), min_size=5, max_size=5))
    if sum(shares) == 0:
        return
    total = data.draw(st.integers(min_value=1, max_value=150))
    perm = data.draw(st.permutations(range(5)))
    base = survey.quota_steps(TYPES, shares, total, type_order=range(5)).set_index("type")["quota"]
    moved = survey.quota_steps([TYPES[i] for i in perm], [shares[i] for i in perm], total, type_order=perm)
    assert moved.set_index("type")["quota"].to_dict() == base.to_dict()


def test_quota_input_errors():
    with pytest.raises(ValueError):
        survey.largest_remainder([0, 0], 3)
    with pytest.raises(ValueError):
        survey.largest_remainder([-1, 101], 3)


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
        survey.parse_shares("21.8,21.4,22.5,19.2,16.0", 5)  # 100.9
    [problem] = problems_of(exc)
    assert problem.line is None and "sum to 100.9" in problem.message and "100 ± 0.5" in str(exc.value)
    assert survey.parse_shares("21.8,21.4,22.5,19.2,15.2", 5) == SOURCE_SHARES  # 100.1 is within tolerance
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_shares("20,20,x,20,20", 5)
    assert "share 3" in str(exc.value)
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_shares("50,50", 5)
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


KOREAN = "rater_id,person_id,score,age_group,gender\nr1,p01,4,20대,여성\nr2,p01,5,30대,남성\n"


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
    table = survey.parse_type_choices("\n".join(rows).encode(), TYPES)
    assert table.set_index("type")["share_percent"].to_dict() == {
        "Alpha": 75.0, "Beta": 25.0, "Gamma": 0.0, "Delta": 0.0, "Omega": 0.0}
    with pytest.raises(SurveyValidationError) as exc:
        survey.parse_type_choices(b"rater_id,type\nr1,Alpha\nr1,Beta\nr2,Zeta\n", TYPES)
    assert [p.line for p in problems_of(exc)] == [3, 4]


# ------------------------------------------------------------------------------ statistics


def _frame(rows):
    return pd.DataFrame(rows, columns=["rater_id", "person_id", "score"])


def test_person_stats_mean_count_and_t_interval():
    stats = survey.person_stats(_frame([("a", "p1", 1), ("b", "p1", 2), ("c", "p1", 3), ("a", "p2", 4)]))
    p1 = stats.set_index("person_id").loc["p1"]
    assert p1["n_ratings"] == 3 and p1["mean_score"] == 2 and p1["sd"] == 1
    half = 4.302652729911275 / math.sqrt(3)
    assert p1["ci_low"] == pytest.approx(2 - half) and p1["ci_high"] == pytest.approx(2 + half)
    p2 = stats.set_index("person_id").loc["p2"]
    assert p2["n_ratings"] == 1 and math.isnan(p2["ci_low"])


def test_alpha_uses_krippendorff_interval():
    rows = [("a", "p1", 1), ("b", "p1", 2), ("a", "p2", 4), ("b", "p2", 5), ("c", "p2", 4), ("c", "p3", 2), ("a", "p3", 3)]
    matrix = _frame(rows).pivot(index="rater_id", columns="person_id", values="score").to_numpy(dtype=float)
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="interval")
    assert survey.krippendorff_alpha(_frame(rows)) == pytest.approx(expected)
    perfect = _frame([("a", "p1", 1), ("b", "p1", 1), ("a", "p2", 5), ("b", "p2", 5)])
    assert survey.krippendorff_alpha(perfect) == pytest.approx(1.0)
    assert math.isnan(survey.krippendorff_alpha(_frame([("a", "p1", 1), ("a", "p2", 5)])))


def test_agreement_table_breaks_down_by_group():
    ratings = survey.parse_ratings(KOREAN.encode())
    table = survey.agreement_table(ratings)
    assert table["breakdown"].tolist() == ["all", "age_group", "age_group", "gender", "gender"]


def test_ranking_ties_are_deterministic_and_shown():
    rows = [
        ("a", "p10", 4), ("b", "p10", 4),           # mean 4, n 2
        ("a", "p2", 4), ("b", "p2", 4),             # mean 4, n 2 -> p2 before p10 (natural order)
        ("a", "p3", 4), ("b", "p3", 4), ("c", "p3", 4),  # mean 4, n 3 -> first
        ("a", "p4", 5),
        ("a", "p5", 1),
    ]
    ranked = survey.rank_people(survey.person_stats(_frame(rows)))
    assert ranked["person_id"].tolist() == ["p4", "p3", "p2", "p10", "p5"]
    assert ranked["rank"].tolist() == [1, 2, 3, 4, 5]
    assert ranked["tie_note"].tolist()[1].startswith("tied at 4.000 with p2, p10")
    assert ranked["tie_note"].tolist()[0] == ""
    labeled = survey.assign_types(ranked, [2, 2, 1], ["A", "B", "C"])
    assert labeled["type"].tolist() == ["A", "A", "B", "B", "C"]
    assert labeled["boundary_tie"].tolist() == [False, True, True, True, False]
    # Same input in another row order -> same ranking.
    again = survey.rank_people(survey.person_stats(_frame(rows[::-1])))
    assert again["person_id"].tolist() == ranked["person_id"].tolist()


def test_assignment_follows_rank_and_quota_for_110_people():
    rng = np.random.default_rng(0)
    rows = [(f"r{r}", f"p{p:03d}", int(rng.integers(1, 6))) for p in range(110) for r in range(5)]
    result = survey.label_people(_frame(rows), TYPES, SOURCE_SHARES)
    assert result.labels["type"].value_counts().reindex(TYPES).tolist() == [24, 23, 25, 21, 17]
    means = result.labels["mean_score"].to_numpy()
    assert (np.diff(means) <= 1e-12).all()  # ranked highest first
    first_beta = result.labels.index[result.labels["type"] == "Beta"][0]
    assert first_beta == 24 and (result.labels["type"][:24] == "Alpha").all()


def test_assign_rejects_quota_mismatch():
    ranked = survey.rank_people(survey.person_stats(_frame([("a", "p1", 3)])))
    with pytest.raises(ValueError):
        survey.assign_types(ranked, [1, 1], ["A", "B"])


# ------------------------------------------------------------------------------------- CLI


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
