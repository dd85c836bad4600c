"""The submission ledger (an outbox) and the quarantine, in the pipeline's DuckDB file.

Why an outbox: a batch is written here as ``prepared`` *before* it is posted, and gets its
answer *after*. A run that dies in between leaves ``prepared`` behind, which tells the next run
that Amili may or may not have the batch, so it re-posts that exact body (same batchid, which
Amili answers by replaying its stored answer or with DUPLICATE per object) instead of sending
the objects again in a new batch.

Tables (schema ``amili``):

``submission_ledger``
    one row per batch: its id, day, chunk number, content hash, size, ``state`` and the
    answer (HTTP status, Amili's ``statuscode``, attempts, raw answer body, error text).
``ledger_arrays``
    one row per array of a batch's body (``objectname``): the source rows it came from
    (``source_ids``, a JSON array of creditor_id, invoice_id, payment_id or action_id), a
    hash of each object's payload as sent (``payload_hashes``) and, for invoices and
    payments, each one's amount in whole øre and currency (``amounts``, ``currencies``), all
    in body order: what Amili holds of an object it took.
``ledger_object_answers``
    one row per object of a batch whose answer named objects: its per-object outcome
    (``accepted``/``rejected``), Amili's ``status_statuscode``, ``ledgerref`` and error
    message. A batch answered with nothing named (statuscode 0) has no rows here.
``ledger_objects`` (a view)
    one row per object of a batch, from the two tables above: where it sits in the body
    (``objectname``, ``objectindex``), its ``source_id``, ``payload_hash``, ``amount`` and
    ``currency``, and once answered its outcome (``accepted`` for every object of a batch
    answered as a whole). It
    maps every answer back to a row; the results stage, the marts and analysts read it.
``quarantine``
    rows that failed validation before sending, with the reason; replaced per day.
``changes_after_handover``
    invoices, payments and actions Amili acknowledged whose payload has changed in the
    warehouse since: not sent again (Amili keeps what it took), with what Amili holds (the
    hash, amount and currency it took) and what the warehouse says now; replaced per day.
``acknowledged_creditors``
    the creditor object Amili last took, per creditor (its payload hash), so an unchanged
    creditor with nothing else to send on a later day is skipped, not posted alone again.
``acknowledged_invoices``
    our invoice id -> Amili's id (its ``ledgerref``), filled by :func:`record_results`; dbt
    reads it to give later payments their ``invoiceId``.

Every write goes in bulk. Why an array per row rather than a row per object: appending a
row per object and then updating each one's answer cost about three times as much as the
arrays (``docs/performance.md``), and a batch answered as a whole writes nothing per object.
The view unpacks a day's arrays when they are read.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import duckdb
import orjson

from amili import reasons


class BatchState(StrEnum):
    """A batch's state in the ledger."""

    PREPARED = "prepared"
    """Written before the POST; left behind only if the run died before the answer."""
    ACCEPTED = "accepted"
    PARTIALLY_REJECTED = "partially_rejected"
    REJECTED = "rejected"
    UNCONFIRMED = "unconfirmed"
    """Answered, but the answer does not say what became of some or all of its objects (for
    example ``statuscode`` 2 with no ``errors`` and no ``responses``): those objects are
    ``unconfirmed`` and the next run sends them again in new batches (Amili deduplicates
    invoices and payments on their unique source ids)."""
    FAILED = "failed"
    """The POST raised (retries exhausted, a 4xx, no answer, an answer that cannot be read).
    With no HTTP status, a 5xx or an unreadable 2xx, Amili may still have processed it, so
    it is in doubt and re-posted as it was."""
    NOT_SENT = "not_sent"
    """Prepared, then never posted: the run stopped posting first (Amili refused the token).
    Re-posted as it was by the next run."""
    SUPERSEDED = "superseded"
    """An in-doubt batch that can no longer be rebuilt byte for byte (a row changed or
    vanished), or that a forced re-send replaced; its objects are sent in new batches."""


class ObjectOutcome(StrEnum):
    ACCEPTED = "accepted"
    """Amili took it: created, updated or answered DUPLICATE (it already had it)."""
    REJECTED = "rejected"
    UNCONFIRMED = "unconfirmed"
    """The batch was answered, but the answer neither names the object nor says what became
    of the whole batch in a way ``docs/sandbox-assumptions.md`` defines. Not believed taken:
    the next run sends it again."""


#: sha256 in hex: ``ledger_arrays.payload_hashes`` packs them at this width, the view cuts them
_HASH_LENGTH = 64
_STATES = ", ".join(f"'{state.value}'" for state in BatchState)
_OUTCOMES = ", ".join(f"'{outcome.value}'" for outcome in ObjectOutcome)

