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


from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from amili.pipeline.readback import read_cases, read_settlements
from assets.metadata import metadata_table
from assets.submission import LEDGER_KEYS, RESULT_KEYS
from orchestration.pools import PIPELINE_DB_POOL
from orchestration.resources import AmiliApiResource, PipelineResource

SETTLEMENTS_KEY = AssetKey(["amili", "settlements"])
CASES_KEY = AssetKey(["amili", "cases"])


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


@asset(
    key=SETTLEMENTS_KEY,
    deps=[LEDGER_KEYS["submission_ledger"], RESULT_KEYS["responses"]],
    group_name="amili_readback",
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
    db = pipeline.settings().pipeline_db
    with amili.get_client() as client:
        read = read_settlements(db, client, config.creditors,
                                creditors_relation=config.creditors_relation)
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
    group_name="amili_readback",
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
    db = pipeline.settings().pipeline_db
    with amili.get_client() as client:
        read = read_cases(db, client, config.creditors,
                          creditors_relation=config.creditors_relation)
    if read.not_handed_over:
        context.log.warning("%d case(s) at Amili are for invoices we never sent",
                            read.not_handed_over)
    return MaterializeResult(metadata={
        "dagster/row_count": read.rows,
        "requests": read.requests,
        "not_handed_over": read.not_handed_over,
        "remaining_amount": str(read.remaining),
        "seconds": MetadataValue.float(round(read.seconds, 3)),
        "by_status": metadata_table(
            [("status", "string"), ("rows", "int")],
            [{"status": s, "rows": n} for s, n in sorted(read.by_status.items())]),
    })


#: The read-back assets: not partitioned, so outside the daily partitioned job.
READBACK = AssetSelection.assets(SETTLEMENTS_KEY, CASES_KEY)
