{{
    config(
        pre_hook="{{ delete_partition_window() }}",
    )
}}

-- Why objects did not get through, per day, kind of object and reason: those Amili rejected
-- (their latest answer that day) and those quarantined before sending. `reason` is the
-- message with the object's own values taken out (normalize_reason), so one problem of many
-- objects is one row; `example_message` keeps one message as it was.

with problems as (
    select
        partition_date,
        objectname,
        source_id,
        amount,
        currency,
        'rejected by Amili' as kind,
        coalesce(error_message, '(no message)') as message
    from {{ ref('rpt_object_fates') }}
    where {{ in_partition_window() }} and fate = 'sent' and outcome = 'rejected'
    union all
    select
        partition_date,
        objectname,
        source_id,
        amount,
        currency,
        'quarantined',
        coalesce(quarantine_reason, '(no reason)')
    from {{ ref('rpt_object_fates') }}
    where {{ in_partition_window() }} and fate = 'quarantined'
)

select
    partition_date,
    objectname,
    kind,
    {{ normalize_reason('message') }} as reason,
    currency,
    count(*) as object_count,
    coalesce(sum(amount), 0)::DECIMAL(38, 2) as amount,
    min(message) as example_message,
    list(source_id order by source_id)[1:5] as example_source_ids
from problems
group by all
