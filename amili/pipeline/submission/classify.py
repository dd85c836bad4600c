"""The SQL that reads a day's rows and decides each one's bucket before it reaches Python.

**Per-row work where it is vectorized.** The cheap checks run in DuckDB over the whole day
(:mod:`amili.pipeline.sql_checks`), on the typed objects dbt serializes where the relation
hands them over; only the rows they cannot prove valid (a few per thousand) go through the
Python validation (:mod:`.quarantine`), which words the quarantine reason. Each row reaches
Python with its status decided and its amount in whole øre; what Python does per row is hash
it, sum its amount and cut it into a body (:mod:`.batching`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from amili.contract import ApiContract
from amili.pipeline import sql_checks

#: A row's status, decided in SQL (:func:`_day_rows_sql`): send it (proven valid), held (dbt
#: says it must wait), skipped (acknowledged with this payload), check it in Python, or
#: quarantine it (dbt named a defect of its warehouse rows; the reason is in hold_reason's
#: place), or changed after hand-over (an invoice, payment or action Amili took with another
#: payload: not sent again, see :mod:`.changes`).
_SEND, _HELD, _SKIP, _CHECK, _CHANGED, _QUARANTINE = 0, 1, 2, 3, 4, 5
_RELATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")



@dataclass(frozen=True)
class Relations:
    """Where dbt put the four batch-ready relations (``schema.name`` or ``db.schema.name``)."""

    creditors: str = "main.batch_creditors_json"
    invoices: str = "main.batch_invoices_json"
    payments: str = "main.batch_payments_json"
    actions: str = "main.batch_actions_json"

    @classmethod
    def in_schema(cls, schema: str) -> Relations:
        """The four ``batch_*_json`` relations in ``schema`` (dbt currently builds ``batch``)."""
        return cls(*(f"{schema}.batch_{kind}_json"
                     for kind in ("creditors", "invoices", "payments", "actions")))

    def __post_init__(self) -> None:
        for name in (self.creditors, self.invoices, self.payments, self.actions):
            if not _RELATION_NAME.match(name):
                raise ValueError(f"relation name {name!r} is not a plain dotted identifier")

    def day_sql(self, typed: TypedObjects | None = None) -> str:
        """One day's rows of all four relations, as (kind, objectname, creditor_id, source_id,
        payload, hold_reason, inv_obj, pay_obj, quarantine_reason); ``$day`` is the
        partition day.

        ``inv_obj``/``pay_obj`` are the typed objects the invoice and payment payloads
        serialize, where ``typed`` names their columns (else NULL: checked on the JSON);
        ``quarantine_reason`` is the relation's where it has one (else NULL)."""
        c, i, p, a = (_quote(n) for n in (self.creditors, self.invoices, self.payments,
                                           self.actions))
        typed = typed or TypedObjects()
        cq, iq, pq, aq = ("quarantine_reason" if kind in typed.with_quarantine_reason
                          else "NULL::VARCHAR" for kind in
                          ("creditor", "invoice", "payment", "action"))
        inv_type, pay_type = sql_checks.OBJECT_TYPES["invoice"], sql_checks.OBJECT_TYPES["payment"]
        inv = f'"{typed.invoice}"' if typed.invoice else f"NULL::{inv_type}"
        pay = f'"{typed.payment}"' if typed.payment else f"NULL::{pay_type}"
        return f"""
            SELECT 0 AS kind, 'creditor' AS objectname, creditor_id, creditor_id AS source_id,
                   payload, NULL::VARCHAR AS hold_reason, NULL::{inv_type} AS inv_obj,
                   NULL::{pay_type} AS pay_obj, {cq} AS quarantine_reason
            FROM {c} WHERE partition_date = $day
            UNION ALL
            SELECT 1, 'invoice', creditor_id, invoice_id, payload, NULL, {inv}, NULL, {iq}
            FROM {i} WHERE partition_date = $day
            UNION ALL
            SELECT 2, 'payment', creditor_id, payment_id, payload, hold_reason, NULL, {pay},
                   {pq}
            FROM {p} WHERE partition_date = $day
            UNION ALL
            SELECT 3, 'action', creditor_id, action_id, payload, hold_reason, NULL, NULL, {aq}
            FROM {a} WHERE partition_date = $day
        """

    def typed_objects(self, con: duckdb.DuckDBPyConnection) -> TypedObjects:
        """Which typed object columns the invoice and payment relations hand over, and which
        relations name a quarantine_reason."""
        relations = {"creditor": self.creditors, "invoice": self.invoices,
                     "payment": self.payments, "action": self.actions}
        return TypedObjects(
            invoice=sql_checks.typed_object_column(con, _quote(self.invoices), "invoice"),
            payment=sql_checks.typed_object_column(con, _quote(self.payments), "payment"),
            with_quarantine_reason=frozenset(
                kind for kind, relation in relations.items()
                if "quarantine_reason" in {
                    row[0] for row in con.execute(f"DESCRIBE {_quote(relation)}").fetchall()}
            ),
        )


