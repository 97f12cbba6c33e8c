"""Survey dashboard: ratings -> type shares -> quotas -> ranked labels -> apply to reference people.

A thin page: parsing and the pipeline live in ``labeling.survey`` (quotas in ``labeling.quotas``,
statistics in ``labeling.survey_stats``); the database side in
``labeling.survey_store``. With nothing uploaded the page uses the ratings stored in the database,
or else the sample project's ``data/sample/ratings.csv``. The stored-ratings batches with their
store and restore dialogs are in ``pages/survey_widgets.py``.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import sqlalchemy as sa
import streamlit as st

from app.core import auth
from app.core.db import session_scope
from app.core.settings import PROJECT_ROOT, get_settings
from app.core.vocabulary import TYPES
from labeling import quotas, survey, survey_csv, survey_stats, survey_store
from pages.charts import LEGEND_BELOW, TITLE_BELOW_TOOLBAR, top_margin
from pages.survey_widgets import read_db, show_problems, stored_ratings_section
from pages.team_account import acting_account

settings = get_settings()
sample_dir = settings.sample_dir
sample_label = f"sample {sample_dir.relative_to(PROJECT_ROOT) if sample_dir.is_relative_to(PROJECT_ROOT) else sample_dir}"
db_errors: list[str] = []

account = acting_account()
may_write = auth.can(account, "store_ratings") and auth.can(account, "apply_labels")

st.title("Survey labeling")
st.caption(
    "Ratings → mean score per person → type shares → quotas (largest remainder) → "
    "types by rank. Ties: quotas — larger remainder, then larger exact share, then type order; "
    "ranking — higher mean, then more ratings, then person id."
)

# ---------------------------------------------------------------- types and stored data
stored_types = read_db(survey_store.load_types, [], errors=db_errors)
type_names = [t.name for t in stored_types] or list(TYPES)
stored_people = read_db(survey_store.load_people, errors=db_errors)
stored_ratings = read_db(survey_store.load_ratings, errors=db_errors)
if db_errors:
    st.warning(f"Database unavailable, using the sample files: {db_errors[0]}")

default_shares = {t.name: t.share_percent for t in stored_types}
if not default_shares and (sample_dir / "types.json").is_file():
    try:
        default_shares = {t["name"]: float(t["share_percent"]) for t in json.loads((sample_dir / "types.json").read_text("utf-8"))}
    except (ValueError, KeyError, TypeError):
        default_shares = {}

# ---------------------------------------------------------------- inputs
with st.sidebar:
    st.header("Inputs")
    ratings_file = st.file_uploader("Ratings CSV (rater_id, person_id, score[, age_group, gender])", type=["csv"])
    default_scale = stored_ratings[1] if stored_ratings and not ratings_file else survey.DEFAULT_SCALE
    col_min, col_max = st.columns(2)
    scale_min = col_min.number_input("Scale min", value=float(default_scale[0]), step=1.0)
    scale_max = col_max.number_input("Scale max", value=float(default_scale[1]), step=1.0)
    people_file = st.file_uploader("People CSV (person_id, name) — optional", type=["csv"])
    share_source = st.radio("Type shares", ["Percentages", "Question CSV"], horizontal=True)
    shares_input: list[float] = []
    choices_file = None
    if share_source == "Percentages":
        for name in type_names:
            shares_input.append(
                st.number_input(f"{name} %", min_value=0.0, max_value=100.0, step=0.1,
                                value=float(default_shares.get(name, round(100 / len(type_names), 1))), key=f"share_{name}")
            )
    else:
        choices_file = st.file_uploader("Question CSV (rater_id, type): one row per rater", type=["csv"])

# ---------------------------------------------------------------- people
people = None
if people_file is not None:
    try:
        people = survey.parse_people(people_file.getvalue())
        people_source = f"uploaded {people_file.name}"
    except survey_csv.SurveyValidationError as exc:
        show_problems(f"People CSV {people_file.name}", exc, "showing the stored people instead")
        people_file = None
try:
    if people is not None:
        pass
    elif stored_people is not None and len(stored_people):
        people, people_source = stored_people[["person_id", "name"]], "database"
    elif (sample_dir / "people.csv").is_file():
        people = survey.parse_people(sample_dir / "people.csv")
        people_source = f"{sample_label}/people.csv"
except survey_csv.SurveyValidationError as exc:
    show_problems("People CSV", exc)
    st.stop()

# ---------------------------------------------------------------- ratings
known = set(people["person_id"]) if people is not None else None
scale = (scale_min, scale_max)
try:
    survey.parse_scale(scale)
    ratings = None
    if ratings_file is not None:
        try:
            ratings = survey.parse_ratings(ratings_file.getvalue(), scale, known)
            ratings_source = f"uploaded {ratings_file.name}"
        except survey_csv.SurveyValidationError as exc:
            show_problems(f"Ratings CSV {ratings_file.name}", exc,
                          "nothing was loaded from it; the dashboard below shows the stored ratings")
            ratings_file = None
    if ratings is not None:
        pass
    elif stored_ratings is not None:
        ratings = survey.parse_ratings(stored_ratings[0].drop(columns="line").to_csv(index=False), scale, known)
        ratings_source = "ratings stored in the database"
    elif (sample_dir / "ratings.csv").is_file():
        ratings = survey.parse_ratings(sample_dir / "ratings.csv", scale, known)
        ratings_source = f"{sample_label}/ratings.csv"
    else:
        st.info("Upload a ratings CSV to start (no ratings in the database and no sample file).")
        st.stop()
except survey_csv.SurveyValidationError as exc:
    show_problems("Ratings", exc)
    st.stop()

# ---------------------------------------------------------------- shares
try:
    if share_source == "Percentages":
        shares = quotas.parse_shares(shares_input, len(type_names))
        choice_counts = None
    else:
        source = choices_file.getvalue() if choices_file is not None else sample_dir / "type_choices.csv"
        if choices_file is None and not source.is_file():
            st.info("Upload the question CSV, or enter the shares as percentages.")
            st.stop()
        if choices_file is None:
            st.info(f"No question CSV uploaded: the type shares come from the {sample_label}/type_choices.csv.")
        choice_counts = quotas.parse_type_choices(source, type_names)
        shares = choice_counts["share_percent"].tolist()
except survey_csv.SurveyValidationError as exc:
    show_problems("Type shares", exc)
    st.stop()

result = survey.label_people(ratings, type_names, shares, people)


def clip_to_scale(frame: pd.DataFrame) -> pd.DataFrame:
    """95 % intervals cut at the ends of the rating scale (a mean cannot lie outside it)."""
    return frame.assign(ci_low=frame["ci_low"].clip(lower=scale_min), ci_high=frame["ci_high"].clip(upper=scale_max))


labels = clip_to_scale(result.labels)
quota_table = result.quotas

st.caption(f"Ratings: {ratings_source}. People: {people_source if people is not None else 'from the ratings'}.")
m1, m2, m3, m4 = st.columns(4)
m1.metric("People labeled", len(labels))
m2.metric("Raters", ratings["rater_id"].nunique())
m3.metric("Ratings", len(ratings))
m4.metric("Krippendorff's α (interval)", "n/a" if pd.isna(result.alpha) else f"{result.alpha:.3f}")
if result.unrated:
    st.warning(f"{len(result.unrated)} people have no ratings and are not labeled: {', '.join(result.unrated)}")

colors = dict(zip(type_names, px.colors.qualitative.Set2 + px.colors.qualitative.Pastel))

# ---------------------------------------------------------------- charts
def natural(value) -> list:
    """"9-17" before "18-24", "20s" before "30s": digits compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", str(value)) if part]


