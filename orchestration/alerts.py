"""Who is told, and when: a sensor per kind of trouble, each sending through :mod:`amili.notify`.

* ``amili_run_failure_alert`` (a run failure sensor): every failed run of this code
  location (``amili_daily``, and the asset-graph backfills' implicit job), with its job,
  partition(s), failing step and error, and a link to the run in the Dagster UI; once per
  failing run, on its last attempt (an attempt Dagster retries is not alerted).
* ``amili_unretried_failure_alert`` (:mod:`orchestration.unretried_alert`): an attempt held
  back for a retry that never came, once the grace period is over.
* ``amili_rejection_rate_alert`` and ``amili_backlog_alert``: read the reporting snapshot
  after each run (:mod:`amili.alert_rules`) and alert once per new day and currency whose
  rejection rate is high or rising, or whose sent objects lack an answer or are held back.

Why sensors and not asset checks for the figures: the reconciliation already has asset checks
(``rejection_rate_is_low``, ``every_sent_object_is_answered``) that record the state of each
run in the UI, but a check tells nobody; a sensor can send, keeps a cursor so that it says
each thing once, and reads the published snapshot without ever touching the pipeline's
DuckDB file (so it can never make a run wait for the lock).

All run by default: without a target set they only log (the sensor's tick log in the UI),
and they never request runs.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from dagster._core.events import EngineEventData

from amili.alert_rules import Condition, read_conditions
from amili.notify import Alert, DeliveryReport, notify
from amili.settings import AlertSettings, SettingsError, load, reporting_paths
from assets.reconciliation import RECONCILIATION_KEY
from orchestration.run_failures import RunFailure, run_failures

#: How often the figure sensors look at the snapshot (it changes once per run at most).
CONDITION_INTERVAL_SECONDS = 60

#: Tags that say which partition(s) a run covered.
_PARTITION = "dagster/partition"
_RANGE_START = "dagster/asset_partition_range_start"
_RANGE_END = "dagster/asset_partition_range_end"
_BACKFILL = "dagster/backfill"
_RETRY_NUMBER = "dagster/retry_number"
_WILL_RETRY = "dagster/will_retry"
#: Dagster's name for the job of runs launched from the asset graph.
_IMPLICIT_ASSET_JOB = "__ASSET_JOB"
#: Our own run tags: what became of a failed run's alert (HELD for the retry, SENT,
#: NOT_DELIVERED, or RETRIED: the retry came and speaks for it), and the run that state is of.
#: A re-execution copies its parent's tags, so the state is a run's own only when it names it.
ALERT_STATE_TAG = "amili/failure_alert"
ALERT_STATE_RUN_TAG = "amili/failure_alert_run"
HELD, SENT, NOT_DELIVERED, RETRIED = "held", "sent", "not_delivered", "retried"
#: The events orchestration.run_failures reads (not the whole log of a long run).
_FAILURE_EVENTS = {DagsterEventType.STEP_FAILURE, DagsterEventType.RESOURCE_INIT_FAILURE,
                   DagsterEventType.RUN_FAILURE}


def alert_settings(log: Any) -> tuple[AlertSettings, AlertSettings | None]:
    """``(what to use, what loaded)``: the alert settings, or their defaults when they do not
    load, and None then for :func:`amili.notify.notify`, which loads them again and reports
    the broken setting as an undelivered alert (a broken setting must not pass for "told")."""
    try:
        settings = load(AlertSettings)
    except SettingsError as exc:
        log.error(f"{exc}; the alert goes to the log only until it is fixed")
        return AlertSettings.model_construct(), None
    return settings, settings


def partitions_of(run: DagsterRun) -> str:
    """The run's partition or range of partitions, from its tags; ``-`` when none."""
    tags = run.tags
    if _PARTITION in tags:
        return tags[_PARTITION]
    if _RANGE_START in tags:
        start, end = tags[_RANGE_START], tags.get(_RANGE_END, tags[_RANGE_START])
        return start if start == end else f"{start} to {end}"
    return "-"


