{{
    config(
        on_schema_change='fail',
    )
}}

-- When the marts of each day were last rebuilt: one row per day this build covered (the
-- window's days that have objects or batches, and the days carried copies come from, as
-- the marts rebuild them). It refs every mart, so `dbt build` makes it only after all of
-- them and their tests succeeded: a day whose marts failed keeps its older built_at (or
-- none), and the reporting snapshot compares that with the day's latest submission
-- (report.day_status, amili/reporting/snapshot.py).
-- depends_on: {{ ref('rpt_rejection_reasons') }}
-- depends_on: {{ ref('rpt_unanswered_batches') }}
-- depends_on: {{ ref('rpt_source_reconciliation') }}

select partition_date, now() as built_at
from (
    select partition_date from {{ ref('rpt_reconciliation_daily') }}
    where {{ in_window_or_carried_from([ref('rpt_object_fates')]) }}
    union
    select partition_date from {{ source('amili', 'submission_ledger') }}
    where {{ in_partition_window() }}
    union
    select partition_date from {{ source('amili', 'quarantine') }}
    where {{ in_partition_window() }}
)
