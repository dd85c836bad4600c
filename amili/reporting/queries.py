"""The dashboard's and the sign-off report's queries, over the reporting snapshot only.

Amounts come back as exact Decimals (DuckDB's DECIMAL), counts as ints, days as dates and
moments as timestamps: nothing is turned into text here, so exports carry numbers and
tables sort as numbers; :mod:`amili.reporting.display` formats them where they are shown.
Amounts are never added across currencies: every query that sums an amount groups by
currency (or takes one currency). Queries select the columns they show by name, and find
the reconciliation buckets from the mart's columns, so a bucket added to
``rpt_reconciliation_daily`` later shows up without breaking anything.
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
#: The column of ``report.problems`` that groups rejections and quarantines into reasons: the
#: message of the row's reason code (one per code, see ``docs/reason-codes.md``), or, for a
#: text no code knows, that text with its values masked.
REASON_KEY = "reason"

Row = dict[str, Any]

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
    """Our creditor ids with a reconciliation; none in a snapshot of the read-back alone."""
    if not table_exists(con, "marts.rpt_reconciliation_daily"):
        return []
    return [c for (c,) in con.execute(
        """SELECT DISTINCT creditor_id FROM marts.rpt_reconciliation_daily
           WHERE creditor_id IS NOT NULL ORDER BY 1"""
    ).fetchall()]


def snapshot_info(con: duckdb.DuckDBPyConnection) -> Row:
    """When the snapshot was published (a timestamp) and the window of the run."""
    found = rows(con, "SELECT published_at, window_start, window_end FROM report.snapshot_info")
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
    """The first and last day reconciled (None, None: no daily marts in the snapshot)."""
    if not table_exists(con, "marts.rpt_reconciliation_daily"):
        return None, None
    first, last = con.execute(
        "SELECT min(partition_date), max(partition_date) FROM marts.rpt_reconciliation_daily"
    ).fetchone()
    return first, last


def creditor_names(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Creditor id -> name (``report.creditors``; empty in a snapshot without it)."""
    if not table_exists(con, "report.creditors"):
        return {}
    return dict(con.execute(
        "SELECT creditor_id, creditor_name FROM report.creditors WHERE creditor_name IS NOT NULL"
    ).fetchall())


def creditor_orgnr(con: duckdb.DuckDBPyConnection, creditor_id: str | None) -> str | None:
    """The organisation number Amili knows a creditor of ours by (the read-back's
    ``creditor_idnumber``), or None: no creditor chosen, or none known in the snapshot."""
    if creditor_id is None or not table_exists(con, "report.creditors") or \
            "creditor_orgnr" not in _columns(con, "report.creditors"):
        return None
    found = con.execute("SELECT creditor_orgnr FROM report.creditors WHERE creditor_id = $id",
                        {"id": creditor_id}).fetchone()
    return found[0] if found else None


#: The read-back queries' creditor filter: Amili's cases carry the organisation number.
_ORGNR_FILTER = "($orgnr IS NULL OR creditor_idnumber = $orgnr)"


def _creditor_name(con: duckdb.DuckDBPyConnection, column: str) -> str:
    """SQL for the name of the creditor in ``column`` (NULL where the snapshot has none)."""
    if not table_exists(con, "report.creditors"):
        return "NULL::VARCHAR"
    # the inner columns are renamed, so that an unqualified ``column`` names the outer row's
    return ("(SELECT any_value(n.creditor_name_) FROM (SELECT creditor_id AS creditor_id_, "
            "creditor_name AS creditor_name_ FROM report.creditors) AS n "
            f"WHERE n.creditor_id_ = {column})")


def currencies(con: duckdb.DuckDBPyConnection, filters: Filters,
               kinds: tuple[str, ...] = MONEY_KINDS, *, sent_only: bool = False) -> list[str]:
    """The currencies of the money rows in the range: NOK first, then alphabetically (an
    invalid code such as ``KR`` is listed too: it is what the warehouse had). ``sent_only``:
    only those of which something was sent (the ones worth a chart of answers)."""
    return [c for (c,) in con.execute(f"""
        SELECT currency FROM marts.rpt_reconciliation_daily
        WHERE {filters.where()} AND objectname IN {kinds} AND currency IS NOT NULL
        GROUP BY currency HAVING NOT $sent_only OR sum(sent_count) > 0
        ORDER BY currency <> 'NOK', currency""",
        {**filters.params, "sent_only": sent_only}).fetchall()]


