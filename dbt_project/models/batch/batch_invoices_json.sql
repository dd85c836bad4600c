-- One invoice object per row, as the JSON text the Batch body's `invoice` array holds.
-- The nested debtors and claims keep the key case of batch_invoices' contract types.
-- invoice_object is the typed value the payload serializes: the submission checks its fields
-- without parsing the JSON again (amili/pipeline/sql_checks.py, typed_shape_sql).
select
    *,
    to_json(invoice_object) as payload
from (
    select
        partition_date,
        invoice_id,
        creditor_id,
        quarantine_reason,
        struct_pack(
            "type" := "type",
            invoiceNumber := invoiceNumber,
            vat := vat,
            fees := fees,
            originalInvoiceAmount := originalInvoiceAmount,
            currency := currency,
            invoiceDate := invoiceDate,
            dueDate := dueDate,
            collectionNoticeDate := collectionNoticeDate,
            ocrReferenceNumber := ocrReferenceNumber,
            uniqueSourceInvoiceId := uniqueSourceInvoiceId,
            description := description,
            debtors := debtors,
            claims := claims
        ) as invoice_object
    from {{ ref('batch_invoices') }}
)
