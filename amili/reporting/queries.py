"""The dashboard's and the sign-off report's queries, over the reporting snapshot only.

Every amount is summed as DECIMAL and turned into text by SQL (:func:`nok_sql`), so no
krone ever passes through a float on its way to the page. Queries select the columns they
show by name, and find the reconciliation buckets from the mart's columns, so a bucket added
to ``rpt_reconciliation_daily`` later (``carried_forward``...) shows up without breaking
anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

#: Buckets in the order they are shown; columns ``<bucket>_count`` and ``<bucket>_amount``.
KNOWN_BUCKETS: tuple[str, ...] = (
    "eligible", "quarantined", "held", "skipped_unchanged", "carried_forward",
    "changed_after_handover", "sent",
    "accepted", "rejected", "unconfirmed", "outstanding", "unaccounted",
)
#: Kinds of objects that carry money (creditor and action objects have no amount).
MONEY_KINDS = ("invoice", "payment")
NBSP = "\u00a0"

Row = dict[str, Any]


def nok_sql(expr: str) -> str:
    """SQL text that renders a DECIMAL amount exactly as ``12 345 678,90`` (no double).

    DuckDB's ``format('{:,.2f}', x)`` goes through a double and loses øre on large sums,
    so the whole kroner and the øre are printed as integers. Thousands are separated by a
    non-breaking space and the decimal mark is a comma, as Norwegian finance writes it.
    """
    x = f"(({expr})::DECIMAL(38, 2))"
    return (
        f"(CASE WHEN {x} < 0 THEN '-' ELSE '' END"
        f" || replace(format('{{:,}}', trunc(abs({x}))::HUGEINT), ',', '{NBSP}')"
        f" || ',' || lpad(((abs({x}) * 100) % 100)::INTEGER::VARCHAR, 2, '0'))"
    )


def parse_nok(text: str) -> Decimal:
    """The inverse of :func:`nok_sql`, for tests and for reading a figure back."""
    cleaned = text.replace(NBSP, "").replace(" ", "").replace("kr", "").replace(",", ".")
    return Decimal(cleaned)


@contextmanager
def connect_snapshot(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the snapshot that cannot reach any other file.

    ``enable_external_access = false`` (locked) stops ``ATTACH``, ``COPY ... TO``,
    ``read_csv`` and extension installs, so an ad-hoc query can neither write anywhere nor
    open the pipeline's own database and hold its lock. Opened per query: the next query
    after a publish sees the new file, a running one keeps the old.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no reporting snapshot at {path}: materialize the reporting_snapshot asset "
            "(the daily job does) or run `amili demo` first"
        )
    con = duckdb.connect(
        str(path), read_only=True,
        config={"enable_external_access": False, "lock_configuration": True},
    )
    try:
        yield con
    finally:
        con.close()


@dataclass(frozen=True)
class Filters:
    """What the analyst chose: days ``[start, end]`` (both included) and a creditor."""

    start: date
    end: date
    creditor: str | None = None

    @classmethod
    def last_days(cls, days: int = 30, *, today: date | None = None,
                  creditor: str | None = None) -> Filters:
        last = (today or date.today()) - timedelta(days=1)
        return cls(last - timedelta(days=days - 1), last, creditor)

    def where(self, creditor_column: str = "creditor_id", day: str = "partition_date") -> str:
        return (f"{day} >= $start AND {day} < $end"
                f" AND ($creditor IS NULL OR {creditor_column} = $creditor)")

    @property
    def params(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end + timedelta(days=1),
                "creditor": self.creditor}


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
         ) -> list[Row]:
    cur = con.execute(sql, params or {})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, values, strict=True)) for values in cur.fetchall()]


def table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, name = qualified.split(".")
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = $s AND table_name = $n",
        {"s": schema, "n": name},
    ).fetchone()[0])


def buckets(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The mart's buckets: known ones in order, then any new ``x_count``/``x_amount`` pair."""
    columns = {name for (name,) in con.execute(
        """SELECT column_name FROM duckdb_columns()
           WHERE schema_name = 'marts' AND table_name = 'rpt_reconciliation_daily'"""
    ).fetchall()}
    found = [b for b in KNOWN_BUCKETS if f"{b}_count" in columns and f"{b}_amount" in columns]
    extra = sorted(c[: -len("_count")] for c in columns if c.endswith("_count")
                   and c[: -len("_count")] not in KNOWN_BUCKETS
                   and f"{c[: -len('_count')]}_amount" in columns)
    return found + extra


