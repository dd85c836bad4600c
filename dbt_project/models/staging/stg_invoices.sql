-- Invoices handed over on partition_date: typed, text trimmed, ids as the warehouse has them;
-- row_defects names what keeps a row from being sent (macros/row_defects.sql).
select
    partition_date,
    {{ clean_text('invoice_id') }} as invoice_id,
    {{ clean_text('creditor_id') }} as creditor_id,
    {{ clean_text('customer_id') }} as customer_id,
    {{ clean_text('invoice_number') }} as invoice_number,
    invoice_date::DATE as invoice_date,
    due_date::DATE as due_date,
    {{ exact_money('invoices', 'amount') }} as amount,
    {{ clean_text('currency') }} as currency,
    {{ clean_text('kid') }} as kid,
    {{ clean_text('status') }} as status,
    {{ exact_money('invoices', 'remaining_amount') }} as remaining_amount,
    try_cast(paid_since_collection_day as DECIMAL(18, 2)) as paid_since_collection_day,
    disputed::BOOLEAN as is_disputed,
    {{ clean_text('description') }} as description,
    extracted_at,
    source_row,
    {{ row_defects([
        id_defect('invoices', 'invoice_id'),
        money_defect('invoices', 'amount'),
        money_defect('invoices', 'remaining_amount'),
        "case when try_cast(paid_since_collection_day as DECIMAL(18, 2)) is null
            or paid_since_collection_day <> round(paid_since_collection_day, 2)
            then 'the payments registered since the collection day sum to '
                || coalesce(paid_since_collection_day::VARCHAR, 'more than DECIMAL(38,6) holds')
                || ', which the API cannot carry' end",
        text_defect('invoices', 'invoice_number'),
        text_defect('invoices', 'kid'),
        text_defect('invoices', 'description'),
    ]) }} as row_defects
from {{ source('raw', 'invoices') }}
