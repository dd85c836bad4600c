"""One result per partition key, also when a run covers a range of days.

Every partitioned asset here has a single-run backfill policy, so a backfill of three days is
one run over the range. Dagster then stores a ``MaterializeResult``'s metadata on every
partition of the range, and an ``AssetCheckResult`` as one evaluation without a partition,
while it planned one execution per partition: the UI lists the check as "Skipped" for each
day it passed, and plots the range's total once per day. These helpers record each day's
own figures and verdict under that day's partition key instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import date, timedelta
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    Output,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from orchestration.partitions import window_days


def partition_days(context: AssetExecutionContext | AssetCheckExecutionContext
                   ) -> list[tuple[str, date]]:
    """The run's partition keys with their Oslo days, in order (one for a one-day run)."""
    start, _ = window_days(context.partition_time_window)
    keys = list(context.partition_keys)
    days = [start + timedelta(days=offset) for offset in range(len(keys))]
    for key, day in zip(keys, days, strict=True):
        if key != day.isoformat():  # daily keys are the days themselves
            raise ValueError(f"partition key {key} is not the day {day} of the run's window "
                             f"{start}..: these assets expect daily partitions")
    return list(zip(keys, days, strict=True))


def add_partition_metadata(
    context: AssetExecutionContext, asset_key: AssetKey,
    metadata_by_key: Mapping[str, Mapping[str, Any]],
) -> None:
    """Attach each partition's own metadata to that partition's materialization.

    Used before yielding the asset's ``MaterializeResult`` without metadata:
    ``context.add_asset_metadata(..., partition_key=...)`` is Dagster's way to give each
    partition of a range its own figures.
    """
    for key, metadata in metadata_by_key.items():
        context.add_asset_metadata(dict(metadata), asset_key=asset_key, partition_key=key)


def _target_materialization(
    context: AssetCheckExecutionContext, asset_key: AssetKey, partition_key: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The partition's latest materialization, which the check evaluated (as Dagster's own
    ``AssetCheckResult`` finds it for a one-partition run)."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition_key]), limit=1
    ).records
    if not records:
        return None
    record = records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        run_id=record.event_log_entry.run_id, storage_id=record.storage_id,
        timestamp=record.timestamp)


def evaluate_per_partition(
    context: AssetCheckExecutionContext, evaluate: Callable[[date, date], AssetCheckResult]
) -> Iterator[AssetCheckEvaluation | Output[None]]:
    """One evaluation per partition key of the run: ``evaluate(day, next_day)`` judges one day.

    A blocking check that fails on any day still stops the run: Dagster fails the step on a
    failed blocking ``AssetCheckEvaluation`` of severity ERROR, as on an ``AssetCheckResult``.
    """
    [spec] = context.check_specs
    # the check's own output, as Dagster yields it for an AssetCheckResult (nothing reads it)
    [output] = context.op_def.output_defs
    yield Output(None, output_name=output.name)
    for key, day in partition_days(context):
        result = evaluate(day, day + timedelta(days=1))
        yield AssetCheckEvaluation(
            asset_key=spec.asset_key,
            check_name=spec.name,
            passed=result.passed,
            metadata=result.metadata,
            severity=result.severity,
            description=result.description,
            blocking=spec.blocking,
            partition=key,
            target_materialization_data=_target_materialization(context, spec.asset_key, key),
        )
