"""The alert sensors on real parts: a real Dagster instance (SQLite, in a temporary folder)
where the project's daily job really fails, and a real run of the job against the sandbox
that leaves rejections and unanswered objects in the reporting snapshot. Each sensor is
evaluated tick by tick as the daemon does (``evaluate_tick`` with the cursor of the tick
before) and delivers to a webhook receiver of the test's own on loopback."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    ReexecutionOptions,
    RunsFilter,
    build_sensor_context,
    execute_job,
    reconstructable,
)
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG, TAGS_TO_MAYBE_OMIT_ON_RETRY
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import (
    consume_new_runs_for_automatic_reexecution,
    should_retry,
)

from amili.sandbox.server import SandboxServer
from amili.settings import reporting_paths
from orchestration.alerts import (
    amili_backlog_alert,
    amili_rejection_rate_alert,
    amili_run_failure_alert,
)
from orchestration.unretried_alert import amili_unretried_failure_alert
from tests.helpers import demo_pipeline_env
from tests.receiver import Receiver

#: a module fixture runs the whole daily job (about a minute on a busy machine)
pytestmark = pytest.mark.timeout(600)

DAY = date(2026, 11, 24)
UI = "http://dagster.example:3000"


class Hook:
    """A webhook receiver on loopback that keeps each JSON body; ``status`` is its answer."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        self.receiver = Receiver(None, self._answer)
        self.url = f"{self.receiver.url}/hooks/T0KEN-abc123"

    def _answer(self, n: int, body: bytes) -> tuple[int, str, bytes]:
        if self.status == 200:
            self.bodies.append(json.loads(body))
        return self.status, "application/json", b"{}"


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hook]:
    for name in [n for n in os.environ if n.startswith("AMILI_ALERT_")]:
        monkeypatch.delenv(name)  # the defaults, whatever the machine's environment sets
    found = Hook()
    monkeypatch.setenv("AMILI_ALERT_WEBHOOK_URL", found.url)
    monkeypatch.setenv("AMILI_DAGSTER_UI_URL", UI)
    try:
        yield found
    finally:
        found.receiver.close()


def _instance(tmp_path: Path) -> DagsterInstance:
    """A real instance on SQLite files in a folder of the test's own (a tmp DAGSTER_HOME),
    with run retries on as in dagster_home/dagster.yaml."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    return DagsterInstance.local_temp(str(home), overrides={"run_retries": {"enabled": True}})


def _tick(sensor: Any, instance: DagsterInstance, cursor: str | None) -> Any:
    """One evaluation, as the daemon makes it: the instance and the last tick's cursor."""
    return sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=cursor))


# --- run failure ----------------------------------------------------------------------------


def _failing_run(
    instance: DagsterInstance, tmp_path: Path, sandbox: SandboxServer,
    days: tuple[date, date] | None = None, retries: int | None = None,
    tags: dict[str, str] | None = None,
) -> Any:
    """The daily job for DAY (or the range ``days`` in one run, as a single-run backfill
    runs it) with a warehouse file that does not exist: the extract fails. ``retries``
    overrides the job's ``dagster/max_retries`` (0: this attempt is the last); ``tags``
    are more tags of the run."""
    from orchestration.definitions import defs

    env = demo_pipeline_env(tmp_path, sandbox, end_date=DAY, days=1, invoices_per_day=1)
    env["AMILI_WAREHOUSE"] = str(tmp_path / "no-such-warehouse.duckdb")
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        tags = {**(tags or {}),
                **({} if retries is None else {"dagster/max_retries": str(retries)})}
        if days is None:
            return defs.resolve_job_def("amili_daily").execute_in_process(
                instance=instance, partition_key=DAY.isoformat(), raise_on_error=False,
                tags=tags)
        return defs.resolve_job_def("amili_daily").execute_in_process(
            instance=instance, raise_on_error=False, tags={
                **tags, "dagster/asset_partition_range_start": days[0].isoformat(),
                "dagster/asset_partition_range_end": days[1].isoformat()})
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _engine_messages(instance: DagsterInstance, run_id: str) -> list[str]:
    return [entry.message for entry in instance.all_logs(
        run_id, of_type=DagsterEventType.ENGINE_EVENT)]


def daily_job() -> Any:
    """The project's daily job, for :func:`dagster.reconstructable` (a re-execution)."""
    from orchestration.definitions import defs

    return defs.resolve_job_def("amili_daily")


