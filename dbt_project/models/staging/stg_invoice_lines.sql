select
    partition_date,
    {{ clean_text('invoice_id') }} as invoice_id,
    line_no::INTEGER as line_no,
    {{ clean_text('line_type') }} as line_type,
    {{ exact_money('invoice_lines', 'amount') }} as amount,
    {{ clean_text('description') }} as description,
    source_row,
    {{ row_defects([
        "case when count(*) over (partition by partition_date, invoice_id, line_no) > 1
            then 'invoice_lines line ' || coalesce(line_no::VARCHAR, '?') || ' appears '
                || (count(*) over (partition by partition_date, invoice_id, line_no))::VARCHAR
                || ' times' end",
        money_defect('invoice_lines', 'amount'),
        text_defect('invoice_lines', 'description'),
    ]) }} as row_defects
from {{ source('raw', 'invoice_lines') }}
