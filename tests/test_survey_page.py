"""The survey page, run headless with streamlit.testing.v1.AppTest against a temporary database."""

from __future__ import annotations

import pytest
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from app.core import auth, db, settings
from app.core.db import ReferencePerson, SurveyRating, TypeProfile, migrate, session_scope
from app.core.vocabulary import TYPES
from labeling import survey, survey_store
from labeling.quotas import largest_remainder

SHARES = [21.8, 21.4, 22.5, 19.2, 15.2]
N_PEOPLE = 10
# Person i gets mean score decreasing with i: p01 best ... p10 worst; p05/p06 tie exactly.
MEANS = {1: (5, 5), 2: (5, 4), 3: (4, 4), 4: (4, 3), 5: (3, 3), 6: (3, 3), 7: (3, 2), 8: (2, 2), 9: (2, 1), 10: (1, 1)}


def _clear_caches():
    settings.get_settings.cache_clear()
    db.get_engine.cache_clear()


@pytest.fixture
def env(tmp_path, monkeypatch):
    sample = tmp_path / "sample"
    sample.mkdir()
    monkeypatch.setenv("FACETYPE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("FACETYPE_DATABASE_URL", f"sqlite:///{tmp_path}/page.db")
    monkeypatch.setenv("FACETYPE_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("FACETYPE_SAMPLE_DIR", str(sample))
    _clear_caches()
    migrate()
    sign_in_as(monkeypatch, "lead")
    with session_scope() as session:
        for i, (name, share) in enumerate(zip(TYPES, SHARES)):
            session.add(TypeProfile(name=name, order=i, description=name, share_percent=share))
        session.flush()
        for i in range(1, N_PEOPLE + 1):
            session.add(ReferencePerson(person_key=f"p{i:02d}", pseudonym=f"Person {i}", type_name="Omega"))
    lines = ["rater_id,person_id,score,age_group,gender"]
    for i, (a, b) in MEANS.items():
        lines.append(f"r1,p{i:02d},{a},20s,female")
        lines.append(f"r2,p{i:02d},{b},30s,male")
    (sample / "ratings.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    yield sample
    db.get_engine().dispose()
    _clear_caches()


def sign_in_as(monkeypatch, role: str | None) -> None:
    """AppTest sends no cookies: the page's cookie check answers with an account of ``role``."""
    account = auth.Account(f"{role}-1", role, "unused") if role else None
    monkeypatch.setattr(auth, "account_for_cookie", lambda *_a, **_k: account)


def run_page() -> AppTest:
    at = AppTest.from_file("pages/survey.py", default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def stored_types() -> dict[str, str]:
    with session_scope() as session:
        return {p.person_key: p.type_name for p in session.exec(select(ReferencePerson))}


def test_page_renders_the_sample_survey(env):
    at = run_page()
    assert not at.error
    assert any(f"Ratings: sample {env}/ratings.csv" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 4  # ranking, pie, histogram, agreement
    assert at.metric[0].value == str(N_PEOPLE)
    quota_table = next(df.value for df in at.dataframe if "extra_seat" in df.value.columns)
    assert quota_table["quota"].tolist() == largest_remainder(SHARES, N_PEOPLE)
    assert quota_table["floor"].tolist() == [2, 2, 2, 1, 1]
    ranking = next(df.value for df in at.dataframe if "tie_note" in df.value.columns)
    assert ranking["person_id"].tolist()[:2] == ["p01", "p02"]
    assert ranking.set_index("person_id").loc["p05", "tie_note"].startswith("tied at 3.000 with p06")


def test_page_prefers_ratings_in_the_database(env):
    ratings = survey.parse_ratings(env / "ratings.csv")
    with session_scope() as session:
        survey_store.store_ratings(session, auth.SYSTEM, ratings, (1, 5), "ratings.csv")
    (env / "ratings.csv").unlink()
    at = run_page()
    assert any("stored in the database" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 4


def test_apply_labels_after_confirmation(env):
    at = run_page()
    assert any("people would move type" in m.value for m in at.markdown)
    at.button(key="apply").click().run()
    assert stored_types()["p01"] == "Omega"  # nothing written before the confirmation
    assert any("one transaction" in w.value for w in at.warning)
    at.button(key="confirm").click().run()
    assert not at.exception
    assert any("Labels applied" in s.value for s in at.success)
    quotas = largest_remainder(SHARES, N_PEOPLE)  # [2, 2, 2, 2, 2]
    expected = [name for name, q in zip(TYPES, quotas) for _ in range(q)]
    types = stored_types()
    assert [types[f"p{i:02d}"] for i in range(1, N_PEOPLE + 1)] == expected
    with session_scope() as session:
        assert session.exec(select(ReferencePerson).where(ReferencePerson.person_key == "p01")).one().survey_score == 5.0
    assert any("0** of" in m.value or "**0**" in m.value for m in at.markdown)  # plan is now empty


def test_cancel_writes_nothing(env):
    at = run_page()
    at.button(key="apply").click().run()
    at.button(key="cancel").click().run()
    assert set(stored_types().values()) == {"Omega"}
    assert not [w for w in at.warning if "one transaction" in w.value], [w.value for w in at.warning]


def test_invalid_sample_ratings_show_every_problem_with_its_line(env):
    (env / "ratings.csv").write_text("rater_id,person_id,score\nr1,p01,9\nr1,p77,3\nr1,p02,x\n", encoding="utf-8")
    at = run_page()
    assert at.error and "3 problem(s)" in at.error[0].value
    problems = at.dataframe[0].value
    assert problems["line"].tolist() == [2, 3, 4]
    assert "unknown person 'p77'" in problems["problem"].tolist()[1]
    assert not at.get("plotly_chart")
    with session_scope() as session:
        assert session.exec(select(SurveyRating)).first() is None


def test_entered_shares_must_sum_to_100(env):
    at = run_page()
    at.number_input(key="share_Alpha").set_value(40.0).run()
    assert at.error and "Type shares" in at.error[0].value
    assert "not 100 ± 0.5" in at.dataframe[0].value["problem"][0]


@pytest.mark.parametrize("role", [None, "annotator"])
def test_apply_and_store_are_not_offered_below_lead(env, monkeypatch, role):
    sign_in_as(monkeypatch, role)
    at = run_page()
    assert len(at.get("plotly_chart")) == 4  # the dashboard is there
    assert not [b for b in at.button if b.key in {"apply", "store_ratings", "restore"}]
    assert any("for the lead role" in i.value for i in at.info)


def test_a_confirm_replayed_after_the_sign_in_ended_applies_nothing(env, monkeypatch):
    at = run_page()
    at.button(key="apply").click().run()
    sign_in_as(monkeypatch, "annotator")  # the session cookie now names an annotator
    at.button(key="confirm").click().run()
    assert set(stored_types().values()) == {"Omega"}
    assert any("needs the lead role" in e.value for e in at.error)


def test_low_agreement_gives_a_caution_at_apply(env, monkeypatch):
    lines = ["rater_id,person_id,score"] + [f"r1,p{i:02d},{1 + i % 5}" for i in range(1, 11)] + [
        f"r2,p{i:02d},{5 - i % 5}" for i in range(1, 11)]
    (env / "ratings.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    at = run_page()
    at.button(key="apply").click().run()
    assert any("Caution: the raters agree little" in w.value for w in at.warning)


def test_intervals_are_clipped_to_the_scale(env):
    at = run_page()
    ranking = next(df.value for df in at.dataframe if "tie_note" in df.value.columns)
    assert ranking["ci_low"].min() >= 1 and ranking["ci_high"].max() <= 5
    # Two ratings (5, 4) give a Student-t interval far wider than the scale: it was cut at 5.
    assert ranking.set_index("person_id").loc["p02", "ci_high"] == 5


def test_ranking_legend_shows_circles_for_the_types(env):
    import json

    at = run_page()
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    in_legend = [t for t in figure["data"] if t.get("showlegend", True)]
    assert {t["name"] for t in in_legend} >= set(TYPES[:5])
    for trace in in_legend:
        symbol = trace["marker"]["symbol"]
        assert symbol == "circle" or trace["name"] == "tie across a quota boundary", trace["name"]


def test_question_csv_without_a_file_says_the_sample_is_used(env):
    (env / "type_choices.csv").write_text("rater_id,type\n" + "".join(
        f"r{i},{TYPES[i % 5]}\n" for i in range(20)), encoding="utf-8")
    at = run_page()
    at.radio[0].set_value("Question CSV").run()
    assert not at.exception
    assert any("No question CSV uploaded" in i.value and "type_choices.csv" in i.value for i in at.info)


def store_two_batches(env) -> tuple[int, int]:
    ratings = survey.parse_ratings(env / "ratings.csv")
    with session_scope() as session:
        first = survey_store.store_ratings(session, auth.SYSTEM, ratings, (1, 5), "first.csv").id
        second = survey_store.store_ratings(session, auth.SYSTEM, ratings.iloc[:-2], (1, 5), "second.csv").id
    return first, second


def active_batch() -> int:
    with session_scope() as session:
        return session.exec(select(db.RatingBatch).where(db.RatingBatch.active)).one().id


def test_a_restore_replayed_as_an_annotator_restores_nothing(env, monkeypatch):
    """The dialog was opened while a lead was signed in; the cookie now names an annotator (a replayed
    widget message on an annotator's connection): Restore is refused and the stored batch stays."""
    first, second = store_two_batches(env)
    at = run_page()
    at.button(key="restore").click().run()
    sign_in_as(monkeypatch, "annotator")
    at.button(key="confirm_restore").click().run()
    assert active_batch() == second
    assert any("Nothing was restored: store ratings needs the lead role" in e.value for e in at.error), \
        [e.value for e in at.error]
    sign_in_as(monkeypatch, "lead")  # the same steps as a lead restore it
    at.run()
    at.button(key="restore").click().run()
    at.button(key="confirm_restore").click().run()
    assert active_batch() == first


def test_a_store_replayed_as_an_annotator_stores_nothing(env, monkeypatch):
    first, second = store_two_batches(env)
    at = run_page()
    upload = (env / "ratings.csv").read_bytes()
    at.sidebar.file_uploader[0].set_value(("new.csv", upload, "text/csv")).run()
    at.button(key="store_ratings").click().run()
    sign_in_as(monkeypatch, "annotator")
    at.button(key="confirm_store").click().run()
    assert active_batch() == second
    assert any("Nothing was stored: store ratings needs the lead role" in e.value for e in at.error), \
        [e.value for e in at.error]


def test_charts_fit_a_phone_short_titles_and_legends_below(env):
    """At 390 px a one-line title of 70 characters ran off the chart and the legend beside the plot took
    half its width: the ranking and agreement charts have a short title, the rest as its subtitle, and the
    legend in a row under the plot."""
    import json

    at = run_page()
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    titled = {f["layout"]["title"]["text"]: f["layout"] for f in figures}
    for title in ("People ranked by mean score (95 % CI)", "Rater agreement: Krippendorff's α (interval)"):
        layout = titled[title]
        assert layout["title"]["subtitle"]["text"]
        assert layout["legend"]["orientation"] == "h" and layout["legend"]["y"] < 0
