"""Dagster resources: thin wrappers that build the project's Dagster-free objects.

Three of them, by the key the assets ask for: ``amili`` (the API client), ``pipeline``
(where the pipeline reads and writes) and ``dbt`` (:func:`dbt_resource`).

**Settings are checked before any work.** ``amili`` and ``pipeline`` check their settings in
``setup_for_execution``, which Dagster calls when it initializes a run's resources. With the
in-process executor (the daily job's, and the definitions' default) that happens once, before
the run's first step: a missing or malformed ``AMILI_*`` setting fails the run at its start,
with a message naming the variable, before the extract or dbt write anything. (A
multiprocess executor initializes resources per step instead: the extract, which does not use
``amili``, would then run first.)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from importlib.metadata import version as installed_version
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from dagster_dbt import DbtCliResource
from packaging.version import Version
from pydantic import Field

from amili.client import AmiliClient
from amili.settings import ClientSettings, PipelineSettings, load, load_api_settings
from orchestration.dbt_project import dbt_executable, dbt_project


class AmiliApiResource(ConfigurableResource):
    """The Amili Batch API client.

    Settings come from ``AMILI_BASE_URL``, ``AMILI_TOKEN``, ``AMILI_SENDER_ID`` (and the other
    ``AMILI_*`` variables, see :class:`amili.settings.ClientSettings`). The token is never a
    resource field, so it cannot show up in the Dagster UI or in run config.
    """

    base_url: str | None = Field(
        default=None, description="Overrides AMILI_BASE_URL (for tests and one-off runs)"
    )
    sender_id: str | None = Field(default=None, description="Overrides AMILI_SENDER_ID")
    max_concurrency: int | None = Field(
        default=None, description="Overrides AMILI_MAX_CONCURRENCY: batches in flight"
    )

    def _overrides(self) -> dict[str, Any]:
        return {
            name: value
            for name, value in (
                ("base_url", self.base_url),
                ("sender_id", self.sender_id),
                ("max_concurrency", self.max_concurrency),
            )
            if value is not None
        }

    def settings(self) -> ClientSettings:
        return load(ClientSettings, **self._overrides())

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Check the API settings before the run's first step (see the module doc): a base
        URL, a sender id and a token that is a JWT and not expired. A dry run of the
        submission posts nothing and needs none of them."""
        run = context.run
        if run is not None and submission_is_dry_run(run.run_config):
            return
        load_api_settings(**self._overrides())

    @contextmanager
    def get_client(self) -> Iterator[AmiliClient]:
        with AmiliClient(self.settings()) as client:
            yield client


class PipelineResource(ConfigurableResource):
    """Where the pipeline reads and writes (``AMILI_WAREHOUSE``, ``AMILI_PIPELINE_DB``)."""

    warehouse: str | None = Field(
        default=None,
        description="Overrides AMILI_WAREHOUSE (run config is shown in the UI: keep a "
        "PostgreSQL password in PGPASSWORD or the environment, not here)",
    )
    pipeline_db: str | None = Field(default=None, description="Overrides AMILI_PIPELINE_DB")

    def settings(self) -> PipelineSettings:
        overrides = {
            name: value
            for name, value in (("warehouse", self.warehouse), ("pipeline_db", self.pipeline_db))
            if value is not None
        }
        return load(PipelineSettings, **overrides)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Check the pipeline's settings before the run's first step (see the module doc)."""
        self.settings()


#: The name of the submission's op (the multi-asset ``amili_submission``), whose run config
#: holds ``dry_run``.
SUBMISSION_OP = "amili_submission"


def submission_is_dry_run(run_config: Mapping[str, Any]) -> bool:
    """True when the run config makes the submission a dry run (``dry_run: true``)."""
    ops = run_config.get("ops") or {}
    op_config = (ops.get(SUBMISSION_OP) or {}).get("config") or {}
    return bool(op_config.get("dry_run", False))


class AmiliDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, without a ``dbt --version`` subprocess in every run.

    Before its first invocation in a run, ``DbtCliResource`` asks the dbt executable for its
    version (``_cli_version``: a subprocess that imports all of dbt, seconds of every run). The
    executable is the one installed beside this Python (:func:`dbt_executable`), so the version
    of the ``dbt-core`` package is its version. ``tests/test_orchestration.py`` holds the two
    equal. (An override of a private member: it goes if dagster-dbt stops asking.)
    """

    @cached_property
    def _cli_version(self) -> Version:
        return Version(installed_version("dbt-core"))


def dbt_resource() -> DbtCliResource:
    """The ``dbt`` resource: the project's dbt, run by the venv's executable."""
    return AmiliDbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())
