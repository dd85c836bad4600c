{#
  The partition window of a run, half-open [min_date, max_date) of ISO dates. Each bound is,
  in this order: the var (`dbt build --vars '{min_date: ..., max_date: ...}'`), else the
  environment variable AMILI_DBT_MIN_DATE / AMILI_DBT_MAX_DATE (how Dagster passes the run's
  window: one day, or a whole backfill range), else every day (1900-01-01 .. 9999-12-31).

  The environment is read only when models execute, never while dbt parses: dbt keeps its
  parsed project between runs (partial parsing) only if vars and the environment variables
  read during parsing are unchanged, and the window changes every day.
#}

{# The bound `name`, checked to be an ISO date; returns its text. #}
{% macro window_date(name) -%}
    {%- set value = var(name, '') | string | trim -%}
    {%- set origin = "var '" ~ name ~ "'" -%}
    {%- if value == '' and execute -%}
        {%- set env_name = 'AMILI_DBT_' ~ (name | upper) -%}
        {%- set value = env_var(env_name, '') | trim -%}
        {%- set origin = env_name -%}
    {%- endif -%}
    {%- if value == '' -%}
        {%- set value = {'min_date': '1900-01-01', 'max_date': '9999-12-31'}[name] -%}
    {%- endif -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
        {{ exceptions.raise_compiler_error(
            origin ~ " must be an ISO date YYYY-MM-DD (the partition window is "
            ~ "[min_date, max_date)), got '" ~ value ~ "'") }}
    {%- endif -%}
    {{ value }}
{%- endmacro %}

{# SQL condition: `column` lies in the window. #}
{% macro in_partition_window(column='partition_date') -%}
    {%- set min_date = window_date('min_date') | trim -%}
    {%- set max_date = window_date('max_date') | trim -%}
    {%- if min_date >= max_date -%}
        {{ exceptions.raise_compiler_error(
            "empty partition window: min_date " ~ min_date ~ " is not before max_date "
            ~ max_date) }}
    {%- endif -%}
    ({{ column }} >= DATE '{{ min_date }}' AND {{ column }} < DATE '{{ max_date }}')
{%- endmacro %}

{#
  Pre-hook of the incremental batch tables: delete the whole window before delete+insert
  adds it back. delete+insert keyed on the day only deletes days that still have rows, so
  without this a day that shrank to nothing in the source would keep its old rows.
#}
{% macro delete_partition_window() -%}
    {%- if is_incremental() -%}
        DELETE FROM {{ this }} WHERE {{ in_partition_window() }}
    {%- endif -%}
{%- endmacro %}
