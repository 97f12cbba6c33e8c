"""Team accounts: names with a role (``admin`` or ``annotator``) and a bcrypt password hash.

Accounts come from the ``[accounts.NAME]`` tables of ``.streamlit/secrets.toml``
(``role = "admin"``, ``password_hash = "$2b$..."``) and, for deployments and tests, from the
environment variable ``FACETYPE_ACCOUNTS`` holding the same as JSON. No account has a default
password: ``python -m app.core.auth add NAME --role admin`` writes one to secrets.toml.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from app.core.settings import PROJECT_ROOT

ROLES = ("admin", "annotator")
SECRETS_PATH = PROJECT_ROOT / ".streamlit" / "secrets.toml"
#: Checked against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(b"not a password", bcrypt.gensalt()).decode()


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password_hash: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


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
    hashed = account.password_hash if account else _DUMMY_HASH
    matches = bcrypt.checkpw(password.encode(), hashed.encode())
    return account if account and matches else None


def add_account(name: str, role: str, password: str, secrets_path: Path = SECRETS_PATH) -> None:
    """Append an account to secrets.toml (refuses to replace an existing one)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if name in load_accounts(environ={}, secrets_path=secrets_path):
        raise ValueError(f"account {name!r} already exists in {secrets_path}")
    secrets_path.parent.mkdir(parents=True, exist_ok=True)
    with secrets_path.open("a", encoding="utf-8") as f:
        f.write(f'\n[accounts.{json.dumps(name)}]\nrole = "{role}"\npassword_hash = "{hash_password(password)}"\n')
    secrets_path.chmod(0o600)


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
    if len(password) < 8:
        parser.error("use a password of at least 8 characters")
    add_account(args.name, args.role, password)
    print(f"Added {args.role} {args.name!r} to {SECRETS_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
