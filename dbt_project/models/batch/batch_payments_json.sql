-- One payment object per row, as the JSON text the Batch body's `payment` array holds.
-- Rows with a hold_reason are not sent (those held for want of Amili's id carry "invoiceId": null).
-- payment_object is the typed value the payload serializes: the submission checks its fields
-- without parsing the JSON again (amili/pipeline/sql_checks.py, typed_shape_sql).
select
    *,
    to_json(payment_object) as payload
from (
    select
        partition_date,
        payment_id,
        invoice_id,
        creditor_id,
        carried_from_date,
        hold_reason,
        quarantine_reason,
        struct_pack(
            invoiceId := invoiceId,
            "type" := "type",
            amount := amount,
            currency := currency,
            "date" := "date",
            description := description,
            uniqueSourcePaymentId := uniqueSourcePaymentId
        ) as payment_object
    from {{ ref('batch_payments') }}
)
