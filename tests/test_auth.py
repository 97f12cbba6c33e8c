import json

import pytest

from app.core.auth import add_account, authenticate, hash_password, load_accounts


def test_accounts_from_secrets_and_environment(tmp_path):
    secrets = tmp_path / "secrets.toml"
    add_account("ana", "annotator", "correct horse", secrets_path=secrets)
    env = {"FACETYPE_ACCOUNTS": json.dumps({"root": {"role": "admin", "password_hash": hash_password("s3cret-pw")}})}
    accounts = load_accounts(environ=env, secrets_path=secrets)
    assert authenticate(accounts, "ana", "correct horse").role == "annotator"
    assert authenticate(accounts, "root", "s3cret-pw").is_admin
    assert authenticate(accounts, "ana", "wrong") is None
    assert authenticate(accounts, "nobody", "correct horse") is None
    assert "correct horse" not in secrets.read_text()


def test_an_existing_account_is_not_replaced(tmp_path):
    secrets = tmp_path / "secrets.toml"
    add_account("ana", "admin", "first-password", secrets_path=secrets)
    with pytest.raises(ValueError, match="already exists"):
        add_account("ana", "admin", "second-password", secrets_path=secrets)


def test_bad_role_is_refused(tmp_path):
    with pytest.raises(ValueError):
        load_accounts(environ={"FACETYPE_ACCOUNTS": json.dumps({"x": {"role": "god", "password_hash": "h"}})},
                      secrets_path=tmp_path / "none.toml")


def test_each_role_may_do_what_the_roles_below_it_may_and_nothing_above():
    from app.core.auth import Account, PermissionDenied, can, require

    annotator, lead, admin = (Account(r, r, "x") for r in ("annotator", "lead", "admin"))
    assert can(annotator, "label") and not can(annotator, "store_ratings") and not can(annotator, "train")
    assert can(lead, "store_ratings") and can(lead, "train") and not can(lead, "promote")
    assert can(admin, "promote") and can(admin, "label")
    assert not can(None, "label")
    with pytest.raises(PermissionDenied, match="needs the lead role; annotator"):
        require(annotator, "apply_labels")
    require(lead, "apply_labels")


# ------------------------------------------------------------------ password policy
@pytest.mark.parametrize("password, why", [
    ("short-pw", "at least 12"),
    ("password", "at least 12"),
    ("password123456", "common passwords"),
    ("Qwertyuiop!!", "common passwords"),
    ("iloveyou2024!", "common passwords"),
    ("aaaaaaaaaaaaaaaa", "different characters"),
    ("my-name-is-ana-ok", "account name"),
])
def test_weak_passwords_are_refused(tmp_path, password, why):
    with pytest.raises(ValueError, match=why):
        add_account("ana", "annotator", password, secrets_path=tmp_path / "secrets.toml")
    assert not (tmp_path / "secrets.toml").exists()


def test_the_command_refuses_a_common_password_and_accepts_a_good_one(tmp_path, monkeypatch, capsys):
    import io

    from app.core import auth

    monkeypatch.setattr(auth, "SECRETS_PATH", tmp_path / "secrets.toml")
    monkeypatch.setattr("sys.stdin", io.StringIO("password1234\n"))
    monkeypatch.setattr(auth, "add_account", lambda *a, **k: add_account(*a, secrets_path=tmp_path / "secrets.toml"))
    with pytest.raises(SystemExit):
        auth.main(["add", "bob", "--password-stdin"])
    assert "common passwords" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("blue-kettle-violin-7\n"))
    assert auth.main(["add", "bob", "--role", "lead", "--password-stdin"]) == 0
    assert authenticate(load_accounts({}, tmp_path / "secrets.toml"), "bob", "blue-kettle-violin-7").role == "lead"


def test_a_password_longer_than_bcrypt_takes_is_refused_not_an_error():
    from app.core.auth import Account

    accounts = {"ana": Account("ana", "annotator", hash_password("x" * 72))}
    assert authenticate(accounts, "ana", "x" * 72 + "tail") is None
    assert authenticate(accounts, "ana", "x" * 72) is not None


# ------------------------------------------------------------------ throttle
class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_throttle_locks_an_account_after_its_failures_until_the_window_passes():
    from app.core.auth import SignInThrottle

    clock = Clock()
    throttle = SignInThrottle(per_account=3, per_client=100, window_s=600, clock=clock)
    for client in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):  # spreading guesses over clients does not help
        assert throttle.retry_after("Ana", client) == 0
        throttle.failed("ana", client)
    assert throttle.retry_after("ana", "10.0.0.9") == pytest.approx(600)
    assert throttle.retry_after("bob", "10.0.0.9") == 0
    clock.now += 601
    assert throttle.retry_after("ana", "10.0.0.9") == 0


def test_throttle_locks_a_client_that_guesses_many_names():
    from app.core.auth import SignInThrottle

    clock = Clock()
    throttle = SignInThrottle(per_account=3, per_client=5, window_s=600, clock=clock)
    for i in range(5):
        throttle.failed(f"name{i}", "10.0.0.1")
        clock.now += 10
    assert throttle.retry_after("someone-new", "10.0.0.1") == pytest.approx(600 - 50)
    assert throttle.retry_after("someone-new", "10.0.0.2") == 0


