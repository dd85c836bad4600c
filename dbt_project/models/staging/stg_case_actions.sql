select
    partition_date,
    {{ clean_text('action_id') }} as action_id,
    {{ clean_text('invoice_id') }} as invoice_id,
    {{ clean_text('creditor_id') }} as creditor_id,
    {{ clean_text('action_type') }} as action_type,
    requested_at::TIMESTAMPTZ as requested_at,
    due_date::DATE as due_date,
    {{ clean_text('subject') }} as subject,
    {{ clean_text('message') }} as message,
    {{ clean_text('conversation_id') }} as conversation_id,
    invoice_known,
    source_row,
    {{ row_defects([
        id_defect('case_actions', 'action_id'),
        text_defect('case_actions', 'subject'),
        text_defect('case_actions', 'message'),
        text_defect('case_actions', 'conversation_id'),
    ]) }} as row_defects
from {{ source('raw', 'case_actions') }}
