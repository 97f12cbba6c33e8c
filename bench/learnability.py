"""How much of the survey could any type model learn from the sample's photos? ``python -m bench.learnability``

On the sample project of the current settings (``FACETYPE_SAMPLE_DIR`` and ``FACETYPE_VAR_DIR`` pick
one), with the five splits by person that ``models.evaluate --kfold 5`` uses, the exact type accuracy
on held-out photos of readers that need no network training, each read through bands calibrated on
the training people's scores, as the app calibrates a model's:

1. ``rule``: the planted rule itself (true traits, 0.5 face + 0.4 T-zone + 0.1 jaw), the best any model
   can do under this protocol (the sample's ``ceiling`` calibrates on all people at once instead);
2. ``least squares, true traits``: a learner told which three numbers to read, which learns their
   weights from the training people's survey positions;
3. ``least squares, traits as photos show them``: the same with each trait read only as faithfully
   as the photos show it: the true traits mixed with person-level reading errors at the correlation
   that (4) measures, ``--draws`` draws (mean and sd over draws);
4. ``linear readers``: ridge on the head's own crops (each region's 32 px crop pooled to 8×8×3)
   trained on the true trait: r per region (how faithfully one photo shows each trait) and of the rule;
5. ``linear reader on the survey``: ridge on all three crops trained on the survey position, as the
   head is trained, without a CNN.

The head itself: ``python -m models.evaluate --kfold 5 --kind head --json``. Reads the photos once
and trains no network: about 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import csv

import numpy as np
import torch

from app.core.settings import get_settings
from app.core.vocabulary import REGIONS
from models import registry
from models.kinds.head import DEFAULT_CONFIG, extract_crops, survey_positions
from models.scoring import calibrate_thresholds, type_for_score
from models.training.data import ImageBank, kfold_by_person, load_samples, sample_ceiling, survey_type_shares

TRAITS = ("face", "tzone", "jaw")
RULE = np.array([0.5, 0.4, 0.1])


def held_out_accuracy(train_scores, held_scores, held_types, shares) -> float:
    thresholds = calibrate_thresholds(train_scores, shares)
    return float(np.mean([type_for_score(x, thresholds=thresholds) == t for x, t in zip(held_scores, held_types)]))


def ridge(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Predictions on (x_train, x_test) of a ridge regression on standardised features."""
    mean, sd = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mean) / sd, (x_test - mean) / sd
    if lam == 0:
        a, b = np.c_[a, np.ones(len(a))], np.c_[b, np.ones(len(b))]
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (y_train - y_train.mean()))
    return a @ w + y_train.mean(), b @ w + y_train.mean()


