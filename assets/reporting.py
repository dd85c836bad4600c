"""Stage 6: publish what analysts read, and archive the day's sign-off report.

``reporting_snapshot`` copies the marts and result tables into a separate DuckDB file and
renames it into place (it opens the pipeline file, so it runs in the writers' pool).
``signoff_report`` reads only that snapshot and writes one static HTML file per day. The
logic is in :mod:`amili.reporting`; these assets pick the window and shape the metadata.
"""

from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)
from dagster_dbt import get_asset_key_for_model

from amili.pipeline.partition_figures import mart_rows_per_day
from amili.reporting.signoff import write_signoff_report
from amili.reporting.snapshot import publish_snapshot
from amili.settings import reporting_paths
from assets.readback import CASES_KEY, SETTLEMENTS_KEY, amili_readback_models
from assets.reconciliation import amili_reconciliation_models
from assets.submission import LEDGER_KEYS, RESULT_KEYS
from orchestration.partitions import daily_partitions, window_days
from orchestration.pools import PIPELINE_DB_POOL
from orchestration.resources import PipelineResource

MART_KEYS = [
    get_asset_key_for_model([amili_reconciliation_models], name)
    for name in ("rpt_reconciliation_daily", "rpt_object_fates", "rpt_rejection_reasons",
                 "rpt_unanswered_batches", "rpt_marts_built")
]
SNAPSHOT_KEY = AssetKey(["reporting", "reporting_snapshot"])


@asset(
    key=SNAPSHOT_KEY,
    deps=[*MART_KEYS, *RESULT_KEYS.values(), *LEDGER_KEYS.values()],
    group_name="reporting",
    kinds={"duckdb"},
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=PIPELINE_DB_POOL,
    description="The marts and result tables copied into the analysts' own DuckDB file "
    "(data/reporting.duckdb), published by an atomic rename: the dashboard and ad-hoc SQL "
    "never open the pipeline's file, so they can never block the daily run.",
)
def reporting_snapshot(context: AssetExecutionContext, pipeline: PipelineResource) -> None:
    """Copies every day (not only the window): the snapshot is the whole reporting state."""
    settings = pipeline.settings()
    paths = reporting_paths(settings.pipeline_db)
    window = window_days(context.partition_time_window)
    summary = publish_snapshot(settings.pipeline_db, paths.reporting_db, window=window)
    if summary.missing:
        context.log.warning("Not in the pipeline database yet, left out: %s", summary.missing)
    if summary.stale_days:
        # published all the same (the other days are current), but not as if it were current
        context.log.warning(
            "The marts of %s were not rebuilt after their latest submission: the snapshot "
            "marks them stale (report.day_status)", ", ".join(map(str, summary.stale_days)))
    # the file's facts hold for every day it contains; the row count is each day's own
    stale = set(summary.stale_days)
    for day, rows in mart_rows_per_day(settings.pipeline_db, *window).items():
        context.add_asset_metadata({"dagster/row_count": rows, "stale": day in stale},
                                   partition_key=day.isoformat())
    context.add_output_metadata({
        "path": MetadataValue.path(str(summary.path)),
        "bytes": summary.bytes,
        # the whole file's tables (every day in it), not the partition's rows
        "file_row_counts_all_days": MetadataValue.json(summary.row_counts),
        "missing_tables": MetadataValue.json(summary.missing),
        "stale_days": MetadataValue.json([str(day) for day in summary.stale_days]),
    })


@asset(
    key=AssetKey(["reporting", "signoff_report"]),
    deps=[SNAPSHOT_KEY],
    group_name="reporting",
    kinds={"html"},
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    description="The day's sign-off report: a static HTML file (inline SVG charts, no "
    "scripts) under data/reports/YYYY-MM-DD.html, read from the reporting snapshot only.",
)
def signoff_report(
    context: AssetExecutionContext, pipeline: PipelineResource
) -> Iterator[MaterializeResult]:
    """One report per day of the window; a rewritten day keeps its earlier version archived."""
    paths = reporting_paths(pipeline.settings().pipeline_db)
    start, end = window_days(context.partition_time_window)
    written = write_signoff_report(paths.reporting_db, paths.reports_dir, start, end,
                                   run_id=context.run.run_id)
    for report in written:
        context.log.info("Sign-off report for %s: %s", report.day, report.path)
        metadata: dict[str, object] = {"path": MetadataValue.path(str(report.path)),
                                       "sha256": report.sha256}
        if report.archived is not None:
            metadata["previous_version"] = MetadataValue.path(str(report.archived))
        context.add_asset_metadata(metadata, partition_key=report.day.isoformat())
    yield MaterializeResult(metadata={"reports_in_run": len(written)})


READBACK_SNAPSHOT_KEY = AssetKey(["amili", "readback_published"])


@asset(
    key=READBACK_SNAPSHOT_KEY,
    deps=[CASES_KEY, SETTLEMENTS_KEY, *amili_readback_models.keys],
    group_name="readback",
    kinds={"duckdb"},
    pool=PIPELINE_DB_POOL,
    description="The reporting snapshot published again after a read-back, so the "
    "dashboard's 'With Amili' view shows the cases and settlements just read instead of "
    "waiting for the next daily run (the same file and atomic rename as "
    "reporting/reporting_snapshot).",
)
def readback_published(pipeline: PipelineResource) -> MaterializeResult:
    """Copies every day's tables and the read-back; not partitioned, like the read-back."""
    settings = pipeline.settings()
    summary = publish_snapshot(settings.pipeline_db,
                               reporting_paths(settings.pipeline_db).reporting_db)
    return MaterializeResult(metadata={
        "path": MetadataValue.path(str(summary.path)),
        "bytes": summary.bytes,
        "file_row_counts_all_days": MetadataValue.json(summary.row_counts),
        "missing_tables": MetadataValue.json(summary.missing),
    })
