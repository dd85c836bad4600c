"""Another process holding the pipeline's DuckDB file while a step needs it.

The holder is a real process (``duckdb.connect`` on the file in a subprocess), as a shell or
a notebook left open would be. The dbt step waits for it, says so in the run's log, and
either goes on once it lets go or fails with the message every writer uses, naming the
holder's PID.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance
from dagster_dbt.errors import DagsterDbtCliRuntimeError

from amili.pipeline.duckdb_io import (
    DatabaseLockedError,
    connect_writer,
    locked_error_from,
)
from amili.reporting import queries as q
from amili.settings import reporting_paths
from assets.dbt_models import amili_dbt_models
from assets.extract import RAW_ASSET_KEYS
from assets.reconciliation import amili_reconciliation_models
from assets.reporting import SNAPSHOT_KEY
from orchestration.definitions import defs
from orchestration.resources import dbt_resource
from tests.conftest import SandboxServer
from tests.helpers import demo_pipeline_env

DAY = date(2026, 11, 24)
DBT_STEP = "amili_dbt_models"
#: Every asset of the daily job.
everything = [k for k in defs.resolve_asset_graph().executable_asset_keys
              if k != AssetKey("amili_api_ping")]

_HOLD = """
import sys, time
import duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


@contextmanager
def held_by_another_process(path: Path, seconds: float) -> Iterator[subprocess.Popen]:
    """A process that opens ``path`` read-write and keeps it for ``seconds``."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def extracted(
    tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A pipeline database with the day's extract in it, ready for the dbt step."""
    for name, value in demo_pipeline_env(tmp_path, clean_sandbox, end_date=DAY, days=2,
                                         invoices_per_day=10, sender_id="lock-test").items():
        monkeypatch.setenv(name, value)
    assert run_assets(list(RAW_ASSET_KEYS.values())).success
    return tmp_path / "pipeline.duckdb"


def run_assets(
    keys: list[AssetKey], instance: DagsterInstance | None = None, partition: date = DAY
) -> Any:
    return defs.resolve_job_def("amili_daily").execute_in_process(
        partition_key=partition.isoformat(), asset_selection=keys, instance=instance,
        raise_on_error=False)


def log_messages(instance: DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id)]


def step_failure(result: Any, step: str) -> str:
    [failure] = [e for e in result.all_events
                 if e.event_type_value == "STEP_FAILURE" and e.step_key == step]
    return failure.event_specific_data.error.to_string()  # the error and its causes


