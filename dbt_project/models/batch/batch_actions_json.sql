-- One action object per row, as the JSON text the Batch body's `action` array holds.
-- Held rows (hold_reason not NULL) carry "ledgerref": null and must not be sent.
select
    partition_date,
    action_id,
    invoice_id,
    creditor_id,
    hold_reason,
    to_json(struct_pack(
        creditorid := creditorid,
        ledgerref := ledgerref,
        actiontype := actiontype,
        duedate := duedate,
        subject := subject,
        conversationid := conversationid,
        message := message
    )) as payload
from {{ ref('batch_actions') }}