def headline(con: duckdb.DuckDBPyConnection, filters: Filters, *, kind: str = "invoice"
             ) -> list[Row]:
    """Totals of one kind per currency present: ``currency``, ``{bucket}_count`` (int) and
    ``{bucket}_amount`` (Decimal), NOK first. Nothing is added across currencies."""
    parts = ", ".join(
        f"coalesce(sum({b}_count), 0)::BIGINT AS {b}_count, "
        f"coalesce(sum({b}_amount), 0)::DECIMAL(38, 2) AS {b}_amount" for b in buckets(con))
    return rows(con, f"""
        SELECT currency, {parts} FROM marts.rpt_reconciliation_daily
        WHERE {filters.where()} AND objectname = $kind AND currency IS NOT NULL
        GROUP BY currency ORDER BY currency <> 'NOK', currency""",
        {**filters.params, "kind": kind})


def balance_summary(con: duckdb.DuckDBPyConnection, filters: Filters) -> Row:
    """Over every kind of object (counts, no amounts): rows of the mart, rows that do not
    balance, objects sent and rejected, and the rejection rate in percent (Decimal)."""
    [overall] = rows(con, f"""
        SELECT count(*) FILTER (WHERE NOT balances)::BIGINT AS unbalanced_rows,
               count(*)::BIGINT AS mart_rows,
               coalesce(sum(sent_count), 0)::BIGINT AS sent_objects,
               coalesce(sum(rejected_count), 0)::BIGINT AS rejected_objects,
               (CASE WHEN coalesce(sum(sent_count), 0) = 0 THEN 0
                     ELSE round(sum(rejected_count)::DECIMAL(38, 6) * 100 / sum(sent_count), 1)
                END)::DECIMAL(9, 1) AS rejection_rate
        FROM marts.rpt_reconciliation_daily WHERE {filters.where()}""", filters.params)
    return overall


def daily_reconciliation(con: duckdb.DuckDBPyConnection, filters: Filters) -> list[Row]:
    """Per day, creditor, kind and currency: every bucket's count and amount (None for kinds
    without money), and the balance check's verdict (the mart's ``balances``)."""
    columns = []
    for b in buckets(con):
        columns.append(f"{b}_count AS {b}")
        columns.append(f"CASE WHEN objectname IN {MONEY_KINDS} THEN {b}_amount END"
                       f" AS {b}_amount")
    return rows(con, f"""
        SELECT partition_date AS day, coalesce(creditor_id, '?') AS creditor,
               {_creditor_name(con, "creditor_id")} AS creditor_name,
               objectname AS kind, currency, {", ".join(columns)},
               CASE WHEN balances THEN 'balances' ELSE 'DOES NOT BALANCE' END AS balance_check
        FROM marts.rpt_reconciliation_daily WHERE {filters.where()}
        ORDER BY partition_date DESC, creditor_id,
                 list_position(['creditor', 'invoice', 'payment', 'action'], objectname),
                 currency""", filters.params)


def daily_trend(con: duckdb.DuckDBPyConnection, filters: Filters, *, currency: str = "NOK"
                ) -> list[Row]:
    """Per day: accepted and rejected invoice amounts in one currency (Decimal, for charts)
    and the rejection rate of all objects sent (Decimal percent, a count ratio)."""
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
    """Per creditor: accepted and rejected invoice amounts in one currency (Decimal)."""
    return rows(con, f"""
        SELECT coalesce(creditor_id, '?') AS creditor,
               {_creditor_name(con, "creditor_id")} AS creditor_name,
               coalesce(sum(accepted_amount), 0)::DECIMAL(38, 2) AS accepted_amount,
               coalesce(sum(rejected_amount), 0)::DECIMAL(38, 2) AS rejected_amount
        FROM marts.rpt_reconciliation_daily
        WHERE {filters.where()} AND objectname = 'invoice' AND currency = $currency
        GROUP BY ALL ORDER BY creditor""", {**filters.params, "currency": currency})


