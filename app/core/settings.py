"""One settings object for the whole project.

Every value comes, in order of precedence, from an environment variable ``FACETYPE_<NAME>``,
from the ``[facetype]`` table of ``.streamlit/secrets.toml``, or from the default below.
The defaults run the sample project with nothing configured: a SQLite file and a local
folder under ``var/``. Plain modules import this without Streamlit.
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECRETS_PATH = PROJECT_ROOT / ".streamlit" / "secrets.toml"
ENV_PREFIX = "FACETYPE_"

#: Comma-separated numbers in an environment variable (``50,40,10``), a list in secrets.toml.
FloatTuple = Annotated[tuple[float, ...], NoDecode]


def _env(name: str, *also: str) -> AliasChoices:
    """``FACETYPE_<NAME>`` first, then the other variables a tool like the AWS CLI reads."""
    return AliasChoices(f"{ENV_PREFIX}{name.upper()}", *also)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore", validate_by_name=True)

    var_dir: Path = PROJECT_ROOT / "var"
    #: SQLAlchemy URL; empty means ``sqlite:///<var_dir>/facetype.db``.
    database_url: str = ""
    #: ``file:///path`` / a plain path, or ``s3://bucket/prefix``; empty means ``<var_dir>/store``.
    storage_url: str = ""
    s3_endpoint_url: str = Field("", validation_alias=_env("s3_endpoint_url", "AWS_ENDPOINT_URL"))
    aws_region: str = Field("us-east-1", validation_alias=_env("aws_region", "AWS_DEFAULT_REGION"))
    aws_access_key_id: str = Field("", validation_alias=_env("aws_access_key_id", "AWS_ACCESS_KEY_ID"))
    aws_secret_access_key: str = Field("", validation_alias=_env("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"))
    #: Seconds before a presigned S3 URL for display expires.
    url_expiry_s: int = 3600
    #: What a visitor waits on: each store call times out after this many seconds (one attempt),
    #: and the reference photos beside a result are given up after the deadline.
    visitor_store_timeout_s: float = 2.0
    visitor_deadline_s: float = 5.0
    #: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    device: str = "auto"
    #: torch intra-op threads of a serving process (app, API worker, CLI), set once at its start:
    #: per-request inference on small models is fastest single-threaded when requests run side by
    #: side, and more threads only spin against OpenCV's, MediaPipe's and other requests'.
    inference_threads: int = 1
    sample_dir: Path = PROJECT_ROOT / "data" / "sample"

    # Image intake and face gate.
    #: Largest image (width x height, read from the header) accepted at all.
    max_pixels: int = 40_000_000
    #: Most pixels one decode may hold in memory: a larger JPEG is decoded reduced (DCT scaling),
    #: any other larger image is refused. Bounds the memory one request can cost.
    max_decode_pixels: int = 16_000_000
    #: A visitor's photo (Try it, the API) is checked and kept in memory at most this side: a JPEG is
    #: decoded reduced to ``gate_decode_side``; a larger PNG or WebP, or a JPEG the gate checks again
    #: whole, is shrunk to this before the gate sees it (so the gate's copies stay small).
    analysis_max_side: int = 2048
    #: Decodes running at once in one process; further ones wait.
    max_concurrent_decodes: int = 2
    max_upload_mb: int = 10
    #: Longest side the detectors see; coordinates are mapped back to the original image.
    detect_max_side: int = 1024
    #: A photo to classify is decoded reduced (JPEG DCT scaling) as far as its longer side stays at
    #: least this: the type model crops at its ``max_side`` (640), the detector and mesh need less.
    gate_decode_side: int = 640
    #: Smallest accepted distance, in original pixels, between brow and chin.
    min_face_px: int = 80
    #: Largest accepted head turn (yaw) and tilt (pitch), in degrees.
    max_yaw_deg: float = 35.0
    max_pitch_deg: float = 30.0
    face_detection_confidence: float = 0.5

    # Scoring: points per region (face, tzone, jaw) for type index t are
    # points[r] * (1 - type_decay * t); totals above thresholds[i] give TYPES[i], else the last.
    region_points: FloatTuple = (50.0, 40.0, 10.0)
    type_decay: float = 0.2
    type_thresholds: FloatTuple = (85.0, 68.0, 48.0, 20.0)
    #: ``calibrated``: the served model's bands, fitted to the survey's type shares when it was
    #: trained (so every type occurs); ``source``: the fixed type_thresholds above, as the source did.
    threshold_mode: str = "calibrated"
    #: Detections below this score are ignored by the detector kind (the source used 0.75).
    detection_threshold: float = 0.75
    #: A training run whose heartbeat (every 10 s while it trains) stopped this long ago is marked failed.
    stale_run_minutes: float = 2.0
    #: Scheduling niceness of the processes a worker launches (training, model-assisted boxes), so
    #: that on a machine shared with the app or API the visitors' requests keep the CPU first.
    #: 0 keeps the worker's own priority (a dedicated GPU machine has nothing to yield to).
    training_niceness: int = 10

    # Privacy and limits.
    retention_days: int = 30
    #: Seconds an image on a page (a visitor's photo, its previews) stays at its ``/media`` URL after
    #: the page last showed it; a closed page's images and downloads go within seconds.
    media_max_age_s: float = 300.0
    max_batch_files: int = 200
    #: API rate limit per client IP (token bucket); 0 turns it off.
    api_rate_per_minute: int = 30
    api_rate_burst: int = 10
    #: uvicorn worker processes of ``make api`` (each holds its own gate and model, ~0.4 GB).
    api_workers: int = 2

    # Team sign-in (app.core.auth).
    #: How long a sign-in lasts, in hours (the session cookie and its server-side record expire together).
    session_hours: float = 12.0
    #: Key that signs the session cookie; empty means a random one kept in ``<var_dir>/session_secret``.
    session_secret: str = ""
    #: Mark the session cookie Secure (send it over HTTPS only); turn on behind TLS.
    session_cookie_secure: bool = False
    #: Failed sign-ins allowed per account name, and per client address, within the lockout window.
    sign_in_failures_per_account: int = 5
    sign_in_failures_per_client: int = 20
    sign_in_lockout_minutes: float = 15.0
    #: Seconds every failed sign-in waits before it is answered.
    sign_in_failure_delay_s: float = 1.0

    #: Comma-separated addresses of the reverse proxies in front of the API whose X-Forwarded-For
    #: the rate limit believes; empty: none (the limit counts the connecting peer).
    trusted_proxies: str = ""

    @field_validator("region_points", "type_thresholds", mode="before")
    @classmethod
    def _split_numbers(cls, value):
        return tuple(value.split(",")) if isinstance(value, str) else value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'facetype.db'}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or str(self.var_dir / "store")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, SecretsTableSource(settings_cls, SECRETS_PATH)


class SettingsError(ValueError):
    """A setting has a value of the wrong kind. The message, for the operator's log, has the values;
    ``public_message`` names only the variables, for visitors' pages and API answers."""

    def __init__(self, error: ValidationError):
        names = sorted({_variable(str(e["loc"][0])) for e in error.errors() if e["loc"]})
        super().__init__(str(error))
        self.public_message = f"A setting has a value that cannot be used ({', '.join(names)})."


def _variable(key: str) -> str:
    """The environment variable of a field name or an alias (``AWS_DEFAULT_REGION`` stays)."""
    return key if key.isupper() else f"{ENV_PREFIX}{key.upper()}"


class SecretsTableSource(InitSettingsSource):
    """The ``[facetype]`` table of Streamlit's secrets.toml; no file or no table: nothing."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path):
        table = {}
        if path.is_file():
            with path.open("rb") as f:
                table = tomllib.load(f).get("facetype", {})
        super().__init__(settings_cls, table)


class MappingEnvSource(EnvSettingsSource):
    """Environment variables read from a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self.environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self.environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def load_settings(environ: Mapping[str, str] | None = None, secrets_path: Path | None = None,
                  **overrides) -> Settings:
    """Build settings from the environment, secrets.toml and keyword overrides (highest).

    Raises SettingsError when a value has the wrong kind (a word where a number belongs)."""
    sources = (
        InitSettingsSource(Settings, overrides),
        MappingEnvSource(Settings, os.environ if environ is None else environ),
        SecretsTableSource(Settings, secrets_path or SECRETS_PATH),
    )
    try:
        return Settings(_build_sources=(sources, overrides))
    except ValidationError as error:
        raise SettingsError(error) from None


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
