"""The reporting snapshot: a copy of the marts and result tables, published atomically.

DuckDB admits one writing process per file, and any other process that holds the file open,
even read-only, makes the writer fail with "Could not set lock on file". So analysts never
open the pipeline's database: after each run the tables they need are copied into a separate
file (``data/reporting.duckdb`` by default) that is written under a temporary name and then
renamed over the old one. A reader that has the old file open keeps reading the old inode;
the next connection opens the new one; nobody ever sees a half-written copy.

The copy is ``CREATE TABLE ... AS SELECT`` from the pipeline database into an attached new
file, table by table from an allow-list, rather than ``COPY FROM DATABASE``: only what the
dashboard needs goes out (no ``raw.*`` or batch payloads with debtors' identity numbers and
addresses, no ledger response bodies), a staging view cannot drag its raw tables along, and
the few derived tables analysts want are built on the way (schema ``report``: ``problems``,
``held_payments``, ``day_status``, ``snapshot_info``; not ``reporting``, which is the
file's own catalog name and would make ``reporting.x`` ambiguous). Marts are copied with
``SELECT *`` so a column added to them later (say a new bucket) reaches the snapshot without
a change here.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from amili.pipeline.duckdb_io import connect_writer

__all__ = ["SNAPSHOT_TABLES", "SnapshotSummary", "SnapshotTable", "publish_snapshot"]


@dataclass(frozen=True)
class SnapshotTable:
    """One table of the snapshot: where it goes and the query that fills it."""

    schema: str
    name: str
    query: str
    #: Relations (schema.name) of the pipeline database the query reads; all must exist.
    sources: tuple[str, ...]
    #: Absent until a later stage has run (the read-back): left out without being named in
    #: ``missing``, and the dashboard says that nothing was read back yet.
    optional: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def _copy(schema: str, name: str, exclude: str = "", *, optional: bool = False
          ) -> SnapshotTable:
    columns = f"* EXCLUDE ({exclude})" if exclude else "*"
    return SnapshotTable(schema, name, f"SELECT {columns} FROM {schema}.{name}",
                         (f"{schema}.{name}",), optional)


#: Held payments: dbt held them back because Amili had not acknowledged their invoice yet.
#: ``still_held`` is false once a later batch got the payment accepted.
_HELD_PAYMENTS = """
SELECT p.partition_date, p.payment_id, p.invoice_id, p.creditor_id, p.hold_reason,
       p.amount, p.currency,
       a.amili_invoice_id IS NOT NULL AS invoice_now_acknowledged,
       -- a payment held again on a later day (carried forward) is listed once, its latest day
       row_number() OVER (PARTITION BY p.payment_id ORDER BY p.partition_date DESC) = 1
           AS latest_hold,
       NOT EXISTS (
           SELECT 1 FROM amili.ledger_objects AS o
           JOIN amili.submission_ledger AS l ON l.batchid = o.batchid
           WHERE l.state <> 'superseded' AND o.objectname = 'payment'
             AND o.source_id = p.payment_id AND o.outcome = 'accepted'
       ) AS still_held