def failure_alert(run: DagsterRun, failures: list[RunFailure], ui_url: str,
                  no_retry: str | None = None) -> Alert:
    """The alert for a failed run: job, run id, partition(s), each failing step and its
    error, whether Dagster retries it, and the link to the run. ``no_retry``: why the retry
    Dagster announced did not come (the run is alerted after all)."""
    job = run.job_name
    job_text = "asset materialization (asset graph)" if job == _IMPLICIT_ASSET_JOB else job
    partition = partitions_of(run)
    lines = [f"Job: {job_text}", f"Run: {run.run_id}", f"Partition(s): {partition}"]
    if _BACKFILL in run.tags:
        lines.append(f"Backfill: {run.tags[_BACKFILL]}")
    # set by the instance when run retries are on (dagster_home/dagster.yaml); the sensor
    # alerts only an attempt that is not retried, so this says which one it was
    will_retry = run.tags.get(_WILL_RETRY)
    attempt = int(run.tags.get(_RETRY_NUMBER, "0")) + 1
    retry_text = (": the retry Dagster announced did not come" if no_retry is not None
                  else {"true": ": Dagster retries it", "false": ": no retry follows"}.get(
                      will_retry, ""))
    lines.append(f"Attempt {attempt}" + retry_text
                 + (f" (the earlier attempts failed too: first run {run.root_run_id})"
                    if attempt > 1 and run.root_run_id else ""))
    if no_retry is not None:
        lines.append(f"Retry: {no_retry}")
    lines += [f"Failed: {failure}" for failure in failures] or ["Failed: (no step error "
                                                                 "recorded; see the run)"]
    # "at <step>" (or "at resource setup"); a failure of the run as a whole has no place
    where = failures[0].where if failures else "run"
    title = (f"Run of {job_text} failed" + (f" for {partition}" if partition != "-" else "")
             + (f" at {where}" if where != "run" else "")
             + (" (its retry did not come)" if no_retry is not None
                else " (Dagster retries it)" if will_retry == "true" else ""))
    return Alert(
        kind="run_failure",
        title=title,
        lines=lines,
        link=f"{ui_url}/runs/{run.run_id}",
        details={"job": job, "run_id": run.run_id, "partition": partition,
                 "failures": [{"where": f.where, "message": f.message} for f in failures],
                 "tags": {k: v for k, v in run.tags.items() if k.startswith("dagster/")}},
    )


def retried(run: DagsterRun) -> bool:
    """Whether Dagster re-executes this failed run: the instance tags a failed run
    ``dagster/will_retry`` when it stores the failure, before any sensor sees it, from the
    run's ``dagster/max_retries`` (or the instance's ``run_retries.max_retries``) and the
    attempts of its run group. Without the tag (run retries off) nothing follows."""
    return run.tags.get(_WILL_RETRY) == "true"


def alert_state(run: DagsterRun) -> str | None:
    """What became of this run's failure alert (HELD, SENT, ...), None if nothing yet
    (a state copied from the run a re-execution was made of does not count)."""
    if run.tags.get(ALERT_STATE_RUN_TAG) != run.run_id:
        return None
    return run.tags.get(ALERT_STATE_TAG)


def mark(instance: DagsterInstance, run: DagsterRun, state: str) -> None:
    """Record on the run (it survives restarts and shows in the UI) what became of its alert."""
    instance.add_run_tags(run.run_id, {ALERT_STATE_TAG: state, ALERT_STATE_RUN_TAG: run.run_id})


def alert_failed_run(instance: DagsterInstance, run: DagsterRun, log: Any,
                     no_retry: str | None = None) -> DeliveryReport:
    """Send the failure alert of ``run``, say in the run's own log whether it went out, and
    mark the run SENT (or NOT_DELIVERED) so that it is never alerted again."""
    settings, loaded = alert_settings(log)
    events = [entry.dagster_event for entry in instance.all_logs(
                  run.run_id, of_type=_FAILURE_EVENTS)
              if entry.dagster_event is not None]
    alert = failure_alert(run, run_failures(events), settings.dagster_ui_url, no_retry)
    report = notify(alert, settings=loaded, log=log)
    # the run's own log says whether anybody was told, where an operator looks first
    instance.report_engine_event(
        ("Failure alert: " if report.delivered else "Failure alert NOT delivered: ")
        + report.summary(),
        run, EngineEventData(metadata={"alert_delivered": report.delivered}),
    )
    mark(instance, run, SENT if report.delivered else NOT_DELIVERED)
    return report


