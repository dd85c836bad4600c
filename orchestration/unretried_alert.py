"""``amili_unretried_failure_alert``: failed runs whose announced retry never came.

``amili_run_failure_alert`` holds back the alert of an attempt Dagster says it retries
(``dagster/will_retry=true``), for the retry to say it, and marks the run HELD. The retry does
not always come. Dagster's auto re-execution (``dagster/_daemon/auto_run_reexecution``):

* skips a run of a backfill that is canceled, completed, failed or deleted, and only writes
  so into the run's log ("Not retrying run since it is part of a backfill ...");
* gives up when launching the retry raises, and re-tags the run ``dagster/will_retry=false``
  after the failure sensor has passed over it;
* does nothing at all while the daemon is not running.

So this sensor looks at the runs marked HELD each minute. A run whose retry came (a
re-execution of it that started) is marked RETRIED and left alone: the retry is alerted on
its own if it fails. A run whose retry did not come within ``AMILI_ALERT_RETRY_GRACE_MINUTES``
of its end, or that Dagster has re-tagged ``dagster/will_retry=false``, is alerted once, with
why the retry did not come when the run's log says, and marked SENT (or NOT_DELIVERED). The
state lives in the runs' tags, so it survives restarts and the sensor needs no cursor.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG, PARENT_RUN_ID_TAG, WILL_RETRY_TAG

from orchestration.alerts import (
    ALERT_STATE_TAG,
    HELD,
    RETRIED,
    alert_failed_run,
    alert_settings,
    alert_state,
    mark,
)
from orchestration.run_failures import error_text, root_error

SWEEP_INTERVAL_SECONDS = 60
#: The query's bounds, so that a long instance history costs nothing: held runs updated in
#: the grace period plus these days, at most this many a tick (the oldest wait a tick).
SWEEP_DAYS = 3
SWEEP_LIMIT = 100
#: How the daemon's auto re-execution says in a run's log that it does not retry it.
_DAEMON_SAYS = ("Not retrying run", "Failed to retry run", "Run does not have an external job",
                "Could not find")


def retry_of(instance: DagsterInstance, run: DagsterRun) -> DagsterRun | None:
    """The re-execution of ``run``, if there is one: the automatic retry the daemon tagged
    the run with (``dagster/auto_retry_run_id``), else any run made from it (the daemon's
    retry before it tagged the parent, or one started by hand, which someone then knows of)."""
    retry_id = run.tags.get(AUTO_RETRY_RUN_ID_TAG)
    if retry_id and (retry := instance.get_run_by_id(retry_id)) is not None:
        return retry
    children = instance.get_runs(RunsFilter(tags={PARENT_RUN_ID_TAG: run.run_id}), limit=1)
    return children[0] if children else None


def daemon_reason(instance: DagsterInstance, run: DagsterRun) -> str | None:
    """What the daemon's auto re-execution wrote into the run's log about not retrying it
    (its last word), with the error when launching the retry raised."""
    said = None
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
        if not entry.message.startswith(_DAEMON_SAYS):
            continue
        said = entry.message.strip()
        event = entry.dagster_event
        error = event.engine_event_data.error if event is not None else None
        if error is not None:
            said = f"{said.rstrip('.')}: {error_text(root_error(error))}"
    return said


def why_no_retry(instance: DagsterInstance, run: DagsterRun, retry: DagsterRun | None,
                 grace_minutes: float) -> str:
    """The alert's "Retry:" line: what came instead of the retry, and why if Dagster said."""
    if run.tags.get(WILL_RETRY_TAG) == "false":
        text = "Dagster announced a retry, then gave it up (dagster/will_retry is now false)"
    elif retry is not None:
        text = (f"Dagster created the retry {retry.run_id}, but it had not started "
                f"{grace_minutes:g} minutes after this run ended")
    else:
        text = (f"Dagster announced a retry, but none came within {grace_minutes:g} minutes "
                "of the run's end")
    reason = daemon_reason(instance, run)
    if reason is not None:
        return f"{text}. Dagster says: {reason}"
    if retry is None:
        return f"{text} (is the Dagster daemon running?)"
    return text


def sweep(instance: DagsterInstance, log: Any, now: float) -> SkipReason:
    """One tick: alert the HELD runs whose retry did not come, mark those whose retry did."""
    settings, _ = alert_settings(log)
    grace = settings.alert_retry_grace_minutes * 60
    since = datetime.fromtimestamp(now - grace - SWEEP_DAYS * 86400, UTC)
    records = instance.get_run_records(
        RunsFilter(statuses=[DagsterRunStatus.FAILURE], tags={ALERT_STATE_TAG: HELD},
                   updated_after=since),
        limit=SWEEP_LIMIT)
    alerted, undelivered, waiting, came = [], [], 0, 0
    for record in records:
        run = record.dagster_run
        if alert_state(run) != HELD:
            continue  # the tag came with the run it re-executes; not held back itself
        retry = retry_of(instance, run)
        if retry is not None and retry.status != DagsterRunStatus.NOT_STARTED:
            mark(instance, run, RETRIED)
            came += 1
            continue
        ended = record.end_time or record.update_timestamp.timestamp()
        given_up = run.tags.get(WILL_RETRY_TAG) == "false"
        if not given_up and now - ended < grace:
            waiting += 1
            continue
        report = alert_failed_run(instance, run, log, no_retry=why_no_retry(
            instance, run, retry, settings.alert_retry_grace_minutes))
        (alerted if report.delivered else undelivered).append(run.run_id)
    said = [f"alerted {len(alerted)} failed run(s) whose retry did not come"] if alerted else []
    if undelivered:
        said.append(f"{len(undelivered)} such alert(s) NOT delivered (see each run's log)")
    if came:
        said.append(f"{came} retried run(s) left to their retry")
    if waiting:
        said.append(f"{waiting} run(s) waiting for their retry")
    return SkipReason("; ".join(said) if said else "no failed run waits for a retry")


@sensor(
    name="amili_unretried_failure_alert",
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=SWEEP_INTERVAL_SECONDS,
    description="Alerts, once, a failed run whose failure alert was held back for a retry "
    "Dagster announced, when that retry did not come within AMILI_ALERT_RETRY_GRACE_MINUTES "
    "(default 15) of the run's end or Dagster gave it up (e.g. the run's backfill ended, "
    "or the daemon is not running). Never requests runs.",
)
def amili_unretried_failure_alert(context: SensorEvaluationContext) -> SkipReason:
    return sweep(context.instance, context.log, time.time())
