select
    partition_date,
    {{ clean_text('invoice_id') }} as invoice_id,
    line_no::INTEGER as line_no,
    {{ clean_text('line_type') }} as line_type,
    {{ exact_money('invoice_lines', 'amount') }} as amount,
    {{ clean_text('description') }} as description,
    source_row,
    {{ row_defects([
        money_defect('invoice_lines', 'amount'),
        text_defect('invoice_lines', 'description'),
    ]) }} as row_defects
from {{ source('raw', 'invoice_lines') }}
