-- The debtor type is produced by the mapping (PERSON -> PRIVATE, COMPANY -> COMPANY), so
-- only the API's values, or NULL for a customer_type the mapping does not know, may appear.
-- (accepted_values cannot reach into the nested debtors list.)
select b.partition_date, b.invoice_id, d."type"
from {{ ref('batch_invoices') }} as b, unnest(b.debtors) as t(d)
where d."type" not in ('PRIVATE', 'COMPANY')
