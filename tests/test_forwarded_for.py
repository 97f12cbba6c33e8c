"""The API's rate limit counts the connecting peer: X-Forwarded-For is believed only from proxies
named in FACETYPE_TRUSTED_PROXIES (uvicorn's own default trust of 127.0.0.1 included)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from app.api.limits import FORWARDED_KEY, LimitsMiddleware, RateLimiter, client_key
from app.core import settings
from tests.servers import free_port


def scope(peer: str, *forwarded: str) -> dict:
    return {"client": (peer, 5000), "headers": [(b"x-forwarded-for", f.encode()) for f in forwarded]}


def test_client_key_without_configured_proxies():
    assert client_key(scope("10.0.0.7")) == "10.0.0.7"
    # uvicorn replaced a loopback peer with the header's address: all such requests share a key
    assert client_key(scope("1.2.3.4", "1.2.3.4")) == FORWARDED_KEY
    assert client_key(scope("5.6.7.8", "9.9.9.9, 5.6.7.8")) == FORWARDED_KEY
    assert client_key(scope("10.0.0.7", "1.2.3.4")) == "10.0.0.7"  # a header from an untrusted peer: ignored
    # uvicorn drops a hop's port: the peer it made is still the header's address
    assert client_key(scope("1.2.3.4", "1.2.3.4:8080")) == FORWARDED_KEY
    assert client_key(scope("2001:db8::7", "[2001:db8::7]:443")) == FORWARDED_KEY


def test_client_key_behind_configured_proxies():
    proxies = frozenset({"10.0.0.1", "10.0.0.2"})
    assert client_key(scope("10.0.0.1", "203.0.113.9"), proxies) == "203.0.113.9"
    assert client_key(scope("10.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.2"), proxies) == "203.0.113.9"
    assert client_key(scope("10.0.0.1", "6.6.6.6", "203.0.113.9"), proxies) == "203.0.113.9"  # two headers
    assert client_key(scope("198.51.100.4", "203.0.113.9"), proxies) == "198.51.100.4"  # not a proxy: not believed
    assert client_key(scope("10.0.0.1", "203.0.113.9:5000, 10.0.0.2:80"), proxies) == "203.0.113.9"


@pytest.fixture
def limited_server(monkeypatch):
    """A real uvicorn (default proxy-header trust of 127.0.0.1) serving a route behind the limits."""
    monkeypatch.setenv("FACETYPE_TRUSTED_PROXIES", "")
    settings.get_settings.cache_clear()
    app = Starlette(routes=[Route("/v1/classify", lambda request: PlainTextResponse("ok"), methods=["GET"])])
    app.state.limiter = RateLimiter(per_minute=1, burst=3)
    app.add_middleware(LimitsMiddleware)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    settings.get_settings.cache_clear()


@pytest.mark.integration  # a real uvicorn on loopback
def test_rotating_x_forwarded_for_does_not_bypass_the_limit(limited_server):
    statuses = [httpx.get(f"{limited_server}/v1/classify", headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
                for i in range(8)]
    assert statuses[:3] == [200, 200, 200] and set(statuses[3:]) == {429}
    spoofed = httpx.get(f"{limited_server}/v1/classify", headers={"X-Forwarded-For": "127.0.0.1, 10.1.1.1"})
    assert spoofed.status_code == 429
    for hop in ("198.51.100.20:80", "198.51.100.21:81", "[2001:db8::5]:443", "1.1.1.1, 198.51.100.22:82"):
        assert httpx.get(f"{limited_server}/v1/classify", headers={"X-Forwarded-For": hop}).status_code == 429, hop
