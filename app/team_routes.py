"""The team sign-in and sign-out routes, served beside the Streamlit app by ``app.web``.

They exist because a Streamlit script cannot set an HttpOnly cookie: the sign-in form on the team
pages (``app/main.py``) posts here, this sets the session cookie (``app.core.auth``) and sends the
browser back to the page it came from. Forms from other sites are refused (login CSRF).
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.routing import Route

from app.core import auth
from app.core.settings import get_settings

SIGN_IN_PATH = "/auth/sign-in"
SIGN_OUT_PATH = "/auth/sign-out"
MAX_FORM_BYTES = 4096

throttle = auth.SignInThrottle.from_settings(get_settings())
if not auth.log.handlers:  # sign-in attempts go to the server's log (Streamlit sets up only its own loggers)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    auth.log.addHandler(handler)
    auth.log.setLevel(logging.INFO)


def _same_origin(request: Request) -> bool:
    """A form posted from this app's own page (a login or logout from another site is refused)."""
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _local_path(target: str) -> str:
    """Where to go back to: a path on this server only (no open redirect)."""
    parts = urlsplit(target or "/")
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return "/"
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _with_query(path: str, **params: str) -> str:
    parts = urlsplit(path)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items() if k not in {"sign_in", "wait"}}
    query.update(params)
    return parts.path + (f"?{urlencode(query)}" if query else "")


async def _form(request: Request) -> dict[str, str] | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


async def sign_in(request: Request):
    form = await _form(request)
    if form is None or not _same_origin(request):
        return PlainTextResponse("Sign-in refused: the form must come from this site's own page.", status_code=400)
    back = _local_path(form.get("return_to", "/"))
    client = request.client.host if request.client else "unknown"
    result = await run_in_threadpool(auth.sign_in, form.get("account", ""), form.get("secret", ""), client, throttle)
    if result.account is None:
        if result.problem.startswith("Wrong"):
            await asyncio.sleep(get_settings().sign_in_failure_delay_s)
        outcome = "failed" if result.problem.startswith("Wrong") else "throttled"
        return RedirectResponse(_with_query(back, sign_in=outcome), status_code=303)
    response = RedirectResponse(_with_query(back), status_code=303)
    settings = get_settings()
    response.set_cookie(auth.SESSION_COOKIE, result.cookie, max_age=int(settings.session_hours * 3600), path="/",
                        httponly=True, samesite="lax", secure=settings.session_cookie_secure)
    return response


async def sign_out(request: Request):
    form = await _form(request)
    if form is None or not _same_origin(request):
        return PlainTextResponse("Sign-out refused: the form must come from this site's own page.", status_code=400)
    await run_in_threadpool(auth.end_session, request.cookies.get(auth.SESSION_COOKIE))
    response = RedirectResponse(_local_path(form.get("return_to", "/")), status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


ROUTES = [Route(SIGN_IN_PATH, sign_in, methods=["POST"]), Route(SIGN_OUT_PATH, sign_out, methods=["POST"])]
