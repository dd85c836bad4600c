"""What the sandbox has received: batches and their answers, creditors, invoices, payments.

SQLite from the standard library, in a file or in memory (``":memory:"``, the default). One
connection is shared by every request thread behind a re-entrant lock; a batch is processed
inside one :meth:`Store.transaction`, so two concurrent posts of the same batch or the same
invoice cannot both create it. Money is stored as TEXT decimals and read back as ``Decimal``,
so no amount ever passes through a float.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    senderid      TEXT NOT NULL,
    batchid       TEXT NOT NULL,
    body_sha256   TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    statuscode    INTEGER NOT NULL,
    object_count  INTEGER NOT NULL,
    response_json TEXT NOT NULL,
    UNIQUE (senderid, batchid)
);
CREATE TABLE IF NOT EXISTS creditors (
    senderid    TEXT NOT NULL,
    idnumber    TEXT NOT NULL,
    fullname    TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    batch_id    INTEGER NOT NULL,
    raw_json    TEXT NOT NULL,
    PRIMARY KEY (senderid, idnumber)
);
CREATE TABLE IF NOT EXISTS invoices (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    ledgerref                TEXT NOT NULL UNIQUE,
    senderid                 TEXT NOT NULL,
    creditor_id              TEXT NOT NULL,
    unique_source_invoice_id TEXT NOT NULL,
    invoice_number           TEXT NOT NULL,
    invoice_type             TEXT NOT NULL,
    original_amount          TEXT NOT NULL,
    claims_amount            TEXT NOT NULL,
    currency                 TEXT NOT NULL,
    invoice_date             TEXT NOT NULL,
    due_date                 TEXT NOT NULL,
    debtor_name              TEXT,
    customer_number          TEXT,
    kid                      TEXT,
    received_at              TEXT NOT NULL,
    batch_id                 INTEGER NOT NULL,
    raw_json                 TEXT NOT NULL,
    UNIQUE (senderid, unique_source_invoice_id)
);
CREATE INDEX IF NOT EXISTS invoices_sender ON invoices (senderid, creditor_id);
CREATE TABLE IF NOT EXISTS payments (
    settlementid             INTEGER PRIMARY KEY AUTOINCREMENT,
    ledgerref                TEXT NOT NULL UNIQUE,
    senderid                 TEXT NOT NULL,
    invoice_ledgerref        TEXT NOT NULL,
    unique_source_payment_id TEXT NOT NULL,
    amount                   TEXT NOT NULL,
    currency                 TEXT NOT NULL,
    payment_date             TEXT NOT NULL,
    received_at              TEXT NOT NULL,
    batch_id                 INTEGER NOT NULL,
    raw_json                 TEXT NOT NULL,
    UNIQUE (senderid, unique_source_payment_id)
);
CREATE INDEX IF NOT EXISTS payments_invoice ON payments (invoice_ledgerref);
CREATE TABLE IF NOT EXISTS actions (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    ledgerref         TEXT NOT NULL UNIQUE,
    senderid          TEXT NOT NULL,
    creditorid        TEXT NOT NULL,
    invoice_ledgerref TEXT NOT NULL,
    actiontype        INTEGER NOT NULL,
    duedate           TEXT,
    subject           TEXT,
    message           TEXT,
    received_at       TEXT NOT NULL,
    batch_id          INTEGER NOT NULL,
    raw_json          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS case_events (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    invoice_ledgerref TEXT NOT NULL UNIQUE,   -- at most one fate per case
    fate              TEXT NOT NULL,          -- collected | credited | closed
    amount            TEXT NOT NULL,          -- collected or credited (0 for closed)
    happened_at       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settlements (
    settlementid      INTEGER PRIMARY KEY AUTOINCREMENT,
    senderid          TEXT NOT NULL,
    creditor_id       TEXT NOT NULL,
    invoice_ledgerref TEXT NOT NULL,
    event_id          INTEGER NOT NULL UNIQUE,
    amount            TEXT NOT NULL,
    currency          TEXT NOT NULL,
    remittancedate    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS settlements_creditor ON settlements (senderid, creditor_id);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

_TABLES = ("batches", "creditors", "invoices", "payments", "actions", "case_events",
           "settlements", "meta", "counters")


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batch already answered: enough to replay the answer or detect a changed body."""

    id: int
    body_sha256: str
    statuscode: int
    response_json: bytes


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    """One stored invoice, i.e. one case of the GET answer."""

    id: int
    ledgerref: str
    senderid: str
    creditor_id: str
    unique_source_invoice_id: str
    invoice_number: str
    invoice_type: str
    original_amount: Decimal
    claims_amount: Decimal
    currency: str
    invoice_date: str
    due_date: str
    debtor_name: str | None
    customer_number: str | None
    kid: str | None
    received_at: str


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """One stored payment, i.e. one settlement of the GET answer."""

    settlementid: int
    ledgerref: str
    senderid: str
    invoice_ledgerref: str
    unique_source_payment_id: str
    amount: Decimal
    currency: str
    payment_date: str
    received_at: str