FROM batch.batch_payments AS p
LEFT JOIN amili.acknowledged_invoices AS a ON a.unique_source_invoice_id = p.invoice_id
WHERE p.hold_reason IS NOT NULL
"""

#: ``normalize_reason`` of dbt_project/macros/reconciliation.sql, the same SQL, so a reason
#: here is the ``reason`` of ``marts.rpt_rejection_reasons`` (a test holds them together).
NORMALIZE_REASON = r"""regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
        {message},
        '(^|[^A-Za-z0-9])''(?:[^''\\]|\\.)*''', '\1<value>', 'g'),
        '(^|[^A-Za-z0-9])"(?:[^"\\]|\\.)*"', '\1<value>', 'g'),
        '\[[0-9]+\]', '[*]', 'g'),
        '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}(T[0-9:.]+Z?)?', '<date>', 'g'),
        '-?\b[0-9]+\.[0-9]+\b|\b[0-9]{{5,}}\b', '<n>', 'g')"""

#: One row per object Amili rejected (latest answer), validation quarantined, sent without a
#: believed answer (unconfirmed: the answer did not say; outstanding: no answer), or changed
#: in the warehouse after Amili took it (not sent again: Amili holds ``acknowledged_amount``,
#: the warehouse ``amount``, ``amount_difference`` the second less the first), with the
#: reason as the mart groups it, the full message, and the invoice it concerns (a payment's
#: or action's invoice from its batch table), for the dashboard's drill-down.
_PROBLEMS = """
WITH problems AS (
    SELECT partition_date, creditor_id, objectname, source_id, amount, currency, batchid,
           ledgerref, status_statuscode, acknowledged_amount, amount_difference,
           reason_code, reason_message, reason_value,
           CASE WHEN fate = 'quarantined' THEN 'quarantined'
                WHEN fate = 'changed_after_handover' THEN 'changed after hand-over'
                WHEN outcome = 'rejected' THEN 'rejected by Amili'
                WHEN outcome = 'unconfirmed' THEN 'unconfirmed by Amili'
                ELSE 'no answer yet' END AS kind,
           CASE WHEN fate = 'quarantined' THEN coalesce(quarantine_reason, '(no reason)')
                WHEN fate = 'changed_after_handover' THEN 'changed in the warehouse after '
                    || 'Amili took it: not sent again (Amili keeps what it took); settle '
                    || 'the difference with Amili'
                WHEN outcome = 'rejected' THEN coalesce(error_message, '(no message)')
                WHEN outcome = 'unconfirmed' THEN 'Amili answered the batch without saying '
                    || 'what became of this object; the next run sends it again'
                ELSE 'its batch (' || coalesce(batch_state, '?') || ') has no answer; the '
                    || 'next run sends it again' END AS message
    FROM marts.rpt_object_fates
    WHERE fate IN ('quarantined', 'changed_after_handover')
       OR (fate = 'sent' AND outcome IN ('rejected', 'unconfirmed', 'outstanding'))
),
payment_invoices AS (
    SELECT partition_date, payment_id, any_value(invoice_id) AS invoice_id
    FROM batch.batch_payments GROUP BY ALL
),
action_invoices AS (
    SELECT partition_date, action_id, any_value(invoice_id) AS invoice_id
    FROM batch.batch_actions GROUP BY ALL
)
SELECT p.partition_date, p.creditor_id, p.objectname, p.source_id,
       CASE p.objectname WHEN 'invoice' THEN p.source_id WHEN 'payment' THEN pi.invoice_id
            WHEN 'action' THEN ai.invoice_id END AS invoice_id,
       p.batchid, p.ledgerref, p.status_statuscode, p.amount, p.currency, p.kind,
       p.acknowledged_amount, p.amount_difference,
       coalesce(p.reason_message, """ + NORMALIZE_REASON.format(message="p.message") + """)
           AS reason, p.message,
       coalesce(p.reason_code, CASE p.kind WHEN 'changed after hand-over'
           THEN 'changed_after_handover' WHEN 'unconfirmed by Amili' THEN 'unconfirmed'
           ELSE 'no_answer_yet' END) AS reason_code, p.reason_value
FROM problems AS p
LEFT JOIN payment_invoices AS pi
       ON p.objectname = 'payment' AND pi.partition_date = p.partition_date
      AND pi.payment_id = p.source_id
LEFT JOIN action_invoices AS ai
       ON p.objectname = 'action' AND ai.partition_date = p.partition_date
      AND ai.action_id = p.source_id
