"""Stages 3 and 4: post the day's Batches exactly once, then publish Amili's answers.

The logic lives in :mod:`amili.pipeline.submission` and :mod:`amili.pipeline.results`; these
assets only pick the window, pass the settings and turn summaries into metadata.
"""

from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from dagster_dbt import get_asset_key_for_model
from pydantic import Field

from amili.contract import MAX_BATCH_OBJECTS, MAX_BODY_BYTES
from amili.pipeline.results import publish_results
from amili.pipeline.submission import Relations, submit_window
from amili.reporting.metrics import invoice_amounts_nok, to_ore
from assets.dbt_models import amili_dbt_models
from assets.metadata import metadata_table
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
        description="Validate and build the bodies, write them to dry_run_dir, post nothing.",
    )
    dry_run_dir: str = Field(default="data/dry-run", description="Where dry-run bodies go")
    force_resend: bool = Field(
        default=False,
        description="Send every row of the window again, even those Amili acknowledged.",
    )


@multi_asset(
    name=SUBMISSION_OP,
    specs=[
        AssetSpec(LEDGER_KEYS["submission_ledger"], deps=BATCH_JSON_KEYS, group_name="amili",
                  kinds={"duckdb"},
                  description="One row per Batch posted to Amili: state, HTTP status, "
                  "attempts and the answer (the outbox)."),
        AssetSpec(LEDGER_KEYS["ledger_objects"], deps=BATCH_JSON_KEYS, group_name="amili",
                  kinds={"duckdb"},
                  description="Every object of every Batch with its source id and answer "
                  "(a view over amili.ledger_arrays and amili.ledger_object_answers)."),
        AssetSpec(LEDGER_KEYS["quarantine"], deps=BATCH_JSON_KEYS, group_name="amili",
                  kinds={"duckdb"},
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
        summary = submit_window(
            settings.pipeline_db, None, start, end, dry_run_dir=dry_run_dir,
            max_objects=MAX_BATCH_OBJECTS, max_bytes=MAX_BODY_BYTES,  # the contract's limits
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
        context.log.warning("%s objects of %s changed after Amili took them: not sent again "
                            "(Amili keeps what it took); see amili.changes_after_handover",
                            counts, day.day)
    summary.raise_for_failures()  # every batch of a day failed: fail the step loudly
    metadata = {key: value for key, value in summary.as_metadata().items()}
    metadata["dry_run"] = bool(dry_run_dir)
    if dry_run_dir:
        metadata["dry_run_dir"] = MetadataValue.path(str(dry_run_dir.resolve()))
    for key in LEDGER_KEYS.values():
        yield MaterializeResult(asset_key=key, metadata=metadata)


@multi_asset(
    name="amili_results",
    specs=[
        AssetSpec(RESULT_KEYS["responses"], deps=list(LEDGER_KEYS.values()), group_name="amili",
                  kinds={"duckdb"},
                  description="One row per submitted object: batch, source id, ledgerref, "
                  "status and outcome (accepted, rejected, outstanding)."),
        AssetSpec(RESULT_KEYS["errors"], deps=list(LEDGER_KEYS.values()), group_name="amili",
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
    tally = publish_results(pipeline.settings().pipeline_db, start, end)
    by_outcome = tally.objects_by_outcome
    metadata: dict[str, object] = {
        "sent": tally.sent,
        "accepted": by_outcome.get("accepted", 0),
        "rejected": by_outcome.get("rejected", 0),
        "outstanding": by_outcome.get("outstanding", 0),
        "quarantined": tally.quarantined,
        "batch_errors": tally.batch_errors,
        "rejection_rate": MetadataValue.float(round(tally.rejection_rate, 4)),
        "top_rejection_reasons": metadata_table(
            [("reason", "string"), ("objects", "int")],
            [{"reason": reason, "objects": n} for reason, n in tally.top_reasons]),
    }
    for outcome, amount in sorted(tally.amounts_by_outcome.items()):
        metadata[f"invoice_amount_{outcome}"] = str(amount)
    # Numbers the Dagster UI plots across partitions: invoice amounts (NOK) in whole øre,
    # exact integers from DECIMAL sums, never floats.
    for bucket, amount in invoice_amounts_nok(pipeline.settings().pipeline_db, start, end
                                              ).items():
        metadata[f"{bucket}_amount_nok_ore"] = MetadataValue.int(to_ore(amount))
    if tally.acknowledged is not None:
        metadata["invoice_ids_recorded"] = tally.acknowledged.inserted
        if tally.acknowledged.conflicts:
            context.log.warning("Amili id conflicts: %s", tally.acknowledged.conflicts[:5])
            metadata["invoice_id_conflicts"] = len(tally.acknowledged.conflicts)
    yield MaterializeResult(asset_key=RESULT_KEYS["responses"], metadata=metadata)
    yield MaterializeResult(asset_key=RESULT_KEYS["errors"],
                            metadata={"dagster/row_count": by_outcome.get("rejected", 0)
                                      + tally.batch_errors})

