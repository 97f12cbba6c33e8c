"""Shared fixtures: every database test runs on SQLite and PostgreSQL, every storage test on a
local folder and on SeaweedFS. The servers are started once per test session on loopback."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import models  # noqa: F401  (sets OMP_WAIT_POLICY before a test first imports torch: see models/__init__)
from app.core import db, settings, storage
from tests.servers import PostgresServer, SeaweedServer

_names = itertools.count()
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ARTIFACTS.mkdir(exist_ok=True)


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed_server():
    server = SeaweedServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, migrated database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'facetype.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(f"t{os.getpid()}_{next(_names)}")
    db.migrate(url)
    yield url
    db.get_engine(url).dispose()


@pytest.fixture
def s3_store(seaweed_server):
    bucket = f"t{os.getpid()}-{next(_names)}"
    client = seaweed_server.client()
    client.create_bucket(Bucket=bucket)
    return storage.S3Store(client, bucket, "facetype")


@pytest.fixture(params=["folder", "s3"])
def object_store(request, tmp_path):
    if request.param == "folder":
        return storage.LocalStore(tmp_path / "store")
    return request.getfixturevalue("s3_store")


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """Point the process-wide settings at a fresh SQLite file and store folder.

    Returns the Settings in force; the caches of settings, engine and store are cleared before
    and after so tests don't see each other's databases.
    """
    for name, value in var_env(tmp_path / "var").items():
        monkeypatch.setenv(name, value)
    clear_caches()
    yield settings.get_settings()
    clear_caches()


@pytest.fixture
def cookie_sign_in(app_env, monkeypatch):
    """``cookie_sign_in(name, role)`` signs ``name`` in for real (an account, a session row, a signed
    cookie) and hands that cookie to the pages' cookie reader, which AppTest cannot (it sends no cookies):
    the pages' role and session checks then run as they do in the browser. Returns the cookie."""
    import json

    from app.core import auth
    from pages import team_account

    accounts = {}

    def sign_in(name: str, role: str = "annotator") -> str:
        accounts[name] = {"role": role, "password_hash": "unused"}
        monkeypatch.setenv("FACETYPE_ACCOUNTS", json.dumps(accounts))
        cookie = auth.start_session(auth.Account(name, role, "unused"))
        monkeypatch.setattr(team_account, "session_cookie", lambda: cookie)
        return cookie

    return sign_in


@pytest.fixture(autouse=True)
def main_module_restored():
    """AppTest leaves ``sys.modules["__main__"]`` set to the page script it ran; a process pool spawned
    later (auto-labeling) would then run that page in every worker, which dies at once."""
    import sys

    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


def clear_caches():
    from app.services.analysis import forget_cached_state
    from models.serving import clear_cache

    settings.get_settings.cache_clear()
    db.get_engine.cache_clear()
    storage.get_store.cache_clear()
    clear_cache()
    forget_cached_state()


def var_env(var: Path) -> dict[str, str]:
    return {
        "FACETYPE_VAR_DIR": str(var),
        "FACETYPE_DATABASE_URL": f"sqlite:///{var / 'facetype.db'}",
        "FACETYPE_STORAGE_URL": str(var / "store"),
    }


@pytest.fixture(scope="session")
def served_template(tmp_path_factory) -> Path:
    """A var/ folder (SQLite + folder store) with the sample project loaded and a quickly trained
    head (2 epochs) promoted. Built once per test session; copy it (``served_app_env``), never change it."""
    var = tmp_path_factory.mktemp("served-template") / "var"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in var_env(var).items():
            mp.setenv(name, value)
        clear_caches()
        try:
            from app.services.sample import load_sample_project
            from models.training.train import train

            db.migrate()
            load_sample_project()
            train(kind="head", epochs=2, batch_size=16, quiet=True, promote=True, augment=False)
            with db.get_engine().connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            db.get_engine().dispose()
        finally:
            clear_caches()
    return var


@pytest.fixture
def served_app_env(app_env, served_template):
    """app_env holding a copy of the served template: sample project plus a promoted model."""
    import shutil

    shutil.copytree(served_template, app_env.var_dir, dirs_exist_ok=True)
    clear_caches()
    return settings.get_settings()


@pytest.fixture
def served_env(served_app_env, monkeypatch):
    """served_app_env (sample project, promoted model) with the rate limit off unless a test sets it."""
    monkeypatch.setenv("FACETYPE_API_RATE_PER_MINUTE", "0")
    settings.get_settings.cache_clear()
    return settings.get_settings()


@pytest.fixture
def client(served_env):
    from app.api import api

    with TestClient(api) as c:
        yield c


def settings_for_s3(seaweed, bucket: str) -> settings.Settings:
    return seaweed.settings_fields(settings.Settings(storage_url=f"s3://{bucket}/facetype"))


TEAM_PASSWORD = "team-password-for-tests"


@pytest.fixture(scope="session")
def team_accounts_env():
    """FACETYPE_ACCOUNTS with an admin and an annotator, both with TEAM_PASSWORD."""
    import json

    from app.core.auth import hash_password

    hashed = hash_password(TEAM_PASSWORD)
    return json.dumps({"admin": {"role": "admin", "password_hash": hashed},
                       "ana": {"role": "annotator", "password_hash": hashed}})


@pytest.fixture(scope="session")
def streamlit_app(tmp_path_factory, team_accounts_env, served_template):
    """The app served by `streamlit run` on a copy of the served template (SQLite + folder store,
    sample project, promoted model)."""
    import shutil

    from tests.servers import StreamlitServer

    var = tmp_path_factory.mktemp("app") / "var"
    shutil.copytree(served_template, var)
    env = {**var_env(var), "FACETYPE_ACCOUNTS": team_accounts_env}
    server = StreamlitServer(env).start(ARTIFACTS)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    from tests.servers import CHROMIUM_ARGS

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    yield tab
    context.close()


# --------------------------------------------------------------------------------------- markers
# Every test gets one of the markers registered in pyproject.toml, decided here so that no test
# module has to say it: `pytest -m unit` is the quick loop, `make test` runs all three.
BROWSER_FIXTURES = {"browser", "page", "streamlit_app"}
INTEGRATION_FIXTURES = {
    "postgres_server", "seaweed_server", "own_seaweed", "s3_store",  # real servers
    "served_template", "served_app_env",  # the sample project with a trained, promoted model
}
INTEGRATION_PARAMS = {"database_url": "postgresql", "object_store": "s3"}  # the server half of a pair


def _runs_subprocess(item) -> bool:
    """The test function, or a function of its module that it calls, uses ``subprocess``."""
    function = getattr(item, "function", None)
    code = getattr(function, "__code__", None)
    if code is None:
        return False
    names = set(code.co_names)
    if "subprocess" in names:
        return True
    module_globals = getattr(function, "__globals__", {})
    for name in names:
        helper = module_globals.get(name)
        helper_code = getattr(helper, "__code__", None)
        if helper_code is not None and helper.__module__ == function.__module__ and "subprocess" in helper_code.co_names:
            return True
    return False


def kind_of(item) -> str:
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & BROWSER_FIXTURES:
        return "browser"
    params = getattr(getattr(item, "callspec", None), "params", {})
    if (fixtures & INTEGRATION_FIXTURES or any(params.get(name) == value for name, value in INTEGRATION_PARAMS.items())
            or _runs_subprocess(item)):
        return "integration"
    return "unit"


def pytest_collection_modifyitems(config, items):
    for item in items:
        kinds = {mark.name for mark in item.iter_markers()} & {"unit", "integration", "browser"}
        if not kinds:  # a test module may still mark a test itself
            item.add_marker(kind_of(item))
