-- One payment object per row, as the JSON text the Batch body's `payment` array holds.
-- Held rows (hold_reason not NULL) carry "invoiceId": null and must not be sent.
select
    partition_date,
    payment_id,
    invoice_id,
    creditor_id,
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
