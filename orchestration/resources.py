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

**A settings failure is not retried.** A retry would fail the same way until a person fixes
the setting, and would hold back the failure alert until the last attempt. So a failed check
sets the run's ``dagster/max_retries`` to 0 before the run fails (Dagster reads the tag when
it decides whether to retry), keeping the value it had in ``amili/max_retries_before_settings``.
A re-execution copies its parent's tags; once its settings load, it gets that value back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from dagster_dbt import DbtCliInvocation, DbtCliResource
from packaging.version import Version
from pydantic import Field

from amili.client import AmiliClient
from amili.pipeline.postgres_source import mask_url
from amili.settings import (
    ClientSettings,
    PipelineSettings,
    SettingsError,
    load,
    load_api_settings,
)
from orchestration.dbt_project import dbt_executable, dbt_project, prune_invocation_targets

#: Dagster's run tag for how many times a failed run is retried, and ours for the value it
#: had before a settings failure set it to 0 ("" when the run had none: the instance's).
MAX_RETRIES_TAG = "dagster/max_retries"
RETRIES_BEFORE_SETTINGS_TAG = "amili/max_retries_before_settings"
_RESTORED = "restored"


@contextmanager
def settings_failure_is_final(context: InitResourceContext) -> Iterator[None]:
    """Run a resource's settings check: when it fails, the run is not retried (see the
    module doc); when it passes in a run made from such a run, its retries come back."""
    run, instance = context.run, context.instance
    # a re-execution of a run whose settings failed already carries the value from before
    before = run.tags.get(RETRIES_BEFORE_SETTINGS_TAG) if run is not None else None
    if before == _RESTORED:
        before = None
    try:
        yield
    except SettingsError:
        if run is not None and instance is not None:
            instance.add_run_tags(run.run_id, {
                MAX_RETRIES_TAG: "0",
                RETRIES_BEFORE_SETTINGS_TAG: run.tags.get(MAX_RETRIES_TAG, "")
                if before is None else before})
        raise
    if run is not None and instance is not None and before is not None:
        instance.add_run_tags(run.run_id, {
            MAX_RETRIES_TAG: before or str(instance.run_retries_max_retries),
            RETRIES_BEFORE_SETTINGS_TAG: _RESTORED})


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
        with settings_failure_is_final(context):
            load_api_settings(**self._overrides())

    @contextmanager
    def get_client(self) -> Iterator[AmiliClient]:
        with AmiliClient(self.settings()) as client:
            yield client


class PipelineResource(ConfigurableResource):
    """Where the pipeline reads and writes (``AMILI_WAREHOUSE``, ``AMILI_PIPELINE_DB``)."""

    warehouse: str | None = Field(
        default=None,
        description="Overrides AMILI_WAREHOUSE. Run config is stored with the run and shown "
        "in the UI, so a URL with a password is refused here: give it in PGPASSWORD or "
        "AMILI_WAREHOUSE in the environment",
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
        """Check the pipeline's settings before the run's first step (see the module doc),
        and refuse a warehouse password given in run config, which Dagster stores with the
        run and shows in the UI (a password belongs in the environment)."""
        with settings_failure_is_final(context):
            if self.warehouse is not None and mask_url(self.warehouse) != self.warehouse:
                raise SettingsError(
                    f"The warehouse URL in this run's config ({mask_url(self.warehouse)}) "
                    "carries a password, and Dagster keeps run config with the run and shows "
                    "it in the UI. Nothing was read. Give the password in PGPASSWORD or "
                    "AMILI_WAREHOUSE in the environment instead, delete this run in the UI "
                    "(its config holds the password) and change the password.")
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

    def cli(self, args: Sequence[str], **kwargs: Any) -> DbtCliInvocation:
        """dagster-dbt's ``cli``, first removing the invocation folders older than
        ``AMILI_DBT_TARGET_KEEP_DAYS`` (:func:`prune_invocation_targets`)."""
        target_dir = Path(self.project_dir) / os.environ.get("DBT_TARGET_PATH", "target")
        prune_invocation_targets(target_dir, load(PipelineSettings).dbt_target_keep_days)
        return super().cli(args, **kwargs)


def dbt_resource() -> DbtCliResource:
    """The ``dbt`` resource: the project's dbt, run by the venv's executable."""
    return AmiliDbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())
