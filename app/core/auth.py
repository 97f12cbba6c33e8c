"""Team accounts: names with a role (``annotator``, ``lead`` or ``admin``) and a bcrypt password hash;
sign-in, its throttle and the sessions it starts.

Accounts come from the ``[accounts.NAME]`` tables of ``.streamlit/secrets.toml``
(``role = "admin"``, ``password_hash = "$2b$..."``) and, for deployments and tests, from the
environment variable ``FACETYPE_ACCOUNTS`` holding the same as JSON. No account has a default
password: ``python -m app.core.auth add NAME --role admin`` writes one to secrets.toml, after the
password policy (``check_password``) accepts it.

A sign-in (``sign_in``, called by the ``/auth/sign-in`` route of ``app.web``) starts a fresh
``TeamSession`` row and hands back a cookie value ``TOKEN.SIGNATURE``: a random token, HMAC-signed with
``session_secret``. The browser keeps it in an HttpOnly cookie; every script run checks it
(``account_for_cookie``) against the table, so it survives reloads and new tabs until it expires or
sign-out revokes it, and a Streamlit session id alone (it shows in upload URLs) signs nobody in.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import getpass
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
import tomllib
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import bcrypt
from sqlmodel import delete

from app.core.db import TeamSession, session_scope, utcnow
from app.core.settings import PROJECT_ROOT, Settings, get_settings

log = logging.getLogger("facetype.auth")

#: Ordered by what they may do: each role may do everything the roles before it may.
ROLES = ("annotator", "lead", "admin")
#: The least role each team action needs. Checked where the action is carried out (``require``), not only
#: by hiding its button: a replayed widget message or a direct call must be refused too.
ACTION_ROLES = {
    "label": "annotator",          # review, correct, accept, flag, reject photos
    "retrain": "annotator",        # ask for a run from the Labeling page (a lead promotes it)
    "import_photos": "lead",
    "import_annotations": "lead",
    "store_ratings": "lead",
    "apply_labels": "lead",
    "train": "lead",
    "cancel_run": "lead",
    "promote": "admin",
    "import_server_folder": "admin",  # reads whatever the app process can read
    "manage_accounts": "admin",
}


class PermissionDenied(PermissionError):
    """A signed-in account (or nobody) asked for an action its role does not allow."""


def can(account: Account | None, action: str) -> bool:
    return has_role(account, ACTION_ROLES[action])


def require(account: Account | None, action: str) -> None:
    if not can(account, action):
        who = f"{account.name} ({account.role})" if account else "nobody signed in"
        raise PermissionDenied(f"{action.replace('_', ' ')} needs the {ACTION_ROLES[action]} role; {who} cannot.")


def has_role(account: Account | None, role: str) -> bool:
    """Whether ``account`` holds ``role`` or a higher one (for pages and sections, as ``can`` for actions)."""
    return account is not None and ROLES.index(account.role) >= ROLES.index(role)


SECRETS_PATH = PROJECT_ROOT / ".streamlit" / "secrets.toml"


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the name is unknown, so a wrong name costs as long as a wrong password.
    Made on first use, not at import: the web server imports this module as it starts."""
    return bcrypt.hashpw(b"not a password", bcrypt.gensalt()).decode()


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password_hash: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


#: The project's own loader (sample project, bootstrap): not an account anyone can sign in as.
SYSTEM = Account("facetype (system)", "admin", password_hash="")


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def _accounts_from_table(table: dict) -> dict[str, Account]:
    accounts = {}
    for name, entry in table.items():
        role = entry.get("role", "annotator")
        if role not in ROLES or not entry.get("password_hash"):
            raise ValueError(f"account {name!r} needs a role in {ROLES} and a password_hash")
        accounts[name] = Account(name, role, entry["password_hash"])
    return accounts


def load_accounts(environ=None, secrets_path: Path = SECRETS_PATH) -> dict[str, Account]:
    environ = os.environ if environ is None else environ
    table = {}
    if secrets_path.is_file():
        with secrets_path.open("rb") as f:
            table.update(tomllib.load(f).get("accounts", {}))
    if environ.get("FACETYPE_ACCOUNTS"):
        table.update(json.loads(environ["FACETYPE_ACCOUNTS"]))
    return _accounts_from_table(table)


