"""Dagster resources: thin wrappers that build the project's Dagster-free objects.

Three of them, by the key the assets ask for: ``amili`` (the API client), ``pipeline``
(where the pipeline reads and writes) and ``dbt`` (:func:`dbt_resource`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from importlib.metadata import version as installed_version

from dagster import ConfigurableResource
from dagster_dbt import DbtCliResource
from packaging.version import Version
from pydantic import Field

from amili.client import AmiliClient
from amili.settings import ClientSettings, PipelineSettings, load
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

    def settings(self) -> ClientSettings:
        overrides = {
            name: value
            for name, value in (
                ("base_url", self.base_url),
                ("sender_id", self.sender_id),
                ("max_concurrency", self.max_concurrency),
            )
            if value is not None
        }
        return load(ClientSettings, **overrides)

    @contextmanager
    def get_client(self) -> Iterator[AmiliClient]:
        with AmiliClient(self.settings()) as client:
            yield client


class PipelineResource(ConfigurableResource):
    """Where the pipeline reads and writes (``AMILI_WAREHOUSE``, ``AMILI_PIPELINE_DB``)."""

    warehouse: str | None = Field(default=None, description="Overrides AMILI_WAREHOUSE")
    pipeline_db: str | None = Field(default=None, description="Overrides AMILI_PIPELINE_DB")

    def settings(self) -> PipelineSettings:
        overrides = {
            name: value
            for name, value in (("warehouse", self.warehouse), ("pipeline_db", self.pipeline_db))
            if value is not None
        }
        return load(PipelineSettings, **overrides)


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
