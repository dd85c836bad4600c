{#
  GENERATED from amili/pipeline/ledger.py (DDL, LEDGER_OBJECTS_VIEW) by
  `python -m amili.pipeline.ledger`: do not edit. dbt's on-run-start hooks
  (dbt_project.yml) create the ledger tables the marts read as sources, exactly as
  the submission does; whichever runs first creates them.
#}

{% macro create_submission_ledger() %}
CREATE TABLE IF NOT EXISTS amili.submission_ledger (
    batchid VARCHAR PRIMARY KEY,           -- {day}-{chunk:05d}-{content hash[:16]}
    partition_date DATE NOT NULL,
    chunk_number INTEGER NOT NULL,
    content_hash VARCHAR NOT NULL,         -- sha256 of its objects' payload hashes
                                           -- (before 2026-11: of its four arrays)
    object_count INTEGER NOT NULL,
    body_bytes BIGINT NOT NULL,
    state VARCHAR NOT NULL CHECK (state IN ('prepared', 'accepted', 'partially_rejected', 'rejected', 'unconfirmed', 'failed', 'not_sent', 'superseded')),
    http_status INTEGER,                   -- NULL: no HTTP answer (yet)
    statuscode INTEGER,                    -- Amili's statuscode from the answer
    attempts INTEGER NOT NULL DEFAULT 0,   -- HTTP attempts over every post of it
    posts INTEGER NOT NULL DEFAULT 0,      -- times it was posted (re-posts included)
    response_body VARCHAR,                 -- the answer as received (never has the token)
    error VARCHAR,
    prepared_at TIMESTAMPTZ NOT NULL,
    answered_at TIMESTAMPTZ
)
{% endmacro %}

{% macro create_ledger_arrays() %}
CREATE TABLE IF NOT EXISTS amili.ledger_arrays (
    batchid VARCHAR NOT NULL,
    objectname VARCHAR NOT NULL,           -- creditor | invoice | payment | action
    partition_date DATE NOT NULL,
    object_count INTEGER NOT NULL,
    source_ids VARCHAR NOT NULL,           -- JSON array, in body order (objectindex)
    -- sha256 (hex, 64 characters) of each object's JSON as sent, concatenated in body
    -- order; random text that compression cannot shrink, so DuckDB is told not to try
    payload_hashes VARCHAR USING COMPRESSION uncompressed NOT NULL,
    -- invoices and payments (else NULL): each object's amount as sent, in whole øre
    -- (originalInvoiceAmount, amount), a JSON array in body order (null: none), and its
    -- currency, a JSON array in body order, or of one element when all are the same;
    -- what Amili holds of an object it took (ledger_objects.amount, .currency)
    amounts VARCHAR,
    currencies VARCHAR
)
{% endmacro %}

{% macro create_ledger_object_answers() %}
CREATE TABLE IF NOT EXISTS amili.ledger_object_answers (
    batchid VARCHAR NOT NULL,
    objectname VARCHAR NOT NULL,
    objectindex INTEGER NOT NULL,          -- 0-based position in that array of the body
    partition_date DATE NOT NULL,
    outcome VARCHAR NOT NULL CHECK (outcome IN ('accepted', 'rejected', 'unconfirmed')),
    status_statuscode VARCHAR,             -- CREATED | UPDATED | DUPLICATE (as answered)
    ledgerref VARCHAR,                     -- Amili's id of the object
    error_message VARCHAR,
    error_code VARCHAR,                    -- the message's reason code (amili.reasons)
    error_value VARCHAR                    -- ... and the value it names, if any
)
{% endmacro %}

{% macro create_quarantine() %}
CREATE TABLE IF NOT EXISTS amili.quarantine (
    partition_date DATE NOT NULL,
    objectname VARCHAR NOT NULL,
    source_id VARCHAR,
    reason VARCHAR NOT NULL,               -- every problem of the row, in full
    payload VARCHAR,
    quarantined_at TIMESTAMPTZ NOT NULL,
    reason_code VARCHAR,                   -- its reason code (amili.reasons)
    reason_value VARCHAR                   -- ... and the value it names, if any
)
{% endmacro %}

{% macro create_acknowledged_creditors() %}
CREATE TABLE IF NOT EXISTS amili.acknowledged_creditors (
    source_id VARCHAR PRIMARY KEY,         -- creditor_id
    payload_hash VARCHAR NOT NULL,         -- sha256 (hex) of the creditor object taken
    partition_date DATE NOT NULL,          -- the day it was taken on
    acknowledged_at TIMESTAMPTZ
)
{% endmacro %}

{% macro create_changes_after_handover() %}
CREATE TABLE IF NOT EXISTS amili.changes_after_handover (
    partition_date DATE NOT NULL,
    objectname VARCHAR NOT NULL,           -- invoice | payment | action
    source_id VARCHAR NOT NULL,
    acknowledged_batchid VARCHAR,          -- the batch Amili first took it in that day
    acknowledged_payload_hash VARCHAR,     -- sha256 (hex) of the payload Amili holds
    acknowledged_amount DECIMAL(18, 2),    -- its amount (NULL: none, or not recorded)
    acknowledged_currency VARCHAR,
    payload_hash VARCHAR NOT NULL,         -- sha256 (hex) of the warehouse's payload now
    payload VARCHAR,                       -- ... and that payload
    amount DECIMAL(18, 2),                 -- its amount (originalInvoiceAmount, amount)
    currency VARCHAR,
    detected_at TIMESTAMPTZ NOT NULL
)
{% endmacro %}

{% macro create_acknowledged_invoices() %}
CREATE TABLE IF NOT EXISTS amili.acknowledged_invoices (
    unique_source_invoice_id VARCHAR PRIMARY KEY,
    amili_invoice_id VARCHAR NOT NULL,
    acknowledged_at TIMESTAMPTZ
)
{% endmacro %}

{% macro create_ledger_objects_view() %}
CREATE VIEW IF NOT EXISTS amili.ledger_objects AS
SELECT o.batchid, o.objectname, o.objectindex, o.source_id,
    substr(o.payload_hashes, o.objectindex * 64 + 1, 64)
        AS payload_hash,
    o.partition_date,
    coalesce(r.outcome, CASE l.state
        WHEN 'accepted' THEN 'accepted'
        WHEN 'unconfirmed' THEN 'unconfirmed' END) AS outcome,
    r.status_statuscode, r.ledgerref, r.error_message, r.error_code, r.error_value,
    (o.cents[o.objectindex + 1]::DECIMAL(18, 0) * 0.01)::DECIMAL(18, 2) AS amount,
    o.currency_list[CASE WHEN len(o.currency_list) = 1 THEN 1 ELSE o.objectindex + 1 END]
        AS currency
FROM (
    SELECT batchid, objectname, partition_date, payload_hashes, cents, currency_list,
        CAST(generate_subscripts(ids, 1) - 1 AS INTEGER) AS objectindex,
        unnest(ids) AS source_id
    FROM (SELECT *, from_json(source_ids, '["VARCHAR"]') AS ids,
              from_json(amounts, '["BIGINT"]') AS cents,
              from_json(currencies, '["VARCHAR"]') AS currency_list
          FROM amili.ledger_arrays)
) AS o
JOIN amili.submission_ledger AS l USING (batchid)
LEFT JOIN amili.ledger_object_answers AS r USING (batchid, objectname, objectindex)
{% endmacro %}
