{{
    config(
        materialized='incremental',
        pre_hook="{{ delete_partition_window() }}",
    )
}}

-- One row per payment registered on partition_date against an invoice that was handed
-- over to Amili on that day or earlier: the payment object of the Batch body. Payments of
-- invoices never handed over are not Amili's business and are left out; payments made
-- before the hand-over are already netted into the invoice's claims (rpt_source_rows
-- accounts for both). A payment that points at no invoice (NULL, or an id the warehouse
-- does not have) is an object too, with a quarantine_reason, as is one whose row_defects
-- name a defect: such rows are quarantined by the submission, never dropped.
--
-- invoiceId is Amili's id of the invoice, known only once Amili acknowledged the invoice
-- (amili.acknowledged_invoices, filled by the results stage). Until then the payment is
-- held back with a reason and invoiceId stays NULL: it is never guessed. A held payment is
-- sent on a later day: the first build after the acknowledgement carries it into its window
-- (see macros/carry_forward.sql), or rebuilding its own day releases it there.

with payments as (
    select * from {{ ref('stg_payments') }}
    where {{ in_partition_window() }}
),

-- Every invoice ever handed over (all days, not only this window), with its first day.
handed_over as (
    select
        invoice_id,
        min(partition_date) as handed_over_on,
        arg_min(creditor_id, partition_date) as creditor_id
    from {{ ref('stg_invoices') }}
    group by invoice_id
),

acknowledged as (
    select invoice_id, amili_invoice_id from {{ ref('stg_acknowledged_invoices') }}
),

registered as (
    select
        p.partition_date,
        p.source_row,
        p.payment_id,
        p.invoice_id,
        h.creditor_id,
        null::DATE as carried_from_date,
        null::VARCHAR as hold_reason,
        nullif(concat_ws('; ',
            case
                when p.invoice_id is null
                    then 'the payments row has no invoice_id: it pays no case'
                when not coalesce(p.invoice_known, true)
                    then 'payments.invoice_id ' || p.invoice_id
                        || ' is an invoice the warehouse does not have'
            end,
            p.row_defects
        ), '') as quarantine_reason,
        a.amili_invoice_id as invoiceId,
        'DIRECT_PAYMENT' as "type",
        p.amount,
        p.currency,
        {{ amili_datetime('p.registered_at') }} as "date",
        concat_ws(', ', p.method, 'KID ' || p.kid) as description,
        p.payment_id as uniqueSourcePaymentId
    from payments as p
    left join handed_over as h on h.invoice_id = p.invoice_id
    left join acknowledged as a on a.invoice_id = p.invoice_id
    where h.handed_over_on <= p.partition_date
        or p.invoice_id is null
        or not coalesce(p.invoice_known, true)
),

{% if is_incremental() %}
{{ carried_forward_ctes('payment_id', 'invoiceId') }}
{% endif %}

payment_rows as (
    select * from registered
    {% if is_incremental() %}
    union all by name
    select * from carried_in
    {% endif %}
)

select
    r.partition_date,
    coalesce(r.payment_id, '(no payment_id: warehouse row ' || r.source_row || ')')
        as payment_id,
    r.invoice_id,
    r.creditor_id,
    r.carried_from_date,
    r.quarantine_reason,
    case
        when r.quarantine_reason is not null then null
        {% if is_incremental() %}
        when c.payment_id is not null then '{{ carried_forward_reason() }}'
        {% endif %}
        when r.invoiceId is null then '{{ not_acknowledged_reason() }}'
    end as hold_reason,
    r.invoiceId,
    r."type",
    r.amount,
    r.currency,
    r."date",
    r.description,
    r.uniqueSourcePaymentId
from payment_rows as r
{% if is_incremental() %}
left join carried_on as c
    on c.payment_id = r.payment_id and c.carried_from_date = r.partition_date
{% endif %}
