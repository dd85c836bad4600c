"""The production instance (``deploy/dagster.yaml``) on a real PostgreSQL server.

The deployment's three processes run as subprocesses: a code-location gRPC server
(``dagster code-server start``), and ``dagster-webserver`` and ``dagster-daemon`` loading it
through ``deploy/workspace.yaml``, all on a ``DAGSTER_HOME`` whose runs, event logs, schedules
and pools live in PostgreSQL. Two ways in, both run by the real daemon against the sandbox:

* the daily schedule's tick. The test makes the schedule fire within two minutes through the
  project's own setting (``AMILI_SCHEDULE_TIME``, read when the code location loads), turns
  the schedule on as the UI's toggle does (GraphQL ``startSchedule``), and the scheduler
  daemon ticks at that minute and launches the previous Oslo day's partition;
* a three-day backfill launched as the UI's *Launch backfill* does (tests/dagster_stack.py).

Both runs share the instance's ``pipeline_duckdb`` pool, which here lives in PostgreSQL.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import psycopg
import pytest

from tests.conftest import SandboxAdmin, SandboxServer
from tests.dagster_stack import (
    REPO,
    DagsterStack,
    backfill_runs,
    free_port,
    launch_backfill,
    recorded_runs,
    running_stack,
    wait_for_backfill,
)
from tests.helpers import demo_pipeline_env
from tests.postgres_server import PostgresServer

OSLO = ZoneInfo("Europe/Oslo")
SCHEDULE = "amili_daily_schedule"
SENDER_ID = "deploy-test"
#: The schedule fires at the first whole minute at least this long after the fixture starts:
#: time for the storage, the code server, the webserver and the daemon to come up (about a
#: minute here) before the schedule is switched on. A tick that passed before the switch is
#: not run (Dagster does not run ticks from before a schedule was started).
SCHEDULE_LEAD_SECONDS = 150
RUN_TIMEOUT = 480.0


@dataclass
class Deployment:
    stack: DagsterStack
    dagster_db_url: str
    tick: datetime  # when the schedule fires, Europe/Oslo
    scheduled_day: date  # the partition it runs: the Oslo day before the tick
    backfill_days: list[date]


@pytest.fixture
def deployment(tmp_path: Path, clean_sandbox: SandboxServer, postgres_server: PostgresServer,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    dagster_db = f"dagster_{tmp_path.name[-20:].lower().replace('-', '_')}"
    url = postgres_server.create_database(dagster_db)
    # deploy/dagster.yaml reads these; this process reads the instance too (set up, read back)
    for name, value in {
        "DAGSTER_PG_HOST": postgres_server.host, "DAGSTER_PG_PORT": str(postgres_server.port),
        "DAGSTER_PG_USER": postgres_server.user, "DAGSTER_PG_PASSWORD": postgres_server.password,
        "DAGSTER_PG_DB": dagster_db,
    }.items():
        monkeypatch.setenv(name, value)
    start = datetime.now(OSLO) + timedelta(seconds=SCHEDULE_LEAD_SECONDS)
    tick = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    scheduled_day = tick.date() - timedelta(days=1)
    backfill_days = [scheduled_day - timedelta(days=n) for n in (3, 2, 1)]
    code_server_port = free_port()
    env = {
        **demo_pipeline_env(tmp_path, clean_sandbox, end_date=scheduled_day, days=4,
                            sender_id=SENDER_ID),
        "AMILI_SCHEDULE_TIME": f"{tick:%H:%M}",
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
        "DAGSTER_CODE_SERVER_PORT": str(code_server_port),
    }
    with running_stack(tmp_path, instance_yaml=REPO / "deploy" / "dagster.yaml", env=env,
                       workspace=REPO / "deploy" / "workspace.yaml",
                       code_server_port=code_server_port) as stack:
        yield Deployment(stack, url, tick, scheduled_day, backfill_days)


def start_schedule(stack: DagsterStack) -> str:
    """What the UI's schedule toggle sends; returns the schedule's new status."""
    result = stack.graphql(
        """mutation ($selector: ScheduleSelector!) { startSchedule(scheduleSelector: $selector) {
             __typename
             ... on ScheduleStateResult { scheduleState { status } }
             ... on PythonError { message }
           } }""",
        selector={"repositoryName": "__repository__", "repositoryLocationName": stack.location,
                  "scheduleName": SCHEDULE},
    )["startSchedule"]
    assert result["__typename"] == "ScheduleStateResult", result
    return str(result["scheduleState"]["status"])


def wait_for_scheduled_run(stack: DagsterStack, deadline: float) -> list[str]:
    """Polls until the schedule's run has ended; returns the statuses of its runs."""
    while time.monotonic() < deadline:
        runs = recorded_runs(stack, "dagster/schedule_name", SCHEDULE)
        if runs and all(run.status in {"SUCCESS", "FAILURE", "CANCELED"} for run in runs):
            return [run.status for run in runs]
        time.sleep(3)
    raise AssertionError(f"the scheduled run did not end\n{stack.log_tails()}")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_production_instance_on_postgres_runs_a_scheduled_day_and_a_ui_backfill(
    deployment: Deployment, sandbox_admin: SandboxAdmin, clean_sandbox: SandboxServer,
) -> None:
    stack = deployment.stack
    assert stack.location == "amili"  # the code location of deploy/workspace.yaml
    assert start_schedule(stack) == "RUNNING"
    switched_on = datetime.now(OSLO)
    assert switched_on < deployment.tick, (
        f"the deployment took too long to start: the schedule was switched on at "
        f"{switched_on:%H:%M:%S}, after its tick at {deployment.tick:%H:%M}; "
        "raise SCHEDULE_LEAD_SECONDS")

    backfill_id = launch_backfill(stack, deployment.backfill_days)
    status = wait_for_backfill(stack, backfill_id)
    runs = backfill_runs(stack, backfill_id)
    assert status == "COMPLETED_SUCCESS", (status, runs)
    assert [run.status for run in runs] == ["SUCCESS"], runs

    wait_until = max(time.monotonic(), time.monotonic()
                     + (deployment.tick - datetime.now(OSLO)).total_seconds()) + RUN_TIMEOUT
    statuses = wait_for_scheduled_run(stack, wait_until)
    [scheduled] = recorded_runs(stack, "dagster/schedule_name", SCHEDULE)
    assert statuses == ["SUCCESS"], scheduled.failures
    day = deployment.scheduled_day.isoformat()
    assert scheduled.tags["dagster/partition"] == day
    assert scheduled.tags["amili/collection_day"] == day
    assert all(scheduled.checks.get("every_krone_is_accounted_for", [False])), scheduled.checks

    # The instance's own tables in PostgreSQL hold the runs, the backfill and the tick.
    with psycopg.connect(deployment.dagster_db_url) as con:
        rows = con.execute(
            """SELECT r.run_id, r.status, r.partition, t.key, t.value FROM runs r
               JOIN run_tags t ON t.run_id = r.run_id
               WHERE t.key IN ('dagster/backfill', 'dagster/schedule_name')""").fetchall()
        assert {(run_id, status, partition, key, value)
                for run_id, status, partition, key, value in rows} == {
            (runs[0].run_id, "SUCCESS", None, "dagster/backfill", backfill_id),  # a range run
            (scheduled.run_id, "SUCCESS", day, "dagster/schedule_name", SCHEDULE),
        }, rows
        backfills = con.execute("SELECT key, status FROM bulk_actions").fetchall()
        assert backfills == [(backfill_id, "COMPLETED_SUCCESS")], backfills
        ticks = con.execute(
            "SELECT status, tick_body FROM job_ticks WHERE type = 'SCHEDULE'").fetchall()
        assert [status for status, _ in ticks] == ["SUCCESS"], ticks
        assert scheduled.run_id in ticks[0][1]  # the tick names the run it launched
        # the pool is the instance's, in PostgreSQL too: one slot, free again
        slots = con.execute(
            "SELECT count(*), count(run_id) FROM concurrency_slots "
            "WHERE concurrency_key = 'pipeline_duckdb' AND NOT deleted").fetchone()
        assert slots == (1, 0), slots
        # ... and no event of any run (their logs and metadata) holds the instance's password
        leaks = con.execute("SELECT count(*) FROM event_logs WHERE strpos(event, %s) > 0",
                            [os.environ["DAGSTER_PG_PASSWORD"]]).fetchone()
        assert leaks == (0,), leaks

    # What the runs did: the four days submitted, each invoice stored once by the sandbox.
    with duckdb.connect(str(stack.pipeline_db), read_only=True) as con:
        days = [d for (d,) in con.execute(
            "SELECT DISTINCT partition_date FROM amili.submission_ledger ORDER BY 1").fetchall()]
        accepted = {source_id for (source_id,) in con.execute(
            "SELECT source_id FROM amili.responses "
            "WHERE objectname = 'invoice' AND outcome = 'accepted'").fetchall()}
    assert days == [*deployment.backfill_days, deployment.scheduled_day]
    stored = [row.unique_source_invoice_id
              for row in clean_sandbox.state.store.invoices(SENDER_ID)]
    assert accepted and sorted(stored) == sorted(accepted)
    stats = sandbox_admin.stats()
    assert (stats["duplicates"], stats["replays"], stats["conflicts"]) == (0, 0, 0), stats

    # The instance's password is in the processes' environment only: no log holds it.
    password = os.environ["DAGSTER_PG_PASSWORD"]
    for log in stack.logs:
        assert password not in log.read_text(errors="replace"), log.name
