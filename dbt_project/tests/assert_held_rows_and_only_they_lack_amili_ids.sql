-- A payment or action is held exactly when Amili's id of its invoice is unknown: a ready
-- row always carries the id, a held one never a guessed one.
select 'payment' as kind, payment_id as source_id, hold_reason, invoiceId as amili_id
from {{ ref('batch_payments') }}
where (hold_reason is null) <> (invoiceId is not null) and quarantine_reason is null

union all

select 'action', action_id, hold_reason, ledgerref
from {{ ref('batch_actions') }}
where (hold_reason is null) <> (ledgerref is not null) and quarantine_reason is null
