"""Shared fixtures: every database test runs on SQLite and PostgreSQL, every storage test on a
local folder and on SeaweedFS. The servers are started once per test session on loopback."""

from __future__ import annotations

import dataclasses
import itertools
import os
from pathlib import Path

import pytest

from app import db, settings, storage
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
    monkeypatch.setenv("FACETYPE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("FACETYPE_DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'facetype.db'}")
    monkeypatch.setenv("FACETYPE_STORAGE_URL", str(tmp_path / "var" / "store"))
    _clear_caches()
    yield settings.get_settings()
    _clear_caches()


def _clear_caches():
    settings.get_settings.cache_clear()
    db.get_engine.cache_clear()
    storage.get_store.cache_clear()


def settings_for_s3(seaweed, bucket: str) -> settings.Settings:
    return seaweed.settings_fields(dataclasses.replace(settings.Settings(), storage_url=f"s3://{bucket}/facetype"))


TEAM_PASSWORD = "team-password-for-tests"


@pytest.fixture(scope="session")
def team_accounts_env():
    """FACETYPE_ACCOUNTS with an admin and an annotator, both with TEAM_PASSWORD."""
    import json

    from app.auth import hash_password

    hashed = hash_password(TEAM_PASSWORD)
    return json.dumps({"admin": {"role": "admin", "password_hash": hashed},
                       "ana": {"role": "annotator", "password_hash": hashed}})


@pytest.fixture(scope="session")
def streamlit_app(tmp_path_factory, team_accounts_env):
    """The app served by `streamlit run` on a fresh SQLite + folder store with the sample project
    loaded and a quickly trained model promoted."""
    from tests.servers import StreamlitServer

    var = tmp_path_factory.mktemp("app-var")
    env = {
        "FACETYPE_VAR_DIR": str(var),
        "FACETYPE_DATABASE_URL": f"sqlite:///{var / 'facetype.db'}",
        "FACETYPE_STORAGE_URL": str(var / "store"),
        "FACETYPE_ACCOUNTS": team_accounts_env,
    }
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
