from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.settings import SettingsError, load_settings
from app.core.vocabulary import MBTI_TYPES


def test_defaults_work_without_configuration(tmp_path):
    s = load_settings(environ={}, secrets_path=tmp_path / "none.toml")
    assert s.resolved_database_url.startswith("sqlite:///") and s.resolved_database_url.endswith("var/facetype.db")
    assert s.resolved_storage_url.endswith("var/store")
    assert s.device == "auto"
    assert s.region_points == (50.0, 40.0, 10.0) and s.type_thresholds == (85.0, 68.0, 48.0, 20.0)


def test_environment_beats_secrets_beats_defaults(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[facetype]\ndevice = "cuda"\nmax_pixels = 1000\nregion_points = [60, 30, 10]\n')
    s = load_settings(environ={"FACETYPE_DEVICE": "cpu", "FACETYPE_VAR_DIR": "/tmp/x"}, secrets_path=secrets)
    assert s.device == "cpu"
    assert s.max_pixels == 1000
    assert s.region_points == (60.0, 30.0, 10.0)
    assert s.var_dir == Path("/tmp/x")


def test_aws_variables_configure_s3(tmp_path):
    s = load_settings(
        environ={
            "FACETYPE_STORAGE_URL": "s3://bucket/prefix",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
        },
        secrets_path=tmp_path / "none.toml",
    )
    assert (s.storage_url, s.s3_endpoint_url, s.aws_access_key_id) == ("s3://bucket/prefix", "http://127.0.0.1:9000", "k")


def test_sixteen_mbti_types():
    assert len(set(MBTI_TYPES)) == 16 and "ESTJ" in MBTI_TYPES and "INFP" in MBTI_TYPES


def test_a_wrong_value_names_the_variable_not_the_value(tmp_path):
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"FACETYPE_MAX_PIXELS": "secret-lots", "FACETYPE_SESSION_COOKIE_SECURE": "maybe"},
                      secrets_path=tmp_path / "none.toml")
    assert caught.value.public_message == (
        "A setting has a value that cannot be used (FACETYPE_MAX_PIXELS, FACETYPE_SESSION_COOKIE_SECURE).")
    assert "secret-lots" in str(caught.value)  # the operator's log has the value


def test_settings_are_frozen_and_copied_with_changes(tmp_path):
    s = load_settings(environ={}, secrets_path=tmp_path / "none.toml")
    with pytest.raises(ValidationError):
        s.max_pixels = 1
    assert s.model_copy(update={"max_pixels": 1}).max_pixels == 1 and s.max_pixels == 40_000_000


def test_streamlits_upload_limit_is_the_apps_photo_limit(tmp_path):
    """The uploaders of Survey and Import photos show Streamlit's limit (server.maxUploadSize, "10MB per file")
    and the pages' own messages the app's (max_upload_mb): the two must say the same number."""
    import tomllib

    from app.core.settings import PROJECT_ROOT

    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    default = load_settings(environ={}, secrets_path=tmp_path / "none.toml").max_upload_mb
    assert config["server"]["maxUploadSize"] == default