def top_reasons(con: duckdb.DuckDBPyConnection, filters: Filters, limit: int = 10
                ) -> list[Row]:
    """The most frequent rejection and quarantine reasons, grouped by :data:`REASON_KEY`:
    one row per reason and currency (``currency`` None for objects without money), with
    the objects and their amount (Decimal) in that currency (None where none is known)."""
    return rows(con, f"""
        SELECT kind, {REASON_KEY} AS reason, currency, count(*)::BIGINT AS objects,
               -- no amount where the objects carry none (an amount of 0 would read as
               -- "worthless"), nor for objects without a currency
               CASE WHEN currency IS NULL THEN NULL
                    ELSE sum(amount)::DECIMAL(38, 2) END AS amount,
               min(message) AS example_message
        FROM report.problems WHERE {filters.where()}
        GROUP BY kind, {REASON_KEY}, currency
        ORDER BY objects DESC, kind, reason, currency NULLS LAST
        LIMIT {int(limit)}""", filters.params)


def held_columns_sql(con: duckdb.DuckDBPyConnection) -> str:
    """``amili_holds`` and ``difference`` of ``report.problems`` (Decimal; NULL where none,
    and in a snapshot published before problems had them)."""
    columns = {name for (name,) in con.execute(
        """SELECT column_name FROM duckdb_columns()
           WHERE schema_name = 'report' AND table_name = 'problems'""").fetchall()}
    if "acknowledged_amount" not in columns:
        return "NULL::DECIMAL(38, 2) AS amili_holds, NULL::DECIMAL(38, 2) AS difference"
    return "acknowledged_amount AS amili_holds, amount_difference AS difference"


def reason_objects(con: duckdb.DuckDBPyConnection, filters: Filters, kind: str, reason: str,
                   search: str = "", limit: int = 1000, currency: str | None = None
                   ) -> list[Row]:
    """The invoices, payments... behind one reason (:data:`REASON_KEY`), in one currency if
    given (``""``: the objects without one, such as case actions): ids, batch, ledgerref,
    full message (and for a change after hand-over the amount Amili holds and the
    difference)."""
    return rows(con, f"""
        SELECT partition_date AS day, creditor_id AS creditor,
               {_creditor_name(con, "creditor_id")} AS creditor_name, objectname AS kind,
               source_id, invoice_id, batchid, ledgerref, amount, currency,
               {held_columns_sql(con)}, message
        FROM report.problems
        WHERE {filters.where()} AND kind = $kind AND {REASON_KEY} = $reason
          AND ($currency IS NULL OR coalesce(currency, '') = $currency)
          AND ($search = '' OR contains(lower(concat_ws(' ', source_id, invoice_id, batchid,
                                                         ledgerref, message)), lower($search)))
        ORDER BY partition_date DESC, objectname, source_id LIMIT {int(limit)}""",
        {**filters.params, "kind": kind, "reason": reason, "search": search.strip(),
         "currency": currency})


def unanswered_batches(con: duckdb.DuckDBPyConnection, filters: Filters) -> list[Row]:
    """Batches sent (or prepared) that have no definite answer from Amili."""
    return rows(con, f"""
        SELECT partition_date AS day, batchid, creditor_id AS creditor,
               {_creditor_name(con, "creditor_id")} AS creditor_name, state, http_status,
               attempts, object_count, in_doubt, error, prepared_at
        FROM marts.rpt_unanswered_batches WHERE {filters.where()}
        ORDER BY partition_date DESC, batchid""", filters.params)


def held_payments(con: duckdb.DuckDBPyConnection, filters: Filters) -> list[Row]:
    """Payments still held back because their invoice has no Amili id yet."""
    return rows(con, f"""
        SELECT partition_date AS day, payment_id, invoice_id, creditor_id AS creditor,
               {_creditor_name(con, "creditor_id")} AS creditor_name,
               amount, currency, hold_reason, invoice_now_acknowledged
        FROM report.held_payments WHERE {filters.where()} AND still_held AND latest_hold
        ORDER BY partition_date DESC, payment_id""", filters.params)


