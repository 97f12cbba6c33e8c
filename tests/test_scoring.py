"""Scoring reproduces the source's points and bands; a missing region still gives an answer."""

from __future__ import annotations

import random

import pytest

from app.core.settings import load_settings
from app.core.vocabulary import REGIONS, TYPES
from models.scoring import calibrate_thresholds, one_hot, region_points_table, score_regions, type_for_score


def hard(face, tzone, jaw):
    return {"face": one_hot(face), "tzone": one_hot(tzone), "jaw": one_hot(jaw)}


def test_points_table_is_the_sources():
    assert region_points_table() == {
        "face": [50, 40, 30, 20, 10],
        "tzone": [40, 32, 24, 16, 8],
        "jaw": [10, 8, 6, 4, 2],
    }


def test_all_alpha_is_100_alpha():
    r = score_regions(hard("Alpha", "Alpha", "Alpha"))
    assert r.score == pytest.approx(100) and r.type == "Alpha" and r.type_index == 0
    assert r.confidence == pytest.approx(1.0)
    assert r.notes == []


def test_mixed_regions_76_is_beta():
    r = score_regions(hard("Alpha", "Gamma", "Omega"))
    assert r.score == pytest.approx(76)
    assert r.type == "Beta"
    assert [r.per_region[x]["points"] for x in REGIONS] == pytest.approx([50, 24, 2])
    assert [r.per_region[x]["type"] for x in REGIONS] == ["Alpha", "Gamma", "Omega"]


@pytest.mark.parametrize("t,score,expected", [
    (0, 100, "Alpha"), (1, 80, "Beta"), (2, 60, "Gamma"), (3, 40, "Delta"), (4, 20, "Omega"),
])
def test_uniform_type_table(t, score, expected):
    r = score_regions(hard(t, t, t))
    assert r.score == pytest.approx(score) and r.type == expected


def test_thresholds_are_strict():
    # the source: total > 85 Alpha, > 68 Beta, > 48 Gamma, > 20 Delta, else Omega
    assert [type_for_score(s) for s in (85, 85.5, 68, 68.01, 48, 20, 20.5, 0)] == [1, 0, 2, 1, 3, 4, 3, 4]
    # Beta face (40) + Alpha T-zone (40) + Delta jaw (4) = 84 -> Beta; + Alpha jaw = 90 -> Alpha
    assert score_regions(hard("Beta", "Alpha", "Delta")).type == "Beta"
    assert score_regions(hard("Beta", "Alpha", "Alpha")).type == "Alpha"


def test_probability_weighted_score_and_confidence():
    probs = {"face": [0.5, 0.5, 0, 0, 0], "tzone": one_hot(0), "jaw": one_hot(0)}
    r = score_regions(probs)
    assert r.score == pytest.approx(0.5 * 50 + 0.5 * 40 + 40 + 10)  # 95 -> Alpha
    assert r.type == "Alpha"
    # joint draws: face Alpha -> 100 (Alpha), face Beta -> 90 (Alpha): certain Alpha
    assert r.confidence == pytest.approx(1.0)
    probs["face"] = [0.5, 0, 0, 0, 0.5]  # 100 or 60 -> expected 80 (Beta) but never Beta when drawn
    r = score_regions(probs)
    assert r.type == "Beta" and r.confidence == pytest.approx(0.0)
    assert 0.0 <= score_regions({r_: [0.2] * 5 for r_ in REGIONS}).confidence <= 1.0


def test_missing_region_still_answers():
    r = score_regions({"face": one_hot("Alpha"), "tzone": one_hot("Alpha")})
    assert r.type in TYPES
    assert r.per_region["jaw"]["source"] == "missing"
    assert r.score == pytest.approx(50 + 40 + 6)  # jaw at equal probabilities: mean of 10..2
    assert any("jaw" in note for note in r.notes)
    r = score_regions({})
    assert r.type in TYPES and len(r.notes) == 3


def test_bad_inputs():
    with pytest.raises(ValueError):
        score_regions({"nose": one_hot(0)})
    with pytest.raises(ValueError):
        score_regions({"face": [0.5, 0.5]})
    r = score_regions({"face": [2, 2, 0, 0, 0], "tzone": one_hot(0), "jaw": one_hot(0)})
    assert any("rescaled" in n for n in r.notes)