tab_rank, tab_quota, tab_scores, tab_agree = st.tabs(["Ranking", "Shares & quotas", "Scores", "Agreement"])

with tab_rank:
    fig = go.Figure()
    for name in type_names:
        part = labels[labels["type"] == name]
        if part.empty:
            continue
        for tie, points in ((False, part[~part["boundary_tie"]]), (True, part[part["boundary_tie"]])):
            if points.empty:
                continue
            # Circles carry the type's legend entry; ties across a boundary are diamonds in the same group.
            fig.add_trace(go.Scatter(
                x=points["rank"], y=points["mean_score"], mode="markers", name=name, legendgroup=name,
                showlegend=bool(not tie or part["boundary_tie"].all()),
                marker=dict(color=colors[name], size=11 if tie else 9, symbol="diamond" if tie else "circle"),
                error_y=dict(type="data", array=(points["ci_high"] - points["mean_score"]).fillna(0),
                             arrayminus=(points["mean_score"] - points["ci_low"]).fillna(0), thickness=1),
                customdata=points[["person_id", "name", "n_ratings"]],
                hovertemplate="%{customdata[0]} %{customdata[1]}<br>rank %{x}, mean %{y:.2f}"
                              " (n=%{customdata[2]})<extra></extra>",
            ))
    if labels["boundary_tie"].any():
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="tie across a quota boundary",
                                 marker=dict(color="gray", size=10, symbol="diamond")))
    boundary = 0
    LABEL_LINE = 22  # pixels
    for i, (name, quota) in enumerate(zip(quota_table["type"], quota_table["quota"])):
        boundary += int(quota)
        if 0 < boundary < len(labels):
            # Every other label a line higher: on a phone, neighbouring labels ran into each other.
            fig.add_vline(x=boundary + 0.5, line_dash="dash", line_color="gray",
                          annotation_text=f"{name} | {boundary}", annotation_position="top",
                          annotation_yshift=LABEL_LINE * (i % 2))
    # Titles of a line and a subtitle, legend below the plot: on a phone a long title ran off the chart and
    # the legend beside the plot took half its width.
    fig.update_layout(title=dict(text="People ranked by mean score (95 % CI)",
                                 subtitle=dict(text="dashed lines are quota boundaries"), **TITLE_BELOW_TOOLBAR),
                      xaxis_title="rank", yaxis_title="mean score", legend_title="type", legend=LEGEND_BELOW,
                      margin=dict(t=top_margin(subtitle=True) + LABEL_LINE))
    st.plotly_chart(fig, width="stretch")
    ties = labels[labels["tie_note"] != ""]
    if len(ties):
        st.info(f"{len(ties)} people share a mean score with someone else"
                f"{'; ◆ marks ties across a quota boundary' if labels['boundary_tie'].any() else ''}.")
    st.dataframe(
        labels[["rank", "person_id", "name", "mean_score", "n_ratings", "ci_low", "ci_high", "type", "tie_note"]],
        hide_index=True, width="stretch",
        column_config={
            "rank": "Rank", "person_id": "Person", "name": "Name", "n_ratings": "Ratings", "type": "Type",
            "tie_note": "Tie",
            "mean_score": st.column_config.NumberColumn("Mean score", format="%.2f"),
            "ci_low": st.column_config.NumberColumn("95 % CI from", format="%.2f"),
            "ci_high": st.column_config.NumberColumn("95 % CI to", format="%.2f"),
        },
    )
    st.download_button("Download labels CSV", clip_to_scale(result.label_csv()).to_csv(index=False).encode("utf-8"),
                       file_name="labels.csv", mime="text/csv")

