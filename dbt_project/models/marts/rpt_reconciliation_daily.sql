{{
    config(
        pre_hook="{{ delete_window_and_carried_from([ref('rpt_object_fates')]) }}",
    )
}}

-- Per day, creditor, kind of object and currency: how many eligible objects (and how much
-- money) met each fate, and whether the day balances:
--   eligible = quarantined + held + carried_forward + changed_after_handover
--              + skipped_unchanged + sent, with nothing unaccounted
--   sent     = accepted + rejected + unconfirmed + outstanding
-- in counts and in amounts. Creditor and action objects carry no amount (and no currency):
-- their amounts are 0. carried_in counts the day's objects that are copies carried forward
-- from an earlier day (they are part of eligible; their originals are carried_forward on
-- their own day, which this model rebuilds too, like rpt_object_fates).
-- changed_after_handover_amount is what the warehouse says of those objects now (so eligible
-- adds up); changed_after_handover_acknowledged_amount what Amili holds of them (the amount
-- it took), changed_after_handover_difference the first less the second (of the objects
-- whose held amount is known, in the same currency).

{#- Each bucket and which of the window's objects it counts. -#}
{%- set buckets = {
    'eligible': 'true',
    'quarantined': "fate = 'quarantined'",
    'held': "fate = 'held'",
    'carried_forward': "fate = 'carried_forward'",
    'changed_after_handover': "fate = 'changed_after_handover'",
    'skipped_unchanged': "fate = 'skipped_unchanged'",
    'sent': "fate = 'sent'",
    'accepted': "outcome = 'accepted'",
    'rejected': "outcome = 'rejected'",
    'unconfirmed': "outcome = 'unconfirmed'",
    'outstanding': "outcome = 'outstanding'",
    'unaccounted': "fate = 'unaccounted'",
    'carried_in': "carried_from_date is not null",
} %}

with fates as (
    select * from {{ ref('rpt_object_fates') }}
    where {{ in_window_or_carried_from([ref('rpt_object_fates')]) }}
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
        coalesce(sum(acknowledged_amount) filter (where fate = 'changed_after_handover'), 0)
            ::DECIMAL(38, 2) as changed_after_handover_acknowledged_amount,
        coalesce(sum(amount_difference) filter (where fate = 'changed_after_handover'), 0)
            ::DECIMAL(38, 2) as changed_after_handover_difference,
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
        eligible_count = quarantined_count + held_count + carried_forward_count
            + changed_after_handover_count + skipped_unchanged_count + sent_count
        and unaccounted_count = 0
        and sent_count = accepted_count + rejected_count + unconfirmed_count
            + outstanding_count
        and eligible_amount
            = quarantined_amount + held_amount + carried_forward_amount
            + changed_after_handover_amount + skipped_unchanged_amount + sent_amount
        and unaccounted_amount = 0
        and sent_amount = accepted_amount + rejected_amount + unconfirmed_amount
            + outstanding_amount
    ) as balances
from totals
