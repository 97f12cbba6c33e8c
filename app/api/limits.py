"""Per-client rate limiting and the body/header limits, as pure ASGI middleware."""

from __future__ import annotations

import logging
import math
import threading
import time

from fastapi.responses import JSONResponse

from app.api.errors import error_response, max_request_bytes
from app.core.settings import get_settings

log = logging.getLogger("facetype.api")


# ============================================================================ rate limiting


class RateLimiter:
    """A token bucket per client key: ``burst`` tokens, refilled at ``per_minute`` a minute.
    ``per_minute`` 0 turns it off. Memory is bounded: full buckets are dropped when the table grows."""

    MAX_CLIENTS = 10_000

    def __init__(self, per_minute: int, burst: int, clock=time.monotonic):
        self.rate = per_minute / 60.0
        self.burst = float(max(1, burst))
        self.enabled = per_minute > 0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 when the request may go on, else the seconds until a token is free."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                if len(self._buckets) > self.MAX_CLIENTS:
                    self._prune(now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        for k, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * self.rate >= self.burst:
                del self._buckets[k]
        if len(self._buckets) > self.MAX_CLIENTS:  # still too many active clients: forget the oldest half
            for k, _ in sorted(self._buckets.items(), key=lambda item: item[1][1])[: len(self._buckets) // 2]:
                del self._buckets[k]


def limiter_from_settings() -> RateLimiter:
    settings = get_settings()
    return RateLimiter(max(0, settings.api_rate_per_minute), max(0, settings.api_rate_burst))


FORWARDED_KEY = "forwarded-by-an-unconfigured-proxy"


def client_key(scope, trusted_proxies: frozenset[str] = frozenset()) -> str:
    """The address a request is counted under: the connecting peer, or, only behind proxies named
    in ``trusted_proxies`` (FACETYPE_TRUSTED_PROXIES), the client their X-Forwarded-For names.

    uvicorn itself replaces the peer with an X-Forwarded-For address when the peer is one it trusts
    (FORWARDED_ALLOW_IPS, by default 127.0.0.1), before the app sees the request; so a peer that is
    one of the header's addresses came from the header. Without configured proxies, all such
    requests share one key: rotating the header buys nothing."""
    client = scope.get("client") or ("unknown", 0)
    host = str(client[0])
    hops = [_hop_host(hop.strip()) for name, value in scope.get("headers") or [] if name.lower() == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",") if hop.strip()]
    if not hops:
        return host
    if not trusted_proxies:
        return FORWARDED_KEY if host in hops else host
    if host in hops or host not in trusted_proxies:  # uvicorn did the walk already, or the peer is no proxy
        return host
    for hop in reversed(hops):
        if hop not in trusted_proxies:
            return hop
    return host


def _hop_host(hop: str) -> str:
    """The address of an X-Forwarded-For hop without its port (``1.2.3.4:80``, ``[2001:db8::1]:443``),
    as uvicorn reads it."""
    if hop.startswith("[") and "]" in hop:
        return hop[1:hop.index("]")]
    if hop.count(":") == 1:
        return hop.split(":")[0]
    return hop


def trusted_proxies_from_settings() -> frozenset[str]:
    return frozenset(h.strip() for h in get_settings().trusted_proxies.split(",") if h.strip())


def _rate_limited(path: str) -> bool:
    """Classify costs CPU and the result endpoints must not be enumerated; the rest is cheap."""
    return path == "/RegisterResult" or path.startswith("/v1/classify") or path.startswith("/v1/results")


# ============================================================================ pure ASGI middleware


class _BodyTooLarge(Exception):
    pass


#: What a service that could not start still answers: its health (saying why) and its documentation.
ANSWERED_WHILE_NOT_READY = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


class LimitsMiddleware:
    """Before the app sees a request: refuse a service that could not start (503), a client over
    its rate (429) and a body over the size limit (413; by Content-Length, and while streaming for
    bodies without one)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        app_state = getattr(scope.get("app"), "state", None)

        config_error = getattr(app_state, "config_error", None)
        if config_error and path in ANSWERED_WHILE_NOT_READY:  # no body to limit; the settings may be unreadable
            return await self.app(scope, receive, send)
        if config_error:
            return await error_response(503, "unavailable", f"The service cannot start: {config_error}")(scope, receive, send)

        if _rate_limited(path):
            limiter = getattr(app_state, "limiter", None)
            if limiter is not None:
                wait = limiter.take(client_key(scope, trusted_proxies_from_settings()))
                if wait > 0:
                    retry = str(max(1, math.ceil(wait)))
                    return await error_response(
                        429, "rate_limited", f"Too many requests from this address; try again in {retry} s.",
                        headers={"Retry-After": retry})(scope, receive, send)

        limit = max_request_bytes()
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return await error_response(400, "bad_request", "The Content-Length header is not a number.")(scope, receive, send)
            if size > limit:
                return await _too_large(limit)(scope, receive, send)

        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    mb = get_settings().max_upload_mb
    return error_response(413, "request_too_large",
                          f"The request is larger than allowed ({limit // 1024} KiB for a photo of at most {mb} MB).")
