{{
    config(
        materialized='incremental',
        pre_hook="{{ delete_partition_window() }}",
    )
}}

-- One row per case action requested on partition_date: the action object of the Batch
-- body. ledgerref is Amili's id of the invoice (case), known once Amili acknowledged it;
-- until then the action is held back with a reason and carried forward like a payment (see
-- batch_payments and macros/carry_forward.sql). actiontype comes from the seed
-- action_type_codes, an ASSUMED code list (Amili documents none); an action_type missing
-- from the seed gets NULL, which validation rejects. An action for no invoice, for one the
-- warehouse does not have, or for one not handed over to Amili by its day has no case to
-- act on: it is quarantined with that reason (quarantine_reason), as is one whose
-- row_defects name a defect. It is never held forever.

with actions as (
    select * from {{ ref('stg_case_actions') }}
    where {{ in_partition_window() }}
),

handed_over as (
    select invoice_id, min(partition_date) as handed_over_on
    from {{ ref('stg_invoices') }}
    group by invoice_id
),

acknowledged as (
    select invoice_id, amili_invoice_id from {{ ref('stg_acknowledged_invoices') }}
),

creditors as (
    select partition_date, creditor_id, organization_number
    from {{ ref('stg_creditors') }}
    where {{ in_partition_window() }}
    qualify row_number() over (partition by partition_date, creditor_id order by source_row) = 1
),

requested as (
    select
        x.partition_date,
        x.source_row,
        x.action_id,
        x.invoice_id,
        x.creditor_id,
        null::DATE as carried_from_date,
        nullif(concat_ws('; ',
            case
                when x.invoice_id is null
                    then 'the case_actions row has no invoice_id: it names no case'
                when not coalesce(x.invoice_known, true)
                    then 'case_actions.invoice_id ' || x.invoice_id
                        || ' is an invoice the warehouse does not have'
                when h.invoice_id is null or h.handed_over_on > x.partition_date
                    then 'invoice ' || x.invoice_id || ' was not handed over to Amili by '
                        || x.partition_date::VARCHAR || ': there is no case to act on'
            end,
            x.row_defects
        ), '') as quarantine_reason,
        case
            when a.amili_invoice_id is not null or quarantine_reason is not null then null
            else '{{ not_acknowledged_reason() }}'
        end as hold_reason,
        c.organization_number as creditorid,
        a.amili_invoice_id as ledgerref,
        k.actiontype,
        {{ amili_date_as_datetime('x.due_date') }} as duedate,
        x.subject,
        x.conversation_id as conversationid,
        x.message
    from actions as x
    left join handed_over as h on h.invoice_id = x.invoice_id
    left join acknowledged as a on a.invoice_id = x.invoice_id
    left join creditors as c
        on c.partition_date = x.partition_date and c.creditor_id = x.creditor_id
    left join {{ ref('action_type_codes') }} as k on k.action_type = x.action_type
),

{% if is_incremental() %}
{{ carried_forward_ctes('action_id', 'ledgerref') }}
{% endif %}

action_rows as (
    select * from requested
    {% if is_incremental() %}
    union all by name
    select * from carried_in
    {% endif %}
)

select
    r.partition_date,
    coalesce(r.action_id, '(no action_id: warehouse row ' || r.source_row || ')')
        as action_id,
    r.invoice_id,
    r.creditor_id,
    r.carried_from_date,
    r.quarantine_reason,
    {% if is_incremental() %}
    case when c.action_id is not null then '{{ carried_forward_reason() }}'
        else r.hold_reason end as hold_reason,
    {% else %}
    r.hold_reason,
    {% endif %}
    r.creditorid,
    r.ledgerref,
    r.actiontype,
    r.duedate,
    r.subject,
    r.conversationid,
    r.message
from action_rows as r
{% if is_incremental() %}
left join carried_on as c
    on c.action_id = r.action_id and c.carried_from_date = r.partition_date
{% endif %}
