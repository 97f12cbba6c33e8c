"""app/main.py under AppTest: a wrong database or store setting is named on the page, not a traceback."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import clear_caches
from tests.servers import free_port


def run_main() -> AppTest:
    app = AppTest.from_file("app/main.py", default_timeout=120)
    app.run()
    return app


@pytest.mark.parametrize(
    "variable, value, setting",
    [
        ("FACETYPE_DATABASE_URL", "postgresql+psycopg://facetype@127.0.0.1:{port}/facetype", "FACETYPE_DATABASE_URL"),
        ("FACETYPE_STORAGE_URL", "ftp://files.invalid/facetype", "FACETYPE_STORAGE_URL"),
        ("FACETYPE_STORAGE_URL", "{not_a_folder}", "FACETYPE_STORAGE_URL"),
        ("FACETYPE_MAX_PIXELS", "a-few-million", "FACETYPE_MAX_PIXELS"),  # a word where a number belongs
    ],
)
def test_bad_configuration_names_the_setting(app_env, monkeypatch, tmp_path, variable, value, setting):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("x")
    monkeypatch.setenv(variable, value.format(port=free_port(), not_a_folder=not_a_folder))
    clear_caches()
    app = run_main()
    assert not app.exception
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and "facetype cannot start" in errors[0] and setting in errors[0]
    assert "a-few-million" not in errors[0]  # the setting is named, its value is not shown


@pytest.mark.integration  # prepares the sample project and trains the first model
def test_the_app_starts_on_an_empty_database_with_the_sample_project(app_env):
    app = run_main()
    assert not app.exception and not app.error
    assert app.title[0].value.startswith("Try it")
    from sqlmodel import func, select

    from app.core.db import Photo, session_scope

    with session_scope() as session:
        assert session.exec(select(func.count(Photo.id))).one() == 330


def test_an_unreachable_database_is_not_described_to_visitors(app_env, monkeypatch, caplog):
    port = free_port()
    monkeypatch.setenv("FACETYPE_DATABASE_URL", f"postgresql+psycopg://secretuser:pw@127.0.0.1:{port}/secretdb")
    clear_caches()
    with caplog.at_level("ERROR", logger="facetype"):
        app = run_main()
    shown = " ".join(e.value for e in app.error) + " ".join(i.value for i in app.info)
    for detail in ("secretuser", "secretdb", str(port), "127.0.0.1", "psycopg", "postgresql"):
        assert detail not in shown, detail
    assert "FACETYPE_DATABASE_URL" in shown
    assert any("secretdb" in r.getMessage() and str(port) in r.getMessage() for r in caplog.records)
