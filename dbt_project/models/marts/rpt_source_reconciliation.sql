{{
    config(
        pre_hook="{{ delete_window_and_carried_from(carried_sources()) }}",
    )
}}

-- Per day, warehouse table, bucket, currency and creditor: how many of the warehouse rows the
-- extract read ended in each bucket, and their amount as the warehouse has it
-- (rpt_source_rows, one row per warehouse row). The rows of a day and table, summed over
-- creditors (NULL: none known), add up to what the extract read;
-- `unaccounted` fails the blocking balance check. Small enough for the reporting snapshot.
-- creditor_id comes last so that a table built before it existed only appends it.

select
    partition_date,
    source_table,
    bucket,
    currency,
    count(*)::BIGINT as row_count,
    sum(amount)::DECIMAL(38, 6) as amount,
    creditor_id
from {{ ref('rpt_source_rows') }}
where {{ in_window_or_carried_from(carried_sources()) }}
group by all
