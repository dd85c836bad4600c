"""Every setting of the project, in one place, read from the environment (or a ``.env`` file).

Each group is a pydantic-settings class with its own ``AMILI_...`` prefix. A missing or
malformed setting fails at start with :class:`SettingsError`, whose message names the
environment variable to set, never the value of a secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time as clock
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, HttpUrl, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from amili.contract import MAX_BATCH_OBJECTS, MAX_BODY_BYTES


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


#: The error type of this module's own validators: their message follows the variable's name
#: as it is ("AMILI_TOKEN is empty: ..."), see :func:`load`.
_PROBLEM = "amili_setting"


def _problem(message: str) -> PydanticCustomError:
    """A validation error whose ``message`` completes "<VARIABLE> ..." (no value in it)."""
    return PydanticCustomError(_PROBLEM, message)


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )


class BatchLimits(_Settings):
    """How big a Batch may be (``AMILI_MAX_BATCH_*``): apart from the rest of
    :class:`ClientSettings`, so that a dry run, which needs no token, cuts its bodies as a
    real run would."""

    model_config = SettingsConfigDict(env_prefix="AMILI_")
    # the defaults are the contract's limits; a smaller value cuts smaller batches
    max_batch_objects: int = Field(
        default=MAX_BATCH_OBJECTS, ge=1, description="Objects per batch"
    )
    max_batch_bytes: int = Field(
        default=MAX_BODY_BYTES, ge=1024, description="Body bytes per batch"
    )


class ClientSettings(BatchLimits):
    """How the API client reaches Amili (``AMILI_*``)."""

    model_config = SettingsConfigDict(env_prefix="AMILI_")

    base_url: HttpUrl = Field(description="Root of the Amili API, e.g. https://host (no /webapi)")
    token: SecretStr = Field(description="JWT bearer token for the legacy AutoCollect API")
    sender_id: str = Field(min_length=1, description="The senderid query parameter")
    timeout_seconds: float = Field(default=30.0, gt=0, description="Per-request timeout")
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=5, ge=0, description="Retries after the first attempt")
    backoff_initial_seconds: float = Field(default=0.5, ge=0)
    backoff_max_seconds: float = Field(default=30.0, ge=0)
    retry_after_max_seconds: float = Field(
        default=120.0, ge=0, description="Longest Retry-After the client will honour"
    )
    max_concurrency: int = Field(default=4, ge=1, description="Batches in flight at once")

    @field_validator("base_url", mode="before")
    @classmethod
    def _base_url_is_set(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise _problem("is empty: set it to the root of Amili's API, e.g. https://<host>")
        return value

    @field_validator("token", mode="before")
    @classmethod
    def _token_is_set(cls, value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is None or (isinstance(text, str) and not text.strip()):
            # an empty token would go out as the header "Bearer ", which HTTP refuses
            raise _problem("is empty: set it to the JWT Amili issued")
        return value

    @field_validator("sender_id", mode="before")
    @classmethod
    def _sender_id_is_set(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise _problem("is empty: set it to the senderid Amili gave you")
        return value


_T = TypeVar("_T", bound=BaseSettings)


def load(settings_class: type[_T], **overrides: Any) -> _T:
    """Build a settings object, turning pydantic's error into one that names the variables."""
    try:
        return settings_class(**overrides)
    except ValidationError as exc:
        prefix = settings_class.model_config.get("env_prefix", "")
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            variable = f"{prefix}{field}".upper()
            if error["type"] == "missing":
                problems.append(f"{variable} is not set")
            elif error["type"] == _PROBLEM:
                problems.append(f"{variable} {error['msg']}")
            elif error["type"].startswith("url_"):
                problems.append(f"{variable} is invalid: {error['msg']} (expected a "
                                "well-formed http(s) URL such as https://<host>)")
            else:
                # error["msg"] describes the rule, never echoes a secret's value
                problems.append(f"{variable} is invalid: {error['msg']}")
        raise SettingsError(
            "Amili settings are incomplete: " + "; ".join(problems)
            + " (set them in the environment or in a .env file)"
        ) from None


#: The submission's DuckDB memory limit unless ``AMILI_DUCKDB_MEMORY_LIMIT`` says otherwise.
DEFAULT_DUCKDB_MEMORY_LIMIT = "256MB"
_MEMORY_SIZE = re.compile(r"[0-9]+(\.[0-9]+)?\s*[KMGT]i?B", re.IGNORECASE)


def is_memory_size(value: str) -> bool:
    """True for a size DuckDB's ``memory_limit`` takes, such as ``256MB`` or ``1.5GiB`` (and
    nothing that could close the quoted SQL literal it is put in)."""
    return _MEMORY_SIZE.fullmatch(value) is not None


