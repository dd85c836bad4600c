-- Creditors, one row per partition_date and creditor_id.
select
    partition_date,
    {{ clean_text('creditor_id') }} as creditor_id,
    {{ clean_text('organization_number') }} as organization_number,
    {{ clean_text('name') }} as creditor_name,
    {{ clean_text('street') }} as street,
    {{ clean_text('zip_code') }} as zip_code,
    {{ clean_text('city') }} as city,
    {{ clean_text('country_code') }} as country_code,
    {{ clean_text('bank_account') }} as bank_account,
    {{ clean_text('iban') }} as iban,
    {{ clean_text('swift') }} as swift,
    {{ clean_text('email_invoice') }} as email_invoice,
    {{ clean_text('contact_name') }} as contact_name,
    {{ clean_text('contact_phone') }} as contact_phone,
    {{ clean_text('contact_email') }} as contact_email,
    only_debt_collection::BOOLEAN as is_only_debt_collection,
    reminder_flow::INTEGER as reminder_flow,
    {{ clean_text('kid_algorithm') }} as kid_algorithm,
    collection_delay_days::INTEGER as collection_delay_days
from {{ source('raw', 'creditors') }}
