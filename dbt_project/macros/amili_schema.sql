{#
  on-run-start hooks. The `amili` schema belongs to the submission and results stages; the
  batch models read Amili's ids of acknowledged invoices from it, so it must exist before the
  first submission ever ran. Both statements are idempotent.
#}

{% macro create_amili_schema() %}
CREATE SCHEMA IF NOT EXISTS amili
{% endmacro %}

{% macro create_acknowledged_invoices() %}
CREATE TABLE IF NOT EXISTS amili.acknowledged_invoices (
    unique_source_invoice_id VARCHAR PRIMARY KEY,  -- our invoice id (uniqueSourceInvoiceId)
    amili_invoice_id VARCHAR NOT NULL,             -- Amili's id of it (ledgerref, a UUID)
    acknowledged_at TIMESTAMPTZ                    -- when Amili's answer acknowledged it
)
{% endmacro %}
