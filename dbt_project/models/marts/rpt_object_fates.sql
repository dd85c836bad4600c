{{
    config(
        pre_hook="{{ delete_window_and_carried_from(carried_sources()) }}",
    )
}}

-- One row per object of the day's batch_*_json relations (creditors, invoices, payments,
-- actions) and its fate that day, first match wins:
--   quarantined        in amili.quarantine for that day (objectname, source_id)
--   carried_forward    held that day, and a later day carries a copy of it (carried_from_date)
--   held               dbt held it back (hold_reason)
--   changed_after_handover
--                      an invoice, payment or action whose payload differs from the one
--                      Amili took first (accepted on its day or an earlier one): Amili keeps
--                      that one (it answers a later payload of the same id DUPLICATE), so
--                      the submission does not send it again; acknowledged_amount is what
--                      Amili holds, amount_difference the current amount less that
--   sent               a ledger row of that day in a batch that is not superseded; the
--                      latest row (by prepared_at, chunk_number) gives outcome and ids
--   skipped_unchanged  no ledger row that day, but the same payload (sha256) of the same
--                      object was accepted on an earlier day
--   unaccounted        none of these: eligible and not accounted for (a balance failure)
-- Besides the window it rebuilds the days its carried copies come from (their originals'
-- fate changes to carried_forward): see macros/carry_forward.sql.

{%- set window = in_window_or_carried_from(carried_sources()) %}

with objects as (
    select
        partition_date, 'creditor' as objectname, creditor_id as source_id, creditor_id,
        payload, null::VARCHAR as hold_reason, null::DATE as carried_from_date
    from {{ ref('batch_creditors_json') }}
    where {{ window }}
    union all
    select partition_date, 'invoice', invoice_id, creditor_id, payload, null, null
    from {{ ref('batch_invoices_json') }}
    where {{ window }}
    union all
    select
        partition_date, 'payment', payment_id, creditor_id, payload, hold_reason,
        carried_from_date
    from {{ ref('batch_payments_json') }}
    where {{ window }}
    union all
    select
        partition_date, 'action', action_id, creditor_id, payload, hold_reason,
        carried_from_date
    from {{ ref('batch_actions_json') }}
    where {{ window }}
),

-- Copies carried forward (any later day), by the day and object they were carried from.
carried_copies as (
    select 'payment' as objectname, payment_id as source_id, carried_from_date,
        min(partition_date) as carried_to_date
    from {{ ref('batch_payments_json') }}
    where carried_from_date is not null
    group by all
    union all
    select 'action', action_id, carried_from_date, min(partition_date)
    from {{ ref('batch_actions_json') }}
    where carried_from_date is not null
    group by all
),

-- The payload hash exactly as the submission computes it (sha256 of the payload text; the
-- body carries the same bytes, see submission._compact). Amount and currency are the batch
-- table's originalInvoiceAmount / amount and currency, read back from the row's own JSON
-- (to_json wrote them from those DECIMAL(18,2) columns; json_transform reads the number's
-- text straight into a DECIMAL, never through a double), so every row keeps its own values
-- even if an id repeats within a day.
hashed as (
    select
        * exclude (payload),
        sha256(payload) as payload_hash,
        case objectname
            when 'invoice' then json_transform(payload,
                '{"originalInvoiceAmount": "DECIMAL(18,2)", "currency": "VARCHAR"}')
            when 'payment' then json_transform(payload,
                '{"amount": "DECIMAL(18,2)", "currency": "VARCHAR"}')
        end as money
    from objects
),

quarantined as (
    select
        partition_date,
        objectname,
        source_id,
        string_agg(distinct reason, ' | ' order by reason) as reason,
        -- the code and value of the first reason (several only when an id repeats)
        min_by(reason_code, reason) as reason_code,
        min_by(reason_value, reason) as reason_value
    from {{ source('amili', 'quarantine') }}
    where {{ window }} and source_id is not null
    group by all
),

live_ledger as (
    select
        o.*,
        l.state as batch_state,
        l.prepared_at,
        l.chunk_number
    from {{ source('amili', 'ledger_objects') }} as o
    inner join {{ source('amili', 'submission_ledger') }} as l on l.batchid = o.batchid
    where l.state <> 'superseded'
),

-- The object's latest ledger row of its day. A creditor goes in every batch of its group,
-- and a re-run may send an object again in a new batch: the latest answer is its fate.
sent as (
    select
        partition_date,
        objectname,
        source_id,
        batchid,
        objectindex,
        batch_state,
        payload_hash as sent_payload_hash,
        outcome,
        status_statuscode,
        ledgerref,
        error_message,
        error_code,
        error_value,
        count(*) over (partition by partition_date, objectname, source_id) as times_sent
    from live_ledger
    where {{ window }}
    qualify row_number() over (
        partition by partition_date, objectname, source_id
        order by prepared_at desc, chunk_number desc, batchid desc, objectindex desc
    ) = 1
),

-- What Amili holds of an invoice, payment or action: the payload it accepted first, on
-- the object's day or an earlier one (by day, then batchid: a day's chunk numbers only
-- grow), with its amount and currency as sent. A creditor is updated by Amili instead.
handed_over as (
    select
        h.partition_date,
        h.objectname,
        h.source_id,
        o.partition_date as handed_over_on,
        o.payload_hash as acknowledged_payload_hash,
        o.amount as acknowledged_amount,
        o.currency as acknowledged_currency
    from (
        select distinct partition_date, objectname, source_id from hashed
        where objectname <> 'creditor'
    ) as h
    inner join live_ledger as o
        on o.objectname = h.objectname
        and o.source_id = h.source_id
        and o.partition_date <= h.partition_date
        and o.outcome = 'accepted'
    qualify row_number() over (
        partition by h.partition_date, h.objectname, h.source_id
        order by o.partition_date, o.batchid, o.objectindex
    ) = 1
),

