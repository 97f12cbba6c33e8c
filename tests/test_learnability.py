"""bench.learnability: the pieces its readers are built from, and the readers on the committed sample."""

import numpy as np
import pytest

from bench import learnability

SHARES = [21.8, 21.4, 22.5, 19.2, 15.2]


def test_least_squares_recovers_a_linear_rule_exactly():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    y = x @ [0.5, 0.4, 0.1] + 2.0
    fitted, predicted = learnability.ridge(x[:40], y[:40], x[40:], 0)
    assert np.allclose(fitted, y[:40]) and np.allclose(predicted, y[40:])


def test_bands_calibrated_on_training_scores_read_held_out_types_in_score_order():
    training_scores = np.linspace(0, 100, 1000)
    types = np.arange(5)
    assert learnability.held_out_accuracy(training_scores, [95, 70, 50, 30, 5], types, SHARES) == 1.0
    assert learnability.held_out_accuracy(training_scores, [5, 30, 50, 70, 95], types, SHARES) == pytest.approx(0.2)


def test_on_the_committed_sample_the_photos_show_the_traits_and_the_rule_beats_every_learner(served_app_env):
    m = learnability.measure(draws=3)
    assert (m["n_people"], m["n_photos"]) == (110, 330)
    assert m["ceiling"] == pytest.approx(0.746, abs=0.001)
    assert m["reader_r"]["face"] > 0.95 and m["reader_r"]["tzone"] > 0.9 and m["reader_r"]["jaw"] > 0.5
    assert m["reader_rule_r"] > 0.95
    assert m["rule"] > m["least_squares_true"] > m["least_squares_as_shown"] > 0.4
    assert 0.4 < m["survey_reader"] < m["rule"]
