"""After hand-over: read cases and settlements back from Amili into the pipeline's DuckDB file.

Two reads, both through ``GET /webapi/api/Batch`` per creditor we handed invoices over for:

``amili.settlements`` (incremental, exactly once)
    Amili's remittances to the creditor, read from the creditor's last stored
    ``lastsettlementid`` (``amili.settlement_cursors``). Each page of settlements and the cursor
    after it are written in **one transaction**, and a settlement's key is (creditor, id), so:
    a re-run reads only what is new and can never store a settlement twice; a run that dies
    (or whose request for one creditor fails) keeps every page it committed, and the next run
    resumes each creditor from its own cursor, without a gap.
``amili.cases`` (a current-state snapshot)
    one row per case and invoice as Amili holds them now (status, sub-status, original, paid,
    credited and remaining amounts, closed date, Amili's ids and our source id). Each
    creditor's cases go to a staging table as they are read (memory: one creditor's answer);
    only after the last is the table replaced, in one transaction, so a failed read leaves
    yesterday's whole snapshot rather than half of today's.

Our source id comes from ``amili.acknowledged_invoices`` (our invoice id -> Amili's id, kept by
the results stage) where Amili's answer lacks it; ``handed_over`` is false for a case whose
invoice we never sent. Amounts are stored exactly as Amili says them (:data:`AMOUNT_TYPE`,
from Decimal, never floats): Amili's amounts have two decimals, but an answer with more is
kept, not rounded, and the ERP files flag it (``more_than_two_decimals``); an amount beyond
the type fails the read with the settlement or case it came in.
"""

from __future__ import annotations

import logging
import textwrap
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, localcontext
from pathlib import Path

import duckdb

from amili import jsonio
from amili.client import AmiliAuthError, AmiliClient, AmiliError
from amili.models import CaseLine, SettlementLine
from amili.pipeline.duckdb_io import connect_writer
from amili.pipeline.ledger import ensure_schema

log = logging.getLogger("amili.pipeline.readback")

#: The type of every amount read back: exact, up to 28 integer digits and 10 decimals.
AMOUNT_TYPE = "DECIMAL(38, 10)"
_SCALE = Decimal(1).scaleb(-10)
_LIMIT = Decimal(10) ** 28
#: The columns a database written before :data:`AMOUNT_TYPE` holds as DECIMAL(18, 2).
_AMOUNT_COLUMNS = {
    "settlements": ("amount",),
    "cases": ("original_amount", "paid_amount", "credited_amount", "remaining_amount"),
    "case_status_changes": ("paid_amount", "credited_amount", "remaining_amount"),
}


class AmountNotStorable(AmiliError):
    """Amili answered an amount :data:`AMOUNT_TYPE` cannot hold exactly."""


def stored_amount(value: Decimal | None, what: str) -> str | None:
    """The exact text of an amount for an :data:`AMOUNT_TYPE` column; an amount the column
    cannot hold raises :class:`AmountNotStorable` naming ``what`` (never a cast error, never
    a rounded value)."""
    if value is None:
        return None
    with localcontext() as ctx:
        ctx.prec = 100
        exact = value.quantize(_SCALE)
    if exact != value or abs(exact) >= _LIMIT:
        raise AmountNotStorable(
            f"{what}: Amili answered the amount {value}, which {AMOUNT_TYPE} cannot hold "
            "exactly (more than 10 decimals or 28 integer digits); nothing of it was stored, "
            "so as not to round it. Ask Amili about the amount.")
    return format(exact, "f")

DDL: tuple[str, ...] = (
    "CREATE SCHEMA IF NOT EXISTS amili",
    """
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
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS amili.settlement_cursors (
        creditor_idnumber VARCHAR PRIMARY KEY,
        last_settlement_id BIGINT NOT NULL,    -- the next read asks for ids above this
        updated_at TIMESTAMPTZ NOT NULL
    )
    """,
    """
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
    )
    """,
    # What changed from one snapshot of amili.cases to the next (a first snapshot: every
    # case, from nothing); appended by each read, for the ERP's write-back file.
    """
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
    """,
)


def ensure_readback_schema(con: duckdb.DuckDBPyConnection) -> None:
    """The ledger's tables (``acknowledged_invoices`` is joined) and the read-back tables."""
    ensure_schema(con)
    for statement in DDL:
        con.execute(statement)
    _widen_amounts(con)


