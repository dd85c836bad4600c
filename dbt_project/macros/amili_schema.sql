{#
  on-run-start hook. The `amili` schema belongs to the submission and results stages; the
  batch models read Amili's ids of acknowledged invoices from it, and the marts read the
  ledger, so it and its tables (macros/amili_ledger.sql, generated from
  amili/pipeline/ledger.py) must exist before the first submission ever ran. Idempotent.
#}

{% macro create_amili_schema() %}
CREATE SCHEMA IF NOT EXISTS amili
{% endmacro %}
