-- One action object per row, as the JSON text the Batch body's `action` array holds.
-- Rows with a hold_reason are not sent (those held for want of Amili's id carry "ledgerref": null).
select
    partition_date,
    action_id,
    invoice_id,
    creditor_id,
    carried_from_date,
    hold_reason,
    quarantine_reason,
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