def _invoice(row: sqlite3.Row) -> InvoiceRow:
    return InvoiceRow(
        id=row["id"],
        ledgerref=row["ledgerref"],
        senderid=row["senderid"],
        creditor_id=row["creditor_id"],
        unique_source_invoice_id=row["unique_source_invoice_id"],
        invoice_number=row["invoice_number"],
        invoice_type=row["invoice_type"],
        original_amount=Decimal(row["original_amount"]),
        claims_amount=Decimal(row["claims_amount"]),
        currency=row["currency"],
        invoice_date=row["invoice_date"],
        due_date=row["due_date"],
        debtor_name=row["debtor_name"],
        customer_number=row["customer_number"],
        kid=row["kid"],
        received_at=row["received_at"],
    )


def _payment(row: sqlite3.Row) -> PaymentRow:
    return PaymentRow(
        settlementid=row["settlementid"],
        ledgerref=row["ledgerref"],
        senderid=row["senderid"],
        invoice_ledgerref=row["invoice_ledgerref"],
        unique_source_payment_id=row["unique_source_payment_id"],
        amount=Decimal(row["amount"]),
        currency=row["currency"],
        payment_date=row["payment_date"],
        received_at=row["received_at"],
    )


_INVOICE_INSERT = """
INSERT INTO invoices (ledgerref, senderid, creditor_id, unique_source_invoice_id,
    invoice_number, invoice_type, original_amount, claims_amount, currency, invoice_date,
    due_date, debtor_name, customer_number, kid, received_at, batch_id, raw_json)
VALUES (:ledgerref, :senderid, :creditor_id, :unique_source_invoice_id, :invoice_number,
    :invoice_type, :original_amount, :claims_amount, :currency, :invoice_date, :due_date,
    :debtor_name, :customer_number, :kid, :received_at, :batch_id, :raw_json)
"""

_PAYMENT_INSERT = """
INSERT INTO payments (ledgerref, senderid, invoice_ledgerref, unique_source_payment_id, amount,
    currency, payment_date, received_at, batch_id, raw_json)
VALUES (:ledgerref, :senderid, :invoice_ledgerref, :unique_source_payment_id, :amount,
    :currency, :payment_date, :received_at, :batch_id, :raw_json)
"""

_ACTION_INSERT = """
INSERT INTO actions (ledgerref, senderid, creditorid, invoice_ledgerref, actiontype, duedate,
    subject, message, received_at, batch_id, raw_json)
VALUES (:ledgerref, :senderid, :creditorid, :invoice_ledgerref, :actiontype, :duedate,
    :subject, :message, :received_at, :batch_id, :raw_json)
"""