def problem_objects(con: duckdb.DuckDBPyConnection, filters: Filters, limit: int) -> list[Row]:
    """Every rejected, quarantined, unanswered or changed object of the range."""
    return rows(con, f"""
        SELECT partition_date AS day, objectname AS kind, source_id, invoice_id,
               creditor_id AS creditor, {_creditor_name(con, "creditor_id")} AS creditor_name,
               batchid, ledgerref, amount, currency, {held_columns_sql(con)},
               kind AS problem, message
        FROM report.problems WHERE {filters.where()}
        ORDER BY partition_date, kind, objectname, source_id LIMIT {int(limit)}""",
        filters.params)


def object_history(con: duckdb.DuckDBPyConnection, object_id: str) -> dict[str, list[Row]]:
    """Everything the snapshot knows of one invoice (by invoice id: its payments and case
    actions too) or of one object by its source id, on every day.

    ``fates``: per day and object, what became of it (the row of ``rpt_object_fates``: fate,
    outcome, batch, ledgerref, reason); ``answers``: every answer Amili gave about it, batch
    by batch (``amili.responses`` with the batch's state and times). Ids match exactly,
    ignoring case and surrounding spaces."""
    wanted = object_id.strip()
    if not wanted:
        return {"fates": [], "answers": []}
    related = (
        "SELECT objectname, source_id FROM report.object_invoices "
        "WHERE lower(invoice_id) = lower($id) OR lower(source_id) = lower($id)"
        if table_exists(con, "report.object_invoices") else
        "SELECT NULL::VARCHAR AS objectname, NULL::VARCHAR AS source_id WHERE false")
    ids = f"""ids AS (
        SELECT DISTINCT objectname, source_id FROM marts.rpt_object_fates
        WHERE lower(source_id) = lower($id)
        UNION SELECT objectname, source_id FROM ({related}))"""
    reason = ("coalesce(f.error_message, f.quarantine_reason, f.hold_reason)"
              if {"quarantine_reason", "hold_reason"} <= _columns(con, "marts.rpt_object_fates")
              else "f.error_message")
    fates = rows(con, f"""
        WITH {ids}
        SELECT f.partition_date AS day, f.objectname AS kind, f.source_id,
               f.creditor_id AS creditor, {_creditor_name(con, "f.creditor_id")}
                   AS creditor_name, f.amount, f.currency, f.fate, f.outcome, f.batchid,
               f.batch_state, f.ledgerref, f.status_statuscode, {reason} AS reason
        FROM marts.rpt_object_fates AS f JOIN ids USING (objectname, source_id)
        ORDER BY f.partition_date,
                 list_position(['creditor', 'invoice', 'payment', 'action'], f.objectname),
                 f.source_id""", {"id": wanted})
    answers = rows(con, f"""
        WITH {ids}
        SELECT r.partition_date AS day, r.objectname AS kind, r.source_id, r.batchid,
               r.batch_state, r.outcome, r.status_statuscode, r.ledgerref,
               e.error_message AS message, l.prepared_at, r.answered_at
        FROM amili.responses AS r JOIN ids USING (objectname, source_id)
        LEFT JOIN amili.submission_ledger AS l USING (batchid)
        LEFT JOIN (SELECT batchid, objectname, objectindex,
                          string_agg(DISTINCT message, '; ') AS error_message
                   FROM amili.errors GROUP BY ALL) AS e
               USING (batchid, objectname, objectindex)
        ORDER BY l.prepared_at NULLS LAST, r.answered_at NULLS LAST, r.batchid,
                 r.objectname, r.source_id""", {"id": wanted})
    return {"fates": fates, "answers": answers}


def _columns(con: duckdb.DuckDBPyConnection, qualified: str) -> set[str]:
    schema, name = qualified.split(".")
    return {c for (c,) in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = $s AND table_name = $n",
        {"s": schema, "n": name}).fetchall()}


def run_sql(path: str | Path, sql: str, limit: int = 1000) -> tuple[list[str], list[Row]]:
    """An analyst's own query on the snapshot (read-only, no other file reachable).

    Numbers (DECIMAL as Decimal), text, days and moments come back as they are, so the
    table sorts and exports them as such; other values (lists, structs...) as text.
    """
    plain = (int, str, bool, Decimal, date)  # datetime is a date
    with connect_snapshot(path) as con:
        cur = con.execute(sql)
        if cur.description is None:
            return [], []
        names = [d[0] for d in cur.description]
        out = [
            {n: v if v is None or isinstance(v, plain) else str(v)
             for n, v in zip(names, values, strict=True)}
            for values in cur.fetchmany(limit)
        ]
    return names, out


