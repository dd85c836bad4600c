select
    partition_date,
    {{ clean_text('invoice_id') }} as invoice_id,
    reminder_no::INTEGER as reminder_no,
    sent_date::DATE as sent_date,
    {{ exact_money('reminders', 'fee_amount') }} as fee_amount,
    source_row,
    {{ row_defects([money_defect('reminders', 'fee_amount')]) }} as row_defects
from {{ source('raw', 'reminders') }}
