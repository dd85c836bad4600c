"""Stages 3 and 4: post the day's Batches exactly once, then publish Amili's answers.

The logic lives in :mod:`amili.pipeline.submission` and :mod:`amili.pipeline.results`; these
assets only pick the window, pass the settings and turn summaries into metadata.

**A dry run materializes nothing that means "Amili answered".** With ``dry_run: true`` the
submission writes the bodies to ``dry_run_dir`` and records nothing in the ledger, so it
yields no materialization of its three ledger assets (they are ``skippable``): Dagster then
skips everything downstream of them in the same run (results, the reconciliation marts and
their checks, the reporting snapshot and the sign-off report), and the run succeeds. The dry
run's own figures are an ``AssetObservation`` per day on each ledger asset, and log lines.
"""

from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetSpec,
    BackfillPolicy,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from dagster_dbt import get_asset_key_for_model
from pydantic import Field

from amili.pipeline.partition_figures import INVOICE_BUCKETS, ResultsDay, results_days
from amili.pipeline.results import publish_results
from amili.pipeline.submission import (
    DaySummary,
    Relations,
    SubmissionSummary,
    dry_run_file,
    submit_window,
)
from amili.settings import BatchLimits, load
from assets.dbt_models import amili_dbt_models
from assets.metadata import amount_key, amounts_table, metadata_table, to_hundredths
from assets.partition_results import add_partition_metadata
from orchestration.partitions import daily_partitions, window_days
from orchestration.pools import PIPELINE_DB_POOL
from orchestration.resources import SUBMISSION_OP, AmiliApiResource, PipelineResource

LEDGER_KEYS = {
    "submission_ledger": AssetKey(["amili", "submission_ledger"]),
    "ledger_objects": AssetKey(["amili", "ledger_objects"]),
    "quarantine": AssetKey(["amili", "quarantine"]),
}
RESULT_KEYS = {
    "responses": AssetKey(["amili", "responses"]),
    "errors": AssetKey(["amili", "errors"]),
}
BATCH_JSON_KEYS = [
    get_asset_key_for_model([amili_dbt_models], f"batch_{kind}_json")
    for kind in ("creditors", "invoices", "payments", "actions")
]


class SubmissionConfig(Config):
    """Run config of the submission (set it in the launchpad or with ``--config``)."""

    dry_run: bool = Field(
        default=False,
        description="Validate and build the bodies, write them to dry_run_dir, post nothing "
        "and record nothing in the ledger. In a run of the whole job, the assets downstream "
        "of the ledger (results, reconciliation marts and checks, reporting) are skipped.",
    )
    dry_run_dir: str = Field(default="data/dry-run", description="Where dry-run bodies go")
    force_resend: bool = Field(
        default=False,
        description="Send every row of the window again, even those Amili acknowledged.",
    )


