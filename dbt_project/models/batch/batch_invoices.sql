{{
    config(
        materialized='incremental',
        pre_hook="{{ delete_partition_window() }}",
    )
}}

-- One row per invoice handed over on partition_date: the invoice object of the Batch body,
-- with its debtor and claims nested, so that to_json of the API columns is the API's JSON.
-- Shaping is faithful: negative amounts, unknown currencies and invalid identifiers pass
-- through unchanged; the submission stage validates and quarantines them. What only the
-- warehouse rows can tell (a repeated or missing id, an amount the API cannot carry exactly,
-- an over-long text: the row_defects of staging) is named in quarantine_reason, with the
-- defects of the invoice's lines, reminders, debtor and creditor, and the submission
-- quarantines the invoice with that reason. Every warehouse row stays one object.

with invoices as (
    select * from {{ ref('stg_invoices') }}
    where {{ in_partition_window() }}
),

lines as (
    select l.*
    from {{ ref('stg_invoice_lines') }} as l
    where {{ in_partition_window('l.partition_date') }}
),

balances as (
    select
        i.partition_date,
        i.source_row,
        i.invoice_id,
        i.remaining_amount,
        -- Payments from the hand-over day on, which the warehouse had netted into
        -- remaining_amount when the invoice was extracted (summed by the extract from the
        -- same snapshot). batch_payments sends them to Amili as payments, so the claims add
        -- them back: the claims are the balance at hand-over, and each krone paid is
        -- reported once (as a payment), never also as a smaller claim.
        coalesce(i.paid_since_collection_day, 0)::DECIMAL(18, 2) as paid_since_handover,
        (i.remaining_amount + coalesce(i.paid_since_collection_day, 0))::DECIMAL(18, 2)
            as balance_at_handover,
        coalesce(t.lines_total, 0) as lines_total
    from invoices as i
    left join (
        select partition_date, invoice_id, sum(amount) as lines_total
        from lines group by all
    ) as t using (partition_date, invoice_id)
),

-- What keeps the invoice's other rows from being sent, per invoice (NULL: nothing).
line_defects as (
    select partition_date, invoice_id,
        string_agg('line ' || coalesce(line_no::VARCHAR, '?') || ': ' || row_defects, '; '
            order by line_no) as defects
    from lines
    where row_defects is not null
    group by all
),

reminder_defects as (
    select partition_date, invoice_id,
        string_agg('reminder ' || coalesce(reminder_no::VARCHAR, '?') || ': ' || row_defects,
            '; ' order by reminder_no) as defects
    from {{ ref('stg_reminders') }}
    where {{ in_partition_window() }} and row_defects is not null
    group by all
),

-- What was paid before the hand-over: the lines minus the balance at hand-over. It is
-- taken off the lines in the usual Norwegian order of coverage (dekningsrekkefølge): fees
-- first, then interest, then principal; within a kind by line number. Only positive lines
-- absorb payments. A negative result (the source's lines and balance disagree, e.g. the
-- negative-amount defect) takes nothing off: the claims are then the lines as they are.
allocated as (
    select
        l.*,
        greatest(b.lines_total - b.balance_at_handover, 0) as paid_before_handover,
        coalesce(sum(greatest(l.amount, 0)) over (
            partition by l.partition_date, l.invoice_id
            order by
                case l.line_type when 'FEE' then 1 when 'INTEREST' then 2 else 3 end,
                l.line_no
            rows between unbounded preceding and 1 preceding
        ), 0) as covered_before
    from lines as l
    inner join (
        select distinct on (partition_date, invoice_id) * from balances
    ) as b using (partition_date, invoice_id)
),

claims as (
    select
        partition_date,
        invoice_id,
        list(
            struct_pack(
                "type" := line_type,
                remainingAmount := remaining,
                description := description
            )
            order by line_no
        ) filter (where remaining <> 0) as claims,
        bool_or(line_type = 'FEE') as has_fee_lines
    from (
        select
            *,
            (amount - least(greatest(amount, 0),
                            greatest(paid_before_handover - covered_before, 0)))::DECIMAL(18, 2)
                as remaining
        from allocated
    )
    group by all
),

