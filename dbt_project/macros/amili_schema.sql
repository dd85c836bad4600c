{#
  on-run-start hooks. The `amili` schema belongs to the submission and results stages; the
  batch models read Amili's ids of acknowledged invoices from it, so it must exist before the
  first submission ever ran. Both statements are idempotent.
#}

{% macro create_amili_schema() %}
CREATE SCHEMA IF NOT EXISTS amili
{% endmacro %}

{% macro create_acknowledged_invoices() %}
CREATE TABLE IF NOT EXISTS amili.acknowledged_invoices (
    unique_source_invoice_id VARCHAR PRIMARY KEY,  -- our invoice id (uniqueSourceInvoiceId)
    amili_invoice_id VARCHAR NOT NULL,             -- Amili's id of it (ledgerref, a UUID)
    acknowledged_at TIMESTAMPTZ                    -- when Amili's answer acknowledged it
)
{% endmacro %}

{#
  The submission's ledger tables, created here too so that the reconciliation marts (which
  read them as sources) build on a fresh database before any submission ran. The statements
  are EXACTLY amili.pipeline.ledger.DDL with its f-strings expanded (the states of
  BatchState, the outcomes of ObjectOutcome); whichever of dbt and the submission runs first
  creates them. tests/pipeline/test_reconciliation.py holds the two to the same DESCRIBE and
  constraints: change both together.
#}

{% macro create_submission_ledger() %}
CREATE TABLE IF NOT EXISTS amili.submission_ledger (
    batchid VARCHAR PRIMARY KEY,           -- {day}-{chunk:05d}-{content hash[:16]}
    partition_date DATE NOT NULL,
    chunk_number INTEGER NOT NULL,
    content_hash VARCHAR NOT NULL,         -- sha256 of the body's four arrays
    object_count INTEGER NOT NULL,
    body_bytes BIGINT NOT NULL,
    state VARCHAR NOT NULL CHECK (state IN ('prepared', 'accepted', 'partially_rejected', 'rejected', 'failed', 'superseded')),
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

{% macro create_ledger_objects() %}
CREATE TABLE IF NOT EXISTS amili.ledger_objects (
    batchid VARCHAR NOT NULL,
    objectname VARCHAR NOT NULL,           -- creditor | invoice | payment | action
    objectindex INTEGER NOT NULL,          -- 0-based position in that array of the body
    source_id VARCHAR NOT NULL,            -- creditor_id, invoice_id, payment_id, action_id
    payload_hash VARCHAR NOT NULL,         -- sha256 (hex) of the object's JSON as sent
    partition_date DATE NOT NULL,
    outcome VARCHAR CHECK (outcome IN ('accepted', 'rejected')),  -- NULL until answered
    status_statuscode VARCHAR,             -- CREATED | UPDATED | DUPLICATE (as answered)
    ledgerref VARCHAR,                     -- Amili's id of the object
    error_message VARCHAR
)
{% endmacro %}

{% macro create_quarantine() %}
CREATE TABLE IF NOT EXISTS amili.quarantine (
    partition_date DATE NOT NULL,
    objectname VARCHAR NOT NULL,
    source_id VARCHAR,
    reason VARCHAR NOT NULL,
    payload VARCHAR,
    quarantined_at TIMESTAMPTZ NOT NULL
)
{% endmacro %}
