"""The server's start (app/web.py): the first page's imports and the project's preparation run on a
thread as the server starts, while the first browser loads the page; the first script run's own
preparation (app/main.py) waits for that one rather than running beside it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import threading
import time

import pytest

from app.services import bootstrap
from app.services.bootstrap import ConfigurationError


@pytest.mark.unit
def test_two_preparations_at_once_run_one_after_the_other(monkeypatch):
    running, most = [], []

    def slow_prepare(settings):
        running.append(1)
        most.append(len(running))
        time.sleep(0.2)
        running.pop()

    monkeypatch.setattr(bootstrap, "_prepare", slow_prepare)
    threads = [threading.Thread(target=bootstrap.prepare, args=(object(),)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert most == [1, 1, 1]  # never two migrations of a new database at once


@pytest.mark.unit
def test_the_server_prepares_ahead_and_leaves_a_failure_to_the_first_page(monkeypatch, caplog):
    from app import web

    calls = []
    monkeypatch.setattr(bootstrap, "prepare", lambda: calls.append("prepared"))
    try:
        web.prepare_ahead()
        assert calls == ["prepared"]
        assert gc.get_freeze_count() > 0  # what the start loaded is out of the post-run collection's sight

        def unreachable():
            raise ConfigurationError("db down at 10.0.0.5", "The database cannot be reached.")

        monkeypatch.setattr(bootstrap, "prepare", unreachable)
        with caplog.at_level("INFO", logger="app.web"):
            web.prepare_ahead()  # no exception: the first page prepares again and says what is wrong
        assert any("not prepared ahead" in r.getMessage() for r in caplog.records)
    finally:
        gc.unfreeze()


@pytest.mark.unit
def test_the_servers_lifespan_prepares_ahead_and_releases_visitors_media(monkeypatch):
    from app import web

    prepared, released = threading.Event(), []

    @contextlib.asynccontextmanager
    async def release(asgi_app):
        released.append("start")
        yield
        released.append("stop")

    monkeypatch.setattr(web, "prepare_ahead", prepared.set)
    monkeypatch.setattr(web, "release_visitor_media", release)

    async def serve():
        async with web.lifespan(None):
            assert released == ["start"]

    # in a thread of its own: Playwright's sync API may already run an event loop in this one
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, serve()).result()
    assert released == ["start", "stop"]
    assert prepared.wait(10)