@dataclass(frozen=True)
class TypedObjects:
    """The columns holding the typed object each payload is ``to_json`` of (None: none), and
    the kinds whose relation has a ``quarantine_reason`` column (dbt's row defects)."""

    invoice: str | None = None
    payment: str | None = None
    with_quarantine_reason: frozenset[str] = frozenset()


def _quote(dotted: str) -> str:
    return ".".join(f'"{part}"' for part in dotted.split("."))


# The day's rows, with what decides their bucket. Only rows the ledger already knows (and
# creditors) get their payload hashed in SQL, for change detection; the others are hashed in
# Python as they are sent (hashlib is several times faster than DuckDB's sha256). Invoices and
# payments that could be sent are checked by amili.pipeline.sql_checks: ``ok`` proves them
# valid, the rest go through the Python validation. Needs the CTE ``day`` before it.
#: What the day's ledger knew of each of the day's rows when phase 2 began, per creditor: the
#: payload hashes Amili acknowledged, the one it took first (``held``: the lowest batchid,
#: since a day's chunk numbers only grow; Amili keeps the first payload of an invoice or
#: payment id and answers any later one DUPLICATE) and those of the batches just re-posted.
#: A snapshot (a temporary table, which DuckDB may spill), so each creditor's query joins
#: only its own rows.
_KNOWN_SQL = """
    CREATE OR REPLACE TEMP TABLE _amili_known AS
    WITH keys AS (SELECT DISTINCT objectname, source_id, creditor_id FROM ({day_sql}))
    SELECT k.creditor_id, m.objectname, m.source_id,
        list(DISTINCT m.payload_hash) FILTER (WHERE m.outcome = 'accepted') AS acked,
        arg_min(m.payload_hash, m.batchid) FILTER (WHERE m.outcome = 'accepted') AS held,
        list(DISTINCT m.payload_hash) FILTER (
            WHERE m.batchid IN (SELECT unnest($reposted::VARCHAR[]))) AS reposted
    FROM amili.ledger_objects AS m JOIN keys AS k USING (objectname, source_id)
    WHERE m.partition_date = $day
    GROUP BY ALL
"""
#: The same for a day the ledger holds no object of (a new day, the usual case): empty,
#: without reading the day's keys for a join with nothing.
_NOTHING_KNOWN_SQL = """
    CREATE OR REPLACE TEMP TABLE _amili_known (creditor_id VARCHAR, objectname VARCHAR,
        source_id VARCHAR, acked VARCHAR[], held VARCHAR, reposted VARCHAR[])
"""


