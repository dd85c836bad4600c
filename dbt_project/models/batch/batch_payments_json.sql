-- One payment object per row, as the JSON text the Batch body's `payment` array holds.
-- Rows with a hold_reason are not sent (those held for want of Amili's id carry "invoiceId": null).
select
    partition_date,
    payment_id,
    invoice_id,
    creditor_id,
    carried_from_date,
    hold_reason,
    to_json(struct_pack(
        invoiceId := invoiceId,
        "type" := "type",
        amount := amount,
        currency := currency,
        "date" := "date",
        description := description,
        uniqueSourcePaymentId := uniqueSourcePaymentId
    )) as payload
from {{ ref('batch_payments') }}
