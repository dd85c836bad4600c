{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='partition_date',
        on_schema_change='fail',
        pre_hook="{{ delete_partition_window() }}",
    )
}}

-- One row per payment registered on partition_date against an invoice that was handed
-- over to Amili on that day or earlier: the payment object of the Batch body. Payments of
-- invoices never handed over are not Amili's business and are left out; payments made
-- before the hand-over are already netted into the invoice's claims.
--
-- invoiceId is Amili's id of the invoice, known only once Amili acknowledged the invoice
-- (amili.acknowledged_invoices, filled by the results stage). Until then the payment is
-- held back with a reason and invoiceId stays NULL: it is never guessed. A held payment is
-- released by rebuilding its day after the acknowledgement arrived.

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
)

select
    p.partition_date,
    p.payment_id,
    p.invoice_id,
    h.creditor_id,
    case when a.amili_invoice_id is null
        then 'invoice not yet acknowledged by Amili' end as hold_reason,
    a.amili_invoice_id as invoiceId,
    'DIRECT_PAYMENT' as "type",
    p.amount,
    p.currency,
    {{ amili_datetime('p.registered_at') }} as "date",
    concat_ws(', ', p.method, 'KID ' || p.kid) as description,
    p.payment_id as uniqueSourcePaymentId
from payments as p
inner join handed_over as h
    on h.invoice_id = p.invoice_id
    and h.handed_over_on <= p.partition_date
left join acknowledged as a on a.invoice_id = p.invoice_id
