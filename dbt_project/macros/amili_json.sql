{#
  Values in the forms the Batch API documents. Date-times are ISO 8601 in UTC with
  milliseconds, like the documented example `2019-08-24T14:15:22.123Z`.
#}

{# A TIMESTAMPTZ as `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC. strftime of a TIMESTAMPTZ would format
   in the session's time zone and still append Z, so convert to UTC wall time first. #}
{% macro amili_datetime(tstz) -%}
    strftime(timezone('UTC', {{ tstz }}), '%Y-%m-%dT%H:%M:%S.%gZ')
{%- endmacro %}

{# A DATE as midnight UTC of that day, `YYYY-MM-DDT00:00:00.000Z`. #}
{% macro amili_date_as_datetime(d) -%}
    strftime(({{ d }})::TIMESTAMP, '%Y-%m-%dT%H:%M:%S.%gZ')
{%- endmacro %}

{# Text as the source holds it, trimmed; an empty string is no value (NULL). #}
{% macro clean_text(column) -%}
    nullif(trim({{ column }}), '')
{%- endmacro %}