def test_a_success_clears_the_account_but_not_the_client():
    from app.core.auth import SignInThrottle

    throttle = SignInThrottle(per_account=2, per_client=3, window_s=600, clock=Clock())
    throttle.failed("ana", "c")
    throttle.failed("ana", "c")
    throttle.succeeded("ana")
    throttle.failed("ana", "c")
    assert throttle.retry_after("ana", "other") == 0
    assert throttle.retry_after("bob", "c") > 0


def test_throttle_memory_is_bounded():
    from app.core.auth import SignInThrottle

    throttle = SignInThrottle(per_account=3, per_client=10**9, window_s=600, clock=Clock())
    throttle.MAX_KEYS = 50
    for i in range(500):
        throttle.failed(f"n{i}", "c")
    assert len(throttle._failures) <= 50


# ------------------------------------------------------------------ sessions and sign-in
@pytest.fixture
def team(app_env):
    from app.core import db

    db.migrate()
    from app.core.auth import Account

    hashed = hash_password("team-password-for-tests")
    return {"ana": Account("ana", "annotator", hashed), "lee": Account("lee", "lead", hashed)}


def fresh_throttle():
    from app.core.auth import SignInThrottle

    return SignInThrottle(per_account=3, per_client=10, window_s=600)


def test_sign_in_starts_a_session_the_cookie_names(team):
    from app.core.auth import account_for_cookie, sign_in

    result = sign_in("ana", "team-password-for-tests", "127.0.0.1", fresh_throttle(), accounts=team)
    assert result.account.name == "ana" and result.cookie
    assert account_for_cookie(result.cookie, accounts=team).name == "ana"
    again = sign_in("ana", "team-password-for-tests", "127.0.0.1", fresh_throttle(), accounts=team)
    assert again.cookie != result.cookie  # every sign-in is a fresh session


def test_forged_or_altered_cookies_sign_nobody_in(team):
    from app.core.auth import account_for_cookie, sign_in

    cookie = sign_in("ana", "team-password-for-tests", "c", fresh_throttle(), accounts=team).cookie
    token, signature = cookie.split(".")
    for forged in (None, "", token, f"{token}.", f"{token}.{'0' * len(signature)}", f"x{token}.{signature}",
                   f"{token}.{signature}x", "..", "a.b.c"):
        assert account_for_cookie(forged, accounts=team) is None, forged


def test_sign_out_revokes_the_session_everywhere(team):
    from app.core.auth import account_for_cookie, end_session, sign_in

    cookie = sign_in("ana", "team-password-for-tests", "c", fresh_throttle(), accounts=team).cookie
    assert end_session(cookie) is True
    assert account_for_cookie(cookie, accounts=team) is None
    assert end_session(cookie) is False


def test_an_expired_session_signs_nobody_in(team, monkeypatch):
    from app.core.auth import account_for_cookie, start_session
    from app.core.settings import get_settings

    short = get_settings().model_copy(update={"session_hours": -0.001})
    cookie = start_session(team["ana"], settings=short)
    assert account_for_cookie(cookie, settings=short, accounts=team) is None

    from sqlmodel import func, select

    from app.core.db import TeamSession, session_scope

    start_session(team["ana"])  # a new sign-in clears the expired rows
    with session_scope() as session:
        assert session.exec(select(func.count()).select_from(TeamSession)).one() == 1


def test_the_role_comes_from_the_accounts_now_and_a_removed_account_is_signed_out(team):
    import dataclasses

    from app.core.auth import account_for_cookie, start_session

    cookie = start_session(team["ana"])
    promoted = {"ana": dataclasses.replace(team["ana"], role="lead")}
    assert account_for_cookie(cookie, accounts=promoted).role == "lead"
    assert account_for_cookie(cookie, accounts={}) is None


def test_a_cookie_signed_with_another_secret_is_refused(team):
    from app.core.auth import account_for_cookie, start_session
    from app.core.settings import get_settings

    other = get_settings().model_copy(update={"session_secret": "another deployment's key"})
    cookie = start_session(team["ana"], settings=other)
    assert account_for_cookie(cookie, accounts=team) is None
    assert account_for_cookie(cookie, settings=other, accounts=team).name == "ana"


def test_session_secret_file_is_private(team):
    from app.core.auth import start_session
    from app.core.settings import get_settings

    start_session(team["ana"])
    path = get_settings().var_dir / "session_secret"
    assert path.stat().st_mode & 0o777 == 0o600 and len(path.read_text().strip()) == 64


def test_sign_in_is_throttled_and_logged_without_the_password(team, caplog):
    import logging

    from app.core.auth import sign_in

    throttle = fresh_throttle()
    with caplog.at_level(logging.INFO, logger="facetype.auth"):
        for _ in range(3):
            assert sign_in("ana", "wrong-guess-123", "10.1.1.1", throttle, accounts=team).problem == \
                "Wrong name or password."
        locked = sign_in("ana", "team-password-for-tests", "10.1.1.2", throttle, accounts=team)
        assert locked.account is None and locked.problem.startswith("Too many failed sign-ins")
        assert sign_in("lee", "team-password-for-tests", "10.1.1.1", throttle, accounts=team).account.name == "lee"
    text = caplog.text
    assert text.count("sign-in failed account='ana'") == 3 and "throttled" in text and "sign-in account='lee'" in text
    assert "10.1.1.1" in text
    assert "wrong-guess" not in text and "team-password-for-tests" not in text
