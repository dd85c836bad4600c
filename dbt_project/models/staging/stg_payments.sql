select
    partition_date,
    {{ clean_text('payment_id') }} as payment_id,
    {{ clean_text('invoice_id') }} as invoice_id,
    payment_date::DATE as payment_date,
    registered_at::TIMESTAMPTZ as registered_at,
    {{ exact_money('payments', 'amount') }} as amount,
    {{ clean_text('currency') }} as currency,
    {{ clean_text('method') }} as method,
    {{ clean_text('kid') }} as kid,
    invoice_known,
    source_row,
    {{ row_defects([
        id_defect('payments', 'payment_id'),
        money_defect('payments', 'amount'),
        text_defect('payments', 'method'),
        text_defect('payments', 'kid'),
    ]) }} as row_defects
from {{ source('raw', 'payments') }}
