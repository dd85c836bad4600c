"""Dirt of the kinds real receivables systems hold, added to a (demo) warehouse in place.

Why: the promise "every warehouse row is accounted for" has to hold on a warehouse with
repeated ids, amounts the API cannot carry, over-long texts and payments or case actions
that point at no invoice, not only on the clean demo. :func:`add_dirt` picks a share of the
invoices, payments and case actions by a hash of their id (so the choice is the same on
every run with the same seed), gives each one defect, round robin over the kinds, and lists
what it did in the table ``dirt_rows`` (table, id, defect), for tests and benchmarks to
compare the pipeline's quarantine with.

Money columns are widened to DECIMAL(38,6) first: a DECIMAL(18,2) column cannot hold the
amounts the pipeline must refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

#: Defects given to invoices, in the order they are dealt out.
INVOICE_DIRT: tuple[str, ...] = (
    "duplicate_invoice_id", "amount_with_three_decimals", "amount_beyond_range",
    "description_too_long", "line_amount_with_three_decimals", "duplicate_customer_row",
)
#: Defects given to payments.
PAYMENT_DIRT: tuple[str, ...] = (
    "payment_of_no_invoice", "payment_of_unknown_invoice", "duplicate_payment_id",
    "payment_amount_with_three_decimals",
)
#: Defects given to case actions.
ACTION_DIRT: tuple[str, ...] = ("action_of_unknown_invoice", "action_of_no_invoice")

#: The money columns widened so that they can hold the dirt.
_MONEY_COLUMNS = (("invoices", "amount"), ("invoices", "remaining_amount"),
                  ("invoice_lines", "amount"), ("reminders", "fee_amount"),
                  ("payments", "amount"))
#: A text longer than the pipeline sends (dbt var max_text_length, 2000 by default).
LONG_TEXT_CHARACTERS = 4400


@dataclass(frozen=True)
class DirtSummary:
    """How many rows got each defect."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def add_dirt(warehouse: str | Path, *, share: float, seed: int = 1) -> DirtSummary:
    """Give ``share`` (0..1) of the invoices, payments and case actions one defect each."""
    if not 0 <= share <= 1:
        raise ValueError(f"share must be between 0 and 1, not {share}")
    per_mille = round(share * 1000)
    with duckdb.connect(str(warehouse)) as con:
        for table, column in _MONEY_COLUMNS:
            con.execute(f"ALTER TABLE {table} ALTER {column} TYPE DECIMAL(38, 6)")
        con.execute("""CREATE OR REPLACE TABLE dirt_rows (
            table_name VARCHAR, source_id VARCHAR, defect VARCHAR)""")
        for table, key, kinds in (("invoices", "invoice_id", INVOICE_DIRT),
                                  ("payments", "payment_id", PAYMENT_DIRT),
                                  ("case_actions", "action_id", ACTION_DIRT)):
            con.execute(
                f"""INSERT INTO dirt_rows
                SELECT '{table}', {key},
                    {_list(kinds)}[(row_number() OVER (ORDER BY h) - 1) % {len(kinds)} + 1]
                FROM (SELECT {key}, hash({key} || $seed) AS h FROM {table})
                WHERE h % 1000 < $per_mille""",
                {"seed": str(seed), "per_mille": per_mille},
            )
        _apply(con)
        counts = dict(con.execute(
            "SELECT defect, count(*) FROM dirt_rows GROUP BY ALL ORDER BY ALL").fetchall())
    return DirtSummary({k: int(v) for k, v in counts.items()})


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _apply(con: duckdb.DuckDBPyConnection) -> None:
    """Make each listed row what its defect says."""
    def ids(defect: str) -> str:
        return f"(SELECT source_id FROM dirt_rows WHERE defect = '{defect}')"

    # the copy in another currency, as a re-issued invoice might be
    con.execute(f"INSERT INTO invoices SELECT * REPLACE ("
                f"CASE currency WHEN 'SEK' THEN 'NOK' ELSE 'SEK' END AS currency) "
                f"FROM invoices WHERE invoice_id IN {ids('duplicate_invoice_id')}")
    con.execute(f"UPDATE invoices SET amount = amount + 0.005 "
                f"WHERE invoice_id IN {ids('amount_with_three_decimals')}")
    con.execute(f"UPDATE invoices SET remaining_amount = remaining_amount "
                f"+ {10 ** 17}::DECIMAL(38, 6) WHERE invoice_id IN {ids('amount_beyond_range')}")
    con.execute(f"UPDATE invoices SET description = repeat('x', {LONG_TEXT_CHARACTERS}) "
                f"WHERE invoice_id IN {ids('description_too_long')}")
    con.execute(f"UPDATE invoice_lines SET amount = amount + 0.001 "
                f"WHERE invoice_id IN {ids('line_amount_with_three_decimals')} "
                "AND line_no = 1")
    # a debtor of its own, which the warehouse holds twice
    con.execute(f"""INSERT INTO customers
        SELECT c.* REPLACE ('DUP-' || i.invoice_id AS customer_id)
        FROM customers c JOIN invoices i USING (customer_id), range(2)
        WHERE i.invoice_id IN {ids('duplicate_customer_row')}""")
    con.execute(f"UPDATE invoices SET customer_id = 'DUP-' || invoice_id "
                f"WHERE invoice_id IN {ids('duplicate_customer_row')}")
    con.execute(f"UPDATE payments SET invoice_id = NULL "
                f"WHERE payment_id IN {ids('payment_of_no_invoice')}")
    con.execute(f"UPDATE payments SET invoice_id = 'NO-SUCH-' || invoice_id "
                f"WHERE payment_id IN {ids('payment_of_unknown_invoice')}")
    con.execute(f"INSERT INTO payments SELECT * FROM payments "
                f"WHERE payment_id IN {ids('duplicate_payment_id')}")
    con.execute(f"UPDATE payments SET amount = amount + 0.003 "
                f"WHERE payment_id IN {ids('payment_amount_with_three_decimals')}")
    con.execute(f"UPDATE case_actions SET invoice_id = 'NO-SUCH-' || invoice_id "
                f"WHERE action_id IN {ids('action_of_unknown_invoice')}")
    con.execute(f"UPDATE case_actions SET invoice_id = NULL "
                f"WHERE action_id IN {ids('action_of_no_invoice')}")
