{{
    config(
        materialized='incremental',
        pre_hook="{{ delete_partition_window() }}",
    )
}}

-- One row per creditor and day: the creditor object of the Batch body. Columns after
-- creditor_id are the API's fields, named and ordered as documented. Fields the warehouse
-- does not know are NULL (Amili's defaults apply) and never guessed.

with own_day as (
    select * from {{ ref('stg_creditors') }}
    where {{ in_partition_window() }}
),

-- The creditors of payments and actions carried forward into the window (see
-- macros/carry_forward.sql). A day that has no row of such a creditor of its own gets the
-- creditor's latest earlier row, so every body still carries its creditor.
carried_for as (
    select distinct partition_date, creditor_id from {{ ref('batch_payments') }}
    where {{ in_partition_window() }} and carried_from_date is not null
    union
    select distinct partition_date, creditor_id from {{ ref('batch_actions') }}
    where {{ in_partition_window() }} and carried_from_date is not null
),

borrowed as (
    select s.* replace (k.partition_date as partition_date)
    from carried_for as k
    inner join {{ ref('stg_creditors') }} as s
        on s.creditor_id = k.creditor_id and s.partition_date < k.partition_date
    where not exists (
        select 1 from own_day as o
        where o.partition_date = k.partition_date and o.creditor_id = k.creditor_id
    )
    qualify row_number() over (
        partition by k.partition_date, k.creditor_id order by s.partition_date desc
    ) = 1
),

creditors as (
    select * from own_day
    union all by name
    select * from borrowed
)

select
    partition_date,
    creditor_id,
    -- a creditor id the warehouse repeats on a day, or an over-long text (row_defects)
    row_defects as quarantine_reason,
    organization_number as idnumber,
    is_only_debt_collection as onlydebtcollection,
    creditor_name as fullname,
    street,
    city,
    zip_code as zipcode,
    country_code as countrycode,
    email_invoice as emailinvoice,
    bank_account as bankaccountno,
    swift,
    iban,
    -- The contact's role flags are not in the warehouse: NULL, not a guess.
    case when coalesce(contact_name, contact_phone, contact_email) is not null then
        struct_pack(
            fullname := contact_name,
            workphone := contact_phone,
            email := contact_email,
            isinvoicequery := null::BOOLEAN,
            isremittancereport := null::BOOLEAN,
            isorderconfirmation := null::BOOLEAN,
            iscollectionlist := null::BOOLEAN,
            isweb := null::BOOLEAN
        )
    end as contact,
    -- ASSUMPTION: Amili's reminderflow code is the number of reminders the creditor sends
    -- before the hand-over (0-2), the meaning the warehouse column has.
    reminder_flow as reminderflow,
    null::BOOLEAN as hasforeigndebtors,
    null::BOOLEAN as hasforeigncurrency,
    null::BOOLEAN as disabled
from creditors