with tab_quota:
    left, right = st.columns(2)
    pie = px.pie(pd.DataFrame({"type": type_names, "share_percent": shares}), names="type",
                 values="share_percent", color="type", color_discrete_map=colors, title="Type shares",
                 category_orders={"type": type_names})
    left.plotly_chart(pie, width="stretch")
    if choice_counts is not None:
        right.caption("Shares computed from the question CSV")
        right.dataframe(choice_counts, hide_index=True)
    right.markdown(
        f"Quotas for **{len(labels)}** people by the largest-remainder method: each type gets the floor of "
        "its exact share, the seats left go to the largest remainders (ties: larger exact share, then "
        "type order)."
    )
    st.dataframe(
        quota_table, hide_index=True, width="stretch",
        column_config={"type": "Type", "share_percent": st.column_config.NumberColumn("Share %", format="%.1f"),
                       "share_x_total": st.column_config.NumberColumn("Share × people", format="%.2f"),
                       "exact": st.column_config.NumberColumn("Exact seats (normalized)", format="%.3f"),
                       "floor": "Whole seats", "remainder": st.column_config.NumberColumn("Remainder", format="%.3f"),
                       "extra_seat": "Extra seat", "quota": "Quota"},
    )

with tab_scores:
    present = [c for c in survey_csv.BREAKDOWN_COLUMNS if ratings[c].notna().any()]
    breakdown = st.selectbox("Break down by", ["(none)", *present])
    groups = [] if breakdown == "(none)" else sorted(ratings[breakdown].dropna().unique(), key=natural)
    hist = px.histogram(ratings, x="score", color=None if breakdown == "(none)" else breakdown,
                        barmode="group", title="Score distribution",
                        category_orders={breakdown: groups} if groups else None)
    hist.update_traces(xbins=dict(start=scale_min - 0.5, end=scale_max + 0.5, size=1))
    hist.update_layout(xaxis_title="score", yaxis_title="ratings")
    st.plotly_chart(hist, width="stretch")

