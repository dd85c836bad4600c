"""After hand-over: what Amili holds (cases) and what it paid out (settlements).

The logic lives in :mod:`amili.pipeline.readback`; these assets pass the settings and turn
its summaries into metadata. Both write the pipeline's DuckDB file, so both claim the writers'
pool like every other writer.

Why not partitioned: a case's state is Amili's *now*, not a day's fact, so a snapshot per
day partition would re-read the same current state under each day's key (and a backfill
would write today's state into past days). The settlements read is incremental by Amili's own
cursor (``lastsettlementid`` per creditor), not by our calendar. Both are plain assets on
their own daily schedule after the submission (:data:`readback_job`, :func:`readback_schedule`).
"""


import os
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from dagster_dbt import DbtCliResource, dbt_assets
from pydantic import Field

from amili.pipeline.duckdb_io import (
    connect_writer,
    dbt_connect_attempts,
    lock_wait_seconds,
    wait_for_writer_lock,
)
from amili.pipeline.readback import (
    CASE_GRACE_DAYS,
    EXPORT_TIMEZONE,
    case_divergences,
    export_day,
    missing_cases,
    read_cases,
    read_settlements,
)
from assets.dbt_models import READBACK_MARTS, translator
from assets.metadata import metadata_table
from assets.submission import LEDGER_KEYS, RESULT_KEYS
from orchestration.dbt_project import dbt_manifest
from orchestration.pools import PIPELINE_DB_POOL
from orchestration.resources import AmiliApiResource, PipelineResource

SETTLEMENTS_KEY = AssetKey(["amili", "settlements"])
CASES_KEY = AssetKey(["amili", "cases"])
#: The metadata tables show the first rows; the mart holds all of them.
MAX_ROWS = 20

_Read = TypeVar("_Read")


class ReadbackConfig(Config):
    """Run config of the read-back assets."""

    creditors: list[str] | None = Field(
        default=None,
        description="Creditor idnumbers to read; default: every creditor Amili acknowledged "
        "from us (amili.acknowledged_creditors, their idnumbers from the creditors relation)",
    )
    creditors_relation: str = Field(
        default="batch.batch_creditors_json",
        description="The dbt relation holding the creditor payloads (their idnumbers)",
    )


def _read(
    reader: Callable[..., _Read], config: ReadbackConfig, amili: AmiliApiResource,
    pipeline: PipelineResource,
) -> _Read:
    """Both reads take the same settings: the pipeline file, a client, the creditors."""
    with amili.get_client() as client:
        return reader(pipeline.settings().pipeline_db, client, config.creditors,
                      creditors_relation=config.creditors_relation)


@asset(
    key=SETTLEMENTS_KEY,
    deps=[LEDGER_KEYS["submission_ledger"], RESULT_KEYS["responses"]],
    group_name="readback",
    kinds={"duckdb"},
    pool=PIPELINE_DB_POOL,
    description="Amili's settlements (remittances to each creditor), read incrementally per "
    "creditor from the last stored lastsettlementid and stored exactly once: each page and "
    "its cursor in one transaction, keyed by (creditor, settlement id). A re-run adds nothing; "
    "a run that fails part-way resumes every creditor from its own cursor. Not partitioned: "
    "Amili's cursor, not our calendar, says what is new.",
)
def amili_settlements(
    context: AssetExecutionContext,
    config: ReadbackConfig,
    amili: AmiliApiResource,
    pipeline: PipelineResource,
) -> MaterializeResult:
    """Reads each creditor's new settlements; fails after storing the others if one failed."""
    read = _read(read_settlements, config, amili, pipeline)
    for creditor, error in read.failures.items():
        context.log.error("settlements of creditor %s not read: %s", creditor, error)
    read.raise_for_failures()
    return MaterializeResult(metadata={
        "settlements_added": read.inserted,
        "already_stored": read.already_stored,
        "pages": read.pages,
        "amount_added": str(read.amount),
        "seconds": MetadataValue.float(round(read.seconds, 3)),
        "by_creditor": metadata_table(
            [("creditor", "string"), ("settlements_added", "int")],
            [{"creditor": c, "settlements_added": n} for c, n in sorted(
                read.by_creditor.items())]),
    })


@asset(
    key=CASES_KEY,
    deps=[LEDGER_KEYS["submission_ledger"], RESULT_KEYS["responses"]],
    group_name="readback",
    kinds={"duckdb"},
    pool=PIPELINE_DB_POOL,
    description="A snapshot of every case Amili holds for our creditors: one row per case and "
    "invoice with status, sub-status, original/paid/credited/remaining amounts, closed date, "
    "Amili's ids and our source id (handed_over false: a case for an invoice we never sent). "
    "Current state, so not partitioned: replaced whole by each run, after every creditor was "
    "read, on its own daily schedule after the submission.",
)
def amili_cases(
    context: AssetExecutionContext,
    config: ReadbackConfig,
    amili: AmiliApiResource,
    pipeline: PipelineResource,
) -> MaterializeResult:
    """Reads every creditor's cases, then replaces ``amili.cases`` in one transaction."""
    read = _read(read_cases, config, amili, pipeline)
    if read.not_handed_over:
        context.log.warning("%d case(s) at Amili are for invoices we never sent",
                            read.not_handed_over)
    return MaterializeResult(metadata={
        "dagster/row_count": read.rows,
        "requests": read.requests,
        "not_handed_over": read.not_handed_over,
        "remaining_amount": str(read.remaining),
        "status_changes": read.changes,
        "seconds": MetadataValue.float(round(read.seconds, 3)),
        "by_status": metadata_table(
            [("status", "string"), ("rows", "int")],
            [{"status": s, "rows": n} for s, n in sorted(read.by_status.items())]),
    })