@run_failure_sensor(
    name="amili_run_failure_alert",
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Sends an alert (AMILI_ALERT_WEBHOOK_URL, AMILI_ALERT_EMAIL_TO, else a log "
    "line) for every failed run of this code location, once: for the attempt Dagster does "
    "not retry (job, partition(s), failing step, error and a link to the run). Writes into "
    "each failed attempt whether the alert went out or waits for the last attempt.",
)
def amili_run_failure_alert(context: RunFailureSensorContext) -> None:
    run = context.dagster_run
    if alert_state(run) in (SENT, NOT_DELIVERED):
        return  # alerted already, by amili_unretried_failure_alert
    if retried(run):
        # one alert per failing run and partition, not one per attempt: the attempt that is
        # not retried says it (a retry that succeeds needs nobody); if the retry does not
        # come, amili_unretried_failure_alert alerts this attempt after all
        context.instance.report_engine_event(
            "Failure alert held back: Dagster retries this run (attempt "
            f"{int(run.tags.get(_RETRY_NUMBER, '0')) + 1}); the last failing attempt is "
            "alerted", run)
        mark(context.instance, run, HELD)
        return
    alert_failed_run(context.instance, run, context.log)


def _conditions_alert(kind: str, conditions: list[Condition], ui_url: str) -> Alert:
    title = {
        "rejection_rate": "Amili rejects more than usual",
        "backlog": "Objects without an answer from Amili, or held back",
    }[kind]
    days = sorted({c.day for c in conditions})
    span = str(days[0]) if len(days) == 1 else f"{days[0]} to {days[-1]}"
    return Alert(
        kind=kind,
        title=f"{title} ({span})",
        lines=[c.text for c in conditions],
        link=f"{ui_url}/assets/{'/'.join(RECONCILIATION_KEY.path)}?view=checks",
        severity="warning",
        details={"conditions": [{"key": c.key, **c.details} for c in conditions]},
    )


def evaluate_conditions(
    context: SensorEvaluationContext, kind: str, *, rejections: bool, backlog: bool
) -> SkipReason:
    """One tick of a figure sensor: read the snapshot, alert on the conditions not alerted
    yet (the cursor holds the keys alerted and still present), and say what it did.

    A condition that clears is dropped from the cursor, so it alerts again if it comes
    back. When no target took the alert, its keys stay out of the cursor: the next tick
    tries again."""
    settings, loaded = alert_settings(context.log)
    snapshot = reporting_paths().reporting_db
    if not snapshot.exists():
        return SkipReason(f"no reporting snapshot yet at {snapshot}")
    try:
        conditions = read_conditions(snapshot, settings, rejections=rejections,
                                     backlog=backlog)
    except duckdb.Error as exc:  # e.g. someone opened the snapshot for writing
        context.log.warning(f"Could not read the reporting snapshot {snapshot}: {exc}")
        return SkipReason(f"could not read the snapshot ({type(exc).__name__}); next tick")
    alerted = set(json.loads(context.cursor or "{}").get("alerted", []))
    current = {c.key for c in conditions}
    new = [c for c in conditions if c.key not in alerted]
    keep = alerted & current
    report: DeliveryReport | None = None
    if new:
        report = notify(_conditions_alert(kind, new, settings.dagster_ui_url),
                        settings=loaded, log=context.log)
        if report.delivered:
            keep |= {c.key for c in new}
        else:
            context.log.error("The alert reaches nobody; trying again at the next tick")
    context.update_cursor(json.dumps({"alerted": sorted(keep)}))
    if not new:
        return SkipReason(f"nothing new ({len(current)} condition(s) already alerted)"
                          if current else "nothing to alert")
    assert report is not None
    if report.delivered:
        return SkipReason(f"alerted {len(new)} new condition(s): {report.summary()}")
    return SkipReason(f"{len(new)} new condition(s), NOT delivered: {report.summary()}")


def _figure_sensor(name: str, kind: str, description: str, **which: bool) -> SensorDefinition:
    @sensor(name=name, minimum_interval_seconds=CONDITION_INTERVAL_SECONDS,
            default_status=DefaultSensorStatus.RUNNING, description=description)
    def _sensor(context: SensorEvaluationContext) -> SkipReason:
        return evaluate_conditions(context, kind, **which)

    return _sensor


amili_rejection_rate_alert = _figure_sensor(
    "amili_rejection_rate_alert", "rejection_rate",
    "Alerts once per day and currency where Amili rejected more than "
    "AMILI_ALERT_REJECTION_RATE (default 10 %) of the objects sent, or "
    "AMILI_ALERT_REJECTION_RISE (default 5 points) more than over the days before; read "
    "from the reporting snapshot.",
    rejections=True, backlog=False,
)

amili_backlog_alert = _figure_sensor(
    "amili_backlog_alert", "backlog",
    "Alerts once per day and currency with sent objects Amili has not answered for "
    "(outstanding, unconfirmed) or objects held back; read from the reporting snapshot.",
    rejections=False, backlog=True,
)

#: What orchestration/definitions.py registers (with orchestration.unretried_alert's sweep,
#: which builds on this module).
ALERT_SENSORS = [amili_run_failure_alert, amili_rejection_rate_alert, amili_backlog_alert]
