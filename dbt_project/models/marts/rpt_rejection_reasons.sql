{{
    config(
        pre_hook="{{ delete_partition_window() }}",
    )
}}

-- Why objects did not get through, per day, kind of object, reason and currency: those
-- Amili rejected (their latest answer that day) and those quarantined before sending.
-- Grouped by the reason's stable code (rpt_object_fates.reason_code, amili/reasons.py);
-- `reason` is the code's message (for a text no code knows, code `other`, the text with the
-- object's values taken out: normalize_reason), `example_values` the values the reasons
-- name, `example_message` one full text as it was. An amount keeps its own currency, as
-- written, even one that is not a known currency code.

with problems as (
    select
        partition_date,
        objectname,
        source_id,
        amount,
        currency,
        case when fate = 'quarantined' then 'quarantined' else 'rejected by Amili' end
            as kind,
        reason_code,
        reason_message,
        reason_value,
        case when fate = 'quarantined' then coalesce(quarantine_reason, '(no reason)')
            else coalesce(error_message, '(no message)') end as message
    from {{ ref('rpt_object_fates') }}
    where {{ in_partition_window() }}
        and (fate = 'quarantined' or (fate = 'sent' and outcome = 'rejected'))
)

select
    partition_date,
    objectname,
    kind,
    reason_message as reason,
    currency,
    count(*) as object_count,
    coalesce(sum(amount), 0)::DECIMAL(38, 2) as amount,
    min(message) as example_message,
    list(source_id order by source_id)[1:5] as example_source_ids,
    reason_code,
    coalesce(list(distinct reason_value order by reason_value)
        filter (where reason_value is not null), [])[1:5] as example_values
from problems
group by partition_date, objectname, kind, reason_code, reason_message, currency
