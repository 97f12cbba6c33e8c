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