def creditors(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [c for (c,) in con.execute(
        """SELECT DISTINCT creditor_id FROM marts.rpt_reconciliation_daily
           WHERE creditor_id IS NOT NULL ORDER BY 1"""
    ).fetchall()]


def snapshot_info(con: duckdb.DuckDBPyConnection) -> Row:
    found = rows(con, """SELECT strftime(published_at, '%Y-%m-%d %H:%M:%S %Z') AS published_at,
                                window_start, window_end FROM report.snapshot_info""")
    return found[0] if found else {}


def stale_days(con: duckdb.DuckDBPyConnection) -> list[date]:
    """Days whose marts were not rebuilt after their latest submission (``report.day_status``,
    see amili/reporting/snapshot.py): their figures are missing or out of date. Empty for a
    snapshot published before that table existed."""
    if not table_exists(con, "report.day_status"):
        return []
    return [day for (day,) in con.execute(
        "SELECT partition_date FROM report.day_status WHERE status = 'stale' ORDER BY 1"
    ).fetchall()]


def day_range(con: duckdb.DuckDBPyConnection) -> tuple[date | None, date | None]:
    first, last = con.execute(
        "SELECT min(partition_date), max(partition_date) FROM marts.rpt_reconciliation_daily"
    ).fetchone()
    return first, last


def headline(con: duckdb.DuckDBPyConnection, filters: Filters, *, kind: str = "invoice",
             currency: str = "NOK") -> dict[str, Any]:
    """Totals of one kind in one currency per bucket: ``{bucket}_count`` (int) and
    ``{bucket}_amount`` (text), plus ``unbalanced_rows`` and ``rejection_rate`` (text, %)
    over every kind of object."""
    names = buckets(con)
    parts = ", ".join(
        f"coalesce(sum({b}_count), 0)::BIGINT AS {b}_count, "
        f"{nok_sql(f'coalesce(sum({b}_amount), 0)')} AS {b}_amount" for b in names
    )
    [totals] = rows(con, f"""
        SELECT {parts} FROM marts.rpt_reconciliation_daily
        WHERE {filters.where()} AND objectname = $kind AND currency = $currency""",
        {**filters.params, "kind": kind, "currency": currency})
    [overall] = rows(con, f"""
        SELECT count(*) FILTER (WHERE NOT balances)::BIGINT AS unbalanced_rows,
               count(*)::BIGINT AS mart_rows,
               coalesce(sum(sent_count), 0)::BIGINT AS sent_objects,
               coalesce(sum(rejected_count), 0)::BIGINT AS rejected_objects,
               CASE WHEN coalesce(sum(sent_count), 0) = 0 THEN '0,0'
                    ELSE replace(round(sum(rejected_count)::DECIMAL(38, 6) * 100
                                       / sum(sent_count), 1)::VARCHAR, '.', ',') END
                   AS rejection_rate
        FROM marts.rpt_reconciliation_daily WHERE {filters.where()}""", filters.params)
    return {**totals, **overall}


def daily_reconciliation(con: duckdb.DuckDBPyConnection, filters: Filters) -> list[Row]:
    """Per day, creditor, kind and currency: every bucket's count and amount, and the
    balance check's verdict (the mart's ``balances``)."""
    columns = []
    for b in buckets(con):
        columns.append(f"{b}_count AS {b}")
        columns.append(
            f"CASE WHEN objectname IN {MONEY_KINDS} THEN {nok_sql(f'{b}_amount')} ELSE '' END"
            f" AS {b}_amount")
    return rows(con, f"""
        SELECT partition_date AS day, coalesce(creditor_id, '?') AS creditor,
               objectname AS kind, coalesce(currency, '') AS currency, {", ".join(columns)},
               CASE WHEN balances THEN 'balances' ELSE 'DOES NOT BALANCE' END AS balance_check
        FROM marts.rpt_reconciliation_daily WHERE {filters.where()}
        ORDER BY partition_date DESC, creditor_id,
                 list_position(['creditor', 'invoice', 'payment', 'action'], objectname),
                 currency""", filters.params)


def daily_trend(con: duckdb.DuckDBPyConnection, filters: Filters, *, currency: str = "NOK"
                ) -> list[Row]:
    """Per day: accepted and rejected invoice amounts (Decimal, for charts; ``*_text`` for
    labels) and the rejection rate of all objects sent (Decimal percent)."""
    return rows(con, f"""
        SELECT partition_date AS day,
               coalesce(sum(accepted_amount) FILTER (WHERE objectname = 'invoice'
                        AND currency = $currency), 0)::DECIMAL(38, 2) AS accepted_amount,
               coalesce(sum(rejected_amount) FILTER (WHERE objectname = 'invoice'
                        AND currency = $currency), 0)::DECIMAL(38, 2) AS rejected_amount,
               sum(sent_count)::BIGINT AS sent, sum(rejected_count)::BIGINT AS rejected,
               (CASE WHEN sum(sent_count) = 0 THEN 0
                     ELSE round(sum(rejected_count)::DECIMAL(38, 6) * 100 / sum(sent_count), 1)
                END)::DECIMAL(9, 1) AS rejection_rate
        FROM marts.rpt_reconciliation_daily WHERE {filters.where()}
        GROUP BY partition_date ORDER BY partition_date""",
        {**filters.params, "currency": currency})


def creditor_amounts(con: duckdb.DuckDBPyConnection, filters: Filters, *,
                     currency: str = "NOK") -> list[Row]:
    """Per creditor: accepted and rejected invoice amounts (Decimal), for a chart."""
    return rows(con, f"""
        SELECT coalesce(creditor_id, '?') AS creditor,
               coalesce(sum(accepted_amount), 0)::DECIMAL(38, 2) AS accepted_amount,
               coalesce(sum(rejected_amount), 0)::DECIMAL(38, 2) AS rejected_amount
        FROM marts.rpt_reconciliation_daily
        WHERE {filters.where()} AND objectname = 'invoice' AND currency = $currency
        GROUP BY ALL ORDER BY creditor""", {**filters.params, "currency": currency})


def top_reasons(con: duckdb.DuckDBPyConnection, filters: Filters, limit: int = 10
                ) -> list[Row]:
    """The most frequent rejection and quarantine reasons, with objects and amount."""
    return rows(con, f"""
        SELECT kind, reason, count(*)::BIGINT AS objects,
               {nok_sql("coalesce(sum(amount) FILTER (WHERE currency = 'NOK'), 0)")}
                   AS amount_nok,
               min(message) AS example_message
        FROM report.problems WHERE {filters.where()}
        GROUP BY kind, reason_code, reason
        ORDER BY objects DESC, kind, reason LIMIT {int(limit)}""",
        filters.params)


def held_columns_sql(con: duckdb.DuckDBPyConnection) -> str:
    """``amili_holds`` and ``difference`` of ``report.problems`` as text (empty where none;
    both empty in a snapshot published before problems had them)."""
    columns = {name for (name,) in con.execute(
        """SELECT column_name FROM duckdb_columns()
           WHERE schema_name = 'report' AND table_name = 'problems'""").fetchall()}
    if "acknowledged_amount" not in columns:
        return "'' AS amili_holds, '' AS difference"
    return (f"CASE WHEN acknowledged_amount IS NULL THEN '' "
            f"ELSE {nok_sql('acknowledged_amount')} END AS amili_holds, "
            f"CASE WHEN amount_difference IS NULL THEN '' "
            f"ELSE {nok_sql('amount_difference')} END AS difference")


def reason_objects(con: duckdb.DuckDBPyConnection, filters: Filters, kind: str, reason: str,
                   search: str = "", limit: int = 1000) -> list[Row]:
    """The invoices, payments... behind one reason: ids, batch, ledgerref, full message (and
    for a change after hand-over the amount Amili holds and the difference)."""
    return rows(con, f"""
        SELECT partition_date AS day, creditor_id AS creditor, objectname AS kind,
               source_id, invoice_id, batchid, ledgerref,
               CASE WHEN amount IS NULL THEN '' ELSE {nok_sql("amount")} END AS amount,
               coalesce(currency, '') AS currency, {held_columns_sql(con)}, message
        FROM report.problems
        WHERE {filters.where()} AND kind = $kind AND reason = $reason
          AND ($search = '' OR contains(lower(concat_ws(' ', source_id, invoice_id, batchid,
                                                         ledgerref, message)), lower($search)))
        ORDER BY partition_date DESC, objectname, source_id LIMIT {int(limit)}""",
        {**filters.params, "kind": kind, "reason": reason, "search": search.strip()})


def unanswered_batches(con: duckdb.DuckDBPyConnection, filters: Filters) -> list[Row]:
    """Batches sent (or prepared) that have no definite answer from Amili."""
    return rows(con, f"""
        SELECT partition_date AS day, batchid, creditor_id AS creditor, state, http_status,
               attempts, object_count, in_doubt, coalesce(error, '') AS error,
               strftime(prepared_at, '%Y-%m-%d %H:%M:%S') AS prepared_at
        FROM marts.rpt_unanswered_batches WHERE {filters.where()}
        ORDER BY partition_date DESC, batchid""", filters.params)


def held_payments(con: duckdb.DuckDBPyConnection, filters: Filters) -> list[Row]:
    """Payments still held back because their invoice has no Amili id yet."""
    return rows(con, f"""
        SELECT partition_date AS day, payment_id, invoice_id, creditor_id AS creditor,
               {nok_sql("amount")} AS amount, currency, hold_reason,
               invoice_now_acknowledged
        FROM report.held_payments WHERE {filters.where()} AND still_held AND latest_hold
        ORDER BY partition_date DESC, payment_id""", filters.params)


def run_sql(path: str | Path, sql: str, limit: int = 1000) -> tuple[list[str], list[Row]]:
    """An analyst's own query on the snapshot (read-only, no other file reachable).

    Values are returned as text where they are not plain ints or strings, so a DECIMAL shows
    exactly as DuckDB holds it.
    """
    with connect_snapshot(path) as con:
        cur = con.execute(sql)
        if cur.description is None:
            return [], []
        names = [d[0] for d in cur.description]
        out = [
            {n: v if v is None or isinstance(v, (int, str, bool)) else str(v)
             for n, v in zip(names, values, strict=True)}
            for values in cur.fetchmany(limit)
        ]
    return names, out


def source_rows(con: duckdb.DuckDBPyConnection, filters: Filters) -> list[Row]:
    """Per warehouse table, bucket and currency: the rows the extract read and their amount
    as the warehouse has it (``marts.rpt_source_reconciliation``; none in an older
    snapshot)."""
    if not table_exists(con, "marts.rpt_source_reconciliation"):
        return []
    return rows(con, f"""
        SELECT source_table AS "table", bucket, coalesce(currency, '') AS currency,
               sum(row_count)::BIGINT AS "rows", sum(amount) AS amount
        FROM marts.rpt_source_reconciliation WHERE {filters.where(creditor_column="NULL")}
        GROUP BY ALL ORDER BY "table", bucket, currency""", filters.params)
