{#
  Row-level defects, named in staging so that one bad warehouse row is quarantined on its own
  and never stops the day: a staging model lists each row's defects in `row_defects` (NULL:
  none), the batch models carry them to the object as `quarantine_reason`, and the
  submission quarantines that object with the reason instead of sending it. Each message
  names the warehouse table, the column and the value.

  Money: the API carries amounts in whole øre up to DECIMAL(18,2). An amount with more
  decimals is quarantined, never rounded (the reconciliation must equal the warehouse to the
  øre), and so is an amount at or beyond 10^16 or one that is not a number. exact_money is the
  amount as DECIMAL(18,2) when it has no such defect, else NULL.
#}

{# The raw column's type as DuckDB reports it (upper case), or '' when not executing. #}
{% macro amili_raw_column_type(table, column) -%}
    {%- if execute -%}
        {%- set ns = namespace(found='') -%}
        {%- for c in adapter.get_columns_in_relation(source('raw', table)) -%}
            {%- if c.name | lower == column | lower -%}
                {%- set ns.found = c.dtype | upper -%}
            {%- endif -%}
        {%- endfor -%}
        {{- ns.found -}}
    {%- endif -%}
{%- endmacro %}

{# Whether every value of a column of this type fits DECIMAL(18,2) exactly. #}
{% macro amili_type_fits_money(dtype) -%}
    {%- set m = modules.re.match('^DECIMAL\\((\\d+),\\s*(\\d+)\\)$', dtype) -%}
    {%- if m and (m.group(2) | int) <= 2 and ((m.group(1) | int) - (m.group(2) | int)) <= 16 -%}
        true
    {%- elif dtype in ('TINYINT', 'SMALLINT', 'INTEGER', 'UTINYINT', 'USMALLINT', 'UINTEGER') -%}
        true
    {%- endif -%}
{%- endmacro %}

{# Why a money column's value cannot be sent as it is, or NULL. #}
{% macro money_defect(table, column) -%}
    {%- if amili_type_fits_money(amili_raw_column_type(table, column)) == 'true' -%}
        null::VARCHAR
    {%- else -%}
    case
        when {{ column }} is null then null
        when try_cast({{ column }} as DOUBLE) is null
            then '{{ table }}.{{ column }} ' || {{ column }}::VARCHAR || ' is not a number'
        when not isfinite(try_cast({{ column }} as DOUBLE))
            or abs(try_cast({{ column }} as DOUBLE)) >= 1e16
            then '{{ table }}.{{ column }} ' || {{ column }}::VARCHAR
                || ' is beyond the largest amount the API carries (below 10^16 with two decimals)'
        when try_cast({{ column }} as DECIMAL(38, 10))
            <> round(try_cast({{ column }} as DECIMAL(38, 10)), 2)
            then '{{ table }}.{{ column }} ' || {{ column }}::VARCHAR
                || ' has more than two decimals: the API carries whole øre, and the pipeline'
                || ' does not round'
    end
    {%- endif -%}
{%- endmacro %}

{# The amount as DECIMAL(18,2) when money_defect finds nothing wrong with it, else NULL. #}
{% macro exact_money(table, column) -%}
    {%- if amili_type_fits_money(amili_raw_column_type(table, column)) == 'true' -%}
        {{ column }}::DECIMAL(18, 2)
    {%- else -%}
        case when ({{ money_defect(table, column) }}) is null
            then try_cast({{ column }} as DECIMAL(18, 2)) end
    {%- endif -%}
{%- endmacro %}

{# The longest text the pipeline sends in one field (the API documents no maximum). #}
{% macro max_text_length() -%}
    {{ var('max_text_length', 2000) | int }}
{%- endmacro %}

{# Why a text column's value is not sent: longer than max_text_length(). #}
{% macro text_defect(table, column) -%}
    case when length({{ column }}) > {{ max_text_length() }}
        then '{{ table }}.{{ column }} is ' || length({{ column }})::VARCHAR
            || ' characters long; at most {{ max_text_length() }} are sent'
    end
{%- endmacro %}

{# Why a row's id is unusable: missing, or shared with another row of its day. #}
{% macro id_defect(table, column) -%}
    case
        when {{ clean_text(column) }} is null
            then 'the {{ table }} row has no {{ column }}'
        when count(*) over (partition by partition_date, {{ clean_text(column) }}) > 1
            then '{{ table }}.{{ column }} ' || {{ clean_text(column) }} || ' appears '
                || (count(*) over (partition by partition_date, {{ clean_text(column) }}))::VARCHAR
                || ' times on ' || partition_date::VARCHAR || '; every row needs its own id'
    end
{%- endmacro %}

{# The defects of a row: the messages joined with '; ', NULL when there is none. #}
{% macro row_defects(expressions) -%}
    nullif(concat_ws('; ',
        {%- for e in expressions %}
        {{ e }}{{ "," if not loop.last }}
        {%- endfor %}
    ), '')
{%- endmacro %}
