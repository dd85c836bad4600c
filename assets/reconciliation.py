"""Stage 5: the reconciliation marts (dbt) and the checks that every krone adds up.

The marts read the submission's ledger, so they are a second dbt selection that runs after
the submission and results assets. Three checks guard them: a blocking balance check
(eligible = quarantined + held + carried forward + changed after hand-over + skipped + sent,
sent = accepted + rejected + unconfirmed + outstanding, in counts and amounts), an error when
sent objects are left without a believed answer (they balance, but were not handed over), a
warning while objects changed after Amili took them (they balance, but Amili holds another
amount), and a warning on the rejection rate.
"""

from collections.abc import Callable, Iterator
from datetime import date

import duckdb
from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    BackfillPolicy,
    MetadataValue,
    Output,
    asset_check,
)
from dagster_dbt import DbtCliResource, dbt_assets, get_asset_key_for_model

from amili.pipeline.duckdb_io import connect_writer
from amili.pipeline.partition_figures import RECONCILED_BUCKETS, reconciled_by_currency
from amili.pipeline.reconciliation import (
    balance_problems,
    changes_after_handover,
    rejection_rate,
    unanswered_objects,
)
from assets.dbt_models import MARTS, build_partition_window, translator
from assets.metadata import metadata_table
from assets.partition_results import evaluate_per_partition
from orchestration.dbt_project import dbt_manifest
from orchestration.partitions import daily_partitions
from orchestration.pools import PIPELINE_DB_POOL
from orchestration.resources import PipelineResource

#: Judges one day ``[start, end)`` on an open connection to the pipeline file.
_DayCheck = Callable[[duckdb.DuckDBPyConnection, date, date], AssetCheckResult]

#: Above this share of rejected objects the warning check fails.
REJECTION_RATE_WARNING = 0.10

#: The metadata tables show the first rows; the marts hold all of them.
MAX_TABLE_ROWS = 50
PROBLEM_COLUMNS = [("partition_date", "date"), ("creditor_id", "string"),
                   ("objectname", "string"), ("currency", "string"), ("problem", "string")]
#: The day per object kind and currency, as the balance check judged it.
RECONCILED_COLUMNS = [("objectname", "string"), ("currency", "string"), *(
    (f"{bucket}_{part}", kind) for bucket in RECONCILED_BUCKETS
    for part, kind in (("count", "int"), ("amount", "decimal")))]
UNANSWERED_COLUMNS = [
    ("partition_date", "date"), ("creditor_id", "string"), ("objectname", "string"),
    ("currency", "string"), ("outstanding_count", "int"), ("outstanding_amount", "decimal"),
    ("unconfirmed_count", "int"), ("unconfirmed_amount", "decimal"),
]
CHANGED_COLUMNS = [
    ("partition_date", "date"), ("creditor_id", "string"), ("objectname", "string"),
    ("currency", "string"), ("changed_after_handover_count", "int"),
    ("changed_after_handover_amount", "decimal"),
    ("changed_after_handover_acknowledged_amount", "decimal"),
    ("changed_after_handover_difference", "decimal"),
]


@dbt_assets(
    manifest=dbt_manifest(),
    select=MARTS,
    dagster_dbt_translator=translator,
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=PIPELINE_DB_POOL,
    name="amili_reconciliation_models",
)
def amili_reconciliation_models(
    context: AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineResource
):
    yield from build_partition_window(context, dbt, pipeline)


RECONCILIATION_KEY = get_asset_key_for_model(
    [amili_reconciliation_models], "rpt_reconciliation_daily"
)


@asset_check(
    asset=RECONCILIATION_KEY,
    blocking=True,
    partitions_def=daily_partitions,
    pool=PIPELINE_DB_POOL,
    description="Every eligible object is quarantined, held, carried forward to a later day, "
    "changed after hand-over (Amili took it with another payload: not sent again), skipped "
    "as unchanged or sent, and every sent one is accepted, rejected, unconfirmed or "
    "outstanding: in counts and in amounts (a changed object at the warehouse's current "
    "amount).",
)
def every_krone_is_accounted_for(
    context: AssetCheckExecutionContext, pipeline: PipelineResource
) -> Iterator[AssetCheckEvaluation | Output[None]]:
    yield from _per_day(context, pipeline, _balance)


def _per_day(
    context: AssetCheckExecutionContext, pipeline: PipelineResource,
    evaluate: _DayCheck,
) -> Iterator[AssetCheckEvaluation | Output[None]]:
    """Each day of the run judged by itself, recorded under its own partition key (so a
    range run shows Passed or Failed per day, not Skipped); the pipeline file is held only
    while the days are read."""
    with connect_writer(pipeline.settings().pipeline_db) as con:
        evaluations = list(evaluate_per_partition(
            context, lambda start, end: evaluate(con, start, end)))
    yield from evaluations