class PipelineSettings(_Settings):
    """Where the pipeline reads and writes, and its business rules (``AMILI_*``)."""

    model_config = SettingsConfigDict(env_prefix="AMILI_")

    warehouse: str = Field(
        default="data/warehouse.duckdb",
        description="The source: a DuckDB file, a folder of <table>.parquet files, or a "
        "PostgreSQL URL (postgresql://user@host:5432/db?schema=erp; password in the URL or "
        "PGPASSWORD)",
    )
    pipeline_db: str = Field(
        default="data/pipeline.duckdb",
        description="The pipeline's own DuckDB database (raw extract, dbt models, ledger)",
    )
    partition_start: date = Field(
        default=date(2025, 1, 1), description="First daily partition (a day in Europe/Oslo)"
    )
    schedule_time: time = Field(
        default=time(6, 0), description="When the daily job runs, in Europe/Oslo (HH:MM)"
    )
    collection_delay_days: int = Field(
        default=14, ge=0,
        description="Days past due before an invoice goes to collection, where the creditor "
        "has no setting of its own",
    )
    dbt_target_keep_days: float = Field(
        default=14, ge=0,
        description="Days a dbt invocation's own target folder (run results, compiled SQL) "
        "is kept before the next invocation removes it",
    )
    duckdb_memory_limit: str = Field(
        default=DEFAULT_DUCKDB_MEMORY_LIMIT,
        description="DuckDB's memory limit while the submission streams a day (e.g. 256MB, "
        "1GiB); past it DuckDB spills to disk",
    )

    @field_validator("duckdb_memory_limit")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        value = value.strip()
        if not is_memory_size(value):
            raise _problem("is not a memory size like 256MB or 1GiB (DuckDB's memory_limit)")
        return value


class _DagsterUiSettings(_Settings):
    """``AMILI_DAGSTER_UI_URL``, read and checked here only: the sign-off reports and the
    alerts both link to runs in the same Dagster UI."""

    model_config = SettingsConfigDict(env_prefix="AMILI_")

    dagster_ui_url: str = Field(
        default="http://127.0.0.1:3000",
        description="Base URL of the Dagster UI, for links to runs and assets (sign-off "
        "reports, alerts)",
    )

    @field_validator("dagster_ui_url")
    @classmethod
    def _ui_url(cls, value: str) -> str:
        if not re.match(r"https?://[^/\s]+", value.strip()):
            raise _problem("is not an http(s) URL (e.g. http://127.0.0.1:3000)")
        return value.strip().rstrip("/")


class ReportingSettings(_DagsterUiSettings):
    """Where the reporting snapshot and the sign-off reports live (``AMILI_REPORTING_DB``,
    ``AMILI_REPORTS_DIR``); unset means "beside the pipeline database", so a test or a demo
    that points ``AMILI_PIPELINE_DB`` somewhere else gets its reports beside it too."""

    model_config = SettingsConfigDict(env_prefix="AMILI_")

    reporting_db: str | None = Field(
        default=None,
        description="The published snapshot analysts read (default: reporting.duckdb beside "
        "AMILI_PIPELINE_DB)",
    )
    reports_dir: str | None = Field(
        default=None,
        description="Folder of the daily sign-off reports (default: reports/ beside "
        "AMILI_PIPELINE_DB)",
    )


