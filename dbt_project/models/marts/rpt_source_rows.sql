{{
    config(
        pre_hook="{{ delete_window_and_carried_from(carried_sources()) }}",
    )
}}

-- One row per warehouse row the extract read for a day (every raw.* table), and the bucket it
-- ended in: the accounting starts at the warehouse, not at the rows dbt lets through.
--   an invoice, payment, action or creditor row   the fate of its object (rpt_object_fates):
--                                                 quarantined, held, carried_forward,
--                                                 skipped_unchanged, sent, ... ; a row whose id
--                                                 the warehouse repeats is one object each
--   a claim line or reminder                      the fate of its invoice
--   a debtor                                      with_invoices (its invoices carry it), or
--                                                 not_needed (only the day's payments refer
--                                                 to it, and a payment carries no debtor)
--   a payment that is no object                   not_handed_over (its invoice was not handed
--                                                 over to Amili: the creditor's own business)
--                                                 or netted_before_handover (registered before
--                                                 its invoice's hand-over, so the claims net it)
--   anything else                                 unaccounted (a balance failure)
-- amount is the warehouse's own value, exactly (DECIMAL(38,6)), also where it is more precise
-- or larger than the API carries; NULL for rows without money and for values that are no
-- number. creditor_id is the row's creditor as the extracted rows name it (see `rows`),
-- NULL where they name none, so that the dashboard can narrow the rows to one creditor;
-- such rows still count. Rebuilds the same days as rpt_object_fates.

{%- set window = in_window_or_carried_from(carried_sources()) %}

with fates as (
    -- one fate per object key: copies of a repeated id are all quarantined alike
    select
        partition_date, objectname, source_id,
        min(fate) as fate,
        min(quarantine_reason) as quarantine_reason,
        min(reason_code) as reason_code,
        min(hold_reason) as hold_reason
    from {{ ref('rpt_object_fates') }}
    where {{ window }}
    group by all
),

-- Every invoice ever handed over (all days), its first day and that day's creditor: a
-- payment's creditor is its invoice's, as batch_payments has it.
handed_over as (
    select
        invoice_id,
        min(partition_date) as handed_over_on,
        arg_min(creditor_id, partition_date) as creditor_id
    from {{ ref('stg_invoices') }}
    where invoice_id is not null
    group by invoice_id
),

invoices as (
    select
        partition_date, source_row, {{ clean_text('invoice_id') }} as invoice_id,
        {{ clean_text('creditor_id') }} as creditor_id,
        {{ clean_text('customer_id') }} as customer_id,
        {{ clean_text('currency') }} as currency,
        try_cast(amount as DECIMAL(38, 6)) as amount
    from {{ source('raw', 'invoices') }}
    where {{ window }}
),

-- One row per day and invoice id, for its lines and reminders: the copies of an id the
-- warehouse repeats may differ (another currency), and a line must stay one row. The
-- first copy's creditor and currency are the lines'.
invoice_keys as (
    select partition_date, invoice_id, arg_min(creditor_id, source_row) as creditor_id,
        arg_min(currency, source_row) as currency
    from invoices
    group by all
),

-- The creditor of each row: an invoice's, action's and debtor's own column, a creditor's
-- id, a line's or reminder's invoice of the day, a payment's invoice (the first day it was
-- handed over, else the creditor the warehouse gives the invoice, which the extract reads
-- into raw.payments.invoice_creditor_id). NULL where none is known: a payment of no
-- invoice, of one the warehouse does not have (or repeats with different creditors), or
-- extracted before that column existed.
rows as (
    select
        'invoices' as source_table, i.partition_date, i.source_row,
        i.invoice_id as source_id, i.creditor_id, i.currency, i.amount,
        'invoice' as objectname,
        coalesce(i.invoice_id, '(no invoice_id: warehouse row ' || i.source_row || ')')
            as object_id
    from invoices as i

    union all
    select
        'invoice_lines', l.partition_date, l.source_row,
        {{ clean_text('l.invoice_id') }} || ' line ' || coalesce(l.line_no::VARCHAR, '?'),
        i.creditor_id, i.currency, try_cast(l.amount as DECIMAL(38, 6)),
        'invoice', {{ clean_text('l.invoice_id') }}
    from {{ source('raw', 'invoice_lines') }} as l
    left join invoice_keys as i on i.partition_date = l.partition_date
        and i.invoice_id = {{ clean_text('l.invoice_id') }}
    where {{ in_window_or_carried_from(carried_sources(), 'l.partition_date') }}

    union all
    select
        'reminders', r.partition_date, r.source_row,
        {{ clean_text('r.invoice_id') }} || ' reminder ' || coalesce(r.reminder_no::VARCHAR, '?'),
        i.creditor_id, i.currency, try_cast(r.fee_amount as DECIMAL(38, 6)),
        'invoice', {{ clean_text('r.invoice_id') }}
    from {{ source('raw', 'reminders') }} as r
    left join invoice_keys as i on i.partition_date = r.partition_date
        and i.invoice_id = {{ clean_text('r.invoice_id') }}
    where {{ in_window_or_carried_from(carried_sources(), 'r.partition_date') }}

    union all
    select
        'payments', p.partition_date, p.source_row, {{ clean_text('p.payment_id') }},
        coalesce(h.creditor_id, {{ clean_text('p.invoice_creditor_id') }}),
        {{ clean_text('p.currency') }}, try_cast(p.amount as DECIMAL(38, 6)),
        'payment',
        coalesce({{ clean_text('p.payment_id') }},
            '(no payment_id: warehouse row ' || p.source_row || ')')
    from {{ source('raw', 'payments') }} as p
    left join handed_over as h on h.invoice_id = {{ clean_text('p.invoice_id') }}
    where {{ in_window_or_carried_from(carried_sources(), 'p.partition_date') }}

    union all
    select
        'case_actions', partition_date, source_row, {{ clean_text('action_id') }},
        {{ clean_text('creditor_id') }}, null, null,
        'action',
        coalesce({{ clean_text('action_id') }},
            '(no action_id: warehouse row ' || source_row || ')')
    from {{ source('raw', 'case_actions') }}
    where {{ window }}

    union all
    select
        'creditors', partition_date, source_row, {{ clean_text('creditor_id') }},
        {{ clean_text('creditor_id') }}, null, null,
        'creditor', {{ clean_text('creditor_id') }}
    from {{ source('raw', 'creditors') }}
    where {{ window }}

    union all
    select
        'customers', partition_date, source_row, {{ clean_text('customer_id') }},
        {{ clean_text('creditor_id') }}, null, null,
        null, null
    from {{ source('raw', 'customers') }}
    where {{ window }}
),

-- the debtors the day's invoices carry
debtors_used as (
    select distinct partition_date, customer_id from invoices where customer_id is not null
),

payments as (
    select partition_date, source_row, {{ clean_text('invoice_id') }} as invoice_id
    from {{ source('raw', 'payments') }}
    where {{ window }}
)

select
    r.partition_date,
    r.source_table,
    r.source_row,
    r.source_id,
    r.creditor_id,
    r.objectname,
    r.object_id,
    r.currency,
    r.amount,
    case
        when f.fate is not null then f.fate
        when r.source_table = 'customers' and d.customer_id is not null then 'with_invoices'
        when r.source_table = 'customers' then 'not_needed'
        when r.source_table = 'payments' and h.handed_over_on > r.partition_date
            then 'netted_before_handover'
        when r.source_table = 'payments' and p.invoice_id is not null and h.invoice_id is null
            then 'not_handed_over'
        else 'unaccounted'
    end as bucket,
    case
        when f.fate = 'quarantined' then f.quarantine_reason
        when f.fate in ('held', 'carried_forward') then f.hold_reason
        when f.fate is not null then null
        when r.source_table = 'customers' and d.customer_id is null
            then 'only payments of the day refer to this debtor; a payment carries no debtor'
        when r.source_table = 'payments' and h.handed_over_on > r.partition_date
            then 'registered before invoice ' || p.invoice_id || ' was handed over on '
                || h.handed_over_on::VARCHAR || '; its claims net the payment'
        when r.source_table = 'payments' and p.invoice_id is not null and h.invoice_id is null
            then 'invoice ' || p.invoice_id || ' was not handed over to Amili; the payment is '
                || 'the creditor''s own business'
    end as reason,
    -- a quarantined row's reason code (rpt_object_fates.reason_code, amili/reasons.py)
    case when f.fate = 'quarantined' then f.reason_code end as reason_code
from rows as r
left join fates as f
    on f.partition_date = r.partition_date
    and f.objectname = r.objectname
    and f.source_id = r.object_id
left join debtors_used as d
    on r.source_table = 'customers'
    and d.partition_date = r.partition_date
    and d.customer_id = r.source_id
left join payments as p
    on r.source_table = 'payments'
    and p.partition_date = r.partition_date
    and p.source_row = r.source_row
left join handed_over as h on h.invoice_id = p.invoice_id