def source_rows(con: duckdb.DuckDBPyConnection, filters: Filters) -> list[Row]:
    """Per warehouse table, bucket and currency: the rows the extract read and their amount
    as the warehouse has it (``marts.rpt_source_reconciliation``; none in an older
    snapshot), summed over creditors, or one creditor's like the other tables. Rows whose
    creditor is not known count only for all creditors, and so does every
    row of a snapshot published before the mart had ``creditor_id``: a creditor gets none."""
    if not table_exists(con, "marts.rpt_source_reconciliation"):
        return []
    creditor = "creditor_id" if source_rows_by_creditor(con) else "NULL"
    return rows(con, f"""
        SELECT source_table AS "table", bucket, currency,
               sum(row_count)::BIGINT AS "rows", sum(amount) AS amount
        FROM marts.rpt_source_reconciliation WHERE {filters.where(creditor_column=creditor)}
        GROUP BY ALL ORDER BY "table", bucket, currency""", filters.params)


def source_rows_by_creditor(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the snapshot's warehouse rows carry their creditor (one published before
    ``rpt_source_reconciliation.creditor_id`` existed does not), so the dashboard can say
    why a creditor sees none."""
    return "creditor_id" in _columns(con, "marts.rpt_source_reconciliation")


# --- "With Amili": what Amili holds and paid out, read back after hand-over (issue 20) ---

#: Age buckets of open cases, days since Amili registered the case (at the read): label,
#: first day, last day (None: no end).
AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-30", 0, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("90+", 91, None))


def _age_bucket_sql(days: str) -> str:
    parts = " ".join(
        f"WHEN {days} <= {last} THEN '{label}'" if last is not None else f"ELSE '{label}'"
        for label, _, last in AGE_BUCKETS)
    return f"CASE {parts} END"


def amili_read_at(con: duckdb.DuckDBPyConnection) -> Any:
    """When the cases were last read back (a timestamp), or None: nothing was read back yet
    (the snapshot has no read-back tables, or they are empty)."""
    if not table_exists(con, "report.amili_cases"):
        return None
    return con.execute("SELECT max(read_at) FROM report.amili_cases").fetchone()[0]


def open_cases_by_age(con: duckdb.DuckDBPyConnection, orgnr: str | None = None
                      ) -> list[Row]:
    """Open cases (not CLOSED) per currency and age bucket (days from registration to the
    read): cases (int) and remaining amount (Decimal), buckets in :data:`AGE_BUCKETS` order,
    NOK first; one creditor's (by organisation number) or all. Empty before any read-back."""
    if not table_exists(con, "report.amili_cases"):
        return []
    order = [label for label, _, _ in AGE_BUCKETS]
    return rows(con, f"""
        WITH open_cases AS (
            SELECT currency, remaining_amount,
                   {_age_bucket_sql("greatest(date_diff('day', registered_at, read_at), 0)")}
                       AS age
            FROM report.amili_cases
            WHERE status IS DISTINCT FROM 'CLOSED' AND {_ORGNR_FILTER}
        )
        SELECT currency, age, count(*)::BIGINT AS cases,
               coalesce(sum(remaining_amount), 0)::DECIMAL(38, 10) AS remaining_amount
        FROM open_cases GROUP BY currency, age
        ORDER BY currency <> 'NOK', currency, list_position($order, age)""",
        {"order": order, "orgnr": orgnr})