def test_settings_change_the_configuration():
    s = load_settings(environ={}, region_points=(60.0, 30.0, 10.0), type_thresholds=(90.0, 70.0, 50.0, 30.0))
    r = score_regions(hard("Alpha", "Gamma", "Omega"), settings=s)
    assert r.score == pytest.approx(60 + 18 + 2) and r.type == "Beta"


# ============================================================================ calibrated bands

SOURCE_SHARES = (21.8, 21.4, 22.5, 19.2, 15.2)


def test_calibrated_thresholds_reproduce_the_survey_shares_on_a_synthetic_score_set():
    rng = random.Random(7)
    training = [rng.gauss(55, 12) for _ in range(2000)]
    thresholds = calibrate_thresholds(training, SOURCE_SHARES)
    assert list(thresholds) == sorted(thresholds, reverse=True)
    held_out = [rng.gauss(55, 12) for _ in range(2000)]
    counts = [0] * len(TYPES)
    for score in held_out:
        counts[type_for_score(score, thresholds=thresholds)] += 1
    total = sum(SOURCE_SHARES)
    for count, share in zip(counts, SOURCE_SHARES):
        assert count / len(held_out) == pytest.approx(share / total, abs=0.03)


def test_calibration_on_the_training_scores_themselves_is_exact():
    scores = list(range(100))  # 0..99, no ties
    thresholds = calibrate_thresholds(scores, (20, 20, 20, 20, 20))
    counts = [0] * len(TYPES)
    for score in scores:
        counts[type_for_score(score, thresholds=thresholds)] += 1
    assert counts == [20, 20, 20, 20, 20]


def test_calibration_keeps_bands_ordered_when_scores_tie():
    thresholds = calibrate_thresholds([50.0] * 10, SOURCE_SHARES)
    assert all(a > b for a, b in zip(thresholds, thresholds[1:]))


@pytest.mark.parametrize("scores, shares", [([1.0], SOURCE_SHARES), ([1.0, 2.0], (1, 2, 3)),
                                            ([1.0, 2.0], (1, 0, 1, 1, 1)), ([1.0, 2.0], (1, float("nan"), 1, 1, 1))])
def test_calibration_refuses_bad_input(scores, shares):
    with pytest.raises(ValueError):
        calibrate_thresholds(scores, shares)


def test_explanation_names_each_region_the_total_and_the_band():
    r = score_regions(hard("Omega", "Omega", "Beta"))  # 10 + 8 + 8 = 26 -> Delta, 20-48 with the source's bands
    assert r.type == "Delta"
    assert r.band == (20.0, 48.0)
    assert r.explanation() == "Face Omega 10 + T-zone Omega 8 + Jaw Beta 8 = 26 → Delta (20–48)"
    top = score_regions(hard("Alpha", "Alpha", "Alpha"), thresholds=(90, 70, 50, 30))
    assert top.explanation().endswith("= 100 → Alpha (above 90)")
    bottom = score_regions(hard("Omega", "Omega", "Omega"))
    assert bottom.explanation().endswith("→ Omega (up to 20)")


def test_calibrated_bands_change_the_type_of_the_same_score():
    probs = hard("Gamma", "Gamma", "Gamma")  # 60 points
    assert score_regions(probs).type == "Gamma"
    assert score_regions(probs, thresholds=(80, 70, 65, 61)).type == "Omega"
    assert score_regions(probs, thresholds=(59, 50, 40, 30)).type == "Alpha"


@pytest.mark.parametrize("thresholds", [None, (90.0, 70.0, 50.0, 30.0), (80.5, 61.25, 44.0, 20.0)])
def test_confidence_is_the_joint_draw_probability_of_the_reported_band(thresholds):
    """Brute force over every draw of one type per region, with the source's bands and others (the
    bands of the draws are computed once per points and bands, so each set must get its own)."""
    import itertools

    rng = random.Random(7)
    table = region_points_table()
    bands = thresholds or load_settings().type_thresholds
    for _ in range(20):
        probs = {r: [rng.random() * (rng.random() > 0.2) + 1e-9 for _ in TYPES] for r in REGIONS}
        result = score_regions(probs, thresholds=thresholds)
        expected = 0.0
        for combo in itertools.product(range(len(TYPES)), repeat=len(REGIONS)):
            draw = [probs[r][t] / sum(probs[r]) for r, t in zip(REGIONS, combo)]
            total = sum(table[r][t] for r, t in zip(REGIONS, combo))
            if type_for_score(total, thresholds=bands) == result.type_index:
                expected += draw[0] * draw[1] * draw[2]
        assert result.confidence == pytest.approx(expected, abs=2e-6)
