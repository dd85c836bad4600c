"""Numbers for the Dagster UI's metadata plots: invoice amounts in whole øre.

Dagster plots numeric metadata across partitions; text does not plot, and a float is not
money. So amounts go out as integers of øre, exact, computed from DECIMAL sums.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from amili.pipeline.duckdb_io import connect_writer

__all__ = ["OUTCOME_BUCKETS", "invoice_amounts_nok", "to_ore"]

#: The buckets the results asset reports amounts for.
OUTCOME_BUCKETS = ("sent", "accepted", "rejected", "unconfirmed", "outstanding", "quarantined")


def to_ore(amount: Decimal) -> int:
    """NOK as an exact integer of øre; refuses an amount with fractions of an øre."""
    ore = amount * 100
    if ore != ore.to_integral_value():
        raise ValueError(f"{amount} NOK is not a whole number of øre")
    return int(ore)


def invoice_amounts_nok(pipeline_db: str | Path, start: date, end: date) -> dict[str, Decimal]:
    """Invoice amounts (originalInvoiceAmount, NOK only) of ``[start, end)`` per bucket of
    :data:`OUTCOME_BUCKETS`: the answers in ``amili.responses`` and ``amili.quarantine``."""
    window = {"start": start, "end": end}
    with connect_writer(pipeline_db) as con:
        present = {name for (name,) in con.execute(
            """SELECT schema_name || '.' || table_name FROM duckdb_tables()
               WHERE database_name = current_database()""").fetchall()}
        amounts = dict.fromkeys(OUTCOME_BUCKETS, Decimal("0.00"))
        if "batch.batch_invoices" not in present:
            return amounts
        invoices = """(SELECT partition_date, invoice_id, any_value(originalInvoiceAmount) AS amount
                       FROM batch.batch_invoices WHERE currency = 'NOK'
                         AND partition_date >= $start AND partition_date < $end
                       GROUP BY ALL)"""
        if "amili.responses" in present:
            for outcome, amount in con.execute(
                # an invoice posted twice (a re-run) counts once, with its latest answer
                f"""SELECT r.outcome, sum(i.amount)::DECIMAL(38, 2)
                    FROM (SELECT * FROM amili.responses
                          WHERE objectname = 'invoice'
                            AND partition_date >= $start AND partition_date < $end
                          QUALIFY row_number() OVER (
                              PARTITION BY partition_date, source_id
                              ORDER BY answered_at DESC NULLS FIRST, batchid DESC) = 1) AS r
                    JOIN {invoices} AS i
                      ON i.partition_date = r.partition_date AND i.invoice_id = r.source_id
                    GROUP BY r.outcome""", window).fetchall():
                if outcome in amounts:
                    amounts[outcome] += amount
                amounts["sent"] += amount
        if "amili.quarantine" in present:
            [(quarantined,)] = con.execute(
                f"""SELECT coalesce(sum(i.amount), 0)::DECIMAL(38, 2)
                    FROM (SELECT DISTINCT partition_date, source_id FROM amili.quarantine
                          WHERE objectname = 'invoice'
                            AND partition_date >= $start AND partition_date < $end) AS q
                    JOIN {invoices} AS i
                      ON i.partition_date = q.partition_date AND i.invoice_id = q.source_id""",
                window).fetchall()
            amounts["quarantined"] = quarantined
    return amounts
