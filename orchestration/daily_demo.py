"""``amili demo``: the whole daily chain for one partition on the embedded defaults.

Creates the demo warehouse if there is none, starts the API sandbox on a free loopback port,
materializes the day through Dagster (extract, dbt, submission, results, reconciliation),
prints the reconciliation summary and where the tables are, and stops the sandbox.
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import redirect_stderr, redirect_stdout
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

import duckdb
import httpx
from dagster import DagsterInstance

from amili.pipeline.duckdb_io import connect_writer
from amili.pipeline.postgres_source import is_database_url
from amili.sandbox.server import SandboxServer
from amili.sandbox.settings import SandboxSettings
from amili.settings import PipelineSettings, load
from amili.warehouse import generate_demo_warehouse
from orchestration.dbt_project import prepare_dbt_project
from orchestration.run_failures import run_failures

OSLO = ZoneInfo("Europe/Oslo")


def yesterday_in_oslo() -> date:
    return datetime.now(OSLO).date() - timedelta(days=1)


class DemoError(Exception):
    """The demo cannot run as asked; the message says why and what to do instead."""


def check_partition_day(day: date) -> None:
    """:class:`DemoError` unless ``day`` is a daily partition, naming the days that are."""
    from orchestration.partitions import daily_partitions

    first = daily_partitions.get_first_partition_key()
    last = daily_partitions.get_last_partition_key()
    if first is None or last is None:
        raise DemoError(f"there are no daily partitions yet: they start on "
                        f"{daily_partitions.start.date()} (AMILI_PARTITION_START)")
    if not first <= day.isoformat() <= last:
        raise DemoError(
            f"there is no partition {day}: the daily partitions run from {first} "
            f"(AMILI_PARTITION_START) to {last} (yesterday in Europe/Oslo, the last whole "
            f"day); pick --day in that range")


#: The project's Dagster instance (its dagster.yaml: pools, run queue, no telemetry).
PROJECT_DAGSTER_HOME = Path(__file__).resolve().parents[1] / "dagster_home"


def demo_dagster_home(*, ephemeral: bool = False) -> Path | None:
    """Where the demo records its run: ``$DAGSTER_HOME`` when set, else the project's
    ``dagster_home/`` (so ``dagster dev`` with the README's ``DAGSTER_HOME`` shows what the
    demo did, not "Never materialized"); None for a throwaway in-memory instance."""
    if ephemeral:
        return None
    configured = os.environ.get("DAGSTER_HOME")
    return Path(configured).resolve() if configured else PROJECT_DAGSTER_HOME


def run_pipeline_demo(out: TextIO, day: date | None = None, *, ephemeral: bool = False
                      ) -> bool:
    """Run the chain for ``day`` (default: yesterday in Oslo); True when the run succeeded.

    The run goes to the instance :func:`demo_dagster_home` names (``ephemeral``: none kept).

    Raises :class:`DemoError` (with a message, not a traceback, for the command line) when
    ``day`` is not a partition."""
    settings = load(PipelineSettings)
    day = day or yesterday_in_oslo()
    check_partition_day(day)
    warehouse = Path(settings.warehouse)
    if not is_database_url(settings.warehouse) and not warehouse.exists():
        print(f"No warehouse at {warehouse}: creating the demo warehouse...", file=out)
        summary = generate_demo_warehouse(warehouse, end_date=day)
        print(summary.render(), file=out)
    # The sandbox keeps what it received beside the pipeline database, so a demo of another
    # day meets the same "Amili" that acknowledged the earlier days' invoices (their ids are
    # in amili.acknowledged_invoices; a fresh sandbox would reject payments against them).
    sandbox_db = os.environ.get("AMILI_SANDBOX_DB_PATH") or str(
        Path(settings.pipeline_db).resolve().parent / "sandbox.sqlite3")
    with SandboxServer(load(SandboxSettings, port=0, db_path=sandbox_db)) as sandbox:
        print(f"\nAmili sandbox listening on {sandbox.base_url}", file=out)
        os.environ.update({
            "AMILI_BASE_URL": sandbox.base_url,
            "AMILI_TOKEN": sandbox.issue_token(subject="amili-demo"),
            "AMILI_SENDER_ID": os.environ.get("AMILI_SENDER_ID", "demo-sender"),
            "AMILI_PIPELINE_DB": str(Path(settings.pipeline_db).resolve()),
        })
        prepare_dbt_project()  # a fresh clone has no dbt manifest yet: parse once
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Dagster's preview/beta notes are not for users
            from orchestration.definitions import defs  # after the environment is set

        home = demo_dagster_home(ephemeral=ephemeral)
        if home is None:
            instance = None
            print("Dagster instance: a throwaway one (--ephemeral): the UI will not show this "
                  "run.", file=out)
        else:
            home.mkdir(parents=True, exist_ok=True)
            instance = DagsterInstance.from_config(str(home))
            print(f"Dagster instance: {home} (the UI shows this run when started with "
                  f"DAGSTER_HOME={home})", file=out)
        print(f"Materializing partition {day} through Dagster (job amili_daily)...\n",
              file=out)
        job = defs.resolve_job_def("amili_daily")
        # The run's own output (Dagster events, dbt's log) goes to a file; the summary below
        # says what matters, and the file has the rest.
        log_path = Path(settings.pipeline_db).resolve().parent / "logs" / f"demo-{day}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        root = logging.getLogger()
        console_handlers = root.handlers[:]
        with log_path.open("w", encoding="utf-8") as log, redirect_stdout(log), \
                redirect_stderr(log):
            root.handlers = [logging.StreamHandler(log)]
            try:
                result = job.execute_in_process(
                    partition_key=day.isoformat(), instance=instance, raise_on_error=False
                )
            finally:
                root.handlers = console_handlers
                if instance is not None:
                    instance.dispose()
        print(f"The run's full log: {log_path}", file=out)
        stats = httpx.get(f"{sandbox.base_url}/sandbox/stats").json()
    print(f"Run {'succeeded' if result.success else 'FAILED'} (run id {result.run_id}).",
          file=out)
    if not result.success:
        for failure in run_failures(result.all_events):
            where = ("Before any step, while checking the settings"
                     if failure.where == "resource setup" else f"Step {failure.where} failed")
            message = failure.message.replace("\n", "\n    ")
            print(f"  {where}: {message}", file=out)
        print(f"  (the full log: {log_path})", file=out)
    _print_summary(out, settings.pipeline_db, day)
    print(
        f"\nThe sandbox stored {stats['batches']} batches: {stats['creditors']} creditors, "
        f"{stats['invoices']} invoices, {stats['payments']} payments, {stats['actions']} "
        f"actions ({stats['duplicates']} duplicates answered).",
        file=out,
    )
    print(
        f"\nTables are in {Path(settings.pipeline_db).resolve()}:\n"
        "  raw.*                    the extract\n"
        "  batch.batch_*            batch-ready rows (batch.batch_*_json: the API objects)\n"
        "  amili.submission_ledger  every Batch posted, its state and Amili's answer\n"
        "  amili.quarantine         rows held back by validation, with the reason\n"
        "  amili.changes_after_handover  rows Amili took that changed since (not sent "
        "again)\n"
        "  amili.responses, amili.errors  every answer, per source row\n"
        "  marts.rpt_*              reconciliation per day and creditor\n"
        "Open it with: duckdb " + str(Path(settings.pipeline_db)) + "\n"
        f"What the sandbox received is kept in {sandbox_db}.\n"
        "Analysts: `amili dashboard` serves the reconciliation dashboard over the snapshot "
        "data/reporting.duckdb; the day's sign-off report is under data/reports/.",
        file=out,
    )
    print("Sandbox stopped.", file=out)
    return result.success


def _print_summary(out: TextIO, pipeline_db: str, day: date) -> None:
    from amili.pipeline import reconciliation

    try:
        with connect_writer(pipeline_db) as con:
            summary = reconciliation.reconciliation_summary(con, day, day + timedelta(days=1))
            summary += "\n\n" + reconciliation.source_summary(con, day, day + timedelta(days=1))
    except duckdb.Error as exc:
        # a run that failed early leaves no tables (or no file) to reconcile
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"\nNo reconciliation of {day} to show: the run did not get that far "
              f"({first_line}).", file=out)
        return
    print("\n" + summary, file=out)