def _classified_sql(
    assumptions: ApiContract, known_where: str, typed: TypedObjects, checks: bool = True
) -> str:
    """The CTEs after ``day``; ``checks=False`` leaves out the value checks (``ok`` is false),
    for the creditor rows, which Python checks anyway: the checks' expression is large, and
    binding it costs time in every query."""
    # the typed object where the relation hands it over, else the payload's JSON, parsed
    (inv_shape, inv_fields), (pay_shape, pay_fields) = (
        (sql_checks.typed_shape_sql(kind, obj), obj) if column else
        (sql_checks.shape_sql(kind, "m.payload"), sql_checks.fields_sql(kind, "m.payload"))
        for kind, obj, column in (("invoice", "m.inv_obj", typed.invoice),
                                  ("payment", "m.pay_obj", typed.payment))
    )
    if not checks:
        inv_shape = pay_shape = "false"
    inv_derived = sql_checks.derived_sql("invoice", "s.inv") if checks else "NULL"
    inv_ok, pay_ok = (
        (sql_checks.clean_sql("invoice", "s.source_id", "s.inv", "s.inv_n", assumptions),
         sql_checks.clean_sql("payment", "s.source_id", "s.pay", "NULL", assumptions))
        if checks else ("false", "false"))
    return f"""
    known AS (SELECT objectname, source_id, acked, held, reposted FROM _amili_known
              WHERE {known_where}),
    hashed AS (
        SELECT d.*, CASE WHEN d.kind = 0 OR k.source_id IS NOT NULL THEN sha256(d.payload)
                    END AS known_hash, k.acked, k.held, k.reposted
        FROM day AS d LEFT JOIN known AS k
          ON k.objectname = d.objectname AND k.source_id = d.source_id
    ),
    marked AS (
        -- a creditor is acknowledged with any payload Amili took (it updates creditors);
        -- an invoice, payment or action only with the one Amili took first: that is the one
        -- it holds, and any other payload of it has changed after hand-over
        SELECT h.* EXCLUDE (acked, held, reposted),
            (CASE WHEN h.kind = 0 THEN coalesce(list_contains(h.acked, h.known_hash), false)
                  ELSE coalesce(h.held = h.known_hash, false) END
             OR ac.source_id IS NOT NULL) AND NOT $force AS acknowledged,
            CASE WHEN h.kind = 0 THEN coalesce(
                     len(h.acked) > 0 AND NOT list_contains(h.acked, h.known_hash), false)
                 ELSE coalesce(h.held <> h.known_hash, false) END AS changed
        FROM hashed AS h
        -- a creditor taken unchanged on any day (amili.acknowledged_creditors) counts as
        -- acknowledged: it heads its invoices' bodies but is not posted alone again
        LEFT JOIN amili.acknowledged_creditors AS ac ON h.kind = 0
             AND ac.source_id = h.source_id AND ac.payload_hash = h.known_hash
        WHERE h.kind = 0 OR NOT coalesce(list_contains(h.reposted, h.known_hash), false)
    ),
    shaped AS (
        SELECT m.*,
            m.kind IN (1, 2) AND m.hold_reason IS NULL AND m.quarantine_reason IS NULL
                AND NOT m.acknowledged AND NOT (m.changed AND NOT $force) AS candidate,
            CASE WHEN m.kind = 1 AND candidate AND {inv_shape} THEN {inv_fields} END AS inv,
            CASE WHEN m.kind = 2 AND candidate AND {pay_shape} THEN {pay_fields} END AS pay
        FROM marked AS m
    ),
    derived AS (
        SELECT s.*, {inv_derived} AS inv_n FROM shaped AS s
    ),
    checked AS (
        SELECT s.* EXCLUDE (inv, pay, inv_n),
            CASE WHEN s.inv IS NOT NULL THEN {inv_ok}
                 WHEN s.pay IS NOT NULL THEN {pay_ok}
                 ELSE false END AS ok,
            coalesce(s.inv.originalInvoiceAmount, s.pay.amount) AS ok_amount,
            coalesce(s.inv.currency, s.pay.currency) AS ok_currency
        FROM derived AS s
    ),
    money AS (
        -- cents: the amount in whole øre, where it is a DECIMAL(18,2) (a proven row's, or a
        -- typed object's, whose payload is its to_json): an integer is the cheapest value to
        -- hand to Python and to sum there. Otherwise json_transform reads the number's text
        -- straight into a DECIMAL (json_extract would go through a double and round it).
        SELECT c.* EXCLUDE (ok_amount, ok_currency),
            CASE WHEN c.ok THEN c.ok_amount
                 ELSE CASE c.kind WHEN 1 THEN c.inv_obj.originalInvoiceAmount
                                  WHEN 2 THEN c.pay_obj.amount END
            END AS exact_amount,
            -- (DECIMAL(18,2) * 100 stays DECIMAL(18,2) and overflows from 10^14 on: those few
            -- take the wide type, which is 20 times slower per row)
            CASE WHEN abs(exact_amount) < 100000000000000::DECIMAL(18, 2)
                 THEN (exact_amount * 100)::BIGINT
                 ELSE (exact_amount::DECIMAL(38, 2) * 100)::BIGINT END AS cents,
            CASE WHEN exact_amount IS NULL AND c.kind IN (1, 2) AND json_valid(c.payload)
                 THEN CASE c.kind
                    WHEN 1 THEN json_transform(c.payload,
                        '{{"originalInvoiceAmount": "DECIMAL(38,6)"}}').originalInvoiceAmount
                    ELSE json_transform(c.payload, '{{"amount": "DECIMAL(38,6)"}}').amount END
            END AS amount,
            CASE WHEN c.ok THEN c.ok_currency
                 WHEN c.kind = 1 AND c.inv_obj IS NOT NULL THEN c.inv_obj.currency
                 WHEN c.kind = 2 AND c.pay_obj IS NOT NULL THEN c.pay_obj.currency
                 WHEN c.kind IN (1, 2) AND json_valid(c.payload)
                 THEN json_extract_string(c.payload, '$.currency') END AS currency
        FROM checked AS c
    )
    """


