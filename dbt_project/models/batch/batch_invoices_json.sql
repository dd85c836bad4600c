-- One invoice object per row, as the JSON text the Batch body's `invoice` array holds.
-- The nested debtors and claims keep the key case of batch_invoices' contract types.
select
    partition_date,
    invoice_id,
    creditor_id,
    to_json(struct_pack(
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
    )) as payload
from {{ ref('batch_invoices') }}
