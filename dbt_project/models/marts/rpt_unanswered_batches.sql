{{
    config(
        pre_hook="{{ delete_partition_window() }}",
    )
}}

-- Batches of the window without a definite answer: still `prepared` (the run died between
-- the ledger write and the answer) or `failed` (the POST raised). The next submission run of
-- the day re-posts the in-doubt ones as they were; see amili.pipeline.ledger.IN_DOUBT, which
-- `in_doubt` repeats.

select
    l.partition_date,
    l.batchid,
    c.source_id as creditor_id,
    l.state,
    l.http_status,
    l.attempts,
    l.error,
    l.prepared_at,
    l.answered_at,
    l.object_count,
    (l.state in ('prepared', 'not_sent')
        or (l.state = 'failed' and (l.http_status is null or l.http_status >= 500
            or l.http_status between 200 and 299)))
        as in_doubt
from {{ source('amili', 'submission_ledger') }} as l
-- Every body is headed by its one creditor object.
left join {{ source('amili', 'ledger_objects') }} as c
    on c.batchid = l.batchid and c.objectname = 'creditor' and c.objectindex = 0
where {{ in_partition_window('l.partition_date') }}
    and l.state in ('prepared', 'failed', 'not_sent', 'unconfirmed')
