-- Invoices handed over on partition_date: typed, text trimmed, ids as the warehouse has them.
select
    partition_date,
    {{ clean_text('invoice_id') }} as invoice_id,
    {{ clean_text('creditor_id') }} as creditor_id,
    {{ clean_text('customer_id') }} as customer_id,
    {{ clean_text('invoice_number') }} as invoice_number,
    invoice_date::DATE as invoice_date,
    due_date::DATE as due_date,
    amount::DECIMAL(18, 2) as amount,
    {{ clean_text('currency') }} as currency,
    {{ clean_text('kid') }} as kid,
    {{ clean_text('status') }} as status,
    remaining_amount::DECIMAL(18, 2) as remaining_amount,
    paid_since_collection_day::DECIMAL(18, 2) as paid_since_collection_day,
    disputed::BOOLEAN as is_disputed,
    {{ clean_text('description') }} as description,
    extracted_at
from {{ source('raw', 'invoices') }}
