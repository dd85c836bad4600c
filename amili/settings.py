"""Every setting of the project, in one place, read from the environment (or a ``.env`` file).

Each group is a pydantic-settings class with its own ``AMILI_...`` prefix. A missing or
malformed setting fails at start with :class:`SettingsError`, whose message names the
environment variable to set, never the value of a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, HttpUrl, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from amili.contract import MAX_BATCH_OBJECTS, MAX_BODY_BYTES


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )


class ClientSettings(_Settings):
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
    # the defaults are the contract's limits; a smaller value cuts smaller batches
    max_batch_objects: int = Field(
        default=MAX_BATCH_OBJECTS, ge=1, description="Objects per batch"
    )
    max_batch_bytes: int = Field(
        default=MAX_BODY_BYTES, ge=1024, description="Body bytes per batch"
    )


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
            else:
                # error["msg"] describes the rule, never echoes a secret's value
                problems.append(f"{variable} is invalid: {error['msg']}")
        raise SettingsError(
            "Amili settings are incomplete: " + "; ".join(problems)
            + " (set them in the environment or in a .env file)"
        ) from None


class PipelineSettings(_Settings):
    """Where the pipeline reads and writes, and its business rules (``AMILI_*``)."""

    model_config = SettingsConfigDict(env_prefix="AMILI_")

    warehouse: str = Field(
        default="data/warehouse.duckdb",
        description="The source: a DuckDB file, or a folder of <table>.parquet files",
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


class ReportingSettings(_Settings):
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