def _widen_amounts(con: duckdb.DuckDBPyConnection) -> None:
    """Migrates a database written when amounts were DECIMAL(18, 2) to :data:`AMOUNT_TYPE`
    (every stored value fits; nothing changes value). Asked of the catalog first, so an
    up-to-date database is not rewritten."""
    types = dict(((t, c), kind) for t, c, kind in con.execute(
        """SELECT table_name, column_name, data_type FROM duckdb_columns()
           WHERE database_name = current_database() AND schema_name = 'amili'""").fetchall())
    for table, column in [(t, c) for t, columns in _AMOUNT_COLUMNS.items() for c in columns
                          if types.get((t, c), AMOUNT_TYPE.replace(" ", ""))
                          != AMOUNT_TYPE.replace(" ", "")]:
        log.info("widening amili.%s.%s to %s", table, column, AMOUNT_TYPE)
        con.execute(f"ALTER TABLE amili.{table} ALTER COLUMN {column} "
                    f"SET DATA TYPE {AMOUNT_TYPE}")


def handed_over_creditors(
    con: duckdb.DuckDBPyConnection, creditors_relation: str = "batch.batch_creditors_json"
) -> list[str]:
    """The idnumbers of the creditors Amili acknowledged from us, sorted.

    The ledger keeps our creditor ids (``amili.acknowledged_creditors``); their idnumbers
    (what Amili files cases under) are in the payloads dbt built. A database dbt has not
    written yet has none.
    """
    try:
        rows = con.execute(
            f"""SELECT DISTINCT json_extract_string(c.payload, '$.idnumber') AS idnumber
                FROM {creditors_relation} AS c
                JOIN amili.acknowledged_creditors AS a ON a.source_id = c.creditor_id
                WHERE idnumber IS NOT NULL ORDER BY idnumber""").fetchall()
    except duckdb.CatalogException:
        return []
    return [row[0] for row in rows]


@dataclass
class SettlementsRead:
    """What one read of settlements did, per creditor and in total."""

    inserted: int = 0
    already_stored: int = 0
    pages: int = 0
    by_creditor: dict[str, int] = field(default_factory=dict)
    amount: Decimal = Decimal(0)
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def raise_for_failures(self) -> None:
        if self.failures:
            detail = "; ".join(f"{c}: {e}" for c, e in sorted(self.failures.items()))
            raise AmiliError(
                f"settlements of {len(self.failures)} creditor(s) could not be read (the "
                f"others were stored; the next run resumes each from its cursor): {detail}")


_INSERT_SETTLEMENTS = """
    INSERT INTO amili.settlements
    SELECT s.creditor_idnumber, s.settlement_id, s.ledgerref,
        coalesce(a.unique_source_invoice_id, s.source_id), s.casenumber, s.customerref,
        s.referencenumber, s.amount, s.currency, s.remittance_date, s.raw_json, now()
    FROM (SELECT $creditor AS creditor_idnumber,
                 unnest($ids::BIGINT[]) AS settlement_id,
                 unnest($refs::VARCHAR[]) AS ledgerref,
                 unnest($sources::VARCHAR[]) AS source_id,
                 unnest($cases::VARCHAR[]) AS casenumber,
                 unnest($customers::VARCHAR[]) AS customerref,
                 unnest($numbers::VARCHAR[]) AS referencenumber,
                 unnest($amounts::VARCHAR[])::DECIMAL(38, 10) AS amount,
                 unnest($currencies::VARCHAR[]) AS currency,
                 unnest($dates::DATE[]) AS remittance_date,
                 unnest($raw::VARCHAR[]) AS raw_json) AS s
    LEFT JOIN (SELECT amili_invoice_id, any_value(unique_source_invoice_id)
                      AS unique_source_invoice_id
               FROM amili.acknowledged_invoices GROUP BY amili_invoice_id) AS a
        ON a.amili_invoice_id = s.ledgerref
    ON CONFLICT DO NOTHING
"""


