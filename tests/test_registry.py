"""Registry: runs, promotion, roll back, the served model cache and ensure_served_model."""

from __future__ import annotations

import pytest

from app.core.db import ModelVersion, session_scope
from app.core.vocabulary import REGIONS
from tests.test_dataset import BASE_BOXES, build_fixture, make_image


@pytest.fixture
def env(tmp_path):
    from app.core.db import migrate
    from app.core.storage import LocalStore

    url = f"sqlite:///{tmp_path}/t.db"
    migrate(url)
    store = LocalStore(tmp_path / "store")
    from models.serving import clear_cache

    clear_cache()
    return url, store


def _finished_run(url, store, width=8):
    from models import registry
    from models.kinds.head import HeadModel
    from models.kinds.base import save_checkpoint

    model = HeadModel({"width": width})
    run = registry.create_run("head", {"kind": "head"}, {"photos": []}, url=url)
    registry.update_run(run, url=url, progress=0.5, history=[{"epoch": 1, "loss": 1.0}])
    assert registry.get_run(run, url=url).history == [{"epoch": 1, "loss": 1.0}]
    registry.finish_run(run, save_checkpoint(model), {"type_accuracy": 0.5}, url=url, store=store)
    return run


def test_run_lifecycle_and_promotion(env):
    from models import registry

    url, store = env
    assert registry.promoted_id(url) is None
    a, b, c = (_finished_run(url, store) for _ in range(3))
    row = registry.get_run(a, url=url)
    assert row.status == "done" and row.object_key in store.list("models/") and row.finished_at
    running = registry.create_run("head", {}, url=url)
    with pytest.raises(ValueError):
        registry.promote(running, url=url)
    registry.fail_run(running, "boom", url=url)
    assert registry.get_run(running, url=url).status == "failed"

    registry.promote(a, url=url)
    registry.promote(b, url=url)
    registry.promote(c, url=url)
    assert registry.promoted_id(url) == c
    assert sum(r.promoted for r in registry.list_runs(url)) == 1
    assert registry.rollback(url) == b
    assert registry.rollback(url) == a
    with pytest.raises(LookupError):
        registry.rollback(url)
    assert registry.promoted_id(url) == a
    registry.promote(c, url=url)
    assert registry.rollback(url) == a
    assert registry.describe(registry.get_run(a, url=url))["promoted"] is True


def test_served_model_is_cached_and_follows_promotion(env):
    from models import registry
    from models.serving import NoServedModel, get_served_model

    url, store = env
    with pytest.raises(NoServedModel):
        get_served_model(url=url, store=store)
    a, b = _finished_run(url, store, width=8), _finished_run(url, store, width=4)
    registry.promote(a, url=url)
    first = get_served_model(url=url, store=store)
    assert first is get_served_model(url=url, store=store)
    assert first.model_version_id == a and first.config["width"] == 8
    registry.promote(b, url=url)
    second = get_served_model(url=url, store=store)
    assert second is not first and second.model_version_id == b and second.config["width"] == 4


def test_during_an_outage_the_model_served_before_is_served(env, monkeypatch):
    import sqlalchemy as sa

    from models import registry
    from models.serving import clear_cache, get_served_model

    url, store = env
    registry.promote(_finished_run(url, store), url=url)
    served = get_served_model(url=url, store=store)

    def unreachable(*args, **kwargs):
        raise sa.exc.OperationalError("SELECT", {}, Exception("database down"))

    monkeypatch.setattr(registry, "promoted_id", unreachable)
    assert get_served_model(url=url, store=store) is served  # one cache, with the outage fallback
    clear_cache()
    with pytest.raises(sa.exc.OperationalError):  # nothing served before: the error, for the caller to word
        get_served_model(url=url, store=store)


def test_ensure_served_model_trains_and_promotes_the_head(tmp_path):
    from models import registry
    from models.training.train import ensure_served_model
    from models.serving import classify, clear_cache, get_served_model
    from tests.test_train import gate

    clear_cache()
    url, store = build_fixture(tmp_path, n_people=5, photos_per_person=2)
    calls = []
    served = ensure_served_model(progress=lambda f, m: calls.append((f, m)), url=url, store=store, epochs=1)
    assert registry.promoted_id(url) == served
    assert calls and calls[-1][0] == 1.0
    row = registry.get_run(served, url=url)
    assert row.kind == "head" and row.metrics["synthetic_labels"] is True
    assert ensure_served_model(url=url, store=store) == served  # nothing new trained
    assert len(registry.list_runs(url)) == 1
    out = classify(make_image(BASE_BOXES, 0), gate(), get_served_model(url=url, store=store))
    assert set(out.regions) == set(REGIONS)


def test_runs_without_progress_are_marked_failed_and_live_ones_are_kept(database_url):
    from datetime import timedelta

    from app.core.db import utcnow
    from models import registry

    dead = registry.create_run("head", {}, url=database_url)
    alive = registry.create_run("head", {}, url=database_url)
    registry.update_run(alive, url=database_url, progress=0.5)
    later = utcnow() + timedelta(minutes=16)
    registry.update_run(alive, url=database_url, progress=0.6)  # its heartbeat
    with session_scope(database_url) as session:
        row = session.get(ModelVersion, alive)
        row.updated_at = later - timedelta(minutes=1)
        session.add(row)
    assert registry.fail_stale_runs(url=database_url, now=later) == [dead]
    dead_row, alive_row = registry.get_run(dead, url=database_url), registry.get_run(alive, url=database_url)
    assert dead_row.status == "failed" and "no progress for 2 minutes" in dead_row.message
    assert alive_row.status == "running"