@pytest.mark.timeout(600)
def test_the_dbt_step_waits_for_a_holder_that_lets_go_and_says_so(
    extracted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMILI_LOCK_WAIT_SECONDS", "120")
    instance = DagsterInstance.ephemeral()
    with held_by_another_process(extracted, seconds=12) as holder:
        started = time.monotonic()
        result = run_assets(list(amili_dbt_models.keys), instance)
        assert holder.poll() is not None  # the step ran on only after it had let go
    assert result.success
    assert time.monotonic() - started >= 5
    waiting = [m for m in log_messages(instance, result.run_id)
               if m.startswith("waiting for the lock on")]
    assert waiting, "the wait was not logged"
    assert str(extracted) in waiting[0] and f"(PID {holder.pid})" in waiting[0]
    with connect_writer(extracted) as con:  # and dbt built the day's batch tables
        assert con.execute("SELECT count(*) FROM batch.batch_invoices "
                           "WHERE partition_date = ?", [DAY]).fetchone()[0] > 0


@pytest.mark.timeout(600)
def test_the_dbt_step_fails_with_the_shared_message_when_the_holder_stays(
    extracted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMILI_LOCK_WAIT_SECONDS", "3")
    instance = DagsterInstance.ephemeral()
    with held_by_another_process(extracted, seconds=300) as holder:
        started = time.monotonic()
        result = run_assets(list(amili_dbt_models.keys), instance)
        elapsed = time.monotonic() - started
        assert holder.poll() is None  # still holding it
    assert not result.success
    message = step_failure(result, DBT_STEP)
    assert "DatabaseLockedError" in message
    assert f"the pipeline database {extracted} stayed locked by " in message
    assert f"(PID {holder.pid}) for 3 s" in message
    assert elapsed < 60  # the configured wait, not dbt-duckdb's four minutes
    assert any(m.startswith("waiting for the lock on") and f"(PID {holder.pid})" in m
               for m in log_messages(instance, result.run_id))


@pytest.mark.timeout(300)
def test_dbt_s_own_lock_failure_reads_as_the_shared_message(
    extracted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that takes the file after the step's wait and before dbt connects: dbt's
    own (silent) retries give up, and its failure is recognised as the lock. Real dbt, run
    without the step's wait, one connect attempt."""
    monkeypatch.setenv("AMILI_DBT_CONNECT_ATTEMPTS", "1")
    monkeypatch.setenv("AMILI_DBT_MIN_DATE", DAY.isoformat())
    monkeypatch.setenv("AMILI_DBT_MAX_DATE", "2026-11-25")
    with (held_by_another_process(extracted, seconds=300) as holder,
          pytest.raises(DagsterDbtCliRuntimeError) as failed):
        dbt_resource().cli(["build", "--select", "batch_invoices"]).wait()
    error = locked_error_from(failed.value, extracted, 3)  # what the dbt step raises
    assert error is not None and error.pid == holder.pid
    assert str(error).startswith(f"the pipeline database {extracted} stayed locked by ")
    assert f"(PID {holder.pid}) for 3 s" in str(error)


def test_a_python_writer_names_the_holder_too(tmp_path: Path) -> None:
    db = tmp_path / "pipeline.duckdb"
    with (held_by_another_process(db, seconds=300) as holder,
          pytest.raises(DatabaseLockedError) as locked,
          connect_writer(db, wait_seconds=1)):
        pass
    assert locked.value.pid == holder.pid
    assert f"(PID {holder.pid}) for 1 s" in str(locked.value)


@pytest.mark.timeout(900)
def test_a_day_whose_marts_failed_is_stale_in_the_snapshot_until_they_are_rebuilt(
    extracted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported day: a process holds the file between the submission and the
    reconciliation step. The marts step fails, the snapshot of that run is not published,
    and a later publication marks the day stale (the day before stays current)."""
    day_before = DAY - timedelta(days=1)
    assert run_assets(everything, partition=day_before).success
    marts = list(amili_reconciliation_models.keys)
    reporting = [SNAPSHOT_KEY, AssetKey(["reporting", "signoff_report"])]
    up_to_results = [k for k in everything if k not in {*marts, *reporting}]
    assert run_assets(up_to_results).success  # extract, dbt, submission, results of DAY

    monkeypatch.setenv("AMILI_LOCK_WAIT_SECONDS", "2")
    with held_by_another_process(extracted, seconds=300) as holder:
        failed = run_assets([*marts, *reporting])
    assert not failed.success
    assert f"(PID {holder.pid})" in step_failure(failed, "amili_reconciliation_models")
    # nothing after the failed step pretended success: no snapshot, no sign-off report
    assert not [e for e in failed.get_asset_materialization_events()
                if e.asset_key in reporting]

    snapshot = reporting_paths(extracted).reporting_db
    assert run_assets([SNAPSHOT_KEY]).success  # a later run publishes, as the next day's
    assert day_status(snapshot) == {day_before: "current", DAY: "stale"}
    with q.connect_snapshot(snapshot) as con:
        assert q.stale_days(con) == [DAY]
        [(note,)] = con.execute("SELECT note FROM report.day_status WHERE status = 'stale'"
                                ).fetchall()
        assert "have not been built since its latest submission" in note

    assert run_assets([*marts, SNAPSHOT_KEY]).success  # the holder is gone: rebuilt
    assert day_status(snapshot) == {day_before: "current", DAY: "current"}


def day_status(snapshot: Path) -> dict[date, str]:
    with q.connect_snapshot(snapshot) as con:
        return dict(con.execute("SELECT partition_date, status FROM report.day_status"
                                ).fetchall())