def read_settlements(
    pipeline_db: str | Path,
    client: AmiliClient,
    creditors: Sequence[str] | None = None,
    *,
    creditors_relation: str = "batch.batch_creditors_json",
) -> SettlementsRead:
    """Read each creditor's new settlements into ``amili.settlements``, exactly once.

    ``creditors`` defaults to :func:`handed_over_creditors`. A creditor whose read fails is
    recorded in ``failures`` and the others are still read (call
    :meth:`SettlementsRead.raise_for_failures`); a refused token stops at once.
    """
    started = time.perf_counter()
    summary = SettlementsRead()
    with connect_writer(pipeline_db) as con:
        ensure_readback_schema(con)
        names = list(creditors) if creditors is not None else handed_over_creditors(
            con, creditors_relation)
        for creditor in names:
            row = con.execute(
                "SELECT last_settlement_id FROM amili.settlement_cursors "
                "WHERE creditor_idnumber = ?", [creditor]).fetchone()
            cursor = int(row[0]) if row else 0
            summary.by_creditor.setdefault(creditor, 0)
            pages = client.iter_settlement_pages(creditor, cursor)
            try:
                for page in pages:
                    inserted = _store_page(con, creditor, page.settlements, page.cursor)
                    summary.pages += 1
                    summary.inserted += inserted
                    summary.already_stored += len(page.settlements) - inserted
                    summary.by_creditor[creditor] += inserted
                    summary.amount += sum((s.amount or Decimal(0) for s in page.settlements),
                                          Decimal(0))
            except AmiliAuthError:
                raise
            except AmiliError as exc:
                log.warning("settlements of creditor %s: %s", creditor, exc)
                summary.failures[creditor] = str(exc)[:500]
    summary.seconds = time.perf_counter() - started
    return summary


def _store_page(con: duckdb.DuckDBPyConnection, creditor: str,
                settlements: Sequence[SettlementLine], cursor: int) -> int:
    """One page and the cursor after it, in one transaction; returns the rows inserted."""
    items = list(settlements)
    amounts = [stored_amount(s.amount, f"settlement {s.settlement_id} of creditor {creditor}")
               for s in items]  # before the transaction: a page is stored whole or not at all
    con.execute("BEGIN TRANSACTION")
    try:
        before = con.execute("SELECT count(*) FROM amili.settlements WHERE "
                             "creditor_idnumber = ?", [creditor]).fetchone()[0]
        con.execute(_INSERT_SETTLEMENTS, {
            "creditor": creditor,
            "ids": [s.settlement_id for s in items],
            "refs": [s.ledgerref for s in items],
            "sources": [None for _ in items],
            "cases": [s.casenumber for s in items],
            "customers": [s.customerref for s in items],
            "numbers": [s.referencenumber for s in items],
            "amounts": amounts,
            "currencies": [s.currency for s in items],
            "dates": [s.remittance_date for s in items],
            "raw": [jsonio.dumps(jsonio.to_jsonable(s.source) if s.source is not None
                                 else {}).decode() for s in items],
        })
        after = con.execute("SELECT count(*) FROM amili.settlements WHERE "
                            "creditor_idnumber = ?", [creditor]).fetchone()[0]
        con.execute(
            """INSERT INTO amili.settlement_cursors VALUES (?, ?, now())
               ON CONFLICT (creditor_idnumber) DO UPDATE SET
                   last_settlement_id = greatest(settlement_cursors.last_settlement_id,
                                                 excluded.last_settlement_id),
                   updated_at = excluded.updated_at""", [creditor, cursor])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(after - before)


@dataclass
class CasesRead:
    """What one snapshot of cases holds."""

    requests: int = 0
    rows: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    not_handed_over: int = 0
    remaining: Decimal = Decimal(0)
    changes: int = 0
    """Cases new or changed (status, sub-status or an amount) since the previous snapshot."""
    seconds: float = 0.0