def crop_features(samples, bank) -> np.ndarray:
    """N×R×192: each region's head crop (landmark boxes, no augmentation) average-pooled to 8×8×3."""
    out = []
    for s in samples:
        image, boxes = bank.get(s, landmarks=True)
        crops = extract_crops(image, [boxes[r] for r in REGIONS], DEFAULT_CONFIG["crop_size"], DEFAULT_CONFIG["context"])
        out.append(torch.nn.functional.avg_pool2d(crops, DEFAULT_CONFIG["crop_size"] // 8).reshape(len(REGIONS), -1).numpy())
    return np.array(out)


def measure(draws: int = 20, lam: float = 100.0) -> dict:
    """The figures of the module doc on the sample project of the current settings."""
    sample_dir = get_settings().sample_dir
    with (sample_dir / "traits.csv").open(newline="", encoding="utf-8") as f:
        traits = {row["person_id"]: [float(row[k]) for k in TRAITS] for row in csv.DictReader(f)}
    samples = load_samples().samples
    shares = survey_type_shares()
    true_traits = np.array([traits[s.person_key] for s in samples])
    rule = true_traits @ RULE
    position = -np.array(survey_positions(samples))  # higher is a better type, like a score
    types = np.array([s.type_index for s in samples])
    people = sorted({s.person_key for s in samples})
    person_of = np.array([people.index(s.person_key) for s in samples])
    folds = []
    for _, train, _ in kfold_by_person(samples, 5, 0):
        in_train = {id(s) for s in train}
        folds.append(np.array([id(s) in in_train for s in samples]))

    def cross_validated(fit) -> tuple[float, np.ndarray]:
        """Mean held-out accuracy of ``fit(train_mask) -> (train scores, held scores)``, and the held
        scores of every photo."""
        accuracies, held = [], np.zeros(len(samples))
        for train in folds:
            train_scores, held[~train] = fit(train)
            accuracies.append(held_out_accuracy(train_scores, held[~train], types[~train], shares))
        return float(np.mean(accuracies)), held

    bank = ImageBank(registry.default_store(), DEFAULT_CONFIG["max_side"])
    bank.load(samples)
    features = crop_features(samples, bank)
    reader_r = {}
    for k, region in enumerate(REGIONS):
        trait = true_traits[:, TRAITS.index(region)]
        _, read = cross_validated(lambda t: ridge(features[t, k], trait[t], features[~t, k], lam))
        reader_r[region] = float(np.corrcoef(read, trait)[0, 1])
    flat = features.reshape(len(samples), -1)
    _, rule_read = cross_validated(lambda t: ridge(flat[t], rule[t], flat[~t], lam))
    survey_accuracy, survey_read = cross_validated(lambda t: ridge(flat[t], position[t], flat[~t], lam))

    rng = np.random.default_rng(0)
    r = np.array([reader_r[t] for t in TRAITS])
    as_shown = []
    for _ in range(draws):
        errors = rng.normal(size=(len(people), len(TRAITS)))[person_of]
        shown = true_traits * r + errors * np.sqrt(1 - r ** 2)
        as_shown.append(cross_validated(lambda t: ridge(shown[t], position[t], shown[~t], 0))[0])
    return {
        "sample_dir": str(sample_dir), "n_people": len(people), "n_photos": len(samples),
        "ceiling": sample_ceiling(sample_dir).get("ceiling_accuracy"),
        "rule": cross_validated(lambda t: (rule[t], rule[~t]))[0],
        "least_squares_true": cross_validated(lambda t: ridge(true_traits[t], position[t], true_traits[~t], 0))[0],
        "least_squares_as_shown": float(np.mean(as_shown)), "least_squares_as_shown_sd": float(np.std(as_shown)),
        "reader_r": reader_r, "reader_rule_r": float(np.corrcoef(rule_read, rule)[0, 1]),
        "survey_reader": survey_accuracy, "survey_reader_rule_r": float(np.corrcoef(survey_read, rule)[0, 1]),
        "draws": draws,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20, help="draws of the reading errors for row 3")
    parser.add_argument("--ridge", type=float, default=100.0, help="ridge penalty of the linear readers")
    args = parser.parse_args(argv)
    m = measure(args.draws, args.ridge)
    ceiling = "unknown" if m["ceiling"] is None else f"{m['ceiling']:.3f}"
    print(f"sample {m['sample_dir']}: {m['n_people']} people, {m['n_photos']} photos, "
          f"ceiling {ceiling} (bands on all people at once)")
    print("| reader | exact type, held out (5 folds) | r |")
    print("|---|---|---|")
    print(f"| planted rule, true traits | {m['rule']:.3f} | 1 with the rule |")
    print(f"| least squares on the survey, true traits | {m['least_squares_true']:.3f} | |")
    print(f"| least squares on the survey, traits as the photos show them | {m['least_squares_as_shown']:.3f} "
          f"(sd {m['least_squares_as_shown_sd']:.3f}, {m['draws']} draws) | |")
    print(f"| linear readers on the crops, trained on the true traits | | {m['reader_rule_r']:.3f} with the rule; "
          + ", ".join(f"{region} {value:.3f}" for region, value in m["reader_r"].items()) + " with its trait |")
    print(f"| linear reader on the crops, trained on the survey | {m['survey_reader']:.3f} | "
          f"{m['survey_reader_rule_r']:.3f} with the rule |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