"""

#: A moment as Oslo wall-clock text, for the notes analysts read (the server may run in UTC).
_OSLO_TIME_MACRO = """CREATE OR REPLACE TEMP MACRO oslo_time(t) AS
    strftime(t AT TIME ZONE 'Europe/Oslo', '%Y-%m-%d %H:%M:%S') || ' Oslo time'"""

#: Per day: is what the marts say about it current? The marts of a day are current when
#: they were rebuilt (``marts.rpt_marts_built``, written by dbt only after every mart of the
#: build and its tests succeeded) no earlier than the day's latest submission activity: a
#: batch prepared or answered (``amili.submission_ledger``) or a row quarantined
#: (``amili.quarantine``). A day whose reconciliation step failed after its submission (a
#: locked file, a failing mart) is therefore ``stale`` until the marts are built again,
#: and the dashboard says so; a day never rebuilt since build times were recorded is
#: stale too, as nothing vouches for its marts. Days with marts but no submission yet are
#: current if built.
_DAY_STATUS = """
WITH submitted AS (
    SELECT partition_date, max(greatest(prepared_at, answered_at)) AS activity_at
    FROM amili.submission_ledger GROUP BY ALL
    UNION ALL
    SELECT partition_date, max(quarantined_at) FROM amili.quarantine GROUP BY ALL
),
days AS (
    SELECT partition_date, max(activity_at) AS last_submission_at FROM submitted GROUP BY ALL
),
all_days AS (
    SELECT partition_date FROM days
    UNION SELECT partition_date FROM marts.rpt_marts_built
    UNION SELECT partition_date FROM marts.rpt_reconciliation_daily
)
SELECT a.partition_date, d.last_submission_at, b.built_at AS marts_built_at,
       CASE WHEN b.built_at IS NOT NULL
                 AND (d.last_submission_at IS NULL OR b.built_at >= d.last_submission_at)
            THEN 'current' ELSE 'stale' END AS status,
       CASE WHEN b.built_at IS NULL
            THEN 'the marts of this day have not been built since its latest submission '
                 || '(' || coalesce(oslo_time(d.last_submission_at), 'unknown')
                 || '): its figures are missing or out of date'
            WHEN d.last_submission_at > b.built_at
            THEN 'the marts of this day were built ' || oslo_time(b.built_at)
                 || ', before its latest submission (' || oslo_time(d.last_submission_at)
                 || '): its figures are out of date'
       END AS note
FROM all_days AS a
LEFT JOIN days AS d USING (partition_date)
LEFT JOIN marts.rpt_marts_built AS b USING (partition_date)
"""

#: Creditor names, for the dashboard and report to show beside the ids: the latest name the
#: creditor master gave each creditor (``batch.batch_creditors``, the rows handed over).
_CREDITORS = """
SELECT creditor_id, arg_max(fullname, partition_date) AS creditor_name,
       arg_max(idnumber, partition_date) AS creditor_orgnr,
       max(partition_date) AS last_seen
FROM batch.batch_creditors WHERE creditor_id IS NOT NULL AND fullname IS NOT NULL
GROUP BY creditor_id
"""

#: Which invoice each payment and case action belongs to, per day (and each invoice itself),
#: so that a search by invoice id finds the whole history of the claim.
_OBJECT_INVOICES = """
SELECT DISTINCT partition_date, 'invoice' AS objectname, invoice_id AS source_id, invoice_id
FROM batch.batch_invoices
UNION ALL
SELECT DISTINCT partition_date, 'payment', payment_id, invoice_id FROM batch.batch_payments
UNION ALL
SELECT DISTINCT partition_date, 'action', action_id, invoice_id FROM batch.batch_actions
"""

#: The cases Amili holds (``amili.cases``, read back; no debtor identity in it), for the
#: "with Amili" view's open cases by age: each case's registration day and open amount.
_AMILI_CASES = """
SELECT creditor_idnumber, casenumber, amili_invoice_id, unique_source_invoice_id,
       invoice_number, status, sub_status, currency, original_amount, paid_amount,
       credited_amount, remaining_amount, registered_at, closed_at, handed_over, read_at