def _retry(instance: DagsterInstance, tmp_path: Path, sandbox: SandboxServer,
           runs: list[str]) -> Any:
    """What the daemon does with the failed run ``runs[-1]`` it retries: a re-execution from
    failure, tagged as the daemon's ``create_reexecuted_run`` tags it (the parent's tags
    such as its partition, the retry number, and the parent and root run ids that make the
    run group Dagster counts attempts by); the warehouse is still missing."""
    env = demo_pipeline_env(tmp_path, sandbox, end_date=DAY, days=1, invoices_per_day=1)
    env["AMILI_WAREHOUSE"] = str(tmp_path / "no-such-warehouse.duckdb")
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with execute_job(
            reconstructable(daily_job), instance=instance,
            tags={**{k: v for k, v in instance.get_run_by_id(runs[-1]).tags.items()
                     if k not in TAGS_TO_MAYBE_OMIT_ON_RETRY},  # the partition, as it does
                  "dagster/retry_number": str(len(runs)), "dagster/parent_run_id": runs[-1],
                  "dagster/root_run_id": runs[0]},
            reexecution_options=ReexecutionOptions.from_failure(runs[-1], instance),
        ) as result:
            return result.run_id, result.success
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_a_failing_run_is_alerted_once_on_its_last_attempt_with_job_partition_step_error(
    tmp_path: Path, sandbox_server: SandboxServer, hook: Hook
) -> None:
    """The daily job allows 2 retries (dagster/max_retries): the attempts Dagster retries
    are not alerted (each says so in its log), the third and last is, once."""
    with _instance(tmp_path) as instance:
        cursor = _tick(amili_run_failure_alert, instance, None).cursor  # the first tick
        assert hook.bodies == []
        result = _failing_run(instance, tmp_path, sandbox_server)
        assert not result.success
        [failed_step] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        runs = [result.run_id]
        for retry_number in (1, 2):
            cursor = _tick(amili_run_failure_alert, instance, cursor).cursor
            assert hook.bodies == []  # Dagster retries the attempt: nobody is told yet
            said = [m for m in _engine_messages(instance, runs[-1]) if "Failure alert" in m]
            assert said == ["Failure alert held back: Dagster retries this run (attempt "
                            f"{retry_number}); the last failing attempt is alerted"]
            run_id, success = _retry(instance, tmp_path, sandbox_server, runs)
            assert not success
            runs.append(run_id)
        assert [instance.get_run_by_id(r).tags.get("dagster/will_retry") for r in runs] == [
            "true", "true", "false"]

        cursor = _tick(amili_run_failure_alert, instance, cursor).cursor
        last = _tick(amili_run_failure_alert, instance, cursor)

        [alert] = hook.bodies  # once, for the last attempt, not again on the next tick
        run_id = runs[-1]
        assert alert["kind"] == "run_failure"
        assert alert["title"] == (f"Run of amili_daily failed for {DAY} at "
                                  f"{failed_step.step_key}")
        assert alert["link"] == f"{UI}/runs/{run_id}"
        lines = alert["text"].splitlines()
        assert "Job: amili_daily" in lines
        assert f"Run: {run_id}" in lines
        assert f"Partition(s): {DAY}" in lines
        assert (f"Attempt 3: no retry follows (the earlier attempts failed too: first run "
                f"{runs[0]})") in lines
        [failed] = [line for line in lines if line.startswith("Failed: ")]
        # the step and the error the project's code raised, without Dagster's wrapping
        assert failed.startswith(f"Failed: {failed_step.step_key}: ")
        assert "no-such-warehouse.duckdb" in failed
        assert alert["details"]["failures"][0]["where"] == failed_step.step_key
        # the failed run's own log says where the alert went (the host, not the token)
        said = [m for m in _engine_messages(instance, run_id) if "Failure alert" in m]
        assert said == [f"Failure alert: webhook {hook.receiver.url}: sent"]
        assert last.skip_message is None or "T0KEN" not in last.skip_message


def test_an_undelivered_failure_alert_is_said_in_the_run_and_crashes_nothing(
    tmp_path: Path, sandbox_server: SandboxServer, hook: Hook
) -> None:
    hook.status = 500
    with _instance(tmp_path) as instance:
        first = _tick(amili_run_failure_alert, instance, None)
        result = _failing_run(instance, tmp_path, sandbox_server, retries=0)
        _tick(amili_run_failure_alert, instance, first.cursor)  # does not raise
        said = [m for m in _engine_messages(instance, result.run_id) if "Failure alert" in m]
    assert said == [f"Failure alert NOT delivered: webhook {hook.receiver.url}: FAILED "
                    "(answered HTTP 500: {})"]


