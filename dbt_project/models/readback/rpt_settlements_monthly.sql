-- Per creditor, month of remittance and currency: what Amili settled (paid out to the
-- creditor), to book in the ERP. One row per settlement in amili.settlements, each once.

select
    creditor_idnumber,
    date_trunc('month', remittance_date)::date as month,
    currency,
    count(*) as settlements,
    sum(amount)::decimal(38, 10) as settled_amount,
    count(*) filter (where unique_source_invoice_id is null) as settlements_not_ours,
    min(settlement_id) as first_settlement_id,
    max(settlement_id) as last_settlement_id,
    min(remittance_date) as first_remittance_date,
    max(remittance_date) as last_remittance_date
from {{ source('amili_readback', 'settlements') }}
group by all