with tab_agree:
    agreement = survey_stats.agreement_table(ratings)
    agreement["label"] = agreement["breakdown"] + ": " + agreement["group"]
    order = {name: i for i, name in enumerate(agreement["breakdown"].unique())}  # "all" first, as computed
    agreement = agreement.iloc[sorted(range(len(agreement)), key=lambda i: (
        order[agreement["breakdown"].iat[i]], natural(agreement["group"].iat[i])))]
    bars = px.bar(agreement, x="label", y="alpha", color="breakdown", hover_data=["raters", "ratings"])
    bars.update_layout(title=dict(text="Rater agreement: Krippendorff's α (interval)",
                                  subtitle=dict(text="overall and by rater group"), **TITLE_BELOW_TOOLBAR),
                      legend=LEGEND_BELOW, margin=dict(t=top_margin(subtitle=True)))
    bars.add_hline(y=0.8, line_dash="dot", annotation_text="0.80 reliable")
    bars.add_hline(y=0.667, line_dash="dot", annotation_text="0.667 tentative")
    bars.update_layout(xaxis_title="", yaxis_title="α")
    st.plotly_chart(bars, width="stretch")
    st.caption("α per rater group, with the raters and ratings it rests on")
    st.dataframe(agreement.drop(columns="label"), hide_index=True)

# ---------------------------------------------------------------- apply
def ask_to_apply() -> None:
    st.session_state["confirm_apply"] = True


def cancel_apply() -> None:
    st.session_state.pop("confirm_apply", None)


def apply_shown_labels(shown: pd.DataFrame) -> None:
    """Write exactly the labels that were on screen when Confirm was clicked."""
    st.session_state.pop("confirm_apply", None)
    try:
        with session_scope() as session:
            st.session_state["applied"] = len(survey_store.apply_labels(session, acting_account(), shown))
    except (survey_csv.SurveyValidationError, sa.exc.SQLAlchemyError, auth.PermissionDenied) as exc:
        st.session_state["apply_failed"] = str(exc)


st.header("Apply labels")
if "applied" in st.session_state:
    st.success(f"Labels applied in one transaction: {st.session_state.pop('applied')} people moved type.")
if "apply_failed" in st.session_state:
    st.error(f"Nothing was applied: {st.session_state.pop('apply_failed')}")
plan = None
if not may_write:
    st.info("Applying labels and storing ratings is for the lead role; "
            f"{'you are signed in as ' + account.role if account else 'sign in as a lead'}.")
elif db_errors or stored_people is None:
    st.warning("The database is unavailable: labels cannot be applied.")
elif not stored_types or stored_people.empty:
    st.info("The database has no type profiles or reference people yet; seed them to apply labels.")
else:
    try:
        plan = read_db(lambda s: survey_store.plan_label_changes(s, labels), errors=db_errors)
    except survey_csv.SurveyValidationError as exc:
        show_problems("These labels cannot be applied to the database", exc, "nothing can be applied")
if plan is not None:
    st.write(f"**{len(plan)}** of {len(labels)} people would move type; every labeled person's survey score "
             "is set to their mean score.")
    if plan:
        st.dataframe(pd.DataFrame(plan, columns=["person_key", "pseudonym", "old_type", "new_type"]),
                     hide_index=True, width="stretch")
    st.button("Apply labels…", key="apply", on_click=ask_to_apply)
    if st.session_state.get("confirm_apply"):
        if not pd.isna(result.alpha) and result.alpha < 0.667:
            st.warning(f"Caution: the raters agree little (Krippendorff's α = {result.alpha:.3f}, below 0.667): "
                       "these labels rest on scores the raters do not share.", icon=":material/warning:")
        st.warning(f"Write {len(labels)} labels ({len(plan)} type changes) to the database in one transaction?")
        yes, no = st.columns(2)
        yes.button("Confirm", type="primary", key="confirm", on_click=apply_shown_labels, args=(labels,))
        no.button("Cancel", key="cancel", on_click=cancel_apply)

stored_ratings_section(ratings, scale, ratings_file.name if ratings_file is not None and plan is not None else None,
                       may_write and not db_errors)
