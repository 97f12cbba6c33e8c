"""Who acts on a team page: the account of this connection's session cookie, read again for every
action that writes. Imported by app/main.py and the team page scripts; not a page itself.

``st.session_state`` is not asked: a button's callback runs before app/main.py refreshes it, a
fragment rerun never refreshes it, and a Streamlit session (its id shows in upload URLs) can be
borrowed. The cookie, checked against the sessions table, is refused once its session has ended
(signed out in another tab, expired, or the account removed)."""

from __future__ import annotations

import streamlit as st

from app.core import auth


def session_cookie() -> str | None:
    """The session cookie this connection was opened with (AppTest sends none)."""
    return st.context.cookies.get(auth.SESSION_COOKIE)


def acting_account() -> auth.Account | None:
    """The signed-in account of this connection now; None when nobody is (any more)."""
    return auth.account_for_cookie(session_cookie())


def account_for(action: str) -> auth.Account:
    """The acting account, if its role allows ``action`` (``auth.ACTION_ROLES``); else
    ``auth.PermissionDenied``. Call it in the code path that writes, as late as possible."""
    account = acting_account()
    auth.require(account, action)
    return account