DDL: tuple[str, ...] = (
    "CREATE SCHEMA IF NOT EXISTS amili",
    f"""
    CREATE TABLE IF NOT EXISTS amili.submission_ledger (
        batchid VARCHAR PRIMARY KEY,           -- {{day}}-{{chunk:05d}}-{{content hash[:16]}}
        partition_date DATE NOT NULL,
        chunk_number INTEGER NOT NULL,
        content_hash VARCHAR NOT NULL,         -- sha256 of its objects' payload hashes
                                               -- (before 2026-11: of its four arrays)
        object_count INTEGER NOT NULL,
        body_bytes BIGINT NOT NULL,
        state VARCHAR NOT NULL CHECK (state IN ({_STATES})),
        http_status INTEGER,                   -- NULL: no HTTP answer (yet)
        statuscode INTEGER,                    -- Amili's statuscode from the answer
        attempts INTEGER NOT NULL DEFAULT 0,   -- HTTP attempts over every post of it
        posts INTEGER NOT NULL DEFAULT 0,      -- times it was posted (re-posts included)
        response_body VARCHAR,                 -- the answer as received (never has the token)
        error VARCHAR,
        prepared_at TIMESTAMPTZ NOT NULL,
        answered_at TIMESTAMPTZ
    )
    """,
    """
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
    """,
    f"""
    CREATE TABLE IF NOT EXISTS amili.ledger_object_answers (
        batchid VARCHAR NOT NULL,
        objectname VARCHAR NOT NULL,
        objectindex INTEGER NOT NULL,          -- 0-based position in that array of the body
        partition_date DATE NOT NULL,
        outcome VARCHAR NOT NULL CHECK (outcome IN ({_OUTCOMES})),
        status_statuscode VARCHAR,             -- CREATED | UPDATED | DUPLICATE (as answered)
        ledgerref VARCHAR,                     -- Amili's id of the object
        error_message VARCHAR,
        error_code VARCHAR,                    -- the message's reason code (amili.reasons)
        error_value VARCHAR                    -- ... and the value it names, if any
    )
    """,
    """
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
    """,
    # The creditor object Amili last took, per creditor: one that has not changed since need
    # not be posted alone again (it still heads every body that carries its invoices).
    """
    CREATE TABLE IF NOT EXISTS amili.acknowledged_creditors (
        source_id VARCHAR PRIMARY KEY,         -- creditor_id
        payload_hash VARCHAR NOT NULL,         -- sha256 (hex) of the creditor object taken
        partition_date DATE NOT NULL,          -- the day it was taken on
        acknowledged_at TIMESTAMPTZ
    )
    """,
    # Objects Amili acknowledged whose payload has changed in the warehouse since: not sent
    # again (Amili keeps what it took), recorded here with both payloads' hashes and amounts;
    # replaced per day, like the quarantine.
    """
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
    """,
    # Exactly the shape dbt's on-run-start hook creates; whichever runs first makes it.
    """
    CREATE TABLE IF NOT EXISTS amili.acknowledged_invoices (
        unique_source_invoice_id VARCHAR PRIMARY KEY,
        amili_invoice_id VARCHAR NOT NULL,
        acknowledged_at TIMESTAMPTZ
    )
    """,
)

#: One row per object of a batch: what the ledger held as a table of that name before the
#: arrays (the results stage, the marts and analysts read it). An object of a batch answered
#: as a whole (nothing named) is ``accepted`` or ``unconfirmed`` as its batch; one of a batch
#: not answered yet has no outcome. ``amount`` and ``currency``: an invoice's or payment's as
#: sent (NULL for the others, and for batches prepared before the ledger kept them).
LEDGER_OBJECTS_VIEW = f"""
    CREATE OR REPLACE VIEW amili.ledger_objects AS
    SELECT o.batchid, o.objectname, o.objectindex, o.source_id,
        substr(o.payload_hashes, o.objectindex * {_HASH_LENGTH} + 1, {_HASH_LENGTH})
            AS payload_hash,
        o.partition_date,
        coalesce(r.outcome, CASE l.state
            WHEN '{BatchState.ACCEPTED}' THEN '{ObjectOutcome.ACCEPTED}'
            WHEN '{BatchState.UNCONFIRMED}' THEN '{ObjectOutcome.UNCONFIRMED}' END) AS outcome,
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
"""

#: Batches the next run re-posts byte for byte under their own batchid: those whose fate at
#: Amili is unknown (never answered; failed with no HTTP answer, a 5xx, or a 2xx whose body
#: could not be read) and those never posted (``not_sent``). A 4xx means Amili did not take
#: the batch; its objects go in new batches. ``rpt_unanswered_batches.in_doubt`` repeats it.
IN_DOUBT = f"""(state IN ('{BatchState.PREPARED}', '{BatchState.NOT_SENT}')
    OR (state = '{BatchState.FAILED}' AND (http_status IS NULL OR http_status >= 500
        OR http_status BETWEEN 200 AND 299)))"""


