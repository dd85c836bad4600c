"""A three-day backfill launched the way the Dagster UI does, run by the real daemon.

``test_daily_job`` runs a date range in-process; this test proves the path users take: the
webserver and ``dagster-daemon`` run as subprocesses on a temporary ``DAGSTER_HOME`` holding
the project's ``dagster.yaml``, backfills are launched through the webserver's GraphQL API
(``launchPartitionBackfill``, with exactly the parameters the UI's *Materialize* dialog sends
from the asset graph and from the job's page), and the daemon launches the runs in their own
processes against the sandbox API server of the test session.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
)

from amili.pipeline.reconciliation import balance_problems
from tests.conftest import SandboxAdmin, SandboxServer
from tests.dagster_stack import (
    REPO,
    DagsterStack,
    backfill_runs,
    root_runs,
    running_stack,
    wait_for_backfill,
)
from tests.dagster_stack import launch_backfill as launch_three_days
from tests.helpers import demo_pipeline_env

DAYS = [date(2026, 11, 22), date(2026, 11, 23), date(2026, 11, 24)]
SENDER_ID = "backfill-test"


@pytest.fixture
def dagster_stack(tmp_path: Path, clean_sandbox: SandboxServer) -> Iterator[DagsterStack]:
    """``dagster-webserver`` + ``dagster-daemon run`` on a temporary instance holding the
    project's ``dagster_home/dagster.yaml`` (tests/dagster_stack.py), always stopped."""
    env = demo_pipeline_env(tmp_path, clean_sandbox, end_date=DAYS[-1], sender_id=SENDER_ID)
    with running_stack(tmp_path, instance_yaml=REPO / "dagster_home" / "dagster.yaml",
                       env=env) as stack:
        yield stack


def launch_backfill(stack: DagsterStack, *, from_job_page: bool = False) -> str:
    """The UI's *Launch backfill* for the job's assets and the three days."""
    return launch_three_days(stack, DAYS, from_job_page=from_job_page)


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
