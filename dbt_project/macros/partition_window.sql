{#
  The partition window of a run: the vars min_date and max_date, ISO dates, half-open
  [min_date, max_date). Dagster passes the run's window (one day, or a whole backfill range);
  the defaults in dbt_project.yml cover every day.
#}

{# The var `name`, checked to be an ISO date; returns its text. #}
{% macro window_date(name) -%}
    {%- set value = var(name) | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
        {{ exceptions.raise_compiler_error(
            "var '" ~ name ~ "' must be an ISO date YYYY-MM-DD (the partition window is "
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