@multi_asset(
    name=SUBMISSION_OP,
    specs=[
        AssetSpec(LEDGER_KEYS["submission_ledger"], deps=BATCH_JSON_KEYS, group_name="submission",
                  kinds={"duckdb"}, skippable=True,
                  description="One row per Batch posted to Amili: state, HTTP status, "
                  "attempts and the answer (the outbox)."),
        AssetSpec(LEDGER_KEYS["ledger_objects"], deps=BATCH_JSON_KEYS, group_name="submission",
                  kinds={"duckdb"}, skippable=True,
                  description="Every object of every Batch with its source id and answer "
                  "(a view over amili.ledger_arrays and amili.ledger_object_answers)."),
        AssetSpec(LEDGER_KEYS["quarantine"], deps=BATCH_JSON_KEYS, group_name="submission",
                  kinds={"duckdb"}, skippable=True,
                  description="Rows held back by validation, with a human-readable reason."),
    ],
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=PIPELINE_DB_POOL,
)
def amili_submission(
    context: AssetExecutionContext,
    config: SubmissionConfig,
    amili: AmiliApiResource,
    pipeline: PipelineResource,
) -> Iterator[MaterializeResult]:
    """Validates, quarantines, chunks and posts each day of the window; see the module doc."""
    settings = pipeline.settings()
    start, end = window_days(context.partition_time_window)
    dry_run_dir = Path(config.dry_run_dir) if config.dry_run else None
    if dry_run_dir is not None:
        limits = load(BatchLimits)  # cut as a real run would, without needing a token
        summary = submit_window(
            settings.pipeline_db, None, start, end, dry_run_dir=dry_run_dir,
            max_objects=limits.max_batch_objects, max_bytes=limits.max_batch_bytes,
            relations=Relations.in_schema("batch"),
            duckdb_memory_limit=settings.duckdb_memory_limit,
        )
    else:
        with amili.get_client() as client:
            summary = submit_window(
                settings.pipeline_db, client, start, end,
                force_resend=config.force_resend, relations=Relations.in_schema("batch"),
                duckdb_memory_limit=settings.duckdb_memory_limit,
            )
    for day in summary.partial_failures:
        context.log.warning("Some batches of %s failed: %s", day.day, day.failures[:3])
    for day in summary.unconfirmed_days:
        counts = {name: tally.unconfirmed for name, tally in day.objects.items()
                  if tally.unconfirmed}
        context.log.warning("Amili's answers on %s did not account for %s objects: they are "
                            "unconfirmed, not accepted, and the next run sends them again",
                            day.day, counts)
    for day in summary.changed_days:
        counts = {name: tally.changed_after_handover for name, tally in day.objects.items()
                  if tally.changed_after_handover}
        where = ("amili.changes_after_handover" if dry_run_dir is None else
                 str(dry_run_file(dry_run_dir.resolve(), "changes-after-handover", day.day)))
        context.log.warning("%s objects of %s changed after Amili took them: not sent again "
                            "(Amili keeps what it took); see %s", counts, day.day, where)
    summary.raise_for_failures()  # every batch of a day failed: fail the step loudly
    if dry_run_dir is not None:
        _report_dry_run(context, summary, dry_run_dir)
        return  # no materialization: nothing was handed over (see the module doc)
    # run-wide facts on every partition of the run; the counts and amounts day by day
    metadata: dict[str, object] = {"dry_run": False}
    for day in summary.days:
        day_metadata = SubmissionSummary(days=[day]).as_metadata()
        del day_metadata["days"]  # always 1 here
        for key in LEDGER_KEYS.values():
            context.add_asset_metadata(day_metadata, asset_key=key,
                                       partition_key=day.day.isoformat())
    for key in LEDGER_KEYS.values():
        yield MaterializeResult(asset_key=key, metadata=metadata)


#: Per object kind, what a dry run did with the day's rows (``written``: in a body on disk).
DRY_RUN_BUCKETS = ("seen", "written", "quarantined", "held", "skipped_unchanged",
                   "changed_after_handover")


def _report_dry_run(context: AssetExecutionContext, summary: SubmissionSummary,
                    dry_run_dir: Path) -> None:
    """A dry run's figures, day by day: a log line and an observation on each ledger asset
    (an observation records what was seen; it is no materialization, so nothing downstream
    takes it for Amili's answer)."""
    folder = dry_run_dir.resolve()
    for day in summary.days:
        metadata = dry_run_metadata(day, folder)
        written = {name: tally.sent for name, tally in day.objects.items() if tally.sent}
        quarantined = sum(tally.quarantined for tally in day.objects.values())
        context.log.info(
            "Dry run of %s: %d bodies written to %s (objects per kind: %s), %d rows "
            "quarantined; nothing posted to Amili, nothing recorded in the ledger",
            day.day, len(day.files), folder, written or "none", quarantined)
        for key in LEDGER_KEYS.values():
            context.log_event(AssetObservation(
                asset_key=key, partition=day.day.isoformat(), metadata=metadata,
                description="Dry run: bodies written to disk, nothing handed over to Amili "
                "and nothing recorded here."))
    context.log.info(
        "Dry run: the ledger assets are not materialized, so the results, the "
        "reconciliation marts and their checks and the reporting downstream of them are "
        "skipped in this run; run without dry_run to hand the day over")


