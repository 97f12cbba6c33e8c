"""Pure survey logic: quotas, statistics, ranking and assignment."""

from __future__ import annotations

import math
from fractions import Fraction

import krippendorff
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from labeling.quotas import assign_types, largest_remainder, quota_steps, rank_people
from labeling.survey import label_people, parse_ratings
from labeling.survey_stats import agreement_table, krippendorff_alpha, person_stats
from tests.survey_helpers import KOREAN, SOURCE_SHARES, TYPES


# ------------------------------------------------------------------------------------ quotas


def test_quotas_reproduce_the_source():
    assert largest_remainder(SOURCE_SHARES, 110) == [24, 23, 25, 21, 17]


def test_quota_steps_show_each_step():
    steps = quota_steps(TYPES, SOURCE_SHARES, 110)
    assert steps["floor"].tolist() == [23, 23, 24, 21, 16]
    assert steps["extra_seat"].tolist() == [1, 0, 1, 0, 1]
    assert steps["quota"].tolist() == [24, 23, 25, 21, 17]
    # The source's "share x total" column, as they wrote it.
    assert steps["share_x_total"].round(2).tolist() == [23.98, 23.54, 24.75, 21.12, 16.72]
    assert steps["exact"].sum() == pytest.approx(110)
    assert steps["remainder"].tolist() == pytest.approx((steps["exact"] - steps["floor"]).tolist())


def test_tie_rule_larger_exact_share_then_type_order():
    # Exact shares 1.5, 1.5, 1, 1: floors take 4 seats, one is left, the two .5 remainders tie
    # and so do their exact shares -> the type that comes first in the type order wins.
    assert largest_remainder([30, 30, 20, 20], 5) == [2, 1, 1, 1]
    assert largest_remainder([30, 30, 20, 20], 5, tie_keys=[1, 0, 2, 3]) == [1, 2, 1, 1]
    # Exact shares 0.5 and 1.5: equal remainders, the larger exact share wins, whatever the order.
    assert largest_remainder([25, 75], 2) == [0, 2]
    assert largest_remainder([75, 25], 2) == [2, 0]


def test_quotas_are_exact_in_decimals_not_floats():
    # 0.1 + 0.2 != 0.3 in floats; the decimals the user typed tie exactly.
    assert largest_remainder([0.1, 0.2, 0.3, 0.4], 5) == [0, 1, 2, 2]
    assert largest_remainder([33.3, 33.3, 33.4], 2) == [1, 0, 1]


share_lists = st.lists(
    st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False), min_size=1, max_size=8
).filter(lambda xs: sum(xs) > 0)


@settings(max_examples=300, deadline=None)
@given(shares=share_lists, total=st.integers(min_value=0, max_value=1000))
def test_quotas_sum_to_total_and_stay_within_one_of_exact(shares, total):
    quotas = largest_remainder(shares, total)
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
    base = dict(zip(names, largest_remainder(shares, total, tie_keys=range(len(shares)))))
    perm = data.draw(st.permutations(range(len(shares))))
    permuted = largest_remainder([shares[i] for i in perm], total, tie_keys=list(perm))
    assert dict(zip([names[i] for i in perm], permuted)) == base


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_quota_steps_by_type_order_do_not_depend_on_listing(data):
    shares = data.draw(st.lists(st.sampled_from([20.0, 20.0, 10.0, 30.0, 15.2]), min_size=5, max_size=5))
    if sum(shares) == 0:
        return
    total = data.draw(st.integers(min_value=1, max_value=150))
    perm = data.draw(st.permutations(range(5)))
    base = quota_steps(TYPES, shares, total, type_order=range(5)).set_index("type")["quota"]
    moved = quota_steps([TYPES[i] for i in perm], [shares[i] for i in perm], total, type_order=perm)
    assert moved.set_index("type")["quota"].to_dict() == base.to_dict()


def test_quota_input_errors():
    with pytest.raises(ValueError):
        largest_remainder([0, 0], 3)
    with pytest.raises(ValueError):
        largest_remainder([-1, 101], 3)


# ------------------------------------------------------------------------------ statistics


def _frame(rows):
    return pd.DataFrame(rows, columns=["rater_id", "person_id", "score"])


def test_person_stats_mean_count_and_t_interval():
    stats = person_stats(_frame([("a", "p1", 1), ("b", "p1", 2), ("c", "p1", 3), ("a", "p2", 4)]))
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
    assert krippendorff_alpha(_frame(rows)) == pytest.approx(expected)
    perfect = _frame([("a", "p1", 1), ("b", "p1", 1), ("a", "p2", 5), ("b", "p2", 5)])
    assert krippendorff_alpha(perfect) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha(_frame([("a", "p1", 1), ("a", "p2", 5)])))


def test_agreement_table_breaks_down_by_group():
    ratings = parse_ratings(KOREAN.encode())
    table = agreement_table(ratings)
    assert table["breakdown"].tolist() == ["all", "age_group", "age_group", "gender", "gender"]


def test_ranking_ties_are_deterministic_and_shown():
    rows = [
        ("a", "p10", 4), ("b", "p10", 4),           # mean 4, n 2
        ("a", "p2", 4), ("b", "p2", 4),             # mean 4, n 2 -> p2 before p10 (natural order)
        ("a", "p3", 4), ("b", "p3", 4), ("c", "p3", 4),  # mean 4, n 3 -> first
        ("a", "p4", 5),
        ("a", "p5", 1),
    ]
    ranked = rank_people(person_stats(_frame(rows)))
    assert ranked["person_id"].tolist() == ["p4", "p3", "p2", "p10", "p5"]
    assert ranked["rank"].tolist() == [1, 2, 3, 4, 5]
    assert ranked["tie_note"].tolist()[1].startswith("tied at 4.000 with p2, p10")
    assert ranked["tie_note"].tolist()[0] == ""
    labeled = assign_types(ranked, [2, 2, 1], ["A", "B", "C"])
    assert labeled["type"].tolist() == ["A", "A", "B", "B", "C"]
    assert labeled["boundary_tie"].tolist() == [False, True, True, True, False]
    # Same input in another row order -> same ranking.
    again = rank_people(person_stats(_frame(rows[::-1])))
    assert again["person_id"].tolist() == ranked["person_id"].tolist()


def test_assignment_follows_rank_and_quota_for_110_people():
    rng = np.random.default_rng(0)
    rows = [(f"r{r}", f"p{p:03d}", int(rng.integers(1, 6))) for p in range(110) for r in range(5)]
    result = label_people(_frame(rows), TYPES, SOURCE_SHARES)
    assert result.labels["type"].value_counts().reindex(TYPES).tolist() == [24, 23, 25, 21, 17]
    means = result.labels["mean_score"].to_numpy()
    assert (np.diff(means) <= 1e-12).all()  # ranked highest first
    first_beta = result.labels.index[result.labels["type"] == "Beta"][0]
    assert first_beta == 24 and (result.labels["type"][:24] == "Alpha").all()


def test_assign_rejects_quota_mismatch():
    ranked = rank_people(person_stats(_frame([("a", "p1", 3)])))
    with pytest.raises(ValueError):
        assign_types(ranked, [1, 1], ["A", "B"])
