"""Each day's own figures, for the metadata of one partition (Dagster shows and plots them).

A run may cover a range of days; its metadata must still say what happened on each day,
read from the tables by ``partition_date``, never the range's total repeated per day. Money
stays ``Decimal`` and per currency: nothing here adds NOK to EUR.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb

from amili.pipeline.duckdb_io import connect_writer
from amili.pipeline.extract import RAW_TABLES
from amili.pipeline.results import top_reasons

#: The invoice buckets the results report amounts for (``sent`` is all answered ones).
INVOICE_BUCKETS = ("sent", "accepted", "rejected", "unconfirmed", "outstanding", "quarantined")

#: Rows of the day's invoices the extract shows as a preview.
PREVIEW_ROWS = 5


def days_of(start: date, end: date) -> list[date]:
    """The days of ``[start, end)``."""
    return [start + timedelta(days=n) for n in range((end - start).days)]


@dataclass
class ExtractDay:
    """One day of the extract: rows per raw table, eligible amount per currency, a preview."""

    day: date
    row_counts: dict[str, int]
    eligible_amount_by_currency: dict[str, Decimal] = field(default_factory=dict)
    preview: list[dict[str, object]] = field(default_factory=list)


@dataclass
class ResultsDay:
    """One day of Amili's answers: objects per outcome, errors, quarantined rows, the most
    frequent rejection messages, and invoice amounts per bucket and currency."""

    day: date
    objects_by_outcome: dict[str, int] = field(default_factory=dict)
    batch_errors: int = 0
    quarantined: int = 0
    top_reasons: list[tuple[str, int]] = field(default_factory=list)
    invoice_amounts: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    """Currency → bucket of :data:`INVOICE_BUCKETS` → amount (every bucket present)."""

    @property
    def sent(self) -> int:
        return sum(self.objects_by_outcome.values())

    @property
    def rejection_rate(self) -> float:
        rejected = self.objects_by_outcome.get("rejected", 0)
        return rejected / self.sent if self.sent else 0.0


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {name for (name,) in con.execute(
        """SELECT schema_name || '.' || table_name FROM duckdb_tables()
           WHERE database_name = current_database()
           UNION ALL
           SELECT schema_name || '.' || view_name FROM duckdb_views()
           WHERE database_name = current_database()""").fetchall()}


_WINDOW = "partition_date >= $start AND partition_date < $end"


def extract_days(pipeline_db: str | Path, start: date, end: date) -> list[ExtractDay]:
    """Each day of ``[start, end)`` as the extract left it in ``raw.*``."""
    window = {"start": start, "end": end}
    days = {day: ExtractDay(day, dict.fromkeys(RAW_TABLES, 0)) for day in days_of(start, end)}
    with connect_writer(pipeline_db) as con:
        for table in RAW_TABLES:
            for day, count in con.execute(
                    f"SELECT partition_date, count(*) FROM raw.{table} WHERE {_WINDOW} "
                    "GROUP BY ALL", window).fetchall():
                days[day].row_counts[table] = count
        for day, currency, amount in con.execute(
                f"""SELECT partition_date, currency, sum(remaining_amount) FROM raw.invoices
                    WHERE {_WINDOW} GROUP BY ALL ORDER BY ALL""", window).fetchall():
            days[day].eligible_amount_by_currency[currency or "?"] = amount
        cursor = con.execute(
            f"""SELECT partition_date, invoice_id, creditor_id, invoice_number, due_date,
                       remaining_amount, currency
                FROM raw.invoices WHERE {_WINDOW}
                QUALIFY row_number() OVER (PARTITION BY partition_date ORDER BY invoice_id)
                        <= {PREVIEW_ROWS}
                ORDER BY partition_date, invoice_id""", window)
        columns = [d[0] for d in cursor.description]
        for row in cursor.fetchall():
            record = dict(zip(columns, row, strict=True))
            days[record["partition_date"]].preview.append(record)
    return list(days.values())


def results_days(pipeline_db: str | Path, start: date, end: date) -> list[ResultsDay]:
    """Each day of ``[start, end)`` as ``amili.responses``/``errors``/``quarantine`` hold it."""
    window = {"start": start, "end": end}
    days = {day: ResultsDay(day) for day in days_of(start, end)}
    with connect_writer(pipeline_db) as con:
        present = _tables(con)
        if "amili.responses" in present:
            for day, outcome, n in con.execute(
                    f"SELECT partition_date, outcome, count(*) FROM amili.responses "
                    f"WHERE {_WINDOW} GROUP BY ALL", window).fetchall():
                days[day].objects_by_outcome[outcome] = n
        if "amili.errors" in present:
            for day, n in con.execute(
                    f"SELECT partition_date, count(*) FROM amili.errors "
                    f"WHERE level = 'batch' AND {_WINDOW} GROUP BY ALL", window).fetchall():
                days[day].batch_errors = n
            # the same grouping as the results' own tally
            for day, top in top_reasons(con, start, end, per_day=True).items():
                days[day].top_reasons = top
        if "amili.quarantine" in present:
            for day, n in con.execute(
                    f"SELECT partition_date, count(*) FROM amili.quarantine WHERE {_WINDOW} "
                    "GROUP BY ALL", window).fetchall():
                days[day].quarantined = n
        if "batch.batch_invoices" in present:
            for day, currency, bucket, amount in _invoice_amounts(con, present, window):
                by_bucket = days[day].invoice_amounts.setdefault(
                    currency, dict.fromkeys(INVOICE_BUCKETS, Decimal("0.00")))
                if bucket in by_bucket:
                    by_bucket[bucket] += amount
                if bucket != "quarantined":  # every answered invoice was sent
                    by_bucket["sent"] += amount
    return list(days.values())


def _invoice_amounts(
    con: duckdb.DuckDBPyConnection, present: set[str], window: dict[str, date]
) -> Iterable[tuple[date, str, str, Decimal]]:
    """(day, currency, bucket, amount) of the window's invoices (``originalInvoiceAmount``),
    an invoice posted twice counted once with its latest answer; bucket ``sent`` is left to
    the caller (the sum of the answered ones)."""
    invoices = f"""(SELECT partition_date, invoice_id, any_value(currency) AS currency,
                           any_value(originalInvoiceAmount) AS amount
                    FROM batch.batch_invoices WHERE {_WINDOW} GROUP BY ALL)"""
    rows: list[tuple[date, str, str, Decimal]] = []
    if "amili.responses" in present:
        rows += con.execute(
            f"""SELECT r.partition_date, coalesce(i.currency, '?'), r.outcome,
                       sum(i.amount)::DECIMAL(38, 2)
                FROM (SELECT * FROM amili.responses
                      WHERE objectname = 'invoice' AND {_WINDOW}
                      QUALIFY row_number() OVER (
                          PARTITION BY partition_date, source_id
                          ORDER BY answered_at DESC NULLS FIRST, batchid DESC) = 1) AS r
                JOIN {invoices} AS i
                  ON i.partition_date = r.partition_date AND i.invoice_id = r.source_id
                GROUP BY ALL ORDER BY ALL""", window).fetchall()
    if "amili.quarantine" in present:
        rows += con.execute(
            f"""SELECT q.partition_date, coalesce(i.currency, '?'), 'quarantined',
                       sum(i.amount)::DECIMAL(38, 2)
                FROM (SELECT DISTINCT partition_date, source_id FROM amili.quarantine
                      WHERE objectname = 'invoice' AND {_WINDOW}) AS q
                JOIN {invoices} AS i
                  ON i.partition_date = q.partition_date AND i.invoice_id = q.source_id
                GROUP BY ALL ORDER BY ALL""", window).fetchall()
    return rows


def mart_rows_per_day(pipeline_db: str | Path, start: date, end: date,
                      table: str = "marts.rpt_object_fates") -> dict[date, int]:
    """Rows of ``table`` per day of ``[start, end)`` (0 for a day without any)."""
    counts = dict.fromkeys(days_of(start, end), 0)
    with connect_writer(pipeline_db) as con:
        if table in _tables(con):
            for day, n in con.execute(
                    f"SELECT partition_date, count(*) FROM {table} WHERE {_WINDOW} "
                    "GROUP BY ALL", {"start": start, "end": end}).fetchall():
                counts[day] = n
    return counts


#: The buckets the balance check shows per kind and currency: eligible, where it went, and
#: what became of the sent ones (amounts at the warehouse's value, DECIMAL).
RECONCILED_BUCKETS = ("eligible", "quarantined", "held", "carried_forward",
                      "changed_after_handover", "skipped_unchanged", "sent", "accepted",
                      "rejected", "unconfirmed", "outstanding")


def reconciled_by_currency(con: duckdb.DuckDBPyConnection, start: date, end: date
                           ) -> list[dict[str, object]]:
    """``[start, end)`` of ``marts.rpt_reconciliation_daily`` summed per object kind and
    currency (never across currencies): ``<bucket>_count`` and ``<bucket>_amount`` of
    :data:`RECONCILED_BUCKETS`. Kinds without amounts (creditors, actions) have NULL
    amounts."""
    sums = ", ".join(f"sum({bucket}_count)::BIGINT AS {bucket}_count, "
                     f"sum({bucket}_amount)::DECIMAL(38, 2) AS {bucket}_amount"
                     for bucket in RECONCILED_BUCKETS)
    cursor = con.execute(
        f"""SELECT objectname, currency, {sums} FROM marts.rpt_reconciliation_daily
            WHERE {_WINDOW} GROUP BY ALL ORDER BY objectname, currency NULLS FIRST""",
        {"start": start, "end": end})
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
