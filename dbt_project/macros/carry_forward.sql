{#
  Carrying held objects forward. A payment or action that points at an invoice Amili has
  not acknowledged yet is held on its own day (hold_reason NOT_ACKNOWLEDGED). Its day is
  normally not rebuilt once the acknowledgement arrives, so a later day's build carries it:
  the held row stays on its day as it was, and a copy, ready to send, joins the first day of
  the window being built, with carried_from_date naming the original day. The marts then
  count the original as 'carried_forward' and the copy as an object of its new day.

  {{ this }} is the model's table as the previous runs left it; the pre-hook has already
  deleted the window, so copies made into the window before are made again, and copies on
  days after the window are seen and not made twice.
#}

{% macro not_acknowledged_reason() -%}
invoice not yet acknowledged by Amili
{%- endmacro %}

{% macro carried_forward_reason() -%}
carried forward to a later day
{%- endmacro %}

{# The two CTEs a model's incremental build adds: carried_in, the copies to carry into the
   window (held_rows_to_carry, with Amili's id of the invoice in amili_id_column, from the
   model's own `acknowledged` CTE: an inner join, so only what is acknowledged now is
   carried), and carried_on, the copies days after the window hold already. #}
{% macro carried_forward_ctes(key, amili_id_column) -%}
carried_in as (
    select held.* replace (a.amili_invoice_id as {{ amili_id_column }})
    from ({{ held_rows_to_carry(key) }}) as held
    inner join acknowledged as a on a.invoice_id = held.invoice_id
),

carried_on as ({{ carried_copies_after_window(key) }}),
{%- endmacro %}

{# Rows held before the window that no day after the window carries already: as they were,
   re-dated to the window's first day and no longer held (carried_forward_ctes keeps those
   whose invoice is acknowledged now). #}
{% macro held_rows_to_carry(key) -%}
    select
        held.* replace (
            DATE '{{ window_date("min_date") | trim }}' as partition_date,
            held.partition_date as carried_from_date,
            null::VARCHAR as hold_reason
        )
    from {{ this }} as held
    where held.partition_date < DATE '{{ window_date("min_date") | trim }}'
        and held.hold_reason = '{{ not_acknowledged_reason() }}'
        and not exists (
            select 1 from {{ this }} as copy
            where copy.{{ key }} = held.{{ key }}
                and copy.carried_from_date = held.partition_date
        )
{%- endmacro %}

{# The days after the window that hold a copy carried from a day of the window: a rebuilt
   day must not release (and send) what a later day has sent already. #}
{% macro carried_copies_after_window(key) -%}
    select {{ key }}, carried_from_date, min(partition_date) as carried_to
    from {{ this }}
    where carried_from_date is not null
        and partition_date >= DATE '{{ window_date("max_date") | trim }}'
    group by all
{%- endmacro %}

{# SQL condition for the marts: `column` lies in the window, or is a day that a copy in the
   window was carried from. Building a day that received copies changes the fate of the
   originals on their own day (held becomes carried_forward), so the marts rebuild those
   days too. `relations` are the relations with carried_from_date to look in. #}
{% macro in_window_or_carried_from(relations, column='partition_date') -%}
    ({{ in_partition_window(column) }} or {{ column }} in (
        {%- for relation in relations %}
        select carried_from_date from {{ relation }}
        where {{ in_partition_window() }} and carried_from_date is not null
        {{- " union" if not loop.last }}
        {%- endfor %}))
{%- endmacro %}

{# Pre-hook of the marts: delete what in_window_or_carried_from covers before it is rebuilt. #}
{% macro delete_window_and_carried_from(relations) -%}
    {%- if is_incremental() -%}
        DELETE FROM {{ this }} WHERE {{ in_window_or_carried_from(relations) }}
    {%- endif -%}
{%- endmacro %}

{# The relations whose rows may be carried copies. #}
{% macro carried_sources() -%}
    {{ return([ref('batch_payments_json'), ref('batch_actions_json')]) }}
{%- endmacro %}
