select
    partition_date,
    {{ clean_text('invoice_id') }} as invoice_id,
    reminder_no::INTEGER as reminder_no,
    sent_date::DATE as sent_date,
    fee_amount::DECIMAL(18, 2) as fee_amount
from {{ source('raw', 'reminders') }}
