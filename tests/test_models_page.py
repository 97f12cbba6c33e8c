"""The Models page (AppTest): queue, follow, cancel and retry runs; promotion with guard rails;
roll back naming its target. Each role sees and may do only what auth allows."""

from __future__ import annotations

import pytest

from app.core.auth import Account
from app.core.vocabulary import RunStatus

ADMIN, LEAD, ANNOTATOR = (Account(r, r, "unused") for r in ("admin", "lead", "annotator"))


def models_page(account, cookie_sign_in):
    """The page as ``account`` (its actions act as the session cookie's account: signed in for real)."""
    from streamlit.testing.v1 import AppTest

    if account is not None:
        cookie_sign_in(account.name, account.role)
    at = AppTest.from_file("pages/models.py", default_timeout=120)
    at.session_state["account"] = account
    return at.run()


#: The metrics of a sound run (the shape models.training.engine.evaluate writes).
SOUND = {"type_accuracy": 0.6, "chance_accuracy": 0.2, "macro_f1": 0.55, "chance_macro_f1": 0.2,
         "person_accuracy": 0.6, "box_map50": 0.9, "n_people": 10, "n_photos": 20,
         "type_shares": {"Alpha": 0.2, "Beta": 0.2, "Gamma": 0.2, "Delta": 0.2, "Omega": 0.2},
         "confusion": [[4 if i == j else 0 for j in range(5)] for i in range(5)]}


def one_type_run(store) -> int:
    """A finished run that gives Gamma to 90 % of the held-out photos."""
    from models import registry

    run_id = registry.create_run("head", {})
    metrics = {**SOUND, "type_accuracy": 0.3, "macro_f1": 0.15, "confusion": [[0, 0, 4, 0, 0]] * 5,
               "type_shares": {"Alpha": 0.025, "Beta": 0.025, "Gamma": 0.9, "Delta": 0.025, "Omega": 0.025}}
    registry.finish_run(run_id, b"weights", metrics, store=store)
    return run_id


@pytest.fixture
def registry_env(app_env):
    """A fresh database with one finished run, served."""
    from app.core.db import migrate
    from app.core.storage import get_store
    from models import registry

    migrate()
    served = registry.create_run("head", {})
    registry.finish_run(served, b"weights", SOUND, store=get_store())
    registry.promote(served)
    return app_env


def select_run(at, run_id: int):
    box = at.selectbox(key="run")
    return box.select_index(next(i for i, o in enumerate(box.options) if o.startswith(f"{run_id} ·"))).run()


def buttons(at) -> dict:
    return {b.label: b for b in at.button}


def test_lead_queues_a_run_and_cancels_it_but_cannot_promote(registry_env, cookie_sign_in):
    from models import registry

    at = models_page(LEAD, cookie_sign_in)
    assert not at.exception
    at.button(key="FormSubmitter:train-Queue run").click().run()
    (new,) = [r for r in registry.list_runs() if r.status == "queued"]
    assert any(f"Run {new.id} queued" in s.value for s in at.success)
    assert new.requested_by == "lead"
    assert "Promoting and rolling back models is for admins." in [i.value for i in at.info]
    assert not [label for label in buttons(at) if label.startswith(("Promote", "Roll back"))]
    buttons(at)["Cancel"].click().run()  # a rerun of the live-runs fragment only
    at.run()
    assert registry.get_run(new.id).status == "cancelled"
    select_run(at, new.id)
    buttons(at)[f"Retry run {new.id}"].click().run()
    (copy,) = [r for r in registry.list_runs() if r.status == "queued"]
    assert copy.job["retry_of"] == new.id and not at.exception


def test_annotator_sees_no_train_form_nor_cancel(registry_env, cookie_sign_in):
    from models import jobs

    jobs.enqueue(LEAD, "head")
    at = models_page(ANNOTATOR, cookie_sign_in)
    assert not at.exception
    assert "Asking for training runs is for leads and admins." in [i.value for i in at.info]
    assert "Cancel" not in buttons(at) and not [b for b in at.button if b.label.startswith("Promote")]


def test_admin_is_warned_about_a_one_type_run_and_rollback_names_its_target(registry_env, cookie_sign_in):
    from app.core.storage import get_store
    from models import registry

    served = registry.promoted_id()
    at = models_page(ADMIN, cookie_sign_in)
    assert buttons(at)["Roll back (no earlier model)"].disabled
    candidate = one_type_run(get_store())
    at = models_page(ADMIN, cookie_sign_in)
    select_run(at, candidate)
    warnings = [w.value for w in at.warning]
    assert any("Gamma to 90 %" in w for w in warnings), warnings
    assert any("macro f1 0.15 is below chance" in w for w in warnings), warnings
    assert not buttons(at)[f"Promote run {candidate}…"].disabled
    registry.promote(candidate)
    at = models_page(ADMIN, cookie_sign_in)
    rollback = buttons(at)[f"Roll back to run {served}"]
    assert not rollback.disabled
    rollback.click().run()
    assert registry.promoted_id() == served and not at.exception


