"""Stage 2: dbt shapes the raw rows into the four batch-ready tables of the Batch body.

One Dagster asset per dbt model, dbt tests as asset checks, the raw sources linked to the
extract asset (``meta.dagster.asset_key`` in ``__sources.yml``). A backfill runs dbt once for
its whole range: the models are incremental by partition window.
"""

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, BackfillPolicy
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from assets.extract import PIPELINE_DB_POOL
from orchestration.dbt import dbt_project
from orchestration.partitions import daily_partitions, window_days
from orchestration.resources import PipelineResource

translator = DagsterDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


#: The reconciliation marts read the submission's ledger, so they run after it, separately.
MARTS = "amili.marts"  # the models/marts folder, by its dbt FQN (path: resolves from the cwd)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    exclude=MARTS,
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
    """``dbt build`` of the selected models for the run's window of Oslo days."""
    start, end = window_days(context.partition_time_window)
    dbt_vars = {"min_date": start.isoformat(), "max_date": end.isoformat()}
    # dbt runs in dbt_project/, so it gets the pipeline DB as an absolute path
    os.environ["AMILI_PIPELINE_DB"] = str(Path(pipeline.settings().pipeline_db).resolve())
    yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()