def _day_rows_sql(
    day_sql: str,
    assumptions: ApiContract,
    typed: TypedObjects,
    where: str,
    known_where: str,
    checks: bool = True,
    creditor_id: bool = True,
) -> str:
    """The day's classified rows (``day_sql``, see :meth:`Relations.day_sql`) matching
    ``where``, in the relations' own order (``known_where`` picks their part of
    ``_amili_known``).

    Columns (few, and cheap to convert: this is fetched once per row): kind, source_id,
    payload (bytes), status (:data:`_SEND`, :data:`_HELD`, :data:`_SKIP`, :data:`_CHECK`,
    :data:`_CHANGED` or :data:`_QUARANTINE`), hold_reason (for a quarantined row: the
    quarantine reason), known_hash, changed, cents (the amount in whole øre)
    and, only where cents cannot say it, amount (a Decimal), currency, creditor_id
    (NULL with ``creditor_id=False``, for a query of one creditor's rows: converting a
    string per row is a measurable share of the busiest thread)."""
    return f"""
        WITH day AS (SELECT * FROM ({day_sql}) WHERE {where}),
        {_classified_sql(assumptions, known_where, typed, checks)}
        SELECT kind, source_id, encode(payload) AS payload,
               CASE WHEN quarantine_reason IS NOT NULL THEN {_QUARANTINE}
                    WHEN hold_reason IS NOT NULL THEN {_HELD}
                    WHEN acknowledged THEN {_SKIP}
                    WHEN changed AND kind > 0 AND NOT $force THEN {_CHANGED}
                    WHEN ok THEN {_SEND} ELSE {_CHECK} END AS status,
               coalesce(quarantine_reason, hold_reason) AS hold_reason, known_hash, changed,
               cents, amount, currency,
               {"creditor_id" if creditor_id else "NULL::VARCHAR"} AS creditor_id
        FROM money"""
