-- Debtors, one row per partition_date and customer_id.
select
    partition_date,
    {{ clean_text('customer_id') }} as customer_id,
    {{ clean_text('creditor_id') }} as creditor_id,
    {{ clean_text('customer_number') }} as customer_number,
    {{ clean_text('customer_type') }} as customer_type,
    {{ clean_text('first_name') }} as first_name,
    {{ clean_text('last_name') }} as last_name,
    {{ clean_text('company_name') }} as company_name,
    {{ clean_text('national_id') }} as national_id,
    {{ clean_text('organization_number') }} as organization_number,
    date_of_birth::DATE as date_of_birth,
    {{ clean_text('street') }} as street,
    {{ clean_text('zip_code') }} as zip_code,
    {{ clean_text('city') }} as city,
    {{ clean_text('country_code') }} as country_code,
    {{ clean_text('email') }} as email,
    {{ clean_text('phone') }} as phone
from {{ source('raw', 'customers') }}
