{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='partition_date',
        on_schema_change='fail',
        pre_hook="{{ delete_partition_window() }}",
    )
}}

-- One row per creditor and day: the creditor object of the Batch body. Columns after
-- creditor_id are the API's fields, named and ordered as documented. Fields the warehouse
-- does not know are NULL (Amili's defaults apply) and never guessed.

with creditors as (
    select * from {{ ref('stg_creditors') }}
    where {{ in_partition_window() }}
)

select
    partition_date,
    creditor_id,
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
