select
    partition_date,
    {{ clean_text('payment_id') }} as payment_id,
    {{ clean_text('invoice_id') }} as invoice_id,
    payment_date::DATE as payment_date,
    registered_at::TIMESTAMPTZ as registered_at,
    amount::DECIMAL(18, 2) as amount,
    {{ clean_text('currency') }} as currency,
    {{ clean_text('method') }} as method,
    {{ clean_text('kid') }} as kid
from {{ source('raw', 'payments') }}
