-- Amili's ids of the invoices it acknowledged (filled by the results stage).
select
    {{ clean_text('unique_source_invoice_id') }} as invoice_id,
    {{ clean_text('amili_invoice_id') }} as amili_invoice_id,
    acknowledged_at
from {{ source('amili', 'acknowledged_invoices') }}
