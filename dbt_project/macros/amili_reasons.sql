{#
  GENERATED from amili/reasons.py (CATALOGUE) by `python -m amili.reasons`:
  do not edit. The message of each reason code, as a finance analyst would say it.
#}
{% macro reason_message(code) -%}
    case {{ code }}
        when 'reference_missing' then 'The payment or case action names no invoice, so there is no case to book it on'
        when 'id_missing' then 'The row has no id, so it cannot be sent or traced back'
        when 'id_repeated' then 'The same id is on more than one row of the day; none of them is sent until the warehouse keeps one'
        when 'line_repeated' then 'An invoice line number is repeated within the invoice'
        when 'unique_id_differs' then 'The id inside the invoice or payment differs from the row''s id, so Amili''s answer could not be matched to the row'
        when 'payload_missing' then 'The row has no content to send'
        when 'payload_invalid' then 'The row''s content is not readable (not a JSON object)'
        when 'amount_not_a_number' then 'An amount is not a number'
        when 'amount_too_large' then 'An amount is larger than Amili can carry'
        when 'amount_too_precise' then 'An amount has more than two decimals (Amili carries whole øre; we never round)'
        when 'amount_negative' then 'The amount is negative: a credit note or a reversal is not a debt to collect'
        when 'claims_not_positive' then 'Nothing is owed: the invoice''s open claims add up to zero or less'
        when 'principal_exceeds_invoice' then 'The principal still owed is more than the invoice''s original amount'
        when 'amount_zero' then 'The payment''s amount is zero'
        when 'paid_amount_invalid' then 'The payments registered since the collection day cannot be carried as an amount'
        when 'payment_exceeds_open_amount' then 'The payment is more than is still open on the invoice'
        when 'currency_unknown' then 'The currency is not a known currency code (the amount is kept in it, as written)'
        when 'kid_invalid' then 'The KID (payment reference) is not valid'
        when 'organisation_number_invalid' then 'The organisation number is not valid'
        when 'national_id_invalid' then 'The national identity number (fødselsnummer) is not valid'
        when 'bank_account_invalid' then 'The bank account number is not valid'
        when 'email_invalid' then 'The e-mail address is not valid'
        when 'postcode_invalid' then 'The postcode is not a Norwegian postcode'
        when 'due_before_invoice_date' then 'The due date is before the invoice date'
        when 'debtor_name_missing' then 'The debtor has no name'
        when 'debtor_identity_mismatch' then 'The debtor''s identity number does not fit the kind of debtor (company or person)'
        when 'debtor_address_missing' then 'The debtor has no complete address'
        when 'text_too_long' then 'A text field is longer than we send'
        when 'field_missing' then 'A required field is empty'
        when 'field_invalid' then 'A field has a value of the wrong kind'
        when 'case_not_handed_over' then 'The invoice this concerns has not been handed over to Amili, so there is no case yet'
        when 'invoice_not_in_warehouse' then 'The invoice it refers to is not in the warehouse'
        when 'invoice_unknown_to_amili' then 'Amili does not know the invoice it refers to'
        when 'creditor_quarantined' then 'Its creditor is quarantined, so it cannot be sent in the creditor''s name'
        when 'object_too_large' then 'The object is too large for any batch Amili accepts'
        when 'sandbox_fault_injection' then 'Rejected on purpose by sandbox fault injection (a test, not a real defect)'
    end
{%- endmacro %}
