{{
    config(
        pre_hook="{{ delete_window_and_carried_from(carried_sources()) }}",
    )
}}

-- Per day, warehouse table, bucket and currency: how many of the warehouse rows the extract
-- read ended in each bucket, and their amount as the warehouse has it (rpt_source_rows, one
-- row per warehouse row). The rows of a day and table add up to what the extract read;
-- `unaccounted` fails the blocking balance check. Small enough for the reporting snapshot.

select
    partition_date,
    source_table,
    bucket,
    currency,
    count(*)::BIGINT as row_count,
    sum(amount)::DECIMAL(38, 6) as amount
from {{ ref('rpt_source_rows') }}
where {{ in_window_or_carried_from(carried_sources()) }}
group by all
