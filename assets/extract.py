"""Stage 1: the day's eligible receivables, copied from the warehouse into ``raw.*``.

One multi-asset, one Dagster asset per raw table, so every dbt source has its own upstream
asset and the lineage graph from warehouse to Batch body is one piece.
"""

from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    multi_asset,
)

from amili.pipeline.extract import RAW_TABLES, extract_window
from amili.pipeline.partition_figures import extract_days
from amili.pipeline.postgres_source import mask_url
from assets.metadata import metadata_table
from orchestration.partitions import daily_partitions, window_days
from orchestration.pools import PIPELINE_DB_POOL
from orchestration.resources import PipelineResource

#: One Dagster asset per raw table; the dbt sources ``raw.<table>`` resolve to these keys.
RAW_ASSET_KEYS = {table: AssetKey(["raw", table]) for table in RAW_TABLES}

_DESCRIPTIONS = {
    "invoices": "Invoices that become eligible for collection on the day: unpaid, past due by "
    "the creditor's delay, not disputed, not handed over.",
    "invoice_lines": "Claim lines (principal, fee, interest) of the day's eligible invoices.",
    "reminders": "Reminders the creditor sent for the day's eligible invoices.",
    "payments": "Payments registered on the day (Oslo time).",
    "case_actions": "Case handlers' requests (pause, resume, withdraw, message) of the day.",
    "customers": "Debtors the day's invoices, payments and actions refer to.",
    "creditors": "Creditors the day's invoices, payments and actions refer to.",
}
# warehouse_rows_read (PostgreSQL sources): rows the run's window fetched from the server


@multi_asset(
    name="receivables_extract",
    specs=[
        AssetSpec(key, description=_DESCRIPTIONS.get(table), group_name="extract",
                  kinds={"duckdb"})
        for table, key in RAW_ASSET_KEYS.items()
    ],
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=PIPELINE_DB_POOL,
)
def receivables_extract(
    context: AssetExecutionContext, pipeline: PipelineResource
) -> Iterator[MaterializeResult]:
    """Copies one window of Oslo days from the warehouse into raw.* of the pipeline DB."""
    settings = pipeline.settings()
    start, end = window_days(context.partition_time_window)
    summary = extract_window(
        settings.pipeline_db,
        settings.warehouse,
        start,
        end,
        default_delay_days=settings.collection_delay_days,
    )
    context.log.info("Extracted %s for %s..%s (end exclusive) from %s", summary.row_counts,
                     start, end, mask_url(settings.warehouse))
    if summary.rows_read:
        context.log.info("Rows read from the warehouse server: %s", summary.rows_read)
    if summary.raw_columns_changed:
        context.log.warning("The warehouse's columns changed; the raw tables follow them "
                            "(widened, never narrowed): %s", summary.raw_columns_changed)
    # each day's own figures on its own partition (a range run covers several days)
    for day in extract_days(settings.pipeline_db, start, end):
        key = day.day.isoformat()
        for table, asset_key in RAW_ASSET_KEYS.items():
            metadata: dict[str, object] = {"dagster/row_count": day.row_counts[table]}
            if summary.rows_read:  # a database server: what crossed the wire for the run
                metadata["warehouse_rows_read"] = summary.rows_read[table]
            if table == "invoices":
                metadata["eligible_amount"] = metadata_table(
                    [("currency", "string"), ("eligible_remaining_amount", "decimal")],
                    [{"currency": currency, "eligible_remaining_amount": amount}
                     for currency, amount in day.eligible_amount_by_currency.items()],
                )
                metadata["preview"] = metadata_table(
                    [(name, "string") for name in (day.preview[0] if day.preview else [])],
                    day.preview)
            context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=key)
    for asset_key in RAW_ASSET_KEYS.values():
        yield MaterializeResult(asset_key=asset_key)
