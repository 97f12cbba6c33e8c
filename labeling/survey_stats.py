"""Survey statistics: per-person mean scores with confidence intervals, and rater agreement
(Krippendorff's alpha, interval level) overall and per breakdown group.

Pure (no Streamlit, no database).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from labeling.survey_csv import BREAKDOWN_COLUMNS


def person_stats(ratings: pd.DataFrame, people: pd.DataFrame | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """Per person: ``n_ratings, mean_score, sd, ci_low, ci_high`` (Student-t interval of the mean;
    NaN bounds with a single rating). People in ``people`` without ratings are left out."""
    from scipy import stats

    grouped = ratings.groupby("person_id", sort=False)["score"]
    out = pd.DataFrame({
        "n_ratings": grouped.size(),
        "mean_score": grouped.mean(),
        "sd": grouped.std(ddof=1),
    })
    out.index.name = "person_id"
    out = out.reset_index()
    n = out["n_ratings"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(n > 1, stats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)), np.nan)
        half = t * out["sd"].to_numpy(dtype=float) / np.sqrt(n)
    out["ci_low"] = out["mean_score"] - half
    out["ci_high"] = out["mean_score"] + half
    names = {}
    if people is not None and len(people):
        names = dict(zip(people["person_id"].astype(str), people["name"].astype(str)))
    out.insert(1, "name", [names.get(p, p) for p in out["person_id"]])
    return out

def krippendorff_alpha(ratings: pd.DataFrame) -> float:
    """Krippendorff's alpha (interval level) over raters × people; NaN when undefined
    (fewer than two raters, no person rated twice, or a single value in the data)."""
    import krippendorff

    if ratings.empty:
        return float("nan")
    matrix = ratings.pivot_table(index="rater_id", columns="person_id", values="score", aggfunc="first")
    if matrix.shape[0] < 2 or (matrix.notna().sum(axis=0) >= 2).sum() == 0:
        return float("nan")
    try:
        return float(krippendorff.alpha(reliability_data=matrix.to_numpy(dtype=float), level_of_measurement="interval"))
    except (ValueError, ZeroDivisionError):
        return float("nan")


def agreement_table(ratings: pd.DataFrame, breakdowns: Sequence[str] = BREAKDOWN_COLUMNS) -> pd.DataFrame:
    """Alpha for all raters and within each group of each breakdown column present.

    Columns: ``breakdown, group, raters, ratings, alpha``.
    """
    rows = [{"breakdown": "all", "group": "all raters", "raters": ratings["rater_id"].nunique(),
             "ratings": len(ratings), "alpha": krippendorff_alpha(ratings)}]
    for col in breakdowns:
        if col not in ratings or ratings[col].isna().all():
            continue
        for group, part in ratings.groupby(ratings[col].fillna("(none)"), sort=True):
            rows.append({"breakdown": col, "group": str(group), "raters": part["rater_id"].nunique(),
                         "ratings": len(part), "alpha": krippendorff_alpha(part)})
    return pd.DataFrame(rows)