def authenticate(accounts: dict[str, Account], name: str, password: str) -> Account | None:
    account = accounts.get(name.strip())
    hashed = account.password_hash if account else _dummy_hash()
    secret = password.encode()
    fits = len(secret) <= 72  # bcrypt refuses longer ones: such a password never matches (same time spent)
    matches = bcrypt.checkpw(secret if fits else secret[:72], hashed.encode()) and fits
    return account if account and matches else None


MIN_PASSWORD_LENGTH = 12
COMMON_PASSWORDS_PATH = Path(__file__).with_name("common_passwords.txt")


def _common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_PATH.read_text("utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def check_password(password: str, name: str = "") -> None:
    """Raise ``ValueError`` saying why ``password`` is too weak: shorter than ``MIN_PASSWORD_LENGTH``,
    a common password (also with digits or symbols added at the end), one repeated character, or
    containing the account name."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"use a password of at least {MIN_PASSWORD_LENGTH} characters")
    lowered = password.lower()
    common = _common_passwords()
    if lowered in common or re.sub(r"[\W\d_]+$", "", lowered) in common or lowered.strip("0123456789!?.") in common:
        raise ValueError("that password is on the list of common passwords; choose another")
    if len(set(password)) < 4:
        raise ValueError("use a password with more than three different characters")
    if name and len(name) >= 3 and name.lower() in lowered:
        raise ValueError("the password must not contain the account name")


def add_account(name: str, role: str, password: str, secrets_path: Path = SECRETS_PATH) -> None:
    """Append an account to secrets.toml (refuses to replace an existing one, and weak passwords)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if not re.fullmatch(r"[\w.@-]{1,64}", name):
        raise ValueError("an account name is 1-64 letters, digits or . _ @ -")
    check_password(password, name)
    if name in load_accounts(environ={}, secrets_path=secrets_path):
        raise ValueError(f"account {name!r} already exists in {secrets_path}")
    secrets_path.parent.mkdir(parents=True, exist_ok=True)
    with secrets_path.open("a", encoding="utf-8") as f:
        f.write(f'\n[accounts.{json.dumps(name)}]\nrole = "{role}"\npassword_hash = "{hash_password(password)}"\n')
    secrets_path.chmod(0o600)


class SignInThrottle:
    """Failed sign-ins per account name and per client address in a sliding window: past the limit
    the next attempts are refused without checking the password until the oldest failure leaves the
    window. Kept in the web process's memory (one process serves the pages); bounded in size."""

    MAX_KEYS = 10_000

    def __init__(self, per_account: int, per_client: int, window_s: float, clock=time.monotonic):
        self.limits = {"account": per_account, "client": per_client}
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SignInThrottle:
        return cls(settings.sign_in_failures_per_account, settings.sign_in_failures_per_client,
                   settings.sign_in_lockout_minutes * 60)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def retry_after(self, name: str, client: str) -> float:
        """Seconds until ``name`` may try again from ``client``; 0 when it may now."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for kind, value in (("account", name.lower()), ("client", client)):
                times = self._recent((kind, value), now)
                if len(times) >= self.limits[kind]:
                    wait = max(wait, times[-self.limits[kind]] + self.window_s - now)
        return wait

    def failed(self, name: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) >= self.MAX_KEYS:  # drop the keys whose failures are all old
                for key in [k for k, times in self._failures.items() if not self._recent(k, now)]:
                    del self._failures[key]
                while len(self._failures) >= self.MAX_KEYS:
                    del self._failures[next(iter(self._failures))]
            for key in (("account", name.lower()), ("client", client)):
                self._failures.setdefault(key, self._recent(key, now)).append(now)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(("account", name.lower()), None)


@dataclass(frozen=True)
class SignInResult:
    account: Account | None
    #: The cookie value for a new session (None when refused).
    cookie: str | None = None
    #: Why it was refused, for the person signing in.
    problem: str = ""


SESSION_COOKIE = "facetype_session"


def _session_secret(settings: Settings) -> bytes:
    if settings.session_secret:
        return settings.session_secret.encode()
    path = settings.var_dir / "session_secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _signature(token: str, settings: Settings) -> str:
    return hmac.new(_session_secret(settings), token.encode(), hashlib.sha256).hexdigest()


def _token_from_cookie(cookie: str | None, settings: Settings) -> str | None:
    if not isinstance(cookie, str):  # no cookie (or, under AppTest, a stand-in object)
        return None
    token, _, signature = cookie.partition(".")
    if not token or not hmac.compare_digest(signature, _signature(token, settings)):
        return None
    return token


def start_session(account: Account, client: str = "", settings: Settings | None = None) -> str:
    """A fresh session for ``account``; returns the cookie value."""
    settings = settings or get_settings()
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with session_scope(settings.resolved_database_url) as session:
        session.exec(delete(TeamSession).where(TeamSession.expires_at <= now))  # expired ones are dead weight
        session.add(TeamSession(token_sha256=hashlib.sha256(token.encode()).hexdigest(), account=account.name,
                                created_at=now, expires_at=now + timedelta(hours=settings.session_hours),
                                client=client[:64] or None))
    return f"{token}.{_signature(token, settings)}"


@contextlib.contextmanager
def _session_row(cookie: str | None, settings: Settings):
    """The unrevoked team session the cookie names (None for a missing, forged or revoked one), in
    an open database session that commits what is changed on it."""
    token = _token_from_cookie(cookie, settings)
    if token is None:
        yield None
        return
    with session_scope(settings.resolved_database_url) as session:
        row = session.get(TeamSession, hashlib.sha256(token.encode()).hexdigest())
        yield None if row is None or row.revoked_at is not None else row


def account_for_cookie(cookie: str | None, settings: Settings | None = None,
                       accounts: dict[str, Account] | None = None) -> Account | None:
    """The account whose unexpired, unrevoked session the cookie names, with its current role; None
    for a missing, forged, expired or revoked cookie, or an account that no longer exists."""
    with _session_row(cookie, settings or get_settings()) as row:
        if row is None or row.expires_at <= utcnow():
            return None
        name = row.account
    return (load_accounts() if accounts is None else accounts).get(name)


def end_session(cookie: str | None, settings: Settings | None = None) -> bool:
    """Revoke the cookie's session (sign-out); True when there was one to end."""
    with _session_row(cookie, settings or get_settings()) as row:
        if row is None:
            return False
        row.revoked_at = utcnow()
        log.info("sign-out account=%r", row.account)
    return True


def sign_in(name: str, password: str, client: str, throttle: SignInThrottle,
            accounts: dict[str, Account] | None = None, settings: Settings | None = None) -> SignInResult:
    """Check a sign-in attempt against the throttle and the accounts; log it (never the password);
    on success start a fresh session."""
    settings = settings or get_settings()
    name = name.strip()[:64]
    wait = throttle.retry_after(name, client)
    if wait > 0:
        log.warning("sign-in refused (throttled) account=%r client=%s retry_after=%.0fs", name, client, wait)
        return SignInResult(None, problem=f"Too many failed sign-ins. Try again in {max(1, round(wait / 60))} min.")
    accounts = load_accounts() if accounts is None else accounts
    account = authenticate(accounts, name, password)
    if account is None:
        throttle.failed(name, client)
        log.warning("sign-in failed account=%r known=%s client=%s", name, name in accounts, client)
        return SignInResult(None, problem="Wrong name or password.")
    throttle.succeeded(name)
    log.info("sign-in account=%r role=%s client=%s", account.name, account.role, client)
    return SignInResult(account, cookie=start_session(account, client, settings))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Manage team accounts in .streamlit/secrets.toml")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="add an account")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="annotator")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    init = sub.add_parser("init", help="create an admin account with a random password if there is no account")
    init.add_argument("--name", default="admin")
    args = parser.parse_args(argv)
    if args.command == "init":
        if load_accounts():
            return 0
        password = secrets.token_urlsafe(12)
        add_account(args.name, "admin", password)
        print(f"Created team account {args.name!r} (admin) with password: {password}")
        print(f"It is stored hashed in {SECRETS_PATH}; add more with: python -m app.core.auth add NAME --role annotator")
        return 0
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    try:
        add_account(args.name, args.role, password)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"Added {args.role} {args.name!r} to {SECRETS_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