def dry_run_metadata(day: DaySummary, folder: Path) -> dict[str, object]:
    """One day of a dry run as metadata: the bodies' folder and files, and per object kind
    the rows seen, written, quarantined, held, skipped or changed after hand-over."""
    rows = [{"objectname": name, "seen": tally.seen, "written": tally.sent,
             **{bucket: getattr(tally, bucket) for bucket in DRY_RUN_BUCKETS[2:]}}
            for name, tally in day.objects.items()]
    metadata: dict[str, object] = {
        "dry_run": True,
        "dry_run_dir": MetadataValue.path(str(folder)),
        "bodies_written": len(day.files),
        "bodies": MetadataValue.json(sorted(path.name for path in day.files)),
        "objects_by_kind": metadata_table(
            [("objectname", "string"), *((bucket, "int") for bucket in DRY_RUN_BUCKETS)],
            rows),
    }
    for row in rows:
        for bucket in DRY_RUN_BUCKETS:
            metadata[f"{row['objectname']}.{bucket}"] = row[bucket]
    for name, tally in day.objects.items():
        for state, by_currency in sorted(tally.amounts.items()):
            bucket = "written" if state == "sent" else state
            for currency, value in sorted(by_currency.items()):
                metadata[f"{name}.amount.{bucket}.{currency}"] = str(value)
    for label, what in (("quarantine_file", "quarantine"),
                        ("changes_after_handover_file", "changes-after-handover")):
        path = dry_run_file(folder, what, day.day)
        if path.exists():
            metadata[label] = MetadataValue.path(str(path))
    return metadata


@multi_asset(
    name="amili_results",
    specs=[
        AssetSpec(RESULT_KEYS["responses"], deps=list(LEDGER_KEYS.values()), group_name="results",
                  kinds={"duckdb"},
                  description="One row per submitted object: batch, source id, ledgerref, "
                  "status and outcome (accepted, rejected, outstanding)."),
        AssetSpec(RESULT_KEYS["errors"], deps=list(LEDGER_KEYS.values()), group_name="results",
                  kinds={"duckdb"},
                  description="One row per rejection, object-level or batch-level, with the "
                  "source id and Amili's message."),
    ],
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=PIPELINE_DB_POOL,
)
def amili_results(
    context: AssetExecutionContext, pipeline: PipelineResource
) -> Iterator[MaterializeResult]:
    """Publishes the ledger's answers for the window and records Amili's invoice ids."""
    start, end = window_days(context.partition_time_window)
    pipeline_db = pipeline.settings().pipeline_db
    tally = publish_results(pipeline_db, start, end)
    if tally.acknowledged is not None and tally.acknowledged.conflicts:
        context.log.warning("Amili id conflicts: %s", tally.acknowledged.conflicts[:5])
    # each day's own figures on its own partition (a range run covers several days)
    for day in results_days(pipeline_db, start, end):
        add_partition_metadata(context, RESULT_KEYS["responses"],
                               {day.day.isoformat(): _responses_metadata(day)})
        add_partition_metadata(context, RESULT_KEYS["errors"], {day.day.isoformat(): {
            "dagster/row_count": day.objects_by_outcome.get("rejected", 0) + day.batch_errors,
        }})
    if tally.acknowledged is not None:
        # counted for the run's window as a whole, not per day: the log says it, the
        # metadata (per day) does not
        context.log.info("Recorded %s of Amili's invoice ids for %s..%s (end exclusive)",
                         tally.acknowledged.inserted, start, end)
    yield MaterializeResult(asset_key=RESULT_KEYS["responses"])
    yield MaterializeResult(asset_key=RESULT_KEYS["errors"])


def _responses_metadata(day: ResultsDay) -> dict[str, object]:
    """One day's answers: counts per outcome, and invoice amounts per currency, as a table
    of exact amounts and as integers of hundredths (øre, cent) the UI can plot."""
    by_outcome = day.objects_by_outcome
    metadata: dict[str, object] = {
        "sent": day.sent,
        "accepted": by_outcome.get("accepted", 0),
        "rejected": by_outcome.get("rejected", 0),
        "unconfirmed": by_outcome.get("unconfirmed", 0),
        "outstanding": by_outcome.get("outstanding", 0),
        "quarantined": day.quarantined,
        "batch_errors": day.batch_errors,
        "rejection_rate": MetadataValue.float(round(day.rejection_rate, 4)),
        "top_rejection_reasons": metadata_table(
            [("reason", "string"), ("objects", "int")],
            [{"reason": reason, "objects": n} for reason, n in day.top_reasons]),
        "invoice_amounts_by_currency": amounts_table(day.invoice_amounts, INVOICE_BUCKETS),
    }
    for currency, by_bucket in sorted(day.invoice_amounts.items()):
        for bucket, amount in by_bucket.items():
            metadata[amount_key(bucket, currency)] = MetadataValue.int(to_hundredths(amount))
    return metadata