#: The dbt project's copy of these statements: the marts read the ledger as dbt sources, so
#: dbt's on-run-start hooks create the tables on a database no submission has written yet.
#: Written from :data:`DDL` and :data:`LEDGER_OBJECTS_VIEW` by :func:`dbt_macros` (run
#: ``python -m amili.pipeline.ledger`` after changing them); a test holds the file to them.
DBT_MACROS_FILE = Path(__file__).resolve().parents[2] / "dbt_project/macros/amili_ledger.sql"


def dbt_macros() -> str:
    """The text of :data:`DBT_MACROS_FILE`: a ``create_<table>`` macro per table of
    :data:`DDL` (the schema aside) and ``create_ledger_objects_view``.

    The view is created only if missing there: on a ledger written before the arrays,
    ``ledger_objects`` is still a table until the submission moves it (:func:`ensure_schema`,
    which then replaces the view on every run)."""
    parts = [
        "{#\n  GENERATED from amili/pipeline/ledger.py (DDL, LEDGER_OBJECTS_VIEW) by\n"
        "  `python -m amili.pipeline.ledger`: do not edit. dbt's on-run-start hooks\n"
        "  (dbt_project.yml) create the ledger tables the marts read as sources, exactly as\n"
        "  the submission does; whichever runs first creates them.\n#}\n"
    ]
    for statement in DDL:
        match = re.search(r"CREATE TABLE IF NOT EXISTS amili\.(\w+)", statement)
        if match is None:
            continue  # the schema: created by the hook create_amili_schema
        parts.append(f"{{% macro create_{match[1]}() %}}\n{textwrap.dedent(statement).strip()}"
                     "\n{% endmacro %}\n")
    view = textwrap.dedent(LEDGER_OBJECTS_VIEW).strip().replace(
        "CREATE OR REPLACE VIEW", "CREATE VIEW IF NOT EXISTS")
    parts.append(f"{{% macro create_ledger_objects_view() %}}\n{view}\n{{% endmacro %}}\n")
    return "\n".join(parts)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``amili`` schema, its tables and views if missing (idempotent), and move
    a ledger written before the arrays (``ledger_objects`` a table) into them."""
    for statement in DDL:
        con.execute(statement)
    for column in _ADDED_COLUMNS:  # a ledger written before them gets them (NULL)
        con.execute(f"ALTER TABLE amili.ledger_arrays ADD COLUMN IF NOT EXISTS {column} VARCHAR")
    _add_reason_codes(con)
    if _table_type(con, "ledger_objects") == "BASE TABLE":
        _migrate_object_rows(con)
    _widen_checks(con)
    con.execute(LEDGER_OBJECTS_VIEW)


#: Columns of ``ledger_arrays`` added since it was first written (all VARCHAR, NULL before).
_ADDED_COLUMNS = ("amounts", "currencies")

#: The reason code and value columns (added since the tables were first written), by table:
#: (the text column they are derived from, code column, value column).
_REASON_COLUMNS = {
    "quarantine": ("reason", "reason_code", "reason_value"),
    "ledger_object_answers": ("error_message", "error_code", "error_value"),
}


def _add_reason_codes(con: duckdb.DuckDBPyConnection) -> None:
    """Give a ledger written before reason codes its code and value columns, derived from
    the texts it holds (the same normalisation as new rows get, :mod:`amili.reasons`)."""
    for table, (text, code, value) in _REASON_COLUMNS.items():
        missing = con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = 'amili' AND table_name = ? AND column_name = ?", [table, code],
        ).fetchone()[0] == 0
        if not missing:
            continue
        with _Transaction(con):
            con.execute(f"ALTER TABLE amili.{table} ADD COLUMN {code} VARCHAR")
            con.execute(f"ALTER TABLE amili.{table} ADD COLUMN {value} VARCHAR")
            con.execute(f"UPDATE amili.{table} SET {code} = {reasons.code_sql(text)} "
                        f"WHERE {text} IS NOT NULL")
            con.execute(f"UPDATE amili.{table} SET {value} = {reasons.value_sql(text, code)} "
                        f"WHERE {text} IS NOT NULL")

#: The tables whose CHECK lists the values of an enum, by the column it checks.
_CHECKED_ENUMS: dict[str, tuple[str, type[StrEnum]]] = {
    "submission_ledger": ("state", BatchState),
    "ledger_object_answers": ("outcome", ObjectOutcome),
}


def _widen_checks(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild a ledger table whose CHECK predates a state or outcome added since.

    Why: DuckDB cannot alter a CHECK constraint, and a ledger written by an earlier version
    would refuse the new values (``unconfirmed``, ``not_sent``) at the first such answer.
    The table is copied into one with today's DDL, in one transaction, rows unchanged."""
    for table, (column, enum) in _CHECKED_ENUMS.items():
        row = con.execute(
            "SELECT expression FROM duckdb_constraints() WHERE database_name = "
            "current_database() AND schema_name = 'amili' AND table_name = ? "
            "AND constraint_type = 'CHECK'", [table],
        ).fetchone()
        if row is None or all(f"'{value.value}'" in row[0] for value in enum):
            continue
        with _Transaction(con):
            con.execute("DROP VIEW IF EXISTS amili.ledger_objects")
            con.execute(f"ALTER TABLE amili.{table} RENAME TO {table}_before_{column}s")
            con.execute(next(ddl for ddl in DDL if f"amili.{table} (" in ddl))
            con.execute(f"INSERT INTO amili.{table} SELECT * FROM amili.{table}_before_{column}s")
            con.execute(f"DROP TABLE amili.{table}_before_{column}s")