def read_cases(
    pipeline_db: str | Path,
    client: AmiliClient,
    creditors: Sequence[str] | None = None,
    *,
    creditors_relation: str = "batch.batch_creditors_json",
) -> CasesRead:
    """Replace ``amili.cases`` with every case Amili holds now for our creditors.

    Each creditor's cases are written to a staging table as soon as they are read, so the
    process holds one creditor's answer at a time (not every creditor's: about 1.2 GB at
    100k invoices); only after the last creditor is ``amili.cases`` replaced, in one
    transaction, so a failure raises and leaves the previous snapshot in place.
    """
    started = time.perf_counter()
    with connect_writer(pipeline_db) as con:
        ensure_readback_schema(con)
        names = list(creditors) if creditors is not None else handed_over_creditors(
            con, creditors_relation)
    requests = 0

    def answers() -> Iterator[tuple[str, list[CaseLine]]]:
        nonlocal requests
        for creditor in names:  # asked for only when the creditor before is stored
            lines = client.get_cases(creditor).case_lines()  # the parsed answer is let go
            requests += 1
            yield creditor, lines
            del lines

    summary = store_cases(pipeline_db, answers())
    summary.requests = requests
    summary.seconds = time.perf_counter() - started
    return summary


#: Where :func:`store_cases` collects a snapshot, creditor by creditor, before it replaces
#: ``amili.cases`` (left by a failed read, it is replaced by the next one).
_STAGING = "amili.cases_incoming"


def store_cases(
    pipeline_db: str | Path, cases: Iterable[tuple[str, Sequence[CaseLine]]]
) -> CasesRead:
    """Replace ``amili.cases`` with ``cases`` (per creditor, its case lines), recording
    what changed in ``amili.case_status_changes``.

    Each creditor's lines are inserted into a staging table before the next creditor's are
    taken from ``cases`` (so a lazy iterable is read one creditor at a time), each in its
    own short connection: no connection is held while the iterable waits for Amili. Then
    one transaction swaps the snapshot. A failure (a read, an amount the table cannot hold)
    raises and leaves the previous snapshot whole.
    """
    summary = CasesRead()
    with connect_writer(pipeline_db) as con:
        ensure_readback_schema(con)
        con.execute(f"CREATE OR REPLACE TABLE {_STAGING} AS SELECT * FROM amili.cases LIMIT 0")
    try:
        for creditor, lines in cases:
            columns = _case_columns([(creditor, line) for line in lines])
            with connect_writer(pipeline_db) as con:
                con.execute(_INSERT_CASES.replace("INSERT INTO amili.cases",
                                                  f"INSERT INTO {_STAGING}"), columns)
            del columns, lines
    except BaseException:
        with connect_writer(pipeline_db) as con:
            con.execute(f"DROP TABLE IF EXISTS {_STAGING}")
        raise
    with connect_writer(pipeline_db) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            summary.changes = con.execute(_RECORD_CHANGES).fetchone()[0]
            con.execute("DELETE FROM amili.cases")
            con.execute(f"INSERT INTO amili.cases SELECT * FROM {_STAGING}")
            con.execute(f"DROP TABLE {_STAGING}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        for status, n, not_ours, remaining in con.execute(
                "SELECT coalesce(status, '?'), count(*), count(*) FILTER (NOT handed_over), "
                "coalesce(sum(remaining_amount), 0) FROM amili.cases GROUP BY ALL").fetchall():
            summary.by_status[status] = n
            summary.rows += n
            summary.not_handed_over += not_ours
            summary.remaining += Decimal(remaining)
    return summary


_INSERT_CASES = """
    INSERT INTO amili.cases
    SELECT c.creditor_idnumber, c.casenumber, c.case_id, c.ledgerref,
        coalesce(a.unique_source_invoice_id, c.source_id), c.invoice_number, c.status,
        c.sub_status, c.currency, c.original_amount, c.paid_amount, c.credited_amount,
        c.remaining_amount, c.registered_at, c.closed_at, a.amili_invoice_id IS NOT NULL, now()
    FROM (SELECT unnest($creditors::VARCHAR[]) AS creditor_idnumber,
                 unnest($casenumbers::VARCHAR[]) AS casenumber,
                 unnest($case_ids::VARCHAR[]) AS case_id,
                 unnest($ledgerrefs::VARCHAR[]) AS ledgerref,
                 unnest($sources::VARCHAR[]) AS source_id,
                 unnest($numbers::VARCHAR[]) AS invoice_number,
                 unnest($statuses::VARCHAR[]) AS status,
                 unnest($sub_statuses::VARCHAR[]) AS sub_status,
                 unnest($currencies::VARCHAR[]) AS currency,
                 unnest($original::VARCHAR[])::DECIMAL(38, 10) AS original_amount,
                 unnest($paid::VARCHAR[])::DECIMAL(38, 10) AS paid_amount,
                 unnest($credited::VARCHAR[])::DECIMAL(38, 10) AS credited_amount,
                 unnest($remaining::VARCHAR[])::DECIMAL(38, 10) AS remaining_amount,
                 unnest($registered::TIMESTAMPTZ[]) AS registered_at,
                 unnest($closed::TIMESTAMPTZ[]) AS closed_at) AS c
    LEFT JOIN (SELECT amili_invoice_id, any_value(unique_source_invoice_id)
                      AS unique_source_invoice_id
               FROM amili.acknowledged_invoices GROUP BY amili_invoice_id) AS a
        ON a.amili_invoice_id = c.ledgerref
"""


