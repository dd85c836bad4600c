-- Money is exact: an invoice's claims add up to its balance at hand-over, whenever the
-- source is consistent (what was paid before the hand-over, lines minus balance, is not
-- negative and does not exceed the positive lines). Where it is not, the claims are the
-- lines as they are (see batch_invoices) and validation deals with the invoice.
with lines as (
    select
        partition_date,
        invoice_id,
        sum(amount) as lines_total,
        sum(greatest(amount, 0)) as positive_total
    from {{ ref('stg_invoice_lines') }}
    group by all
),

invoices as (
    select
        b.partition_date,
        b.invoice_id,
        b.balance_at_handover,
        coalesce(l.lines_total, 0) as lines_total,
        coalesce(l.positive_total, 0) as positive_total,
        coalesce(list_sum([c.remainingAmount for c in b.claims]), 0) as claims_total
    from {{ ref('batch_invoices') }} as b
    left join lines as l using (partition_date, invoice_id)
    -- a quarantined invoice is not sent; its amounts may be what the API cannot carry
    where b.quarantine_reason is null
)

select *
from invoices
where claims_total <> balance_at_handover
    and lines_total - balance_at_handover between 0 and positive_total
