{#
  Custom schemas are used as they are named (`staging`, `batch`), not prefixed with the
  target schema: the submission stage and analysts read `batch.batch_invoices_json`.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