class Store:
    """The sandbox's memory. Every public method is safe to call from any thread."""

    def __init__(self, db_path: str = ":memory:") -> None:
        self.db_path = db_path
        self._lock = threading.RLock()
        self._depth = 0
        self._conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        if db_path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock and one SQLite transaction; nested calls join the outer one."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    def _filtered(
        self, select: str, filters: dict[str, Any], order_by: str
    ) -> list[sqlite3.Row]:
        """``select`` restricted by ``column = value`` for every filter that is not None."""
        given = {column: value for column, value in filters.items() if value is not None}
        where = "".join(f" AND {column} = ?" for column in given)
        return self._query(f"{select} WHERE 1 = 1{where} ORDER BY {order_by}",
                           list(given.values()))

    # ---- batches ---------------------------------------------------------------------------

    def get_batch(self, senderid: str, batchid: str) -> StoredBatch | None:
        row = self._one(
            "SELECT id, body_sha256, statuscode, response_json FROM batches "
            "WHERE senderid = ? AND batchid = ?",
            (senderid, batchid),
        )
        if row is None:
            return None
        return StoredBatch(
            row["id"], row["body_sha256"], row["statuscode"], row["response_json"].encode()
        )

    def add_batch(
        self, senderid: str, batchid: str, body_sha256: str, received_at: str, object_count: int
    ) -> int:
        """Register a batch before its objects (they refer to its id); answer it later."""
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO batches (senderid, batchid, body_sha256, received_at, statuscode, "
                "object_count, response_json) VALUES (?, ?, ?, ?, -1, ?, '')",
                (senderid, batchid, body_sha256, received_at, object_count),
            )
            return int(cursor.lastrowid or 0)

    def set_batch_answer(self, batch_id: int, statuscode: int, response_json: bytes) -> None:
        """Keep the answer exactly as sent, so a re-post can be answered with the same bytes."""
        with self._lock:
            self._conn.execute(
                "UPDATE batches SET statuscode = ?, response_json = ? WHERE id = ?",
                (statuscode, response_json.decode(), batch_id),
            )

    # ---- creditors -------------------------------------------------------------------------

    def creditor_exists(self, senderid: str, idnumber: str) -> bool:
        return self._one(
            "SELECT 1 FROM creditors WHERE senderid = ? AND idnumber = ?", (senderid, idnumber)
        ) is not None

    def upsert_creditor(
        self, senderid: str, idnumber: str, fullname: str | None, raw_json: str, now: str,
        batch_id: int,
    ) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO creditors (senderid, idnumber, fullname, created_at, updated_at, "
                "batch_id, raw_json) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (senderid, idnumber) DO UPDATE SET fullname = excluded.fullname, "
                "updated_at = excluded.updated_at, batch_id = excluded.batch_id, "
                "raw_json = excluded.raw_json",
                (senderid, idnumber, fullname, now, now, batch_id, raw_json),
            )

    def creditors(self, senderid: str | None, idnumber: str | None = None) -> list[dict[str, Any]]:
        """Stored creditors (their raw JSON text plus keys), ordered by idnumber."""
        rows = self._filtered(
            "SELECT senderid, idnumber, raw_json FROM creditors",
            {"senderid": senderid, "idnumber": idnumber}, "idnumber",
        )
        return [dict(row) for row in rows]

    # ---- invoices --------------------------------------------------------------------------

    def invoice_by_source_id(self, senderid: str, unique_source_invoice_id: str) -> str | None:
        row = self._one(
            "SELECT ledgerref FROM invoices WHERE senderid = ? AND unique_source_invoice_id = ?",
            (senderid, unique_source_invoice_id),
        )
        return None if row is None else row["ledgerref"]

    def invoice(self, senderid: str | None, ledgerref: str) -> InvoiceRow | None:
        if senderid is None:
            row = self._one("SELECT * FROM invoices WHERE ledgerref = ?", (ledgerref,))
        else:
            row = self._one(
                "SELECT * FROM invoices WHERE ledgerref = ? AND senderid = ?",
                (ledgerref, senderid),
            )
        return None if row is None else _invoice(row)

    def add_invoices(self, rows: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            self._conn.executemany(_INVOICE_INSERT, list(rows))

    def invoices(
        self,
        senderid: str | None,
        creditor_id: str | None = None,
        customer_number: str | None = None,
        ledgerref: str | None = None,
    ) -> list[InvoiceRow]:
        """Stored invoices matching every given filter, in the order they were received."""
        rows = self._filtered(
            "SELECT * FROM invoices",
            {"senderid": senderid, "creditor_id": creditor_id,
             "customer_number": customer_number, "ledgerref": ledgerref},
            "id",
        )
        return [_invoice(row) for row in rows]

    # ---- payments --------------------------------------------------------------------------

    def payment_by_source_id(self, senderid: str, unique_source_payment_id: str) -> str | None:
        row = self._one(
            "SELECT ledgerref FROM payments WHERE senderid = ? AND unique_source_payment_id = ?",
            (senderid, unique_source_payment_id),
        )
        return None if row is None else row["ledgerref"]

    def paid_amount(self, invoice_ledgerref: str) -> Decimal:
        """Sum of the stored payments of one invoice, exactly."""
        rows = self._query(
            "SELECT amount FROM payments WHERE invoice_ledgerref = ?", (invoice_ledgerref,)
        )
        return sum((Decimal(row["amount"]) for row in rows), Decimal(0))

    def add_payment(self, row: dict[str, Any]) -> int:
        """Store one payment; returns its settlementid."""
        with self._lock:
            cursor = self._conn.execute(_PAYMENT_INSERT, row)
            return int(cursor.lastrowid or 0)

    def payments(
        self, senderid: str | None, after_settlementid: int = 0
    ) -> list[PaymentRow]:
        """Stored payments of a sender with settlementid above the cursor, oldest first."""
        sql = "SELECT * FROM payments WHERE settlementid > ?"
        params: list[Any] = [after_settlementid]
        if senderid is not None:
            sql += " AND senderid = ?"
            params.append(senderid)
        return [_payment(row) for row in self._query(sql + " ORDER BY settlementid", params)]

    def paid_by_invoice(self, senderid: str | None) -> dict[str, tuple[Decimal, str]]:
        """Per invoice ledgerref: (sum paid, date-time of the last payment received)."""
        totals: dict[str, tuple[Decimal, str]] = {}
        for payment in self.payments(senderid):
            paid, _ = totals.get(payment.invoice_ledgerref, (Decimal(0), ""))
            totals[payment.invoice_ledgerref] = (paid + payment.amount, payment.received_at)
        return totals

    def direct_paid(self) -> dict[str, Decimal]:
        """Sum of the stored (direct) payments per invoice ledgerref, of every sender."""
        totals: dict[str, Decimal] = {}
        for row in self._query("SELECT invoice_ledgerref, amount FROM payments"):
            ref = row["invoice_ledgerref"]
            totals[ref] = totals.get(ref, Decimal(0)) + Decimal(row["amount"])
        return totals

    # ---- case lifecycle and settlements ----------------------------------------------------

    def invoices_without_fate(self) -> list[InvoiceRow]:
        """Invoices whose case has no fate stored yet, in the order they were received."""
        rows = self._query(
            "SELECT * FROM invoices AS i WHERE NOT EXISTS (SELECT 1 FROM case_events AS e "
            "WHERE e.invoice_ledgerref = i.ledgerref) ORDER BY id")
        return [_invoice(row) for row in rows]

    def add_case_event(self, invoice_ledgerref: str, fate: str, amount: Decimal,
                       happened_at: str) -> int:
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO case_events (invoice_ledgerref, fate, amount, happened_at) "
                "VALUES (?, ?, ?, ?)", (invoice_ledgerref, fate, format(amount, "f"),
                                        happened_at))
            return int(cursor.lastrowid or 0)

    def fate_amount(self, invoice_ledgerref: str) -> Decimal:
        """What a stored fate took off a case (collected or credited; 0 without one)."""
        row = self._one("SELECT amount FROM case_events WHERE invoice_ledgerref = ?",
                        (invoice_ledgerref,))
        return Decimal(0) if row is None else Decimal(row["amount"])

    def add_settlement(self, row: dict[str, Any]) -> int:
        """Store one settlement; returns its settlementid (the next of one sequence)."""
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO settlements (senderid, creditor_id, invoice_ledgerref, event_id, "
                "amount, currency, remittancedate) VALUES (:senderid, :creditor_id, "
                ":invoice_ledgerref, :event_id, :amount, :currency, :remittancedate)", row)
            return int(cursor.lastrowid or 0)

    def case_events(self, senderid: str | None) -> dict[str, tuple[str, Decimal, str]]:
        """Per invoice ledgerref: (fate, amount, when) of the fates stored for a sender."""
        sql = ("SELECT e.invoice_ledgerref, e.fate, e.amount, e.happened_at FROM case_events "
               "AS e JOIN invoices AS i ON i.ledgerref = e.invoice_ledgerref")
        params: list[Any] = []
        if senderid is not None:
            sql += " WHERE i.senderid = ?"
            params.append(senderid)
        return {row[0]: (row[1], Decimal(row[2]), row[3]) for row in self._query(sql, params)}

    def settlement_rows(
        self, senderid: str | None, creditor_id: str | None, after: int,
        remittancedate: str | None, ledgerrefs: set[str] | None, limit: int,
    ) -> list[sqlite3.Row]:
        """Settlements with ids above ``after``, lowest first, at most ``limit``."""
        sql = "SELECT * FROM settlements WHERE settlementid > ?"
        params: list[Any] = [after]
        for column, value in (("senderid", senderid), ("creditor_id", creditor_id),
                              ("remittancedate", remittancedate)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        rows = self._query(sql + " ORDER BY settlementid", params)
        if ledgerrefs is not None:
            rows = [row for row in rows if row["invoice_ledgerref"] in ledgerrefs]
        return rows[:limit]

    def last_settlement_ids(self, senderid: str | None) -> dict[str, int]:
        """The highest settlementid per creditor of a sender."""
        sql = "SELECT creditor_id, max(settlementid) FROM settlements"
        params: list[Any] = []
        if senderid is not None:
            sql += " WHERE senderid = ?"
            params.append(senderid)
        return {row[0]: row[1] for row in self._query(sql + " GROUP BY creditor_id", params)}

    def meta(self, name: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE name = ?", (name,))
        return None if row is None else row["value"]

    def set_meta(self, name: str, value: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                "SET value = excluded.value", (name, value))

    # ---- actions ---------------------------------------------------------------------------

    def add_action(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(_ACTION_INSERT, row)

    # ---- counters and housekeeping ---------------------------------------------------------

    def bump(self, name: str, amount: int = 1) -> None:
        if amount == 0:
            return
        with self._lock:
            self._conn.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (name, amount),
            )

    def counters(self) -> dict[str, int]:
        return {row["name"]: row["value"] for row in self._query("SELECT * FROM counters")}

    def counts(self) -> dict[str, int]:
        """Rows per stored object table."""
        with self._lock:
            return {
                table: self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("batches", "creditors", "invoices", "payments", "actions",
                              "case_events", "settlements")
            }

    def reset(self) -> None:
        """Forget everything, ids included (settlementids and case numbers start again)."""
        with self.transaction():
            for table in _TABLES:
                self._conn.execute(f"DELETE FROM {table}")
            self._conn.execute("DELETE FROM sqlite_sequence")
