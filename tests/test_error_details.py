"""Visitors never see a traceback: the app's Streamlit config redacts uncaught errors (the server
log keeps them)."""

from __future__ import annotations

from streamlit import config
from streamlit.testing.v1 import AppTest

from app.core.settings import PROJECT_ROOT


def test_uncaught_errors_are_redacted_for_visitors(monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    config.get_config_options(force_reparse=True)
    try:
        assert config.get_option("client.showErrorDetails") == "none"
        at = AppTest.from_string("raise ValueError('/srv/facetype/app/secret.py: bad widget value')").run()
        (shown,) = at.exception
        assert "secret.py" not in shown.message and "ValueError" not in shown.message
        assert "redacted" in shown.message and not shown.stack_trace
    finally:
        monkeypatch.undo()
        config.get_config_options(force_reparse=True)
