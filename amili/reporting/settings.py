"""Where the reporting snapshot and the sign-off reports live (``AMILI_REPORTING_*``).

Both default to the folder of the pipeline database (``data/`` by default), so a test or a
demo that points ``AMILI_PIPELINE_DB`` somewhere else gets its reports beside it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from amili.settings import PipelineSettings, _Settings, load

SNAPSHOT_FILE_NAME = "reporting.duckdb"
REPORTS_DIR_NAME = "reports"


class ReportingSettings(_Settings):
    """Overrides of the reporting paths; unset means "beside the pipeline database"."""

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
