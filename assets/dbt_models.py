"""Stage 2: dbt shapes the raw rows into the four batch-ready tables of the Batch body.

One Dagster asset per dbt model, dbt tests as asset checks, the raw sources linked to the
extract asset (``meta.dagster.asset_key`` in ``__sources.yml``). A backfill runs dbt once for
its whole range: the models are incremental by partition window.
"""

import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey, AssetSpec, BackfillPolicy
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)
from dagster_dbt.errors import DagsterDbtCliRuntimeError

from amili.pipeline.duckdb_io import (
    dbt_connect_attempts,
    lock_wait_seconds,
    locked_error_from,
    wait_for_writer_lock,
)
from orchestration.dbt_project import dbt_manifest, dbt_project
from orchestration.partitions import daily_partitions, window_days
from orchestration.pools import PIPELINE_DB_POOL
from orchestration.resources import PipelineResource

#: The lineage's stages, left to right: each asset is in the group of its stage.
STAGE_GROUPS = ("extract", "staging", "batch", "submission", "results", "marts", "reporting",
                "readback")


class StageTranslator(DagsterDbtTranslator):
    """dbt resources in the group of their stage: a model in the group named by its folder
    (models/staging, models/batch, models/marts, models/readback), seeds and the sources
    staging reads in ``staging``. Never Dagster's ``default`` group: the global lineage then
    reads left to right, extract → staging → batch → submission → results → marts →
    reporting, and the read-back of what Amili holds (its own job) last."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn") or []
        folder = fqn[1] if dbt_resource_props.get("resource_type") == "model" and len(
            fqn) > 2 else "staging"
        if folder not in STAGE_GROUPS:
            raise ValueError(f"dbt model {dbt_resource_props.get('unique_id')} is in folder "
                             f"models/{folder}, which is no stage of {STAGE_GROUPS}: move "
                             "it, or add the stage to assets/dbt_models.py")
        return folder


translator = StageTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

#: Written by the results stage of earlier days, read by staging (stg_acknowledged_invoices):
#: an external asset of the staging group, so the lineage has no loop back (and no asset in
#: Dagster's ``default`` group).
ACKNOWLEDGED_INVOICES = AssetSpec(
    AssetKey(["amili", "acknowledged_invoices"]),
    group_name="staging",
    kinds={"duckdb"},
    description="Amili's ids of the invoices it acknowledged (answer's ledgerref), recorded "
    "by the results stage (amili/responses) of earlier runs; staging reads them so that "
    "payments and actions can refer to Amili's invoice id.",
)


#: The reconciliation marts read the submission's ledger, so they run after it, separately.
MARTS = "amili.marts"  # the models/marts folder, by its dbt FQN (path: resolves from the cwd)
#: The read-back marts (models/readback) are not partitioned: assets/readback.py runs them.
READBACK_MARTS = "amili.readback"


@dbt_assets(
    manifest=dbt_manifest(),
    exclude=f"{MARTS} {READBACK_MARTS}",
    dagster_dbt_translator=translator,
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=PIPELINE_DB_POOL,
)
def amili_dbt_models(
    context: AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineResource
):
    yield from build_partition_window(context, dbt, pipeline)


def build_partition_window(
    context: AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineResource
) -> Iterator[Any]:
    """``dbt build`` of the selected models for the run's window of Oslo days.

    The window goes to dbt through the environment (AMILI_DBT_MIN_DATE / _MAX_DATE, read by
    macros/partition_window.sql when models execute), not ``--vars``: changed vars make dbt
    parse the whole project again, every run. dbt's parse state from this invocation is kept
    for the next one (see :func:`_keep_parse_state`).

    dbt waits for the pipeline file like every other writer (amili/pipeline/duckdb_io.py):
    the step first waits, logging, until nobody holds the file, and dbt-duckdb's own
    connect retries (silent) cover about the same time for a process that takes the file
    in between. A lock that outlasts the wait fails the step with the shared
    :class:`~amili.pipeline.duckdb_io.DatabaseLockedError`, naming the holder.
    """
    start, end = window_days(context.partition_time_window)
    pipeline_db = Path(pipeline.settings().pipeline_db).resolve()
    wait = lock_wait_seconds()
    window = {
        # dbt runs in dbt_project/, so it gets the pipeline DB as an absolute path
        "AMILI_PIPELINE_DB": str(pipeline_db),
        "AMILI_DBT_MIN_DATE": start.isoformat(),
        "AMILI_DBT_MAX_DATE": end.isoformat(),
        # read by profiles.yml: dbt-duckdb's retries wait about as long as ours
        "AMILI_DBT_CONNECT_ATTEMPTS": str(dbt_connect_attempts(wait)),
    }
    saved = {name: os.environ.get(name) for name in window}
    os.environ.update(window)  # DbtCliResource passes this process's environment to dbt
    try:
        wait_for_writer_lock(pipeline_db, wait_seconds=wait, log=context.log)
        # dbt's unit tests check the models' logic, not the day's data: CI runs them
        # (tests/dbt), a production run need not (dbt's own advice), saving their queries
        invocation = dbt.cli(["build", "--exclude-resource-type", "unit_test"],
                             context=context)
        try:
            yield from invocation.stream()
        except DagsterDbtCliRuntimeError as exc:
            locked = locked_error_from(exc, pipeline_db, wait)
            if locked is None:
                raise
            raise locked from exc
        _keep_parse_state(Path(invocation.target_path))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _keep_parse_state(invocation_target: Path) -> None:
    """Copy dbt's partial-parse state of an invocation back to the project's target folder.

    dagster-dbt gives each invocation its own target folder, seeded from the project's
    ``target/partial_parse.msgpack``; dbt reuses that state only when the profile's
    environment (AMILI_PIPELINE_DB) matches the one it was made with. Keeping the newest
    state means only the first run against a database parses the whole project. The copy
    is renamed into place, so a reader never sees half a file.
    """
    state = invocation_target / "partial_parse.msgpack"
    if not state.exists():
        return
    kept = dbt_project.project_dir / "target" / "partial_parse.msgpack"
    partial = kept.with_suffix(".msgpack.tmp")
    shutil.copyfile(state, partial)
    partial.replace(kept)