_RECORD_CHANGES = f"""
    INSERT INTO amili.case_status_changes
    SELECT n.read_at, n.creditor_idnumber, n.casenumber, n.amili_invoice_id,
        n.unique_source_invoice_id, o.status, n.status, o.sub_status, n.sub_status,
        n.paid_amount, n.credited_amount, n.remaining_amount, n.closed_at
    FROM {_STAGING} AS n
    LEFT JOIN amili.cases AS o
        ON o.creditor_idnumber = n.creditor_idnumber
        AND o.amili_invoice_id IS NOT DISTINCT FROM n.amili_invoice_id
        AND o.casenumber IS NOT DISTINCT FROM n.casenumber
    WHERE o.read_at IS NULL
        OR o.status IS DISTINCT FROM n.status
        OR o.sub_status IS DISTINCT FROM n.sub_status
        OR o.paid_amount IS DISTINCT FROM n.paid_amount
        OR o.credited_amount IS DISTINCT FROM n.credited_amount
        OR o.remaining_amount IS DISTINCT FROM n.remaining_amount
"""


def _case_columns(lines: list[tuple[str, CaseLine]]) -> dict[str, list]:
    """The parameters of :data:`_INSERT_CASES`: one list per column, in line order."""
    def amounts(name: str) -> list[str | None]:
        return [stored_amount(getattr(x, name), f"{name} of case {x.casenumber} (invoice "
                              f"{x.ledgerref}) of creditor {c}") for c, x in lines]

    return {
        "creditors": [c for c, _ in lines],
        "casenumbers": [x.casenumber for _, x in lines],
        "case_ids": [x.case_id for _, x in lines],
        "ledgerrefs": [x.ledgerref for _, x in lines],
        "sources": [x.unique_source_invoice_id for _, x in lines],
        "numbers": [x.invoice_number for _, x in lines],
        "statuses": [x.status for _, x in lines],
        "sub_statuses": [x.sub_status for _, x in lines],
        "currencies": [x.currency for _, x in lines],
        "original": amounts("original_amount"),
        "paid": amounts("paid_amount"),
        "credited": amounts("credited_amount"),
        "remaining": amounts("remaining_amount"),
        "registered": [x.registered_at for _, x in lines],
        "closed": [x.closed_at for _, x in lines],
    }


#: Days Amili may take to open a case for an acknowledged invoice before it counts as missing.
CASE_GRACE_DAYS = 2


def missing_cases(con: duckdb.DuckDBPyConnection, grace_days: float = CASE_GRACE_DAYS
                  ) -> list[dict[str, object]]:
    """Invoices Amili acknowledged more than ``grace_days`` before the cases were last read,
    with no case at Amili. Nothing before the cases were ever read."""
    ensure_readback_schema(con)
    rows = con.execute(
        """SELECT a.unique_source_invoice_id, a.amili_invoice_id, a.acknowledged_at
           FROM amili.acknowledged_invoices AS a,
                (SELECT max(read_at) AS read_at FROM amili.cases) AS r
           WHERE r.read_at IS NOT NULL
             AND a.acknowledged_at <= r.read_at - to_microseconds(
                 CAST($grace * 86400000000 AS BIGINT))
             AND NOT EXISTS (SELECT 1 FROM amili.cases AS c
                             WHERE c.amili_invoice_id = a.amili_invoice_id)
           ORDER BY a.acknowledged_at, a.unique_source_invoice_id""",
        {"grace": grace_days}).fetchall()
    return [{"unique_source_invoice_id": r[0], "amili_invoice_id": r[1],
             "acknowledged_at": r[2]} for r in rows]