@pytest.mark.parametrize("account", [None, ANNOTATOR, LEAD])
def test_promotion_is_refused_below_admin_even_without_the_button(registry_env, account):
    from app.core.auth import PermissionDenied
    from app.core.storage import get_store
    from models import jobs, registry

    candidate = one_type_run(get_store())
    with pytest.raises(PermissionDenied, match="promote needs the admin role"):
        jobs.promote(account, candidate)
    assert registry.promoted_id() != candidate


def test_each_action_replayed_with_an_annotators_cookie_is_refused(registry_env, cookie_sign_in):
    """The page was drawn for an admin (every button there); the connection's cookie now names an
    annotator, as when an annotator replays an admin's widget messages: train, cancel and roll back (the
    promote action; the Promote dialog's confirm goes through the same ``act``) are each refused in their
    code path and nothing changes."""
    from app.core.storage import get_store
    from models import jobs, registry

    served = registry.promoted_id()
    candidate = one_type_run(get_store())
    queued = jobs.enqueue(LEAD, "head")
    at = models_page(ADMIN, cookie_sign_in)
    cookie_sign_in("ana", "annotator")

    def state():
        return sorted((r.id, r.status, r.cancel_requested) for r in registry.list_runs()), registry.promoted_id()

    def refused(action: str) -> bool:
        return any(f"{action} needs the" in e.value and "ana (annotator) cannot" in e.value for e in at.error)

    before = state()
    at.button(key="FormSubmitter:train-Queue run").click().run()
    assert refused("train") and state() == before
    buttons(at)["Cancel"].click().run()
    assert refused("cancel run") and state() == before
    registry.promote(candidate)
    at.run()
    buttons(at)[f"Roll back to run {served}"].click().run()
    assert refused("promote") and registry.promoted_id() == candidate
    assert registry.get_run(queued).status == RunStatus.QUEUED


def test_the_chosen_run_stays_chosen_when_the_runs_change(registry_env, cookie_sign_in):
    """A run chosen in the Run box is still the one shown after the page reruns for the live runs (a queued
    run ended, another was queued, another admin promoted the run that ended, so the chosen run's name in
    the box lost its " · served"): the box does not fall back to the served run."""
    from app.core.storage import get_store
    from models import jobs, registry

    chosen = registry.promoted_id()
    other = registry.create_run("head", {})
    registry.finish_run(other, b"weights", SOUND, store=get_store())
    running = jobs.enqueue(LEAD, "head")
    at = models_page(ADMIN, cookie_sign_in)
    select_run(at, other)
    select_run(at, chosen)
    assert at.selectbox(key="run").value == chosen
    registry.finish_run(running, b"weights", SOUND, store=get_store())  # the fragment's ended run reruns the page
    jobs.enqueue(LEAD, "detector")  # the list of runs grows
    registry.promote(running)
    at.run()
    assert not at.exception
    assert at.selectbox(key="run").value == chosen
    assert f"Run {chosen} beside the served model" in [e.label for e in at.expander]


def test_run_charts_fit_a_phone(app_env, cookie_sign_in):
    """On a 390 px phone the confusion chart's long title ran under the chart's tool bar and the training
    curves' legend beside the plot took half its width: the title is short (the axes say true/predicted),
    every title sits below the tool bar and the legend is a row under the plot."""
    import json

    from app.core.db import migrate
    from app.core.storage import get_store
    from models import registry

    migrate()
    run_id = registry.create_run("head", {})
    registry.finish_run(run_id, b"weights", SOUND, history=[{"epoch": 1, "loss": 2.0, "val_type_accuracy": 0.4},
                                                            {"epoch": 2, "loss": 1.5, "val_type_accuracy": 0.5}],
                        store=get_store())
    at = models_page(LEAD, cookie_sign_in)
    assert not at.exception
    layouts = {f["layout"]["title"]["text"]: f["layout"]
               for f in (json.loads(chart.proto.spec) for chart in at.get("plotly_chart"))}
    assert layouts["Confusion"]["xaxis"]["title"]["text"] == "predicted"
    legend = layouts["Training curves"]["legend"]
    assert legend["orientation"] == "h" and legend["y"] < 0
    for layout in layouts.values():  # each title below the tool bar a touch screen always shows (Survey's browser test)
        assert layout["title"]["yref"] == "container" and layout["title"]["pad"]["t"] >= 40
        assert layout["margin"]["t"] >= layout["title"]["pad"]["t"] + 40
