{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='partition_date',
        on_schema_change='fail',
        pre_hook="{{ delete_partition_window() }}",
    )
}}

-- Per day, creditor, kind of object and currency: how many eligible objects (and how much
-- money) met each fate, and whether the day balances:
--   eligible = quarantined + held + skipped_unchanged + sent, with nothing unaccounted
--   sent     = accepted + rejected + outstanding
-- in counts and in amounts. Creditor and action objects carry no amount (and no currency):
-- their amounts are 0.

{#- Each bucket and which of the window's objects it counts. -#}
{%- set buckets = {
    'eligible': 'true',
    'quarantined': "fate = 'quarantined'",
    'held': "fate = 'held'",
    'skipped_unchanged': "fate = 'skipped_unchanged'",
    'sent': "fate = 'sent'",
    'accepted': "outcome = 'accepted'",
    'rejected': "outcome = 'rejected'",
    'outstanding': "outcome = 'outstanding'",
    'unaccounted': "fate = 'unaccounted'",
} %}

with fates as (
    select * from {{ ref('rpt_object_fates') }}
    where {{ in_partition_window() }}
),

totals as (
    select
        partition_date,
        creditor_id,
        objectname,
        currency,
        {%- for name, condition in buckets.items() %}
        count(*) filter (where {{ condition }}) as {{ name }}_count,
        {%- endfor %}
        {%- for name, condition in buckets.items() %}
        coalesce(sum(amount) filter (where {{ condition }}), 0)::DECIMAL(38, 2)
            as {{ name }}_amount{{ "," if not loop.last }}
        {%- endfor %}
    from fates
    group by all
)

select
    *,
    (
        eligible_count = quarantined_count + held_count + skipped_unchanged_count + sent_count
        and unaccounted_count = 0
        and sent_count = accepted_count + rejected_count + outstanding_count
        and eligible_amount
            = quarantined_amount + held_amount + skipped_unchanged_amount + sent_amount
        and unaccounted_amount = 0
        and sent_amount = accepted_amount + rejected_amount + outstanding_amount
    ) as balances
from totals