class ExportConfig(Config):
    """Run config of the ERP write-back export."""

    out_dir: str = Field(default="data/exports", description="Where the files go")
    day: str | None = Field(
        default=None, description="The Oslo day (YYYY-MM-DD) whose reads to export; "
        "default: today")


EXPORT_KEY = AssetKey(["amili", "erp_export"])


@asset(
    key=EXPORT_KEY,
    deps=[SETTLEMENTS_KEY, CASES_KEY],
    group_name="readback",
    kinds={"csv", "parquet"},
    pool=PIPELINE_DB_POOL,
    description="The day's write-back files for the ERP, in data/exports/: the settlements "
    "read that day and the case status changes seen that day, each as CSV and Parquet "
    "(columns in the README, 'Write-back files'). Each settlement and change is in exactly "
    "one day's files (the Oslo day it was read).",
)
def amili_erp_export(config: ExportConfig, pipeline: PipelineResource) -> MaterializeResult:
    """Writes the day's files; re-running a day writes the same files again."""
    day = (date.fromisoformat(config.day) if config.day
           else datetime.now(ZoneInfo(EXPORT_TIMEZONE)).date())
    files = export_day(pipeline.settings().pipeline_db, day, config.out_dir)
    return MaterializeResult(metadata={
        "day": day.isoformat(),
        "settlements": files.settlements,
        "case_changes": files.case_changes,
        # amounts Amili gave with more than two decimals (flagged per row in the files)
        "settlements_more_than_two_decimals": files.settlements_beyond_cents,
        "case_changes_more_than_two_decimals": files.case_changes_beyond_cents,
        "settlements_csv": MetadataValue.path(str(files.settlements_csv.resolve())),
        "case_changes_csv": MetadataValue.path(str(files.case_changes_csv.resolve())),
    })


@dbt_assets(
    manifest=dbt_manifest(),
    select=READBACK_MARTS,
    dagster_dbt_translator=translator,
    pool=PIPELINE_DB_POOL,
    name="amili_readback_models",
)
def amili_readback_models(
    context: AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineResource
):
    """``dbt build`` of rpt_handover_status and rpt_settlements_monthly: current-state
    tables over the read-back, rebuilt whole (no partition window)."""
    pipeline_db = Path(pipeline.settings().pipeline_db).resolve()
    wait = lock_wait_seconds()
    env = {"AMILI_PIPELINE_DB": str(pipeline_db),
           "AMILI_DBT_CONNECT_ATTEMPTS": str(dbt_connect_attempts(wait))}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # DbtCliResource passes this process's environment to dbt
    try:
        wait_for_writer_lock(pipeline_db, wait_seconds=wait, log=context.log)
        yield from dbt.cli(["build", "--exclude-resource-type", "unit_test"],
                           context=context).stream()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _grace_days() -> float:
    return float(os.environ.get("AMILI_CASE_GRACE_DAYS", CASE_GRACE_DAYS))


@asset_check(
    asset=CASES_KEY,
    pool=PIPELINE_DB_POOL,
    description="Fails (severity ERROR) when an invoice Amili acknowledged has no case at "
    f"Amili after a grace period (AMILI_CASE_GRACE_DAYS, default {CASE_GRACE_DAYS} days "
    "before the cases were read).",
)
def every_acknowledged_invoice_has_a_case(pipeline: PipelineResource) -> AssetCheckResult:
    grace = _grace_days()
    with connect_writer(pipeline.settings().pipeline_db) as con:
        missing = missing_cases(con, grace)
    return AssetCheckResult(
        passed=not missing,
        severity=AssetCheckSeverity.ERROR,
        description=None if not missing else (
            f"{len(missing)} acknowledged invoice(s) have no case at Amili {grace:g} day(s) "
            "on; see marts.rpt_handover_status (divergence_reason 'case missing')"),
        metadata={"missing": len(missing), "grace_days": MetadataValue.float(grace),
                  "first_missing": metadata_table(
                      [("unique_source_invoice_id", "string"), ("amili_invoice_id", "string"),
                       ("acknowledged_at", "string")], missing[:MAX_ROWS])},
    )


@asset_check(
    asset=CASES_KEY,
    pool=PIPELINE_DB_POOL,
    description="Warns when a case at Amili differs from what Amili acknowledged from us "
    "(another original amount or currency) or is for an invoice we never sent; the list is "
    "marts.rpt_handover_status where diverges.",
)
def cases_match_what_we_handed_over(pipeline: PipelineResource) -> AssetCheckResult:
    with connect_writer(pipeline.settings().pipeline_db) as con:
        rows = case_divergences(con)
    reasons: dict[str, int] = {}
    for row in rows:
        reasons[str(row["reason"])] = reasons.get(str(row["reason"]), 0) + 1
    return AssetCheckResult(
        passed=not rows,
        severity=AssetCheckSeverity.WARN,
        description=None if not rows else ", ".join(
            f"{n} {reason}" for reason, n in sorted(reasons.items())),
        metadata={"divergences": len(rows), **{f"reason: {r}": n for r, n in reasons.items()},
                  "first_divergences": metadata_table(
                      [("unique_source_invoice_id", "string"), ("amili_invoice_id", "string"),
                       ("creditor_idnumber", "string"), ("acknowledged_amount", "string"),
                       ("case_amount", "string"), ("reason", "string")], rows[:MAX_ROWS])},
    )


#: The read-back assets and their marts: not partitioned, so outside the daily job.
READBACK = AssetSelection.assets(SETTLEMENTS_KEY, CASES_KEY, EXPORT_KEY) | (
    AssetSelection.assets(amili_readback_models))
READBACK_CHECKS = [every_acknowledged_invoice_has_a_case, cases_match_what_we_handed_over]
