"""The daily job over the whole chain, and its schedule."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from dagster import (
    AssetSelection,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    in_process_executor,
    schedule,
)

from amili.settings import PipelineSettings, load
from assets.readback import READBACK
from assets.reporting import READBACK_SNAPSHOT_KEY
from orchestration.partitions import OSLO, daily_partitions

#: Six hours: far above a normal day, short enough that a stuck run frees the pool the same day.
MAX_RUNTIME_SECONDS = 6 * 60 * 60

#: The read-back (not partitioned) and the snapshot published again after it.
READBACK_RUN = READBACK | AssetSelection.assets(READBACK_SNAPSHOT_KEY)

#: Everything partitioned: extract, dbt models, submission, results, reconciliation, and the
#: reporting snapshot and sign-off report (assets/reporting.py).
CHAIN = AssetSelection.all() - AssetSelection.assets("amili_api_ping") - READBACK_RUN

amili_daily_job = define_asset_job(
    name="amili_daily",
    selection=CHAIN,
    description="Extract the day's eligible receivables, shape them with dbt, post them to "
    "Amili exactly once, publish the answers and reconcile.",
    # one process for the whole run: no per-step start-up cost, and one DuckDB writer
    executor_def=in_process_executor,
    tags={
        # transient failures (a locked file, Amili unavailable) retry the failed steps;
        # the submission is idempotent, so a retried step never double-sends
        "dagster/max_retries": "2",
        "dagster/retry_strategy": "FROM_FAILURE",
        # the last bound on a stuck run (run_monitoring in dagster.yaml): a day normally takes
        # minutes, a run counts from its start (waiting for the pool included), and a run past
        # this is terminated and failed, which frees its pool slot for the next run
        "dagster/max_runtime": str(MAX_RUNTIME_SECONDS),
    },
)


#: A user tag on every scheduled run: the runs list and the tick preview show the day.
COLLECTION_DAY_TAG = "amili/collection_day"


def daily_schedule() -> ScheduleDefinition:
    """Every day at the configured time in Oslo, the previous Oslo day's partition.

    Like ``build_schedule_from_partitioned_job``, with what the UI shows made explicit: the
    run request names its partition (key, run key and a plain tag), so the schedule's tick
    preview and the runs list say which day a tick runs.
    """
    at: time = load(PipelineSettings).schedule_time

    @schedule(
        name="amili_daily_schedule",
        job=amili_daily_job,
        cron_schedule=f"{at.minute} {at.hour} * * *",
        execution_timezone=daily_partitions.timezone,
        description=f"Every day at {at:%H:%M} Europe/Oslo: the partition of the previous day "
        "(the last whole day in Oslo). The tick's run request names the day (run key and tag "
        f"{COLLECTION_DAY_TAG}).",
    )
    def amili_daily_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        now = context.scheduled_execution_time or datetime.now(tz=ZoneInfo(OSLO))
        day = now.astimezone(ZoneInfo(OSLO)).date() - timedelta(days=1)  # last whole day
        if day < daily_partitions.start.date():
            return SkipReason(f"No partition for {day}: the partitions start on "
                              f"{daily_partitions.start.date()} (AMILI_PARTITION_START)")
        key = day.isoformat()
        return RunRequest(run_key=key, partition_key=key, tags={COLLECTION_DAY_TAG: key})

    return amili_daily_schedule


readback_job = define_asset_job(
    name="amili_readback",
    selection=READBACK_RUN,
    description="Read back from Amili what it holds (cases) and what it paid out "
    "(settlements), after the day's submission, and publish the analysts' snapshot again. "
    "Not partitioned: see assets/readback.py.",
    executor_def=in_process_executor,
    tags={"dagster/max_retries": "2", "dagster/retry_strategy": "FROM_FAILURE",
          "dagster/max_runtime": str(MAX_RUNTIME_SECONDS)},
)

#: How long after the daily submission's schedule the read-back runs.
READBACK_DELAY_HOURS = 2


def readback_schedule() -> ScheduleDefinition:
    """Daily, :data:`READBACK_DELAY_HOURS` after the submission's time (Europe/Oslo); the
    writers' pool makes it wait should the submission still be running."""
    at: time = load(PipelineSettings).schedule_time
    hour = (at.hour + READBACK_DELAY_HOURS) % 24
    return ScheduleDefinition(
        job=readback_job,
        cron_schedule=f"{at.minute} {hour} * * *",
        execution_timezone="Europe/Oslo",
        description=f"Every day at {hour:02d}:{at.minute:02d} Europe/Oslo, "
        f"{READBACK_DELAY_HOURS} h after the submission.",
    )