#: WAL size at which DuckDB checkpoints while the submission writes (its default is 16 MB)
DEFERRED_CHECKPOINT = "1GB"


def defer_checkpoints(con: duckdb.DuckDBPyConnection) -> None:
    """Let the WAL grow to :data:`DEFERRED_CHECKPOINT` before DuckDB checkpoints.

    Why: a large day writes many times DuckDB's default of 16 MB of ledger arrays, and at
    that default DuckDB checkpointed several times during the day, each time rewriting the
    table's open row group: commits on the submission's busiest thread, and a database file
    twice the size (figures in ``docs/performance.md``). Deferred, the checkpoint happens
    once, when the connection closes. Nothing is less durable: every commit is still in the WAL. The
    committed rows not yet checkpointed stay in DuckDB's buffer pool, under its memory
    limit (it evicts them to its temporary directory if it must).
    """
    con.execute(f"SET checkpoint_threshold = '{DEFERRED_CHECKPOINT}'")


def _table_type(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    row = con.execute(
        "SELECT table_type FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = 'amili' "
        "AND table_name = ?", [name],
    ).fetchone()
    return str(row[0]) if row else None


def _migrate_object_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Move the rows of the former ``ledger_objects`` table (a row per object, with its
    answer) into ``ledger_arrays`` and ``ledger_object_answers``, and drop it, in one
    transaction: the view of the same name then shows the same rows."""
    with _Transaction(con):
        con.execute(
            """INSERT INTO amili.ledger_arrays (batchid, objectname, partition_date,
                   object_count, source_ids, payload_hashes)
               SELECT batchid, objectname, any_value(partition_date), count(*),
                   to_json(list(source_id ORDER BY objectindex))::VARCHAR,
                   string_agg(payload_hash, '' ORDER BY objectindex)
               FROM amili.ledger_objects GROUP BY batchid, objectname"""
        )
        con.execute(
            f"""INSERT INTO amili.ledger_object_answers
               SELECT *, {reasons.value_sql("error_message", "code")}
               FROM (SELECT batchid, objectname, objectindex, partition_date, outcome,
                   status_statuscode, ledgerref, error_message,
                   {reasons.code_sql("error_message")} AS code
                   FROM amili.ledger_objects WHERE outcome IS NOT NULL)"""
        )
        con.execute("DROP TABLE amili.ledger_objects")


class _Transaction:
    """``with _Transaction(con):`` BEGIN ... COMMIT, or ROLLBACK on an exception."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.con.execute("BEGIN TRANSACTION")
        return self.con

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.con.execute("ROLLBACK" if exc_type is not None else "COMMIT")


@dataclass(frozen=True, slots=True)
class ObjectRows:
    """Column lists of one array's objects in a batch, aligned by ``objectindex``."""

    objectname: str
    source_ids: Sequence[str]
    payload_hashes: Sequence[str]
    amounts: str | None = None
    """Each object's amount in whole øre, a JSON array in body order (invoices, payments)."""
    currencies: str | None = None
    """Each object's currency, a JSON array in body order, or of one when all are equal."""


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch about to be posted: its ledger row and its objects per array."""

    batchid: str
    partition_date: date
    chunk_number: int
    content_hash: str
    object_count: int
    body_bytes: int
    arrays: Sequence[ObjectRows]


def prepare_batches(con: duckdb.DuckDBPyConnection, batches: Sequence[PreparedBatch]) -> int:
    """Write batches as ``prepared`` with their objects, in one transaction, before any of
    them is posted. Returns how many were new.

    One transaction for a group of batches rather than one each: a commit costs several
    milliseconds, a day of a million invoices has hundreds of batches. A batch prepared but
    never posted (the run stopped) is in doubt and re-posted by the next run, which Amili
    then sees for the first time: nothing is lost or sent twice.

    A batchid already in the ledger (same day, chunk and content, e.g. a re-posted batch)
    keeps its object rows; only its state goes back to ``prepared`` and their outcomes are
    cleared until the new answer.
    """
    if not batches:
        return 0
    with _Transaction(con):
        known = {batchid for (batchid,) in con.execute(
            "SELECT batchid FROM amili.submission_ledger WHERE batchid IN "
            "(SELECT unnest($ids::VARCHAR[]))", {"ids": [b.batchid for b in batches]},
        ).fetchall()}
        for batchid in (batch.batchid for batch in batches if batch.batchid in known):
            con.execute(
                f"""UPDATE amili.submission_ledger SET state = '{BatchState.PREPARED}',
                    error = NULL WHERE batchid = ?""",
                [batchid],
            )
            con.execute("DELETE FROM amili.ledger_object_answers WHERE batchid = ?", [batchid])
        fresh = [batch for batch in batches if batch.batchid not in known]
        new = len(fresh)
        if fresh:  # one statement for the group (a statement per batch costs milliseconds)
            con.execute(
                f"""INSERT INTO amili.submission_ledger (batchid, partition_date, chunk_number,
                    content_hash, object_count, body_bytes, state, prepared_at)
                    SELECT unnest($batchids), unnest($days), unnest($numbers::INTEGER[]),
                        unnest($hashes), unnest($counts::INTEGER[]),
                        unnest($sizes::BIGINT[]), '{BatchState.PREPARED}', now()""",
                {"batchids": [b.batchid for b in fresh], "days": [b.partition_date for b in fresh],
                 "numbers": [b.chunk_number for b in fresh],
                 "hashes": [b.content_hash for b in fresh],
                 "counts": [b.object_count for b in fresh],
                 "sizes": [b.body_bytes for b in fresh]},
            )
        arrays = [(batch, rows) for batch in fresh for rows in batch.arrays if rows.source_ids]
        if arrays:
            con.execute(
                """INSERT INTO amili.ledger_arrays
                   SELECT unnest($batchids), unnest($names), unnest($days), unnest($counts),
                       unnest($ids), unnest($hashes), unnest($amounts::VARCHAR[]),
                       unnest($currencies::VARCHAR[])""",
                {"batchids": [batch.batchid for batch, _ in arrays],
                 "names": [rows.objectname for _, rows in arrays],
                 "days": [batch.partition_date for batch, _ in arrays],
                 "counts": [len(rows.source_ids) for _, rows in arrays],
                 "ids": [orjson.dumps(list(rows.source_ids)).decode() for _, rows in arrays],
                 "hashes": [_packed_hashes(rows.payload_hashes) for _, rows in arrays],
                 "amounts": [rows.amounts for _, rows in arrays],
                 "currencies": [rows.currencies for _, rows in arrays]},
            )
    return new


def _packed_hashes(hashes: Sequence[str]) -> str:
    packed = "".join(hashes)
    if len(packed) != _HASH_LENGTH * len(hashes):
        raise ValueError(f"payload hashes must be sha256 hex digests of {_HASH_LENGTH} "
                         f"characters each: {[h for h in hashes if len(h) != _HASH_LENGTH][:3]}")
    return packed


@dataclass(slots=True)
class ObjectResults:
    """Per-object answer columns of one batch, aligned with each other (one entry each)."""

    objectnames: list[str]
    objectindexes: list[int]
    outcomes: list[str]
    statuses: list[str | None]
    ledgerrefs: list[str | None]
    messages: list[str | None]


@dataclass
class AnswerBuffer:
    """Answers received but not yet written: written together by :func:`record_answers`.

    Why: a statement per batch costs a few milliseconds each; many batches' answers go in
    one statement per table instead. Until they are written the batches stay
    ``prepared``, so a run killed meanwhile re-posts them and Amili replays its answers.
    """

    batchids: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    http_statuses: list[int] = field(default_factory=list)
    statuscodes: list[int | None] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    detail_batchids: list[str] = field(default_factory=list)
    detail: ObjectResults = field(default_factory=lambda: ObjectResults([], [], [], [], [], []))

    def __len__(self) -> int:
        return len(self.batchids)

    def add(
        self,
        batchid: str,
        state: BatchState,
        http_status: int,
        statuscode: int | None,
        attempts: int,
        response_body: str,
        results: ObjectResults | None,
    ) -> None:
        """One answered batch; ``results`` None means every object was accepted as is."""
        self.batchids.append(batchid)
        self.states.append(state.value)
        self.http_statuses.append(http_status)
        self.statuscodes.append(statuscode)
        self.attempts.append(attempts)
        self.bodies.append(response_body)
        if results is None:  # the batch's state says it: the view derives each outcome
            return
        self.detail_batchids.extend([batchid] * len(results.objectnames))
        for mine, theirs in zip(
            (self.detail.objectnames, self.detail.objectindexes, self.detail.outcomes,
             self.detail.statuses, self.detail.ledgerrefs, self.detail.messages),
            (results.objectnames, results.objectindexes, results.outcomes, results.statuses,
             results.ledgerrefs, results.messages),
            strict=True,
        ):
            mine.extend(theirs)  # type: ignore[attr-defined]


def record_answers(con: duckdb.DuckDBPyConnection, day: date, answers: AnswerBuffer) -> None:
    """Store the buffered answers of ``day``'s batches: states, and each object's outcome.

    At most three statements in one transaction whatever the number of batches. A batch
    answered as a whole (nothing named) writes nothing per object: its state is enough. The
    creditors' step reads only the day's rows (``partition_date``), so the cost does not grow
    with history.
    """
    if not answers.batchids:
        return
    with _Transaction(con):
        con.execute(
            """UPDATE amili.submission_ledger AS l SET state = r.state,
                   http_status = r.http_status, statuscode = r.statuscode,
                   attempts = l.attempts + r.attempts, posts = l.posts + 1,
                   response_body = r.body, error = NULL, answered_at = now()
               FROM (SELECT unnest($ids) AS batchid, unnest($states) AS state,
                       unnest($http::INTEGER[]) AS http_status,
                       unnest($codes::INTEGER[]) AS statuscode,
                       unnest($attempts::INTEGER[]) AS attempts,
                       unnest($bodies::VARCHAR[]) AS body) AS r
               WHERE l.batchid = r.batchid""",
            {"ids": answers.batchids, "states": answers.states, "http": answers.http_statuses,
             "codes": answers.statuscodes, "attempts": answers.attempts,
             "bodies": answers.bodies},
        )
        detail = answers.detail
        if detail.objectnames:
            con.execute(
                f"""INSERT INTO amili.ledger_object_answers
                   SELECT *, {reasons.value_sql("m", "code")}
                   FROM (SELECT *, {reasons.code_sql("m")} AS code
                       FROM (SELECT unnest($batchids), unnest($names),
                           unnest($indexes::INTEGER[]), $day, unnest($outcomes),
                           unnest($statuses::VARCHAR[]), unnest($ledgerrefs::VARCHAR[]),
                           unnest($messages::VARCHAR[]) AS m))""",
                {"day": day, "batchids": answers.detail_batchids, "names": detail.objectnames,
                 "indexes": detail.objectindexes, "outcomes": detail.outcomes,
                 "statuses": detail.statuses, "ledgerrefs": detail.ledgerrefs,
                 "messages": detail.messages},
            )
        con.execute(
            f"""INSERT INTO amili.acknowledged_creditors
                SELECT source_id, any_value(payload_hash), $day, now()
                FROM amili.ledger_objects
                WHERE partition_date = $day AND objectname = 'creditor'
                  AND outcome = '{ObjectOutcome.ACCEPTED}'
                  AND batchid IN (SELECT unnest($ids::VARCHAR[]))
                GROUP BY source_id
                ON CONFLICT (source_id) DO UPDATE SET payload_hash = excluded.payload_hash,
                    partition_date = excluded.partition_date,
                    acknowledged_at = excluded.acknowledged_at
                WHERE excluded.partition_date >= acknowledged_creditors.partition_date""",
            {"day": day, "ids": answers.batchids},
        )


def record_failure(
    con: duckdb.DuckDBPyConnection,
    *,
    batchid: str,
    http_status: int | None,
    attempts: int,
    error: str,
    response_body: str | None,
) -> None:
    """Store a batch whose POST raised: ``failed``, with what is known of why."""
    con.execute(
        f"""UPDATE amili.submission_ledger SET state = '{BatchState.FAILED}', http_status = ?,
               statuscode = NULL, attempts = attempts + ?, posts = posts + 1,
               response_body = ?, error = ?, answered_at = now()
           WHERE batchid = ?""",
        [http_status, attempts, response_body, error, batchid],
    )


def record_not_sent(
    con: duckdb.DuckDBPyConnection, batchids: Sequence[str], reason: str
) -> None:
    """Batches prepared and then never posted: ``not_sent``, with why (re-posted later)."""
    if batchids:
        con.execute(
            f"""UPDATE amili.submission_ledger SET state = '{BatchState.NOT_SENT}',
                    error = $reason
                WHERE batchid IN (SELECT unnest($ids::VARCHAR[]))
                  AND state = '{BatchState.PREPARED}'""",
            {"reason": reason, "ids": list(batchids)},
        )


def supersede(con: duckdb.DuckDBPyConnection, batchid: str, reason: str) -> None:
    """Give up on re-posting an in-doubt batch as it was; its objects go in new batches."""
    con.execute(
        f"UPDATE amili.submission_ledger SET state = '{BatchState.SUPERSEDED}', error = ? "
        "WHERE batchid = ?",
        [reason, batchid],
    )


def replace_quarantine_day(con: duckdb.DuckDBPyConnection, day: date) -> None:
    """Forget a day's quarantine before it is validated again (a re-run replaces it)."""
    con.execute("DELETE FROM amili.quarantine WHERE partition_date = ?", [day])


def insert_quarantine(
    con: duckdb.DuckDBPyConnection, day: date, rows: Sequence[tuple[str, str | None, str, str]]
) -> None:
    """Insert quarantined rows ``(objectname, source_id, reason, payload)`` in one statement,
    each with its reason's code and value (:func:`amili.reasons.classify`: a few µs a row in
    Python, where the same patterns as SQL cost tens). The rows go to DuckDB as one Arrow
    table: about a third of the cost of handing it Python lists (whose every string DuckDB
    converts one by one), which counts on a day with many defective rows."""
    if not rows:
        return
    import pyarrow as pa  # only here: most importers of this module never insert

    names, ids, texts, payloads = (list(column) for column in zip(*rows, strict=True))
    codes, values = (list(column) for column in zip(*map(reasons.classify, texts),
                                                    strict=True))
    table = pa.table({
        name: pa.array(column, pa.string()) for name, column in (
            ("objectname", names), ("source_id", ids), ("reason", texts),
            ("payload", payloads), ("reason_code", codes), ("reason_value", values))
    })
    con.register("_amili_quarantined_rows", table)
    try:
        con.execute(
            """INSERT INTO amili.quarantine (partition_date, objectname, source_id, reason,
                   payload, quarantined_at, reason_code, reason_value)
               SELECT $day, objectname, source_id, reason, payload, now(), reason_code,
                      reason_value
               FROM _amili_quarantined_rows""",
            {"day": day},
        )
    finally:
        con.unregister("_amili_quarantined_rows")


def replace_changes_day(con: duckdb.DuckDBPyConnection, day: date) -> None:
    """Forget a day's changes after hand-over before its rows are read again (a re-run
    replaces them, as it does the quarantine)."""
    con.execute("DELETE FROM amili.changes_after_handover WHERE partition_date = ?", [day])


def insert_changes(
    con: duckdb.DuckDBPyConnection,
    day: date,
    rows: Sequence[tuple[str, str, str, str, str | None, str | None]],
) -> None:
    """Record acknowledged objects whose payload changed, ``(objectname, source_id,
    payload_hash, payload, amount, currency)`` each (the amount as decimal text), in one
    statement; :func:`settle_changes` then adds what Amili holds of them."""
    if not rows:
        return
    names, ids, hashes, payloads, amounts, currencies = (
        list(column) for column in zip(*rows, strict=True))
    con.execute(
        """INSERT INTO amili.changes_after_handover (partition_date, objectname, source_id,
               payload_hash, payload, amount, currency, detected_at)
           SELECT $day, unnest($names), unnest($ids), unnest($hashes),
               unnest($payloads::VARCHAR[]),
               TRY_CAST(unnest($amounts::VARCHAR[]) AS DECIMAL(18, 2)),
               unnest($currencies::VARCHAR[]), now()""",
        {"day": day, "names": names, "ids": ids, "hashes": hashes, "payloads": payloads,
         "amounts": amounts, "currencies": currencies},
    )


def settle_changes(con: duckdb.DuckDBPyConnection, day: date) -> None:
    """Add to the day's changes after hand-over what Amili holds of each object: the
    payload it took first that day (the lowest batchid: a day's chunk numbers only grow),
    its batch, hash, amount and currency. One statement, over the changed objects only."""
    con.execute(
        f"""UPDATE amili.changes_after_handover AS c SET acknowledged_batchid = h.batchid,
               acknowledged_payload_hash = h.payload_hash, acknowledged_amount = h.amount,
               acknowledged_currency = h.currency
           FROM (
               SELECT o.objectname, o.source_id, o.batchid, o.payload_hash, o.amount,
                   o.currency
               FROM amili.ledger_objects AS o
               WHERE o.partition_date = $day AND o.outcome = '{ObjectOutcome.ACCEPTED}'
                 AND (o.objectname, o.source_id) IN (
                     SELECT (objectname, source_id) FROM amili.changes_after_handover
                     WHERE partition_date = $day)
               QUALIFY row_number() OVER (PARTITION BY o.objectname, o.source_id
                                          ORDER BY o.batchid, o.objectindex) = 1
           ) AS h
           WHERE c.partition_date = $day AND c.objectname = h.objectname
             AND c.source_id = h.source_id""",
        {"day": day},
    )


@dataclass(frozen=True)
class ResultsSummary:
    """What :func:`record_results` did."""

    inserted: int
    """Invoices newly recorded with Amili's id."""
    already_known: int
    """Invoices acknowledged in the window that the table already had, with the same id."""
    conflicts: list[tuple[str, str, str]]
    """(invoice id, id in the table, id in the ledger) where the two disagree; left as is."""
    without_ledgerref: int
    """Acknowledged invoices whose answer carried no ledgerref (e.g. an ack-only receiver)."""


def record_results(
    con_or_path: duckdb.DuckDBPyConnection | Any, start: date, end: date
) -> ResultsSummary:
    """Fill ``amili.acknowledged_invoices`` from the ledger for the days ``[start, end)``.

    Every invoice Amili answered CREATED or DUPLICATE gets its ``ledgerref`` (a DUPLICATE
    answer carries the id of the original). An id already in the table is never changed: a
    disagreement is reported in :attr:`ResultsSummary.conflicts`, not overwritten.
    ``con_or_path`` is an open connection or the path of the pipeline database.
    """
    if not isinstance(con_or_path, duckdb.DuckDBPyConnection):
        from amili.pipeline.duckdb_io import connect_writer

        with connect_writer(con_or_path) as con:
            ensure_schema(con)
            return record_results(con, start, end)
    con = con_or_path
    acknowledged = """
        SELECT o.source_id AS invoice_id, min(o.ledgerref) AS amili_invoice_id,
               count(DISTINCT o.ledgerref) AS ids,
               string_agg(DISTINCT o.ledgerref, ', ' ORDER BY o.ledgerref) AS all_ids,
               min(l.answered_at) AS acknowledged_at
        FROM amili.ledger_objects AS o JOIN amili.submission_ledger AS l USING (batchid)
        WHERE o.objectname = 'invoice' AND o.outcome = 'accepted'
          AND o.status_statuscode IN ('CREATED', 'DUPLICATE') AND o.ledgerref IS NOT NULL
          AND o.partition_date >= $start AND o.partition_date < $end
        GROUP BY o.source_id
    """
    params = {"start": start, "end": end}
    with _Transaction(con):
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _acknowledged AS {acknowledged}", params
        )
        conflicts = con.execute(
            """SELECT a.invoice_id, coalesce(k.amili_invoice_id, ''), a.all_ids
               FROM _acknowledged AS a LEFT JOIN amili.acknowledged_invoices AS k
                 ON k.unique_source_invoice_id = a.invoice_id
               WHERE a.ids > 1 OR k.amili_invoice_id <> a.amili_invoice_id
               ORDER BY 1"""
        ).fetchall()
        known = con.execute(
            """SELECT count(*) FROM _acknowledged AS a JOIN amili.acknowledged_invoices AS k
                 ON k.unique_source_invoice_id = a.invoice_id
               WHERE k.amili_invoice_id = a.amili_invoice_id AND a.ids = 1"""
        ).fetchone()
        inserted = con.execute(
            """INSERT INTO amili.acknowledged_invoices
               SELECT invoice_id, amili_invoice_id, acknowledged_at FROM _acknowledged
               WHERE ids = 1
               ON CONFLICT (unique_source_invoice_id) DO NOTHING"""
        ).fetchone()
        missing = con.execute(
            """SELECT count(DISTINCT source_id) FROM amili.ledger_objects
               WHERE objectname = 'invoice' AND outcome = 'accepted' AND ledgerref IS NULL
                 AND partition_date >= $start AND partition_date < $end""",
            params,
        ).fetchone()
        con.execute("DROP TABLE _acknowledged")
    return ResultsSummary(
        inserted=int(inserted[0]) if inserted else 0,
        already_known=int(known[0]) if known else 0,
        conflicts=[(str(a), str(b), str(c)) for a, b, c in conflicts],
        without_ledgerref=int(missing[0]) if missing else 0,
    )


if __name__ == "__main__":
    DBT_MACROS_FILE.write_text(dbt_macros())
    print(f"wrote {DBT_MACROS_FILE}")