-- One debtor per day and customer: a customer id the warehouse repeats is a defect of that
-- row (its row_defects say so), and never a second copy of the invoice.
debtors as (
    select
        partition_date,
        customer_id,
        row_defects,
        [struct_pack(
            -- The API's debtor types: PRIVATE (documented) and COMPANY (assumed); any other
            -- customer_type becomes NULL, which validation rejects.
            "type" := case customer_type
                when 'PERSON' then 'PRIVATE'
                when 'COMPANY' then 'COMPANY'
            end,
            firstname := first_name,
            lastname := last_name,
            "name" := case when customer_type = 'COMPANY' then company_name
                else nullif(concat_ws(' ', first_name, last_name), '') end,
            customerNumber := customer_number,
            identificationNumber := national_id,
            organizationNumber := organization_number,
            dateOfBirth := date_of_birth,
            emails := case when email is null then []
                else [struct_pack("value" := email)] end,
            -- ASSUMPTION: countryCode is the calling code and value the national number;
            -- a number that is not +47 and 8 digits is passed on as it is.
            phoneNumbers := case when phone is null then []
                else [struct_pack(
                    countryCode := case when regexp_full_match(phone, '\+47[0-9]{8}')
                        then '+47' end,
                    originalValue := phone,
                    "value" := case when regexp_full_match(phone, '\+47[0-9]{8}')
                        then substr(phone, 4) else phone end
                )] end,
            -- No address at all is an empty list (validation reports it as missing), not
            -- an address of NULLs.
            addresses := case when coalesce(street, zip_code, city) is null then []
                else [struct_pack(
                    street := street,
                    city := city,
                    zipCode := zip_code,
                    countryCode := country_code
                )] end
        )] as debtors
    from {{ ref('stg_customers') }}
    where {{ in_partition_window() }}
    qualify row_number() over (partition by partition_date, customer_id order by source_row) = 1
),

creditors as (
    select partition_date, creditor_id, is_only_debt_collection
    from {{ ref('stg_creditors') }}
    where {{ in_partition_window() }}
    qualify row_number() over (partition by partition_date, creditor_id order by source_row) = 1
),

-- The creditor's last reminder before the hand-over.
last_reminders as (
    select partition_date, invoice_id, max(sent_date) as last_sent_date
    from {{ ref('stg_reminders') }}
    where {{ in_partition_window() }}
    group by all
)

select
    i.partition_date,
    -- a row without an id keeps one that names it, so its quarantine can be found
    coalesce(i.invoice_id, '(no invoice_id: warehouse row ' || i.source_row || ')')
        as invoice_id,
    i.creditor_id,
    nullif(concat_ws('; ',
        i.row_defects,
        ld.defects,
        rd.defects,
        'debtor ' || i.customer_id || ': ' || d.row_defects
    ), '') as quarantine_reason,
    b.remaining_amount,
    b.paid_since_handover,
    b.balance_at_handover,
    -- ASSUMPTION (invoice type): a creditor for whom Amili does debt collection only has sent
    -- its own reminders, so its case starts at the collection notice; every other case
    -- starts with Amili's payment reminder. NOTICE is never produced.
    case when c.is_only_debt_collection then 'COLLECTION_NOTICE'
        else 'PAYMENT_REMINDER' end as "type",
    i.invoice_number as invoiceNumber,
    null::BOOLEAN as vat,
    coalesce(cl.has_fee_lines, false) as fees,
    i.amount as originalInvoiceAmount,
    i.currency,
    {{ amili_date_as_datetime('i.invoice_date') }} as invoiceDate,
    {{ amili_date_as_datetime('i.due_date') }} as dueDate,
    {{ amili_date_as_datetime('r.last_sent_date') }} as collectionNoticeDate,
    i.kid as ocrReferenceNumber,
    i.invoice_id as uniqueSourceInvoiceId,
    i.description,
    coalesce(d.debtors, []) as debtors,
    coalesce(cl.claims, []) as claims
from invoices as i
inner join balances as b
    on b.partition_date = i.partition_date
    and b.invoice_id is not distinct from i.invoice_id
    and b.source_row is not distinct from i.source_row
left join creditors as c
    on c.partition_date = i.partition_date and c.creditor_id = i.creditor_id
left join debtors as d
    on d.partition_date = i.partition_date and d.customer_id = i.customer_id
left join claims as cl
    on cl.partition_date = i.partition_date and cl.invoice_id = i.invoice_id
left join last_reminders as r
    on r.partition_date = i.partition_date and r.invoice_id = i.invoice_id
left join line_defects as ld
    on ld.partition_date = i.partition_date and ld.invoice_id = i.invoice_id
left join reminder_defects as rd
    on rd.partition_date = i.partition_date and rd.invoice_id = i.invoice_id