def case_divergences(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    """Cases that differ from what Amili acknowledged from us (the same rules as the mart
    ``rpt_handover_status``, the missing cases aside): another original amount or currency
    than our first accepted payload, or a case for an invoice we never sent."""
    ensure_readback_schema(con)
    rows = con.execute(
        """WITH sent AS (
               SELECT source_id, arg_min(amount, partition_date) AS amount,
                      arg_min(currency, partition_date) AS currency
               FROM amili.ledger_objects
               WHERE objectname = 'invoice' AND outcome = 'accepted' GROUP BY source_id)
           SELECT coalesce(a.unique_source_invoice_id, c.unique_source_invoice_id),
                  c.amili_invoice_id, c.creditor_idnumber, s.amount, c.original_amount,
                  CASE WHEN a.amili_invoice_id IS NULL
                           THEN 'case for an invoice we never sent'
                       WHEN c.original_amount <> s.amount THEN 'amount differs'
                       ELSE 'currency differs' END AS reason
           FROM amili.cases AS c
           LEFT JOIN amili.acknowledged_invoices AS a ON a.amili_invoice_id = c.amili_invoice_id
           LEFT JOIN sent AS s ON s.source_id = a.unique_source_invoice_id
           WHERE a.amili_invoice_id IS NULL OR c.original_amount <> s.amount
              OR c.currency <> s.currency
           ORDER BY reason, 1""").fetchall()
    return [{"unique_source_invoice_id": r[0], "amili_invoice_id": r[1],
             "creditor_idnumber": r[2], "acknowledged_amount": r[3], "case_amount": r[4],
             "reason": r[5]} for r in rows]


#: The ERP write-back files' columns, in order (documented in the README).
#: ``more_than_two_decimals``: an amount of the row is not a whole number of øre/cents, as
#: Amili answered it (kept exact, never rounded); the ERP must not book it unchecked.
SETTLEMENT_EXPORT_COLUMNS = (
    "creditor_idnumber", "settlement_id", "remittance_date", "unique_source_invoice_id",
    "amili_invoice_id", "casenumber", "invoice_number", "customerref", "amount", "currency",
    "read_at", "more_than_two_decimals")
CASE_CHANGE_EXPORT_COLUMNS = (
    "creditor_idnumber", "unique_source_invoice_id", "amili_invoice_id", "casenumber",
    "previous_status", "status", "previous_sub_status", "sub_status", "paid_amount",
    "credited_amount", "remaining_amount", "closed_at", "detected_at",
    "more_than_two_decimals")
_CASE_CHANGE_AMOUNTS = ("paid_amount", "credited_amount", "remaining_amount")


def _beyond_cents(column: str) -> str:
    """SQL: whether ``column`` has more than two decimals."""
    return f"coalesce({column} <> round({column}, 2), false)"


def _exported(column: str, ext: str) -> str:
    """SQL of an amount in a file: exact in both; in CSV as plain text with two decimals
    (``1234.50``) unless it has more, then all of them (``0.125``), never rounded."""
    if ext == "parquet":
        return column
    return (f"CASE WHEN {column} = round({column}, 2) THEN {column}::DECIMAL(38, 2)::VARCHAR "
            f"ELSE rtrim({column}::VARCHAR, '0') END AS {column}")

#: The day of a read (its file) is the Oslo calendar day, like the pipeline's partitions.
EXPORT_TIMEZONE = "Europe/Oslo"


@dataclass(frozen=True)
class ExportFiles:
    """The files one day's export wrote, and their rows."""

    settlements_csv: Path
    settlements_parquet: Path
    case_changes_csv: Path
    case_changes_parquet: Path
    settlements: int
    case_changes: int
    settlements_beyond_cents: int = 0
    """Rows flagged ``more_than_two_decimals``: amounts the ERP must not book unchecked."""
    case_changes_beyond_cents: int = 0


def export_day(pipeline_db: str | Path, day: date, out_dir: str | Path) -> ExportFiles:
    """Write the day's ERP write-back files: CSV and Parquet of the settlements read that
    day and of the case status changes detected that day (Oslo days of ``read_at`` /
    ``detected_at``), so each settlement and each change is in exactly one day's files.

    Re-writing a day gives the same files (sorted, no time of writing inside); amounts are
    exact decimals (``DECIMAL(38,10)`` in Parquet; in CSV plain ``1234.50``, or every
    decimal Amili gave, ``0.125``), and a row with an amount of more than two decimals says
    so (``more_than_two_decimals``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = {kind: {ext: out / f"amili-{kind}-{day.isoformat()}.{ext}"
                    for ext in ("csv", "parquet")}
             for kind in ("settlements", "case-changes")}
    def settlements_sql(ext: str) -> str:
        return f"""
        SELECT creditor_idnumber, settlement_id, remittance_date, unique_source_invoice_id,
            amili_invoice_id, casenumber, referencenumber AS invoice_number, customerref,
            {_exported("amount", ext)}, currency, read_at,
            {_beyond_cents("amount")} AS more_than_two_decimals
        FROM amili.settlements
        WHERE (timezone('{EXPORT_TIMEZONE}', read_at))::DATE = DATE '{day.isoformat()}'
        ORDER BY creditor_idnumber, settlement_id"""

    def changes_sql(ext: str) -> str:
        columns = [_exported(c, ext) if c in _CASE_CHANGE_AMOUNTS else c
                   for c in CASE_CHANGE_EXPORT_COLUMNS[:-1]]
        flag = " OR ".join(_beyond_cents(c) for c in _CASE_CHANGE_AMOUNTS)
        return f"""
        SELECT {", ".join(columns)}, {flag} AS more_than_two_decimals
        FROM amili.case_status_changes
        WHERE (timezone('{EXPORT_TIMEZONE}', detected_at))::DATE = DATE '{day.isoformat()}'
        ORDER BY creditor_idnumber, unique_source_invoice_id, casenumber, detected_at"""

    counts = {}
    flagged = {}
    with connect_writer(pipeline_db) as con:
        ensure_readback_schema(con)
        con.execute("SET TimeZone = 'UTC'")  # timestamps in the files are UTC
        for kind, query in (("settlements", settlements_sql), ("case-changes", changes_sql)):
            counts[kind], flagged[kind] = con.execute(
                f"SELECT count(*), count(*) FILTER (more_than_two_decimals) "
                f"FROM ({query('parquet')})").fetchone()
            for ext, options in (("csv", "FORMAT csv, HEADER true"),
                                 ("parquet", "FORMAT parquet")):
                sql = query(ext)
                target = names[kind][ext]
                partial = target.with_suffix(f".{ext}.partial")
                quoted = str(partial).replace("'", "''")
                con.execute(f"COPY ({sql}) TO '{quoted}' ({options})")
                partial.replace(target)  # a reader never sees half a file
    return ExportFiles(
        names["settlements"]["csv"], names["settlements"]["parquet"],
        names["case-changes"]["csv"], names["case-changes"]["parquet"],
        counts["settlements"], counts["case-changes"], flagged["settlements"],
        flagged["case-changes"])


#: The dbt project's copy of :data:`DDL`: dbt's on-run-start hook creates the read-back tables
#: the readback marts read as sources, on a database no read-back has written yet. Written by
#: :func:`dbt_macros` (``python -m amili.pipeline.readback``); a test holds the file to it.
DBT_MACROS_FILE = Path(__file__).resolve().parents[2] / "dbt_project/macros/amili_readback.sql"


def dbt_macros() -> str:
    """The text of :data:`DBT_MACROS_FILE`: one macro creating every table of :data:`DDL`."""
    statements = [textwrap.dedent(s).strip() for s in DDL if "CREATE TABLE" in s]
    body = ";\n".join(statements)
    return ("{#\n  GENERATED from amili/pipeline/readback.py (DDL) by\n"
            "  `python -m amili.pipeline.readback`: do not edit. dbt's on-run-start hook\n"
            "  (dbt_project.yml) creates the read-back tables the readback marts read.\n#}\n"
            f"{{% macro create_amili_readback_tables() %}}\n{body}\n{{% endmacro %}}\n")


if __name__ == "__main__":
    DBT_MACROS_FILE.write_text(dbt_macros())
    print(f"wrote {DBT_MACROS_FILE}")
