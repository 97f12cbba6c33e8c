"""Team accounts: names with a role (``annotator``, ``lead`` or ``admin``) and a bcrypt password hash.

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
    needed = ACTION_ROLES[action]
    return account is not None and ROLES.index(account.role) >= ROLES.index(needed)


def require(account: Account | None, action: str) -> None:
    if not can(account, action):
        who = f"{account.name} ({account.role})" if account else "nobody signed in"
        raise PermissionDenied(f"{action.replace('_', ' ')} needs the {ACTION_ROLES[action]} role; {who} cannot.")
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
