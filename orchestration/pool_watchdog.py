"""Frees the writers' pool from runs whose process was killed, and says who holds it.

Why this exists (Dagster 1.13, default run launcher):

* Run monitoring cannot see a dead run worker: ``DefaultRunLauncher`` has no health check
  (``supports_check_run_worker_health`` is false), so the monitoring daemon only applies its
  start/cancel timeouts and ``dagster/max_runtime`` to a STARTED run. A run launched by the
  daemon or the UI is watched by its code server, which marks it failed when the process dies
  (then ``free_slots_after_run_end_seconds`` in ``dagster.yaml`` frees its slot); a run started
  from the command line (``dagster asset materialize``), or one whose code server died with it,
  has no such parent and stays STARTED with its pool slot for good.
* A step waiting for a pool says so only every 5 minutes (``CONCURRENCY_CLAIM_MESSAGE_INTERVAL``
  in ``dagster/_core/execution/plan/active.py``, a constant) and never says who holds the slot.

So this sensor, run by the daemon every ~15 s, (1) marks failed every STARTED run of this
machine that holds or waits for a pool slot while its run worker process is gone, and frees
its slots; (2) writes into every run that waits for a pool which runs hold the pool's slots.
It never requests runs. ``python -m orchestration.pool_watchdog RUN_ID`` does (1) by hand.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    MetadataValue,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.events import EngineEventData
from dagster._core.storage.runs import SqliteRunStorage

#: Dagster's sensor loop wakes every 5 s; 15 s keeps each waiting run's message under 30 s apart.
WATCH_INTERVAL_SECONDS = 15


def worker_pid(instance: DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid of the run's worker process and when Dagster recorded it, if it did.

    The run worker logs engine events with a ``pid`` (``Started process for run``, ``Executing
    steps in process``); step subprocesses log STEP_WORKER_STARTED instead, so they never match.
    """
    found = None
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event is None or event.step_key is not None:
            continue
        pid = event.engine_event_data.metadata.get("pid")
        if pid is not None:
            found = (int(pid.value), entry.timestamp)
    return found


def process_is_alive(pid: int, recorded_at: float) -> bool:
    """Whether ``pid`` is a live process that already existed when Dagster recorded it.

    A zombie (killed, not yet reaped) is dead, and so is a process that started after the
    event: the pid was reused. Without ``/proc`` (macOS) only existence is checked.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration):
        return True
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and ')'
    state, start_ticks = fields[0], int(fields[19])
    started_at = boot + start_ticks / os.sysconf("SC_CLK_TCK")
    return state not in ("Z", "X") and started_at <= recorded_at + 1.0


def release_run(instance: DagsterInstance, run_id: str, reason: str) -> list[str]:
    """Marks the run failed (if it is not finished) and frees every pool slot it holds.

    Returns the pools of the freed slots, one entry a slot. Marking failed alone does not
    free them (Dagster frees slots of ended runs only with ``free_slots_after_run_end_seconds``).
    """
    storage = instance.event_log_storage
    held = [pool.name for pool in storage.get_pool_limits()
            for slot in storage.get_concurrency_info(pool.name).claimed_slots
            if slot.run_id == run_id]
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_failed(run, reason)
    storage.free_concurrency_slots_for_run(run_id)
    return held


def release_dead_runs(instance: DagsterInstance) -> list[str]:
    """Releases every unfinished run in a pool whose worker process is gone; says which.

    Only on a SQLite instance: its runs all run on this machine, so a pid names a process
    here. On a shared (Postgres) instance ``dagster/max_runtime`` is the backstop.
    """
    if not isinstance(instance.run_storage, SqliteRunStorage):
        return []
    released = []
    for run_id in sorted(instance.event_log_storage.get_concurrency_run_ids()):
        run = instance.get_run_by_id(run_id)
        if run is None or run.status != DagsterRunStatus.STARTED:
            continue  # finished runs: run_monitoring's free_slots_after_run_end_seconds
        recorded = worker_pid(instance, run_id)
        if recorded is None or process_is_alive(*recorded):
            continue
        pid = recorded[0]
        freed = release_run(
            instance, run_id,
            f"Run worker process {pid} is gone (killed?): marked failed by the pool watchdog "
            "so that the pool's slots are freed for the next run.",
        )
        released.append(f"run {run_id} (pid {pid} gone, freed slots in {freed or 'no pool'})")
    return released


def report_waiting_runs(instance: DagsterInstance) -> list[str]:
    """Writes into each STARTED run waiting for a pool which runs hold that pool's slots."""
    storage = instance.event_log_storage
    reported = []
    for pool in storage.get_pool_limits():
        info = storage.get_concurrency_info(pool.name)
        waiting = [step for step in info.pending_steps if step.assigned_timestamp is None]
        if not waiting:
            continue
        holders = ", ".join(
            f"run {slot.run_id} (step {slot.step_key}, {_status(instance, slot.run_id)})"
            for slot in info.claimed_slots
        ) or "nobody (a slot should free up within seconds)"
        for step in waiting:
            run = instance.get_run_by_id(step.run_id)
            if run is None or run.status != DagsterRunStatus.STARTED:
                continue
            minutes = (datetime.now(step.enqueued_timestamp.tzinfo)
                       - step.enqueued_timestamp).total_seconds() / 60
            instance.report_engine_event(
                f"Waiting {minutes:.0f} min for pool {pool.name} (limit {pool.limit}): "
                f"its slot is held by {holders}.",
                run,
                EngineEventData(metadata={
                    "pool": MetadataValue.pool(pool.name),
                    "held_by_runs": MetadataValue.text(
                        " ".join(slot.run_id for slot in info.claimed_slots)),
                }),
                step_key=step.step_key,
            )
            reported.append(f"{step.run_id} waits for {pool.name}")
    return reported


def _status(instance: DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    return run.status.value if run else "unknown run"


@sensor(
    name="pool_watchdog",
    minimum_interval_seconds=WATCH_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Fails runs of this machine whose process was killed while in a pool and "
    "frees their slots; tells each run waiting for a pool which run holds it.",
)
def pool_watchdog(context: SensorEvaluationContext) -> SkipReason:
    """Never requests runs: the skip reason is the tick's record of what it did."""
    released = release_dead_runs(context.instance)
    waiting = report_waiting_runs(context.instance)
    for line in released:
        context.log.warning(f"Released {line}")
    return SkipReason("; ".join([*(f"released {r}" for r in released), *waiting])
                      or "no dead run in a pool, nobody waiting")


if __name__ == "__main__":
    # Manual recovery: python -m orchestration.pool_watchdog RUN_ID [RUN_ID ...]
    if len(sys.argv) < 2:
        sys.exit("usage: python -m orchestration.pool_watchdog RUN_ID [RUN_ID ...]")
    with DagsterInstance.get() as dagster_instance:
        for given in sys.argv[1:]:
            pools = release_run(dagster_instance, given, "Released by hand (run was killed).")
            print(f"run {given}: marked failed if unfinished; freed slots in {pools or 'no pool'}")
