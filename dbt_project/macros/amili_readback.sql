{#
  GENERATED from amili/pipeline/readback.py (DDL) by
  `python -m amili.pipeline.readback`: do not edit. dbt's on-run-start hook
  (dbt_project.yml) creates the read-back tables the readback marts read.
#}
{% macro create_amili_readback_tables() %}
CREATE TABLE IF NOT EXISTS amili.settlements (
    creditor_idnumber VARCHAR NOT NULL,    -- the creditor Amili remitted to
    settlement_id BIGINT NOT NULL,         -- Amili's id; the lastsettlementid cursor
    amili_invoice_id VARCHAR,              -- the case's invoice (its ledgerref)
    unique_source_invoice_id VARCHAR,      -- our invoice id (NULL: not one we sent)
    casenumber VARCHAR,
    customerref VARCHAR,
    referencenumber VARCHAR,               -- the invoice number
    amount DECIMAL(38, 10),                -- exact, as Amili said (AMOUNT_TYPE)
    currency VARCHAR,
    remittance_date DATE,
    raw_json VARCHAR NOT NULL,             -- the settlement as Amili sent it, unknown
                                           -- fields included
    read_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (creditor_idnumber, settlement_id)
);
CREATE TABLE IF NOT EXISTS amili.settlement_cursors (
    creditor_idnumber VARCHAR PRIMARY KEY,
    last_settlement_id BIGINT NOT NULL,    -- the next read asks for ids above this
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS amili.cases (
    creditor_idnumber VARCHAR NOT NULL,
    casenumber VARCHAR,
    case_id VARCHAR,                       -- newest revision only (a UUID)
    amili_invoice_id VARCHAR,              -- Amili's id of the invoice (ledgerref)
    unique_source_invoice_id VARCHAR,      -- our invoice id
    invoice_number VARCHAR,
    status VARCHAR,                        -- OPEN | CLOSED | ... as Amili says
    sub_status VARCHAR,
    currency VARCHAR,
    original_amount DECIMAL(38, 10),
    paid_amount DECIMAL(38, 10),
    credited_amount DECIMAL(38, 10),
    remaining_amount DECIMAL(38, 10),
    registered_at TIMESTAMPTZ,
    closed_at TIMESTAMPTZ,
    handed_over BOOLEAN NOT NULL,          -- false: a case for an invoice we never sent
    read_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS amili.case_status_changes (
    detected_at TIMESTAMPTZ NOT NULL,      -- the read that saw the change
    creditor_idnumber VARCHAR NOT NULL,
    casenumber VARCHAR,
    amili_invoice_id VARCHAR,
    unique_source_invoice_id VARCHAR,
    previous_status VARCHAR,               -- NULL: the case is new to us
    status VARCHAR,
    previous_sub_status VARCHAR,
    sub_status VARCHAR,
    paid_amount DECIMAL(38, 10),
    credited_amount DECIMAL(38, 10),
    remaining_amount DECIMAL(38, 10),
    closed_at TIMESTAMPTZ
)
{% endmacro %}
