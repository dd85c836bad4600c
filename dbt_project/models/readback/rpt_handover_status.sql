-- Per invoice handed over (Amili acknowledged it: amili.acknowledged_invoices), what we sent
-- against the case Amili holds for it, plus every case Amili holds for an invoice we never
-- sent. `divergence_reason` says what is wrong, in this order:
--   'case for an invoice we never sent'  a case whose invoice id we never got back;
--   'case missing'                       acknowledged before the cases were last read, and
--                                        no case (the grace period is the asset check's);
--   'amount differs'                     the case's original amount is not the amount Amili
--                                        acknowledged from us (the first accepted payload);
--   'currency differs'                   likewise for the currency.
-- Nothing is 'missing' before the cases were ever read.

with acknowledged as (
    select unique_source_invoice_id, amili_invoice_id, acknowledged_at
    from {{ source('amili', 'acknowledged_invoices') }}
),

sent as (
    -- what Amili holds of what we sent: the payload it took first
    select
        source_id as unique_source_invoice_id,
        arg_min(amount, partition_date) as acknowledged_amount,
        arg_min(currency, partition_date) as acknowledged_currency,
        min(partition_date) as handed_over_on
    from {{ source('amili', 'ledger_objects') }}
    where objectname = 'invoice' and outcome = 'accepted'
    group by source_id
),

cases as (
    select
        amili_invoice_id,
        any_value(unique_source_invoice_id) as case_source_id,
        any_value(creditor_idnumber) as creditor_idnumber,
        string_agg(distinct casenumber, ', ') as casenumber,
        any_value(status) as status,
        any_value(sub_status) as sub_status,
        any_value(currency) as case_currency,
        sum(original_amount)::decimal(38, 10) as case_original_amount,
        sum(remaining_amount)::decimal(38, 10) as case_open_amount,
        sum(paid_amount)::decimal(38, 10) as case_paid_amount,
        sum(credited_amount)::decimal(38, 10) as case_credited_amount,
        max(closed_at) as case_closed_at,
        bool_or(handed_over) as handed_over
    from {{ source('amili_readback', 'cases') }}
    group by amili_invoice_id
),

last_read as (
    select max(read_at) as cases_read_at from {{ source('amili_readback', 'cases') }}
),

joined as (
    select
        coalesce(k.unique_source_invoice_id, c.case_source_id) as unique_source_invoice_id,
        coalesce(k.amili_invoice_id, c.amili_invoice_id) as amili_invoice_id,
        c.creditor_idnumber,
        c.casenumber,
        k.acknowledged_at,
        s.handed_over_on,
        s.acknowledged_amount,
        s.acknowledged_currency,
        c.status,
        c.sub_status,
        c.case_currency,
        c.case_original_amount,
        c.case_open_amount,
        c.case_paid_amount,
        c.case_credited_amount,
        c.case_closed_at,
        r.cases_read_at,
        case
            when k.amili_invoice_id is null then 'case for an invoice we never sent'
            when c.amili_invoice_id is null and r.cases_read_at is not null
                and k.acknowledged_at <= r.cases_read_at then 'case missing'
            when c.amili_invoice_id is not null
                and c.case_original_amount <> s.acknowledged_amount then 'amount differs'
            when c.amili_invoice_id is not null
                and c.case_currency <> s.acknowledged_currency then 'currency differs'
        end as divergence_reason
    from acknowledged as k
    full outer join cases as c on c.amili_invoice_id = k.amili_invoice_id
    left join sent as s on s.unique_source_invoice_id = k.unique_source_invoice_id
    cross join last_read as r
)

select
    *,
    divergence_reason is not null as diverges,
    (case_original_amount - acknowledged_amount)::decimal(38, 10) as amount_difference
from joined