def test_a_failed_range_run_names_its_range(
    tmp_path: Path, sandbox_server: SandboxServer, hook: Hook
) -> None:
    start = date(2026, 11, 22)
    with _instance(tmp_path) as instance:
        first = _tick(amili_run_failure_alert, instance, None)
        result = _failing_run(instance, tmp_path, sandbox_server, days=(start, DAY),
                              retries=0)
        _tick(amili_run_failure_alert, instance, first.cursor)
    assert not result.success
    [alert] = hook.bodies
    assert alert["title"].startswith(f"Run of amili_daily failed for {start} to {DAY} at ")
    assert f"Partition(s): {start} to {DAY}" in alert["text"].splitlines()


# --- a retry that does not come -------------------------------------------------------------


def _alert_said(instance: DagsterInstance, run_id: str) -> list[str]:
    return [m for m in _engine_messages(instance, run_id) if "Failure alert" in m]


def test_a_held_back_run_whose_retry_never_comes_is_alerted_once_after_the_grace_period(
    tmp_path: Path, sandbox_server: SandboxServer, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon is not running: nothing retries the attempt the failure sensor held back.
    The sweep waits AMILI_ALERT_RETRY_GRACE_MINUTES (15) after the run's end, then alerts it
    once, saying the retry did not come; neither sensor alerts it again."""
    with _instance(tmp_path) as instance:
        cursor = _tick(amili_run_failure_alert, instance, None).cursor
        result = _failing_run(instance, tmp_path, sandbox_server)
        [failed_step] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        cursor = _tick(amili_run_failure_alert, instance, cursor).cursor
        run = instance.get_run_by_id(result.run_id)
        assert run.tags["dagster/will_retry"] == "true"
        assert run.tags["amili/failure_alert"] == "held"

        early = _tick(amili_unretried_failure_alert, instance, None)
        assert early.skip_message == "1 run(s) waiting for their retry"
        assert hook.bodies == []

        monkeypatch.setenv("AMILI_ALERT_RETRY_GRACE_MINUTES", "0")  # the 15 minutes are over
        late = _tick(amili_unretried_failure_alert, instance, None)
        again = _tick(amili_unretried_failure_alert, instance, None)
        _tick(amili_run_failure_alert, instance, cursor)
        said = _alert_said(instance, result.run_id)
        tags = instance.get_run_by_id(result.run_id).tags

    [alert] = hook.bodies
    assert late.skip_message == "alerted 1 failed run(s) whose retry did not come"
    assert again.skip_message == "no failed run waits for a retry"
    assert alert["kind"] == "run_failure"
    assert alert["title"] == (f"Run of amili_daily failed for {DAY} at {failed_step.step_key}"
                              " (its retry did not come)")
    assert alert["link"] == f"{UI}/runs/{result.run_id}"
    lines = alert["text"].splitlines()
    assert f"Partition(s): {DAY}" in lines
    assert "Attempt 1: the retry Dagster announced did not come" in lines
    assert ("Retry: Dagster announced a retry, but none came within 0 minutes of the run's "
            "end (is the Dagster daemon running?)") in lines
    [failed] = [line for line in lines if line.startswith("Failed: ")]
    assert failed.startswith(f"Failed: {failed_step.step_key}: ")
    assert said == ["Failure alert held back: Dagster retries this run (attempt 1); the last "
                    "failing attempt is alerted",
                    f"Failure alert: webhook {hook.receiver.url}: sent"]
    assert (tags["amili/failure_alert"], tags["amili/failure_alert_run"]) == (
        "sent", result.run_id)


class _UnreachableCode:
    """The daemon's workspace while the code location's server is down: launching a retry
    raises (what ``consume_new_runs_for_automatic_reexecution`` is handed)."""

    def __init__(self, instance: DagsterInstance) -> None:
        self.instance = instance

    def create_request_context(self) -> Any:
        raise DagsterUserCodeUnreachableError("Could not reach user code server")


def test_the_retry_the_daemon_gives_up_is_alerted_with_its_reason(
    tmp_path: Path, sandbox_server: SandboxServer, hook: Hook, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Dagster's own auto re-execution decides: a run of a backfill that no longer exists is
    not retried (only its log says so: alerted after the grace period), and a retry whose
    launch raises is given up (``dagster/will_retry=false``: alerted at once)."""
    with _instance(tmp_path) as instance:
        cursor = _tick(amili_run_failure_alert, instance, None).cursor
        of_backfill = _failing_run(instance, tmp_path, sandbox_server,
                                   tags={"dagster/backfill": "gonebfll"})
        unlaunched = _failing_run(instance, tmp_path, sandbox_server)
        cursor = _tick(amili_run_failure_alert, instance, cursor).cursor
        assert hook.bodies == []  # both held back for their retry

        # the daemon's tick over the two failures
        assert not should_retry(instance.get_run_by_id(of_backfill.run_id), instance)
        with caplog.at_level(logging.CRITICAL):  # the daemon logs the launch's traceback
            list(consume_new_runs_for_automatic_reexecution(
                _UnreachableCode(instance), instance.get_run_records(
                    RunsFilter(run_ids=[unlaunched.run_id])), logging.getLogger("daemon")))
        assert instance.get_run_by_id(unlaunched.run_id).tags["dagster/will_retry"] == "false"

        first = _tick(amili_unretried_failure_alert, instance, None)
        [given_up] = hook.bodies  # at once; the other waits for the grace period
        monkeypatch.setenv("AMILI_ALERT_RETRY_GRACE_MINUTES", "0")
        _tick(amili_unretried_failure_alert, instance, None)
        last = _tick(amili_unretried_failure_alert, instance, None)

    assert first.skip_message == ("alerted 1 failed run(s) whose retry did not come; 1 run(s) "
                                  "waiting for their retry")
    assert last.skip_message == "no failed run waits for a retry"
    assert given_up["details"]["run_id"] == unlaunched.run_id
    assert ("Retry: Dagster announced a retry, then gave it up (dagster/will_retry is now "
            "false). Dagster says: Failed to retry run: DagsterUserCodeUnreachableError: "
            "Could not reach user code server") in given_up["text"].splitlines()
    [_, gone] = hook.bodies
    assert gone["details"]["run_id"] == of_backfill.run_id
    assert "Backfill: gonebfll" in gone["text"].splitlines()
    assert ("Retry: Dagster announced a retry, but none came within 0 minutes of the run's "
            "end. Dagster says: Not retrying run since it is part of a backfill that no "
            "longer exists.") in gone["text"].splitlines()


def test_a_held_back_run_whose_retry_came_is_left_to_its_retry(
    tmp_path: Path, sandbox_server: SandboxServer, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry came (and failed, as the last attempt): only the retry is alerted, by the
    failure sensor; the sweep leaves the first attempt alone, and the retry too, although
    it carries the first attempt's "held" tag (a re-execution copies its parent's tags)."""
    monkeypatch.setenv("AMILI_ALERT_RETRY_GRACE_MINUTES", "0")
    with _instance(tmp_path) as instance:
        cursor = _tick(amili_run_failure_alert, instance, None).cursor
        first = _failing_run(instance, tmp_path, sandbox_server, retries=1)
        cursor = _tick(amili_run_failure_alert, instance, cursor).cursor
        retry_id, success = _retry(instance, tmp_path, sandbox_server, [first.run_id])
        assert not success
        instance.add_run_tags(first.run_id, {AUTO_RETRY_RUN_ID_TAG: retry_id})  # as the daemon
        retry = instance.get_run_by_id(retry_id)
        assert retry.tags["dagster/will_retry"] == "false"
        assert (retry.tags["amili/failure_alert"], retry.tags["amili/failure_alert_run"]) == (
            "held", first.run_id)

        before = _tick(amili_unretried_failure_alert, instance, None)
        assert hook.bodies == []  # the failure sensor has not seen the retry yet
        _tick(amili_run_failure_alert, instance, cursor)
        after = _tick(amili_unretried_failure_alert, instance, None)
        tags = {run_id: instance.get_run_by_id(run_id).tags.get("amili/failure_alert")
                for run_id in (first.run_id, retry_id)}
        said = _alert_said(instance, first.run_id)

    assert before.skip_message == "1 retried run(s) left to their retry"
    assert after.skip_message == "no failed run waits for a retry"
    [alert] = hook.bodies
    assert alert["details"]["run_id"] == retry_id
    assert "Attempt 2: no retry follows (the earlier attempts failed too: first run " \
        f"{first.run_id})" in alert["text"].splitlines()
    assert tags == {first.run_id: "retried", retry_id: "sent"}
    assert said == ["Failure alert held back: Dagster retries this run (attempt 1); the last "
                    "failing attempt is alerted"]


def test_a_run_the_failure_sensor_alerted_is_not_alerted_again_by_the_sweep(
    tmp_path: Path, sandbox_server: SandboxServer, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMILI_ALERT_RETRY_GRACE_MINUTES", "0")
    with _instance(tmp_path) as instance:
        first = _tick(amili_run_failure_alert, instance, None)
        result = _failing_run(instance, tmp_path, sandbox_server, retries=0)
        _tick(amili_run_failure_alert, instance, first.cursor)
        sweep = _tick(amili_unretried_failure_alert, instance, None)
        said = _alert_said(instance, result.run_id)
        tags = instance.get_run_by_id(result.run_id).tags
    assert tags["dagster/will_retry"] == "false" and tags["amili/failure_alert"] == "sent"
    assert sweep.skip_message == "no failed run waits for a retry"
    assert len(hook.bodies) == 1
    assert said == [f"Failure alert: webhook {hook.receiver.url}: sent"]


# --- rejection rate and backlog, from a real run's snapshot ---------------------------------


@dataclass(frozen=True)
class Snapshot:
    env: dict[str, str]
    path: Path


@pytest.fixture(scope="module")
def faulty_day(
    tmp_path_factory: pytest.TempPathFactory, sandbox_server: SandboxServer
) -> Snapshot:
    """One day through the whole daily job while the sandbox rejects 30 % of the objects
    and answers the first batch with HTTP 400 (its objects stay unanswered)."""
    from orchestration.definitions import defs

    folder = tmp_path_factory.mktemp("alerts")
    env = demo_pipeline_env(folder, sandbox_server, end_date=DAY, sender_id="alerts-test")
    base = sandbox_server.base_url
    httpx.post(f"{base}/sandbox/reset").raise_for_status()
    httpx.post(f"{base}/sandbox/faults", json={"faults": [
        {"kind": "reject_share", "share": 0.3, "times": None},
        {"kind": "status", "status": 400, "times": 1}]}).raise_for_status()
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        result = defs.resolve_job_def("amili_daily").execute_in_process(
            instance=DagsterInstance.ephemeral(), partition_key=DAY.isoformat(),
            raise_on_error=False)
        snapshot = reporting_paths(env["AMILI_PIPELINE_DB"]).reporting_db
    finally:
        os.environ.clear()
        os.environ.update(saved)
        httpx.delete(f"{base}/sandbox/faults").raise_for_status()
    assert result.success
    return Snapshot(env, snapshot)


def _by_currency(snapshot: Path, where: str) -> dict[str, tuple[int, ...]]:
    """Counts per currency straight from the object fates (not the mart the sensors read)."""
    with duckdb.connect(str(snapshot), read_only=True) as con:
        rows = con.execute(
            f"""SELECT coalesce(currency, 'no currency'), {where}
                FROM marts.rpt_object_fates WHERE partition_date = $day GROUP BY 1""",
            {"day": DAY}).fetchall()
    return {currency: tuple(rest) for currency, *rest in rows}


def test_a_high_rejection_rate_is_alerted_once_per_day_and_currency(
    faulty_day: Snapshot, hook: Hook, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in faulty_day.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AMILI_ALERT_REJECTION_MIN_SENT", "5")
    sent = _by_currency(faulty_day.path, """count(*) FILTER (fate = 'sent'),
        count(*) FILTER (outcome = 'rejected'),
        coalesce(sum(amount) FILTER (outcome = 'rejected'), 0),
        coalesce(sum(amount) FILTER (fate = 'sent'), 0)""")
    expected = {cur: v for cur, v in sent.items() if v[0] >= 5 and v[1] / v[0] > 0.10}
    assert "NOK" in expected, sent  # the fault rejects 30 %: the day is above 10 %

    with _instance(tmp_path) as instance:
        first = _tick(amili_rejection_rate_alert, instance, None)
        second = _tick(amili_rejection_rate_alert, instance, first.cursor)

    [alert] = hook.bodies
    assert alert["kind"] == "rejection_rate"
    assert alert["link"] == f"{UI}/assets/marts/rpt_reconciliation_daily?view=checks"
    conditions = {c["currency"]: c for c in alert["details"]["conditions"]}
    assert set(conditions) == set(expected)
    count, rejected, rejected_amount, sent_amount = expected["NOK"]
    nok = conditions["NOK"]
    assert (nok["sent"], nok["rejected"]) == (count, rejected)
    assert (nok["rejected_amount"], nok["sent_amount"]) == (f"{rejected_amount:.2f}",
                                                           f"{sent_amount:.2f}")
    with duckdb.connect(str(faulty_day.path), read_only=True) as con:
        creditors = ", ".join(f"{creditor} {n}" for creditor, n in con.execute(
            """SELECT creditor_id, count(*) AS n FROM marts.rpt_object_fates
               WHERE partition_date = $day AND currency = 'NOK' AND outcome = 'rejected'
               GROUP BY 1 ORDER BY n DESC, creditor_id""", {"day": DAY}).fetchall())
    assert (f"{DAY}, NOK: Amili rejected {rejected} of {count} objects sent "
            f"({rejected / count * 100:.1f} %), {rejected_amount:.2f} of {sent_amount:.2f} NOK"
            f"; above the alert level of 10.0 %; by creditor: {creditors}"
            ) in alert["text"].splitlines()
    assert first.skip_message.startswith(f"alerted {len(expected)} new condition(s)")
    assert second.skip_message == f"nothing new ({len(expected)} condition(s) already alerted)"

    # a higher alert level: nothing calls for an alert any more
    monkeypatch.setenv("AMILI_ALERT_REJECTION_RATE", "0.9")
    monkeypatch.setenv("AMILI_ALERT_REJECTION_RISE", "0.9")
    with _instance(tmp_path) as instance:
        quiet = _tick(amili_rejection_rate_alert, instance, None)
    assert quiet.skip_message == "nothing to alert" and len(hook.bodies) == 1


def test_unanswered_objects_are_alerted_once_and_a_failed_delivery_is_tried_again(
    faulty_day: Snapshot, hook: Hook, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in faulty_day.env.items():
        monkeypatch.setenv(name, value)
    outstanding = _by_currency(faulty_day.path, """
        count(*) FILTER (outcome IN ('outstanding', 'unconfirmed')),
        coalesce(sum(amount) FILTER (outcome IN ('outstanding', 'unconfirmed')), 0)""")
    expected = {cur: v for cur, v in outstanding.items() if v[0] > 0}
    assert expected, "the HTTP 400 fault left no unanswered object"

    with _instance(tmp_path) as instance:
        hook.status = 503  # the target is down: the alert is not taken as given
        down = _tick(amili_backlog_alert, instance, None)
        hook.status = 200
        again = _tick(amili_backlog_alert, instance, down.cursor)
        after = _tick(amili_backlog_alert, instance, again.cursor)

    assert down.skip_message.startswith(f"{len(expected)} new condition(s), NOT delivered")
    assert json.loads(down.cursor) == {"alerted": []}
    [alert] = hook.bodies  # delivered by the next tick, and only once
    assert alert["kind"] == "backlog"
    got = {c["currency"]: (c["outstanding"] + c["unconfirmed"], c["amount"])
           for c in alert["details"]["conditions"] if c["key"].startswith("unanswered:")}
    assert got == {cur: (n, f"{amount:.2f}") for cur, (n, amount) in expected.items()}
    assert any(line.startswith(f"{DAY}, NOK: ") and "batches: 1 failed (HTTP 400)" in line
               for line in alert["text"].splitlines())
    assert after.skip_message.startswith("nothing new")


def test_a_broken_alert_setting_is_not_taken_for_delivered(
    faulty_day: Snapshot, hook: Hook, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, value in faulty_day.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AMILI_ALERT_WEBHOOK_URL", "hooks.example.com/T0KEN-abc123")
    with _instance(tmp_path) as instance:
        tick = _tick(amili_backlog_alert, instance, None)
    assert "new condition(s), NOT delivered: alert settings: FAILED" in tick.skip_message
    assert "AMILI_ALERT_WEBHOOK_URL is not an http(s) URL" in tick.skip_message
    assert json.loads(tick.cursor) == {"alerted": []}  # alerted once the setting is fixed
    assert "T0KEN" not in caplog.text and hook.bodies == []


def test_the_figure_sensors_wait_for_a_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: Hook
) -> None:
    monkeypatch.setenv("AMILI_PIPELINE_DB", str(tmp_path / "pipeline.duckdb"))
    monkeypatch.delenv("AMILI_REPORTING_DB", raising=False)
    with _instance(tmp_path) as instance:
        tick = _tick(amili_backlog_alert, instance, None)
    assert tick.skip_message == f"no reporting snapshot yet at {tmp_path / 'reporting.duckdb'}"
    assert hook.bodies == []
