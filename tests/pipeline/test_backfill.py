"""A three-day backfill launched the way the Dagster UI does, run by the real daemon.

``test_daily_job`` runs a date range in-process; this test proves the path users take: the
webserver and ``dagster-daemon`` run as subprocesses on a temporary ``DAGSTER_HOME`` holding
the project's ``dagster.yaml``, backfills are launched through the webserver's GraphQL API
(``launchPartitionBackfill``, with exactly the parameters the UI's *Materialize* dialog sends
from the asset graph and from the job's page), and the daemon launches the runs in their own
processes against the sandbox API server of the test session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
)

from amili.pipeline.reconciliation import balance_problems
from tests.conftest import SandboxAdmin, SandboxServer
from tests.helpers import demo_pipeline_env

REPO = Path(__file__).resolve().parents[2]
DAYS = [date(2026, 11, 22), date(2026, 11, 23), date(2026, 11, 24)]
SENDER_ID = "backfill-test"
JOB = "amili_daily"

#: Bounds of each wait. The daemon looks for backfills every 30 s (fixed in Dagster) and one
#: run over the three days takes 1-3 minutes (two dbt builds): a backfill ends in about 2.5
#: minutes on a quiet machine, 4-5 on a busy one.
STARTUP_TIMEOUT = 180.0
BACKFILL_TIMEOUT = 480.0
TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stops a subprocess and everything it started (code servers, run workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)  # the group: started with a session of its own
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):  # whatever is left of the group
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=5)


def _tail(path: Path, lines: int = 120) -> str:
    """The log's errors (the daemon's tail is mostly backfill status), then its last lines."""
    text = path.read_text(errors="replace").splitlines() if path.exists() else ["(no log)"]
    errors = [line for line in text if "ERROR" in line or "Error:" in line][:40]
    return "\n".join([*errors, "...", *text[-lines:]])


@dataclass
class DagsterStack:
    """The webserver and daemon of one temporary instance, and what they work on."""

    url: str
    home: Path
    pipeline_db: Path
    logs: list[Path]
    location: str = ""

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/graphql", json={"query": query,
                                                            "variables": variables},
                              timeout=60)
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def log_tails(self) -> str:
        return "\n".join(f"----- {log.name} -----\n{_tail(log)}" for log in self.logs)


@pytest.fixture
def dagster_stack(tmp_path: Path, clean_sandbox: SandboxServer) -> Iterator[DagsterStack]:
    """``dagster-webserver`` + ``dagster-daemon run`` on a temporary instance, always stopped.

    Their logs are printed at teardown: pytest shows them only when the test failed.
    """
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    # Create the instance's storage once, here: a webserver and a daemon creating it at the
    # same moment can race ("alembic_version has more than one head").
    with DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        **demo_pipeline_env(tmp_path, clean_sandbox, end_date=DAYS[-1], sender_id=SENDER_ID),
    }
    bin_dir = Path(sys.executable).parent
    port = _free_port()
    commands = {
        "webserver": [str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml",
                      "-h", "127.0.0.1", "-p", str(port)],
        "daemon": [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"],
    }
    stack = DagsterStack(url=f"http://127.0.0.1:{port}", home=home,
                         pipeline_db=tmp_path / "pipeline.duckdb", logs=[])
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, command in commands.items():
            log = tmp_path / f"{name}.log"
            stack.logs.append(log)
            with log.open("wb") as out:
                processes.append(subprocess.Popen(
                    command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,  # one process group to stop, children included
                ))
        _wait_for_code_location(stack, processes)
        yield stack
    finally:
        for process in processes:
            _stop(process)
        print(stack.log_tails())


def _wait_for_code_location(stack: DagsterStack, processes: list[subprocess.Popen[bytes]]
                            ) -> None:
    """Waits until the webserver answers and has loaded the code location, or fails."""
    query = """{ workspaceOrError { ... on Workspace { locationEntries {
        name loadStatus locationOrLoadError { __typename ... on PythonError { message } }
    } } } }"""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        for process in processes:
            assert process.poll() is None, f"{process.args[0]} exited\n{stack.log_tails()}"
        try:
            entries = stack.graphql(query)["workspaceOrError"]["locationEntries"]
        except httpx.HTTPError:
            entries = []
        for entry in entries:
            if entry["loadStatus"] == "LOADED":
                loaded = entry["locationOrLoadError"]
                assert loaded["__typename"] == "RepositoryLocation", loaded
                stack.location = entry["name"]
                return
        time.sleep(1)
    raise AssertionError(f"the code location did not load\n{stack.log_tails()}")


def launch_backfill(stack: DagsterStack, *, from_job_page: bool = False) -> str:
    """What *Materialize* → *Launch backfill* sends for the job's assets and the three days.

    From the asset graph it is an asset backfill (run by Dagster's implicit asset job); from
    the job's page the UI adds the job's partition set, and the runs are ``amili_daily``'s.
    """
    job = {"pipelineName": JOB, "repositoryName": "__repository__",
           "repositoryLocationName": stack.location}
    nodes = stack.graphql(
        "query ($job: PipelineSelector) { assetNodes(pipeline: $job) { assetKey { path } } }",
        job=job,
    )["assetNodes"]
    assert len(nodes) > 10, nodes  # extract, dbt models, submission, results, marts
    params: dict[str, Any] = {
        "assetSelection": [node["assetKey"] for node in nodes],
        "partitionNames": [day.isoformat() for day in DAYS],
        "fromFailure": False,
        "tags": [{"key": "dagster/from_ui", "value": "true"}],
    }
    if from_job_page:
        params["selector"] = {
            "partitionSetName": f"{JOB}_partition_set",
            "repositorySelector": {"repositoryName": job["repositoryName"],
                                   "repositoryLocationName": stack.location},
        }
    result = stack.graphql(
        """mutation ($params: LaunchBackfillParams!) {
             launchPartitionBackfill(backfillParams: $params) {
               __typename
               ... on LaunchBackfillSuccess { backfillId }
               ... on PythonError { message stack }
               ... on Error { message }
             } }""",
        params=params,
    )["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return str(result["backfillId"])


def wait_for_backfill(stack: DagsterStack, backfill_id: str) -> str:
    """Polls the backfill until it reaches a terminal status; returns the status."""
    query = """query ($id: String!) { partitionBackfillOrError(backfillId: $id) {
        ... on PartitionBackfill { status error { message } } } }"""
    deadline = time.monotonic() + BACKFILL_TIMEOUT
    status = "unknown"
    while time.monotonic() < deadline:
        backfill = stack.graphql(query, id=backfill_id)["partitionBackfillOrError"]
        status = backfill["status"]
        if status in TERMINAL:
            return str(status)
        time.sleep(2)
    raise AssertionError(f"backfill {backfill_id} still {status} after {BACKFILL_TIMEOUT} s")


@dataclass
class BackfillRun:
    run_id: str
    status: str
    tags: dict[str, str]
    checks: dict[str, list[bool]]  # our checks' verdicts in this run
    failures: list[str]


def backfill_runs(stack: DagsterStack, backfill_id: str) -> list[BackfillRun]:
    """The backfill's runs as the instance recorded them, with check verdicts and errors."""
    found = []
    with DagsterInstance.from_config(str(stack.home)) as instance:
        for run in instance.get_runs():
            if run.tags.get("dagster/backfill") != backfill_id:
                continue
            checks: dict[str, list[bool]] = {}
            failures = []
            for entry in instance.all_logs(run.run_id):
                event = entry.dagster_event
                if event is None:
                    continue
                if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
                    evaluation = event.event_specific_data
                    checks.setdefault(evaluation.check_name, []).append(evaluation.passed)
                elif event.event_type in (DagsterEventType.STEP_FAILURE,
                                          DagsterEventType.RUN_FAILURE):
                    failures.append(f"{event.step_key}: {event.message} "
                                    f"{getattr(event.event_specific_data, 'error', '')}")
            found.append(BackfillRun(run.run_id, run.status.value, dict(run.tags), checks,
                                     failures))
    return found


def root_runs(runs: list[BackfillRun]) -> list[BackfillRun]:
    """The runs the backfill launched, without the retries of a failed one."""
    return [run for run in runs if "dagster/parent_run_id" not in run.tags]


def check_partition_statuses(stack: DagsterStack, check_name: str) -> dict[str, str]:
    """The status per partition of a check on rpt_reconciliation_daily, as the webserver
    gives it to the UI (ranges of days with one status: SUCCEEDED, SKIPPED, ...)."""
    data = stack.graphql("""query ($key: AssetKeyInput!) {
        assetNodeOrError(assetKey: $key) { ... on AssetNode { assetChecksOrError {
          ... on AssetChecks { checks { name partitionStatuses {
            ... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } }
        } } } } } } }""", key={"path": ["marts", "rpt_reconciliation_daily"]})
    checks = data["assetNodeOrError"]["assetChecksOrError"]["checks"]
    [found] = [check for check in checks if check["name"] == check_name]
    statuses: dict[str, str] = {}
    for block in found["partitionStatuses"]["ranges"]:
        day = date.fromisoformat(block["startKey"])
        while day <= date.fromisoformat(block["endKey"]):
            statuses[day.isoformat()] = block["status"]
            day += timedelta(days=1)
    return statuses


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_three_day_ui_backfill_runs_once_through_the_daemon_and_again_sends_nothing(
    dagster_stack: DagsterStack, sandbox_admin: SandboxAdmin, clean_sandbox: SandboxServer
) -> None:
    stack = dagster_stack
    backfill_id = launch_backfill(stack)
    status = wait_for_backfill(stack, backfill_id)
    runs = backfill_runs(stack, backfill_id)
    assert status == "COMPLETED_SUCCESS", (status, runs)

    # Every asset has a single-run backfill policy: the three days are one run over the range
    # (a retry of it, after a transient failure, would be a re-execution of that run).
    assert len(root_runs(runs)) == 1, runs
    [run] = [run for run in runs if run.status == "SUCCESS"]
    assert run.tags["dagster/asset_partition_range_start"] == DAYS[0].isoformat()
    assert run.tags["dagster/asset_partition_range_end"] == DAYS[-1].isoformat()
    assert all(run.checks.get("every_krone_is_accounted_for", [False])), run.checks

    db = stack.pipeline_db
    days = query(db, "SELECT DISTINCT partition_date FROM amili.submission_ledger ORDER BY 1")
    assert [day for (day,) in days] == DAYS
    # What the UI lists per day: the balance check Passed on each (not Skipped), and each
    # day's own counts on its partition of amili/responses (not the range's total).
    with DagsterInstance.from_config(str(stack.home)) as instance:
        check = AssetCheckKey(AssetKey(["marts", "rpt_reconciliation_daily"]),
                              "every_krone_is_accounted_for")
        records = [record for record in instance.event_log_storage
                   .get_asset_check_execution_history(check, limit=20)
                   if record.run_id == run.run_id]
        assert sorted((r.partition, r.status.value) for r in records) == [
            (day.isoformat(), "SUCCEEDED") for day in DAYS], records
        for day in DAYS:
            [record] = instance.fetch_materializations(AssetRecordsFilter(
                asset_key=AssetKey(["amili", "responses"]), asset_partitions=[day.isoformat()]),
                limit=1).records
            sent = record.asset_materialization.metadata["sent"].value
            assert sent == query(db, "SELECT count(*) FROM amili.responses "
                                     f"WHERE partition_date = DATE '{day}'")[0][0], day
    # ... and what the UI's check page reads (its Partitions tab): Passed for the three days
    assert check_partition_statuses(stack, "every_krone_is_accounted_for") == {
        day.isoformat(): "SUCCEEDED" for day in DAYS}
    # The balance holds on each day by itself, not only over the range.
    with duckdb.connect(str(db), read_only=True) as con:
        for day in DAYS:
            assert balance_problems(con, day, day + timedelta(days=1)) == [], day

    # Each invoice of the three days reached the sandbox exactly once: every one Amili
    # accepted is stored once, nothing was answered as a duplicate or a replay.
    accepted = {source_id for (source_id,) in query(
        db, "SELECT source_id FROM amili.responses "
            "WHERE objectname = 'invoice' AND outcome = 'accepted'")}
    stored = [row.unique_source_invoice_id
              for row in clean_sandbox.state.store.invoices(SENDER_ID)]
    assert accepted and sorted(stored) == sorted(accepted)
    eligible = query(db, "SELECT count(*) FROM raw.invoices")[0][0]
    answered = query(db, "SELECT count(DISTINCT source_id) FROM amili.responses "
                         "WHERE objectname = 'invoice'")[0][0]
    quarantined = query(db, "SELECT count(DISTINCT source_id) FROM amili.quarantine "
                            "WHERE objectname = 'invoice'")[0][0]
    assert answered + quarantined == eligible > 0
    stats = sandbox_admin.stats()
    assert (stats["duplicates"], stats["replays"], stats["conflicts"]) == (0, 0, 0), stats
    posts = stats["requests"]["POST /webapi/api/Batch"]
    batches = query(db, "SELECT count(*) FROM amili.submission_ledger")[0][0]
    assert sum(posts.values()) == batches, posts

    # The same backfill again, from the job's page (the UI's other way in): it succeeds and
    # sends nothing twice. What it may send are the payments and actions the first one held:
    # dbt builds the whole range before anything is posted, so one on a later day against an
    # invoice of an earlier day of the range waits for Amili's acknowledgement, there now.
    held = set(query(db, """
        SELECT 'payment', payment_id FROM batch.batch_payments WHERE hold_reason IS NOT NULL
        UNION ALL
        SELECT 'action', action_id FROM batch.batch_actions WHERE hold_reason IS NOT NULL"""))
    ledger_sql = "SELECT batchid, objectname, source_id FROM amili.ledger_objects"
    before = set(query(db, ledger_sql))
    again = launch_backfill(stack, from_job_page=True)  # the UI's other way in
    assert wait_for_backfill(stack, again) == "COMPLETED_SUCCESS", backfill_runs(stack, again)
    [rerun] = root_runs(backfill_runs(stack, again))
    assert rerun.tags["dagster/asset_partition_range_end"] == DAYS[-1].isoformat()
    new = set(query(db, ledger_sql)) - before
    sent_before = {(kind, source_id) for _, kind, source_id in before}
    resent = {(kind, source_id) for _, kind, source_id in new
              if kind != "creditor"}  # each batch carries its creditor again
    assert not resent & sent_before, "sent twice"
    assert resent <= held, resent - held
    after = sandbox_admin.stats()
    assert (after["duplicates"], after["replays"], after["conflicts"]) == (0, 0, 0), after
    assert after["invoices"] == stats["invoices"]
    assert after["creditors"] == stats["creditors"]
    new_batches = len({batchid for batchid, _, _ in new})
    assert sum(after["requests"]["POST /webapi/api/Batch"].values()) == (
        sum(posts.values()) + new_batches)
