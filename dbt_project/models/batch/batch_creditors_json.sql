-- One creditor object per row, as the JSON text the Batch body's `creditor` array holds.
-- Keys are spelled and ordered as the API documents them; NULL fields are kept as null.
select
    partition_date,
    creditor_id,
    quarantine_reason,
    to_json(struct_pack(
        idnumber := idnumber,
        onlydebtcollection := onlydebtcollection,
        fullname := fullname,
        street := street,
        city := city,
        zipcode := zipcode,
        countrycode := countrycode,
        emailinvoice := emailinvoice,
        bankaccountno := bankaccountno,
        swift := swift,
        iban := iban,
        contact := contact,
        reminderflow := reminderflow,
        hasforeigndebtors := hasforeigndebtors,
        hasforeigncurrency := hasforeigncurrency,
        disabled := disabled
    )) as payload
from {{ ref('batch_creditors') }}