def amili_monthly(con: duckdb.DuckDBPyConnection, orgnr: str | None = None) -> list[Row]:
    """Per month and currency: what Amili collected on the cases
    (``report.amili_collected_monthly``) and what it settled (paid out) to the creditors
    (``marts.rpt_settlements_monthly``), Decimals, one creditor's or all; newest first."""
    parts = []
    if table_exists(con, "report.amili_collected_monthly"):
        parts.append(f"""SELECT month, currency, collected_amount, 0 AS settlements,
                               0 AS settled_amount FROM report.amili_collected_monthly
                        WHERE {_ORGNR_FILTER}""")
    if table_exists(con, "marts.rpt_settlements_monthly"):
        parts.append(f"""SELECT month, currency, 0, settlements, settled_amount
                        FROM marts.rpt_settlements_monthly WHERE {_ORGNR_FILTER}""")
    if not parts:
        return []
    return rows(con, f"""
        SELECT month, currency, sum(collected_amount)::DECIMAL(38, 10) AS collected_amount,
               sum(settlements)::BIGINT AS settlements,
               sum(settled_amount)::DECIMAL(38, 10) AS settled_amount
        FROM ({" UNION ALL ".join(parts)})
        GROUP BY month, currency ORDER BY month DESC, currency <> 'NOK', currency""",
        {"orgnr": orgnr})


def divergences(con: duckdb.DuckDBPyConnection, orgnr: str | None = None) -> list[Row]:
    """Invoices whose case at Amili does not match what we handed over
    (``marts.rpt_handover_status`` where ``diverges``): the reason, the amount Amili
    acknowledged from us and the case's amounts, in their currencies; one creditor's or all
    (a case missing at Amili has no organisation number, so it shows under all only)."""
    if not table_exists(con, "marts.rpt_handover_status"):
        return []
    return rows(con, f"""
        SELECT unique_source_invoice_id AS invoice_id, amili_invoice_id,
               creditor_idnumber AS creditor_orgnr, casenumber, divergence_reason AS reason,
               acknowledged_amount, acknowledged_currency, case_original_amount,
               case_open_amount, case_currency, amount_difference, status
        FROM marts.rpt_handover_status WHERE diverges AND {_ORGNR_FILTER}
        ORDER BY reason, invoice_id NULLS LAST, amili_invoice_id""", {"orgnr": orgnr})


def divergence_totals(con: duckdb.DuckDBPyConnection, orgnr: str | None = None
                      ) -> list[Row]:
    """Divergences per currency (the case's, else the acknowledged one) and reason: count,
    amount we handed over, Amili's original amount and the difference (Decimals); one
    creditor's or all, as :func:`divergences`."""
    if not table_exists(con, "marts.rpt_handover_status"):
        return []
    return rows(con, f"""
        SELECT coalesce(case_currency, acknowledged_currency) AS currency,
               divergence_reason AS reason, count(*)::BIGINT AS invoices,
               sum(acknowledged_amount)::DECIMAL(38, 10) AS acknowledged_amount,
               sum(case_original_amount)::DECIMAL(38, 10) AS case_original_amount,
               sum(amount_difference)::DECIMAL(38, 10) AS amount_difference
        FROM marts.rpt_handover_status WHERE diverges AND {_ORGNR_FILTER}
        GROUP BY 1, 2 ORDER BY currency <> 'NOK' NULLS LAST, currency, reason""",
        {"orgnr": orgnr})


def invoice_with_amili(con: duckdb.DuckDBPyConnection, invoice_id: str) -> dict[str, list[Row]]:
    """One invoice's drill-down: :func:`object_history` (what we sent and Amili answered)
    and ``cases``, what Amili holds for it now (the rows of ``report.amili_cases``). The
    history is empty in a snapshot without the daily marts (read-back alone)."""
    history: dict[str, list[Row]] = {"fates": [], "answers": []}
    if table_exists(con, "marts.rpt_object_fates") and table_exists(con, "amili.responses"):
        history = object_history(con, invoice_id)
    cases: list[Row] = []
    if invoice_id.strip() and table_exists(con, "report.amili_cases"):
        cases = rows(con, """
            SELECT unique_source_invoice_id AS invoice_id, amili_invoice_id, casenumber,
                   creditor_idnumber AS creditor_orgnr, status, sub_status, currency,
                   original_amount, paid_amount, credited_amount, remaining_amount,
                   registered_at, closed_at, read_at
            FROM report.amili_cases
            WHERE lower(unique_source_invoice_id) = lower($id)
               OR lower(amili_invoice_id) = lower($id)
            ORDER BY casenumber""", {"id": invoice_id.strip()})
    return {**history, "cases": cases}