FROM amili.cases
"""

#: What Amili collected per creditor, month and currency: the growth of each case's paid
#: amount from one read to the next (``amili.case_status_changes`` keeps the amounts at each
#: change), counted in the month of the read that saw it; a case's first read counts what was
#: paid by then. Amili reports no payment dates on a case, so this is as near as the read-back
#: comes; settlements (the payouts to the creditor) are ``rpt_settlements_monthly``.
_AMILI_COLLECTED = """
WITH changes AS (
    SELECT c.creditor_idnumber, c.detected_at,
           c.paid_amount - coalesce(lag(c.paid_amount) OVER (
               PARTITION BY c.creditor_idnumber, c.amili_invoice_id, c.casenumber
               ORDER BY c.detected_at), 0) AS collected,
           k.currency
    FROM amili.case_status_changes AS c
    LEFT JOIN (SELECT creditor_idnumber, amili_invoice_id, casenumber,
                      any_value(currency) AS currency
               FROM amili.cases GROUP BY ALL) AS k
           ON k.creditor_idnumber = c.creditor_idnumber
          AND k.amili_invoice_id IS NOT DISTINCT FROM c.amili_invoice_id
          AND k.casenumber IS NOT DISTINCT FROM c.casenumber
)
SELECT creditor_idnumber,
       date_trunc('month', timezone('Europe/Oslo', detected_at))::DATE AS month, currency,
       sum(collected)::DECIMAL(38, 10) AS collected_amount,
       count(*) FILTER (WHERE collected <> 0)::BIGINT AS cases_collected_on