def _balance(con: duckdb.DuckDBPyConnection, start: date, end: date) -> AssetCheckResult:
    problems = balance_problems(con, start, end)
    return AssetCheckResult(
        passed=not problems,
        metadata={
            "unbalanced_rows": len(problems),
            "problems": metadata_table(PROBLEM_COLUMNS, problems[:MAX_TABLE_ROWS]),
            # what balanced (or not): the day per kind and currency, amounts never summed
            # across currencies
            "by_kind_and_currency": metadata_table(
                RECONCILED_COLUMNS, reconciled_by_currency(con, start, end)),
        },
    )


@asset_check(
    asset=RECONCILIATION_KEY,
    partitions_def=daily_partitions,
    pool=PIPELINE_DB_POOL,
    description="Fails (severity ERROR, not blocking: the reports still show them) while sent "
    "objects are outstanding (their batch failed, was not sent or is in doubt) or unconfirmed "
    "(Amili's answer did not say what became of them). The next run of the day re-posts or "
    "re-sends them; see marts.rpt_unanswered_batches.",
)
def every_sent_object_is_answered(
    context: AssetCheckExecutionContext, pipeline: PipelineResource
) -> Iterator[AssetCheckEvaluation | Output[None]]:
    yield from _per_day(context, pipeline, _answered)


def _answered(con: duckdb.DuckDBPyConnection, start: date, end: date) -> AssetCheckResult:
    rows = unanswered_objects(con, start, end)
    outstanding = sum(row["outstanding_count"] for row in rows)
    unconfirmed = sum(row["unconfirmed_count"] for row in rows)
    return AssetCheckResult(
        passed=not rows,
        severity=AssetCheckSeverity.ERROR,
        description=None if not rows else (
            f"{outstanding} sent object(s) have no answer and {unconfirmed} an answer that "
            "does not account for them: not handed over yet; the next run of the day sends "
            "them again"),
        metadata={
            "outstanding": outstanding,
            "unconfirmed": unconfirmed,
            "by_day_and_creditor": metadata_table(UNANSWERED_COLUMNS, rows[:MAX_TABLE_ROWS]),
        },
    )


@asset_check(
    asset=RECONCILIATION_KEY,
    partitions_def=daily_partitions,
    pool=PIPELINE_DB_POOL,
    description="Warns while invoices, payments or actions have changed in the warehouse "
    "after Amili took them (fate changed_after_handover): they are not sent again (Amili "
    "keeps what it took and the Batch API has no way to change it), so Amili holds another "
    "amount than the warehouse; settle the difference with Amili. See "
    "marts.rpt_object_fates (acknowledged_amount, amount_difference).",
)
def no_object_changed_after_handover(
    context: AssetCheckExecutionContext, pipeline: PipelineResource
) -> Iterator[AssetCheckEvaluation | Output[None]]:
    yield from _per_day(context, pipeline, _unchanged)


def _unchanged(con: duckdb.DuckDBPyConnection, start: date, end: date) -> AssetCheckResult:
    rows = changes_after_handover(con, start, end)
    changed = sum(row["changed_after_handover_count"] for row in rows)
    return AssetCheckResult(
        passed=not rows,
        severity=AssetCheckSeverity.WARN,
        description=None if not rows else (
            f"{changed} object(s) changed after Amili took them: not sent again; Amili "
            "holds the amounts it took (see the difference)"),
        metadata={
            "changed_after_handover": changed,
            "by_day_and_creditor": metadata_table(CHANGED_COLUMNS, rows[:MAX_TABLE_ROWS]),
        },
    )


@asset_check(
    asset=RECONCILIATION_KEY,
    partitions_def=daily_partitions,
    pool=PIPELINE_DB_POOL,
    description=f"Warns when Amili rejects more than {REJECTION_RATE_WARNING:.0%} of the "
    "objects sent.",
)
def rejection_rate_is_low(
    context: AssetCheckExecutionContext, pipeline: PipelineResource
) -> Iterator[AssetCheckEvaluation | Output[None]]:
    yield from _per_day(context, pipeline, _rejection_rate)


def _rejection_rate(con: duckdb.DuckDBPyConnection, start: date, end: date
                    ) -> AssetCheckResult:
    sent, rejected, rate = rejection_rate(con, start, end)
    return AssetCheckResult(
        passed=rate <= REJECTION_RATE_WARNING,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "sent": sent,
            "rejected": rejected,
            "rejection_rate": MetadataValue.float(round(rate, 4)),
        },
    )

