"""The "Warehouse rows" table follows the dashboard's creditor filter, after a real run of the
daily job on a day with three creditors and a payment of no invoice (whose creditor the
warehouse does not name): all creditors show every row as before, one creditor its own rows
only, and the blocking balance check still passes."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from amili.pipeline.reconciliation import source_row_problems
from amili.reporting import queries as q
from tests.conftest import SandboxServer
from tests.reporting.conftest import DAY, ReportingRun, successful_reporting_run

pytestmark = pytest.mark.timeout(900)

Key = tuple[str, str, str | None]


def pay_no_invoice(warehouse: Path) -> None:
    """One payment of DAY points at no invoice (dirt.py's payment_of_no_invoice)."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            """UPDATE payments SET invoice_id = NULL WHERE payment_id = (
                   SELECT min(payment_id) FROM payments
                   WHERE timezone('Europe/Oslo', registered_at)::DATE = $day)""",
            {"day": DAY})


@pytest.fixture(scope="module")
def orphan_run(tmp_path_factory: pytest.TempPathFactory,
               sandbox_server: SandboxServer) -> ReportingRun:
    return successful_reporting_run(tmp_path_factory.mktemp("orphan"), sandbox_server,
                                    prepare=pay_no_invoice)


def mart_rows(run: ReportingRun, creditor: str | None = None, *, unknown: bool = False
              ) -> dict[Key, tuple[int, Decimal | None]]:
    """DAY's rows of ``rpt_source_rows`` per table, bucket and currency: all, one creditor's,
    or (``unknown``) those whose creditor is NULL."""
    where = ("creditor_id IS NULL AND $creditor IS NULL" if unknown else
             "($creditor IS NULL OR creditor_id = $creditor)")
    with duckdb.connect(str(run.pipeline_db), read_only=True) as con:
        found = con.execute(
            f"""SELECT source_table, bucket, currency, count(*), sum(amount)
                FROM marts.rpt_source_rows WHERE partition_date = $day AND {where}
                GROUP BY ALL""", {"day": DAY, "creditor": creditor}).fetchall()
    return {(t, b, c): (int(n), amount) for t, b, c, n, amount in found}


def shown(run: ReportingRun, creditor: str | None = None, snapshot: Path | None = None
          ) -> dict[Key, tuple[int, Decimal | None]]:
    """The table as the dashboard gets it (queries.source_rows), keyed like mart_rows."""
    with q.connect_snapshot(snapshot or run.reporting_db) as con:
        found = q.source_rows(con, q.Filters(DAY, DAY, creditor))
    keys = [(r["table"], r["bucket"], r["currency"]) for r in found]
    assert len(keys) == len(set(keys)), "one line per table, bucket and currency"
    return {(r["table"], r["bucket"], r["currency"]): (r["rows"], r["amount"]) for r in found}


def add(parts: list[dict[Key, tuple[int, Decimal | None]]]
        ) -> dict[Key, tuple[int, Decimal | None]]:
    counts: Counter[Key] = Counter()
    amounts: dict[Key, Decimal | None] = {}
    for part in parts:
        for key, (n, amount) in part.items():
            counts[key] += n
            if amount is not None:
                amounts[key] = (amounts.get(key) or Decimal(0)) + amount
            else:
                amounts.setdefault(key, None)
    return {key: (n, amounts[key]) for key, n in counts.items()}


def day_creditors(run: ReportingRun) -> list[str]:
    with duckdb.connect(str(run.pipeline_db), read_only=True) as con:
        return [c for (c,) in con.execute(
            """SELECT DISTINCT creditor_id FROM marts.rpt_source_rows
               WHERE partition_date = $day AND creditor_id IS NOT NULL ORDER BY 1""",
            {"day": DAY}).fetchall()]


def test_the_payment_of_no_invoice_counts_under_no_creditor_and_the_day_balances(
    orphan_run: ReportingRun,
) -> None:
    with duckdb.connect(str(orphan_run.pipeline_db), read_only=True) as con:
        orphans = con.execute(
            """SELECT s.creditor_id, s.bucket FROM marts.rpt_source_rows AS s
               JOIN raw.payments AS p USING (partition_date, source_row)
               WHERE s.source_table = 'payments' AND p.invoice_id IS NULL
                 AND s.partition_date = $day""", {"day": DAY}).fetchall()
        assert orphans == [(None, "quarantined")]
        # a payment of an invoice the extract holds takes that invoice's creditor
        wrong = con.execute(
            """SELECT s.source_id, s.creditor_id, i.creditor_id FROM marts.rpt_source_rows AS s
               JOIN raw.payments AS p USING (partition_date, source_row)
               JOIN raw.invoices AS i ON i.invoice_id = p.invoice_id
               WHERE s.source_table = 'payments' AND s.partition_date = $day
                 AND s.creditor_id IS DISTINCT FROM i.creditor_id""",
            {"day": DAY}).fetchall()
        assert wrong == []
        # one of an invoice never handed over takes the warehouse invoice's creditor
        # (raw.payments.invoice_creditor_id): the payment of no invoice is the day's only
        # row of no known creditor
        not_handed_over = con.execute(
            """SELECT count(*), count(creditor_id) FROM marts.rpt_source_rows
               WHERE partition_date = $day AND bucket = 'not_handed_over'""",
            {"day": DAY}).fetchone()
        assert not_handed_over[0] > 0 and not_handed_over[0] == not_handed_over[1]
        assert con.execute(
            """SELECT source_table, bucket FROM marts.rpt_source_rows
               WHERE partition_date = $day AND creditor_id IS NULL""",
            {"day": DAY}).fetchall() == [("payments", "quarantined")]
        # the blocking check's own function, as the job ran it
        assert source_row_problems(con, DAY, DAY + timedelta(days=1)) == []
    assert len(day_creditors(orphan_run)) >= 2


def test_all_creditors_show_every_row_and_each_creditor_its_own(
    orphan_run: ReportingRun,
) -> None:
    everything = shown(orphan_run)
    assert everything == mart_rows(orphan_run)  # as before the filter: every row, once
    creditors = day_creditors(orphan_run)
    per_creditor = [shown(orphan_run, c) for c in creditors]
    for creditor, rows in zip(creditors, per_creditor, strict=True):
        assert rows, creditor
        assert rows == mart_rows(orphan_run, creditor), creditor
    unknown = mart_rows(orphan_run, unknown=True)
    assert any(t == "payments" and b == "quarantined" for t, b, _ in unknown)
    assert add([*per_creditor, unknown]) == everything


def test_an_older_snapshot_without_creditors_still_shows_all_creditors(
    orphan_run: ReportingRun, tmp_path: Path,
) -> None:
    older = tmp_path / "older.duckdb"
    shutil.copy(orphan_run.reporting_db, older)
    with duckdb.connect(str(older)) as con:
        con.execute("ALTER TABLE marts.rpt_source_reconciliation DROP COLUMN creditor_id")
    with q.connect_snapshot(older) as con:
        assert not q.source_rows_by_creditor(con)
    assert shown(orphan_run, snapshot=older) == shown(orphan_run)
    creditor = day_creditors(orphan_run)[0]
    assert shown(orphan_run, creditor, snapshot=older) == {}  # as before: none for one
