"""The sign-in and sign-out routes (app.team_routes) over HTTP: the cookie they set, what they refuse."""

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from app.core import auth, db
from tests.conftest import TEAM_PASSWORD

ORIGIN = {"origin": "http://testserver"}


@pytest.fixture
def http(app_env, monkeypatch, team_accounts_env):
    from app import team_routes

    monkeypatch.setenv("FACETYPE_ACCOUNTS", team_accounts_env)
    monkeypatch.setenv("FACETYPE_SIGN_IN_FAILURE_DELAY_S", "0")
    from app.core.settings import get_settings

    get_settings.cache_clear()
    monkeypatch.setattr(team_routes, "throttle", auth.SignInThrottle(per_account=3, per_client=10, window_s=600))
    db.migrate()
    with TestClient(Starlette(routes=team_routes.ROUTES), follow_redirects=False) as client:
        yield client


def post_sign_in(http, name="ana", password=TEAM_PASSWORD, return_to="/labeling?photo=3", headers=ORIGIN):
    return http.post("/auth/sign-in", data={"account": name, "secret": password, "return_to": return_to},
                     headers=headers)


def test_sign_in_sets_a_signed_httponly_cookie_and_goes_back(http):
    response = post_sign_in(http)
    assert response.status_code == 303 and response.headers["location"] == "/labeling?photo=3"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{auth.SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Max-Age=43200" in cookie
    assert auth.account_for_cookie(http.cookies[auth.SESSION_COOKIE]).name == "ana"


def test_wrong_password_goes_back_with_a_note_and_no_cookie(http):
    response = post_sign_in(http, password="not-the-password")
    assert response.status_code == 303 and response.headers["location"] == "/labeling?photo=3&sign_in=failed"
    assert "set-cookie" not in response.headers


def test_repeated_guesses_are_throttled(http):
    for _ in range(3):
        post_sign_in(http, password="guess-guess-guess")
    response = post_sign_in(http)  # even the right password, until the window passes
    assert response.headers["location"].endswith("sign_in=throttled") and "set-cookie" not in response.headers


@pytest.mark.parametrize("headers", [{}, {"origin": "https://evil.example"}, {"referer": "https://evil.example/x"}])
def test_a_form_from_another_site_is_refused(http, headers):
    response = post_sign_in(http, headers=headers)
    assert response.status_code == 400 and "set-cookie" not in response.headers


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)", "labeling"])
def test_it_only_goes_back_to_this_site(http, target):
    assert post_sign_in(http, return_to=target).headers["location"] == "/"


def test_an_oversized_form_is_refused(http):
    response = http.post("/auth/sign-in", content=b"account=" + b"a" * 10_000, headers={
        **ORIGIN, "content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400


def test_sign_out_revokes_the_session_and_clears_the_cookie(http):
    post_sign_in(http)
    cookie = http.cookies[auth.SESSION_COOKIE]
    response = http.post("/auth/sign-out", data={"return_to": "/survey"}, headers=ORIGIN)
    assert response.status_code == 303 and response.headers["location"] == "/survey"
    assert f'{auth.SESSION_COOKIE}=""' in response.headers["set-cookie"] or "Max-Age=0" in response.headers["set-cookie"]
    assert auth.account_for_cookie(cookie) is None