FROM changes WHERE collected IS NOT NULL
GROUP BY ALL
"""

#: What the snapshot holds, in the pipeline database's own schema and table names, so a
#: query written against one runs on the other.
SNAPSHOT_TABLES: tuple[SnapshotTable, ...] = (
    _copy("marts", "rpt_reconciliation_daily"),
    _copy("marts", "rpt_object_fates"),
    _copy("marts", "rpt_rejection_reasons"),
    _copy("marts", "rpt_unanswered_batches"),
    _copy("marts", "rpt_source_reconciliation"),
    _copy("amili", "responses"),
    _copy("amili", "errors"),
    # the payload holds the debtor's identity number and address: the reason is enough
    _copy("amili", "quarantine", exclude="payload"),
    _copy("amili", "submission_ledger", exclude="response_body"),
    SnapshotTable(
        "report", "problems", _PROBLEMS,
        ("marts.rpt_object_fates", "batch.batch_payments", "batch.batch_actions"),
    ),
    SnapshotTable(
        "report", "day_status", _DAY_STATUS,
        ("amili.submission_ledger", "amili.quarantine", "marts.rpt_marts_built",
         "marts.rpt_reconciliation_daily"),
    ),
    SnapshotTable("report", "creditors", _CREDITORS, ("batch.batch_creditors",)),
    SnapshotTable(
        "report", "object_invoices", _OBJECT_INVOICES,
        ("batch.batch_invoices", "batch.batch_payments", "batch.batch_actions"),
    ),
    # read-back (issue 20): absent until the readback job ran; the view then says so
    _copy("marts", "rpt_handover_status", optional=True),
    _copy("marts", "rpt_settlements_monthly", optional=True),
    SnapshotTable("report", "amili_cases", _AMILI_CASES, ("amili.cases",), optional=True),
    SnapshotTable("report", "amili_collected_monthly", _AMILI_COLLECTED,
                  ("amili.case_status_changes", "amili.cases"), optional=True),
    SnapshotTable(
        "report", "held_payments", _HELD_PAYMENTS,
        ("batch.batch_payments", "amili.ledger_objects", "amili.submission_ledger",
         "amili.acknowledged_invoices"),
    ),
)


#: The snapshot is written in an older storage format than DuckDB 2.0's default, so that
#: analysts' tools on DuckDB 1.x (the ``duckdb`` shell of the ``duckdb-cli`` package,
#: 1.5.6 here, or a SQL client) can open it; everything it holds exists in that format.
STORAGE_VERSION = "v1.0.0"


@dataclass(frozen=True)
class SnapshotSummary:
    """What was published: where, the row count of each table, what was missing, and the
    days whose marts are stale (``report.day_status``)."""

    path: Path
    row_counts: dict[str, int]
    missing: list[str] = field(default_factory=list)
    bytes: int = 0
    stale_days: list[date] = field(default_factory=list)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def publish_snapshot(
    pipeline_db: str | Path,
    reporting_db: str | Path,
    *,
    window: tuple[date, date] | None = None,
) -> SnapshotSummary:
    """Copy :data:`SNAPSHOT_TABLES` into a new file and rename it over ``reporting_db``.

    The pipeline database is opened the way every writer opens it (waiting a bounded time
    for another writer), only read from, and closed before the rename. A table whose sources
    do not exist yet (a fresh pipeline database) is left out and named in ``missing``
    (unless it is ``optional``: the read-back's, before the readback job ran).
    ``window`` is recorded in ``report.snapshot_info`` only: every day is copied.
    """
    target = Path(reporting_db).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    row_counts: dict[str, int] = {}
    missing: list[str] = []
    try:
        with connect_writer(pipeline_db) as con:
            existing = {
                f"{schema}.{name}" for schema, name in con.execute(
                    """SELECT schema_name, table_name FROM duckdb_tables()
                       WHERE database_name = current_database()
                       UNION ALL
                       SELECT schema_name, view_name FROM duckdb_views()
                       WHERE database_name = current_database() AND NOT internal"""
                ).fetchall()
            }
            con.execute(_OSLO_TIME_MACRO)
            con.execute(f"ATTACH {_literal(str(temp))} AS reporting_snapshot "
                        f"(STORAGE_VERSION '{STORAGE_VERSION}')")
            try:
                for schema in sorted({t.schema for t in SNAPSHOT_TABLES} | {"report"}):
                    con.execute(f"CREATE SCHEMA reporting_snapshot.{schema}")
                for table in SNAPSHOT_TABLES:
                    if not all(source in existing for source in table.sources):
                        if not table.optional:
                            missing.append(table.qualified)
                        continue
                    con.execute(
                        f"CREATE TABLE reporting_snapshot.{table.qualified} AS {table.query}"
                    )
                    row_counts[table.qualified] = con.execute(
                        f"SELECT count(*) FROM reporting_snapshot.{table.qualified}"
                    ).fetchone()[0]
                stale_days = _write_info(con, Path(pipeline_db), window, row_counts, missing)
                con.execute("CHECKPOINT reporting_snapshot")
            finally:
                con.execute("DETACH reporting_snapshot")
        _fsync(temp)
        os.replace(temp, target)  # atomic on one filesystem: old readers keep the old inode
        # The new file was checkpointed whole, so a write-ahead log under its name can only
        # be left by someone who opened the old file for writing; it must not be replayed
        # onto the new one. (The file stays writable: `duckdb data/reporting.duckdb`
        # without -readonly must open, as a non-root analyst too.)
        target.with_name(target.name + ".wal").unlink(missing_ok=True)
        _fsync(target.parent)
    finally:
        for leftover in (temp, temp.with_name(temp.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return SnapshotSummary(target, row_counts, missing, target.stat().st_size, stale_days)


def _write_info(
    con: duckdb.DuckDBPyConnection,
    pipeline_db: Path,
    window: tuple[date, date] | None,
    row_counts: dict[str, int],
    missing: list[str],
) -> list[date]:
    """``report.snapshot_info`` (one row: when, from where, which days are stale) and
    ``snapshot_tables``; returns the stale days (none when ``day_status`` is missing, and
    then ``stale_days`` is NULL: unknown, not "none")."""
    stale_days: list[date] = []
    if "report.day_status" in row_counts:
        stale_days = [day for (day,) in con.execute(
            """SELECT partition_date FROM reporting_snapshot.report.day_status
               WHERE status = 'stale' ORDER BY 1""").fetchall()]
    con.execute(
        """CREATE TABLE reporting_snapshot.report.snapshot_info AS
           SELECT now() AS published_at, $source AS source_db,
                  $start::DATE AS window_start, $end::DATE AS window_end,
                  $missing::VARCHAR[] AS missing_tables,
                  $stale::DATE[] AS stale_days""",
        {"source": str(pipeline_db.resolve()), "start": window[0] if window else None,
         "end": window[1] if window else None, "missing": missing,
         "stale": stale_days if "report.day_status" in row_counts else None},
    )
    con.execute(
        """CREATE TABLE reporting_snapshot.report.snapshot_tables
           (table_name VARCHAR, row_count BIGINT)"""
    )
    if row_counts:
        con.executemany(
            "INSERT INTO reporting_snapshot.report.snapshot_tables VALUES (?, ?)",
            list(row_counts.items()),
        )
    return stale_days


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entry list) to disk, so the rename publishes whole data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
