select
    partition_date,
    {{ clean_text('invoice_id') }} as invoice_id,
    line_no::INTEGER as line_no,
    {{ clean_text('line_type') }} as line_type,
    amount::DECIMAL(18, 2) as amount,
    {{ clean_text('description') }} as description
from {{ source('raw', 'invoice_lines') }}