class AlertSettings(_DagsterUiSettings):
    """Who is told when a run fails or the figures look wrong (``AMILI_ALERT_*``), and when.

    Targets: a webhook (a JSON POST), e-mail over SMTP, both, or neither (then each alert is a
    log line of the sensor). The webhook URL and the SMTP password are secrets: a URL may
    carry a token in its path or query (Slack, Teams), so neither is ever logged.
    """

    model_config = SettingsConfigDict(env_prefix="AMILI_")

    alert_webhook_url: SecretStr | None = Field(
        default=None, description="POST each alert as JSON here (Slack-compatible `text`)")
    alert_email_to: str | None = Field(
        default=None, description="Comma-separated recipients of alert e-mails")
    alert_email_from: str = Field(default="amili-pipeline@localhost")
    alert_smtp_host: str | None = Field(default=None, description="SMTP server for e-mails")
    alert_smtp_port: int = Field(default=587, ge=1, le=65535)
    alert_smtp_user: str | None = Field(default=None, description="SMTP login, if any")
    alert_smtp_password: SecretStr | None = Field(default=None)
    alert_smtp_starttls: bool = Field(
        default=True, description="Upgrade the SMTP connection with STARTTLS (port 587)")
    alert_smtp_ssl: bool = Field(
        default=False, description="Connect with TLS from the start (SMTPS, port 465)")
    alert_timeout_seconds: float = Field(default=10.0, gt=0)
    alert_rejection_rate: float = Field(
        default=0.10, ge=0, le=1, description="Alert above this share rejected (a day, a currency)")
    alert_rejection_rise: float = Field(
        default=0.05, ge=0, le=1,
        description="... or this much above the same currency's rate of the days before")
    alert_rejection_baseline_days: int = Field(default=7, ge=1)
    alert_rejection_min_sent: int = Field(
        default=20, ge=1, description="Fewer objects sent than this: no rate alert")
    alert_unanswered_max: int = Field(
        default=0, ge=0, description="Alert when more sent objects than this lack an answer")
    alert_held_max: int = Field(
        default=0, ge=0, description="Alert when more objects than this are held back")
    alert_lookback_days: int = Field(
        default=7, ge=1, description="Days (up to the newest in the snapshot) the sensors read")
    alert_retry_grace_minutes: float = Field(
        default=15, ge=0,
        description="Minutes after a failed run ended that its announced retry may take to come")

    @field_validator("alert_webhook_url", mode="before")
    @classmethod
    def _webhook_is_http(cls, value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and not text.strip():
            return None
        if isinstance(text, str) and not re.match(r"https?://[^/\s]+", text.strip()):
            raise _problem("is not an http(s) URL (e.g. https://hooks.example.com/...)")
        return value

    @field_validator("alert_email_to", "alert_smtp_host", "alert_smtp_user", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    def recipients(self) -> list[str]:
        """The addresses of ``AMILI_ALERT_EMAIL_TO``, blanks dropped."""
        return [a.strip() for a in (self.alert_email_to or "").split(",") if a.strip()]


SNAPSHOT_FILE_NAME = "reporting.duckdb"
REPORTS_DIR_NAME = "reports"


@dataclass(frozen=True)
class ReportingPaths:
    """The resolved, absolute paths of the snapshot and the reports folder."""

    reporting_db: Path
    reports_dir: Path


def reporting_paths(pipeline_db: str | Path | None = None) -> ReportingPaths:
    """The snapshot and reports paths, from the settings or beside ``pipeline_db``."""
    settings = load(ReportingSettings)
    base = Path(pipeline_db or load(PipelineSettings).pipeline_db).resolve().parent
    return ReportingPaths(
        reporting_db=Path(settings.reporting_db or base / SNAPSHOT_FILE_NAME).resolve(),
        reports_dir=Path(settings.reports_dir or base / REPORTS_DIR_NAME).resolve(),
    )


# --------------------------------------------------------------------------------------------
# Checked before a run does any work
# --------------------------------------------------------------------------------------------

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def _json_part(part: str) -> Any:
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


def token_problem(token: str, now: float | None = None) -> str | None:
    """What is wrong with ``token`` as the JWT bearer token Amili expects, or None.

    The message completes "AMILI_TOKEN ..." and never contains the token or a part of it.
    The check is local: a well-formed, unexpired token may still be refused by Amili (its
    signature is Amili's to check).
    """
    if not token.strip():
        return "is empty: set it to the JWT Amili issued"
    parts = token.split(".")
    if len(parts) != 3 or not all(_BASE64URL.fullmatch(p) for p in parts[:2]) or not (
            parts[2] == "" or _BASE64URL.fullmatch(parts[2])):
        return ("is not a JWT: expected three base64url parts separated by dots (check for "
                "spaces, quotes or a line break copied with it)")
    decoded: dict[str, dict[str, Any]] = {}
    for name, part in (("header", parts[0]), ("payload", parts[1])):
        try:
            value = _json_part(part)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return f"is not a JWT: its {name} is not base64url-encoded JSON"
        if not isinstance(value, dict):
            return f"is not a JWT: its {name} is not a JSON object"
        decoded[name] = value
    expires = decoded["payload"].get("exp")
    if expires is None:
        return None
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        return "is not a usable JWT: its exp claim is not a number"
    if expires <= (clock.time() if now is None else now):
        when = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"expired at {when} (its exp claim): get a new token from Amili"
    return None


def check_api_settings(settings: ClientSettings, now: float | None = None) -> ClientSettings:
    """``settings`` if a run can use them to reach Amili; else :class:`SettingsError` naming
    each variable to fix. :class:`ClientSettings` already holds AMILI_BASE_URL to a
    well-formed http(s) URL and AMILI_SENDER_ID and AMILI_TOKEN to something; this adds
    what a token must be before it is worth sending (:func:`token_problem`)."""
    problem = token_problem(settings.token.get_secret_value(), now)
    if problem is not None:
        raise SettingsError(f"Amili settings are not usable: AMILI_TOKEN {problem}")
    return settings


def load_api_settings(**overrides: Any) -> ClientSettings:
    """:class:`ClientSettings` from the environment, checked by :func:`check_api_settings`."""
    return check_api_settings(load(ClientSettings, **overrides))