-- The same payload of the same object, accepted on an earlier day.
acknowledged_before as (
    select
        h.partition_date,
        h.objectname,
        h.source_id,
        h.payload_hash,
        max(o.partition_date) as acknowledged_on
    from (select distinct partition_date, objectname, source_id, payload_hash from hashed) as h
    inner join live_ledger as o
        on o.objectname = h.objectname
        and o.source_id = h.source_id
        and o.payload_hash = h.payload_hash
        and o.partition_date < h.partition_date
        and o.outcome = 'accepted'
    group by all
),

fates as (
    select
        h.*,
        case
            when q.source_id is not null then 'quarantined'
            when h.hold_reason is not null and c.source_id is not null then 'carried_forward'
            when h.hold_reason is not null then 'held'
            when ho.acknowledged_payload_hash <> h.payload_hash then 'changed_after_handover'
            when s.source_id is not null then 'sent'
            when a.source_id is not null then 'skipped_unchanged'
            else 'unaccounted'
        end as fate,
        q.reason as quarantine_reason,
        q.reason_code as quarantine_reason_code,
        q.reason_value as quarantine_reason_value,
        s.* exclude (partition_date, objectname, source_id),
        a.acknowledged_on,
        c.carried_to_date,
        ho.handed_over_on,
        ho.acknowledged_payload_hash,
        ho.acknowledged_amount,
        ho.acknowledged_currency,
        (case h.objectname
            when 'invoice' then h.money.originalInvoiceAmount
            when 'payment' then h.money.amount
        end)::DECIMAL(18, 2) as amount,
        h.money.currency as currency
    from hashed as h
    left join quarantined as q
        on q.partition_date = h.partition_date
        and q.objectname = h.objectname
        and q.source_id = h.source_id
    left join sent as s
        on s.partition_date = h.partition_date
        and s.objectname = h.objectname
        and s.source_id = h.source_id
    left join acknowledged_before as a
        on a.partition_date = h.partition_date
        and a.objectname = h.objectname
        and a.source_id = h.source_id
        and a.payload_hash = h.payload_hash
    left join handed_over as ho
        on ho.partition_date = h.partition_date
        and ho.objectname = h.objectname
        and ho.source_id = h.source_id
    left join carried_copies as c
        on c.carried_from_date = h.partition_date
        and c.objectname = h.objectname
        and c.source_id = h.source_id
)

select
    partition_date,
    creditor_id,
    objectname,
    source_id,
    amount,
    currency,
    payload_hash,
    fate,
    -- The ledger's details describe the fate 'sent' only.
    case when fate = 'sent' then coalesce(outcome, 'outstanding') end as outcome,
    case when fate = 'sent' then batchid end as batchid,
    case when fate = 'sent' then objectindex end as objectindex,
    case when fate = 'sent' then batch_state end as batch_state,
    case when fate = 'sent' then ledgerref end as ledgerref,
    case when fate = 'sent' then status_statuscode end as status_statuscode,
    case when fate = 'sent' then error_message end as error_message,
    case when fate = 'sent' then times_sent end::INTEGER as times_sent,
    case when fate = 'sent' then sent_payload_hash = payload_hash end as payload_matches_sent,
    case when fate = 'quarantined' then quarantine_reason end as quarantine_reason,
    case when fate in ('held', 'carried_forward') then hold_reason end as hold_reason,
    case
        when fate = 'skipped_unchanged' then acknowledged_on
        when fate = 'changed_after_handover' then handed_over_on
    end as acknowledged_on,
    carried_from_date,
    case when fate = 'carried_forward' then carried_to_date end as carried_to_date,
    -- What Amili holds of a changed object, and the current amount less it (NULL where
    -- the currency changed too, or the batch predates the ledger keeping amounts).
    case when fate = 'changed_after_handover' then acknowledged_payload_hash end
        as acknowledged_payload_hash,
    case when fate = 'changed_after_handover' then acknowledged_amount end
        as acknowledged_amount,
    case when fate = 'changed_after_handover' then acknowledged_currency end
        as acknowledged_currency,
    case
        when fate = 'changed_after_handover' and acknowledged_currency = currency
            then amount - acknowledged_amount
    end::DECIMAL(18, 2) as amount_difference,
    -- Why a quarantined or rejected object did not get through, as a stable code (the
    -- grouping key, amili/reasons.py), the value it names, and the code's message (for a
    -- text no code knows, the text with the object's values taken out). The full text is
    -- quarantine_reason or error_message.
    case
        when fate = 'quarantined' then coalesce(quarantine_reason_code, 'other')
        when fate = 'sent' and outcome = 'rejected' then coalesce(error_code, 'other')
    end as reason_code,
    case
        when fate = 'quarantined' then quarantine_reason_value
        when fate = 'sent' and outcome = 'rejected' then error_value
    end as reason_value,
    case
        when fate = 'quarantined' then coalesce({{ reason_message('quarantine_reason_code') }},
            {{ normalize_reason("coalesce(quarantine_reason, '(no reason)')") }})
        when fate = 'sent' and outcome = 'rejected' then coalesce(
            {{ reason_message('error_code') }},
            {{ normalize_reason("coalesce(error_message, '(no message)')") }})
    end as reason_message
from fates
