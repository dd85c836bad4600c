"""The Dagster code location: ``dagster dev -w workspace.yaml`` loads ``defs`` from here."""

from __future__ import annotations

from dagster import Definitions, in_process_executor, load_assets_from_modules

from assets import (
    api_health,
    dbt_models,
    extract,
    readback,
    reconciliation,
    reporting,
    submission,
)
from orchestration import dagster_fixes
from orchestration.alerts import ALERT_SENSORS
from orchestration.jobs import (
    amili_daily_job,
    daily_schedule,
    readback_job,
    readback_schedule,
)
from orchestration.pool_watchdog import pool_watchdog
from orchestration.resources import AmiliApiResource, PipelineResource, dbt_resource
from orchestration.unretried_alert import amili_unretried_failure_alert

# every run worker loads this module: a run waiting for the pool must not spin
dagster_fixes.apply()

defs = Definitions(
    assets=[
        *load_assets_from_modules(
            [api_health, extract, dbt_models, submission, reconciliation, reporting, readback]
        ),
        dbt_models.ACKNOWLEDGED_INVOICES,  # external: a group of its own stage, not "default"
    ],
    asset_checks=[
        reconciliation.every_krone_is_accounted_for,
        reconciliation.every_sent_object_is_answered,
        reconciliation.no_object_changed_after_handover,
        reconciliation.rejection_rate_is_low,
        *readback.READBACK_CHECKS,
    ],
    jobs=[amili_daily_job, readback_job],
    # Also for the implicit asset job that runs UI backfills from the asset graph (it does
    # not use amili_daily's executor): one process per run, not one per step.
    executor=in_process_executor,
    schedules=[daily_schedule(), readback_schedule()],
    # a killed run must not hold the writers' pool for good (README: If a run was killed)
    # alerts (README: Alerts) only send or log, never start runs: on by default
    sensors=[pool_watchdog, *ALERT_SENSORS, amili_unretried_failure_alert],
    resources={
        "amili": AmiliApiResource(),
        "pipeline": PipelineResource(),
        "dbt": dbt_resource(),
    },
)
