"""A warehouse with the dirt real receivables systems hold, through the daily job.

The dirt is generated (amili/warehouse/dirt.py: a share of the rows, one defect each, round
robin over the kinds), not a hand-written list of rows and outcomes: the day runs, every
extracted row ends in exactly one bucket, the balance check passes, the quarantine names
each bad row, and nothing reaches Amili twice.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from amili.pipeline.reconciliation import source_row_problems
from amili.warehouse.dirt import ACTION_DIRT, INVOICE_DIRT, PAYMENT_DIRT, add_dirt
from tests.conftest import SandboxAdmin, SandboxServer
from tests.helpers import demo_pipeline_env
from tests.pipeline.test_daily_job import check_results, run_job

DAY = date(2026, 11, 24)
#: The demo warehouse's three collection days, run as one range (as a UI backfill does).
RANGE = {"dagster/asset_partition_range_start": "2026-11-22",
         "dagster/asset_partition_range_end": DAY.isoformat()}

#: What the quarantine reason of a row with each defect says (the words that name it).
REASON_WORDS = {
    "duplicate_invoice_id": "appears 2 times",
    "amount_with_three_decimals": "more than two decimals",
    "amount_beyond_range": "beyond the largest amount",
    "description_too_long": "characters long",
    "line_amount_with_three_decimals": "more than two decimals",
    "duplicate_customer_row": "appears 2 times",
    "payment_of_no_invoice": "has no invoice_id",
    "payment_of_unknown_invoice": "the warehouse does not have",
    "duplicate_payment_id": "appears 2 times",
    "payment_amount_with_three_decimals": "more than two decimals",
    "action_of_unknown_invoice": "the warehouse does not have",
    "action_of_no_invoice": "has no invoice_id",
}

#: The reason code (amili/reasons.py) the quarantine gives each defect.
REASON_CODES = {
    "duplicate_invoice_id": "id_repeated",
    "amount_with_three_decimals": "amount_too_precise",
    "amount_beyond_range": "amount_too_large",
    "description_too_long": "text_too_long",
    "line_amount_with_three_decimals": "amount_too_precise",
    "duplicate_customer_row": "id_repeated",
    "payment_of_no_invoice": "reference_missing",
    "payment_of_unknown_invoice": "invoice_not_in_warehouse",
    "duplicate_payment_id": "id_repeated",
    "payment_amount_with_three_decimals": "amount_too_precise",
    "action_of_unknown_invoice": "invoice_not_in_warehouse",
    "action_of_no_invoice": "reference_missing",
}


def query(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture
def dirty_env(
    tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    env = demo_pipeline_env(tmp_path, clean_sandbox, end_date=DAY, days=3,
                            invoices_per_day=60)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    summary = add_dirt(env["AMILI_WAREHOUSE"], share=0.3, seed=3)
    assert set(summary.counts) == {*INVOICE_DIRT, *PAYMENT_DIRT, *ACTION_DIRT}
    return Path(env["AMILI_PIPELINE_DB"]), Path(env["AMILI_WAREHOUSE"])


def test_every_dirty_row_is_quarantined_by_name_and_the_day_is_sent(
    dirty_env: tuple[Path, Path], sandbox_admin: SandboxAdmin
) -> None:
    db, warehouse = dirty_env
    result = run_job(tags=RANGE)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    verdicts = check_results(result)
    assert all(verdicts[name] for name in (
        "every_krone_is_accounted_for", "rejection_rate_is_low",
        "every_sent_object_is_answered")), verdicts
    stats = sandbox_admin.stats()
    assert stats["invoices"] > 0  # one bad row never stops the day

    # every extracted row is in exactly one bucket, and none is unaccounted
    for table in ("invoices", "invoice_lines", "reminders", "payments", "case_actions",
                  "customers", "creditors"):
        (raw,) = query(db, f"SELECT count(*) FROM raw.{table}")[0]
        buckets = dict(query(db, f"""SELECT bucket, count(*) FROM marts.rpt_source_rows
                                     WHERE source_table = '{table}' GROUP BY ALL"""))
        assert sum(buckets.values()) == raw, (table, buckets)
        assert "unaccounted" not in buckets, (table, buckets)

    # each dirty row that was extracted is quarantined, with a reason that names its defect
    rows = _dirty_rows(db, warehouse)
    seen = set()
    for defect, table, source_id, bucket, reason, pays_a_case, code in rows:
        if table == "payments" and not pays_a_case:
            # a payment of an invoice never handed over is the creditor's own business
            assert bucket in {"not_handed_over", "netted_before_handover"}, (defect, bucket)
            continue
        seen.add(defect)
        assert bucket == "quarantined", (defect, source_id, bucket, reason)
        assert REASON_WORDS[defect] in reason, (defect, reason)
        # grouped under its own code, unless the row has a weightier problem besides
        assert code == REASON_CODES[defect] or "; " in reason, (defect, code, reason)
    assert {*INVOICE_DIRT, *ACTION_DIRT, "payment_of_no_invoice",
            "payment_of_unknown_invoice"} <= seen, seen

    # nothing posted twice: a re-run sends no invoice again, and no invoice, payment or
    # action was accepted twice (a creditor heads the bodies of each day it has objects)
    again = run_job(tags=RANGE)
    assert again.success
    assert check_results(again)["every_krone_is_accounted_for"]
    after = sandbox_admin.stats()
    assert after["invoices"] == stats["invoices"]  # (held payments may be released now)
    twice = query(db, """SELECT objectname, source_id FROM amili.ledger_objects
                         WHERE outcome = 'accepted' AND objectname <> 'creditor'
                         GROUP BY ALL HAVING count(*) > 1""")
    assert twice == []


def _dirty_rows(db: Path, warehouse: Path) -> list[tuple]:
    """(defect, table, id, bucket, reason, pays_a_case, reason_code) of each dirty row the
    extract read; pays_a_case: not a payment, or a payment that is an object of its day (it
    points at no invoice, or at one handed over by then)."""
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute(f"ATTACH '{warehouse}' AS wh (READ_ONLY)")
        return con.execute("""
            SELECT d.defect, d.table_name, d.source_id, s.bucket, s.reason,
                   s.objectname IS NOT NULL AND (s.source_table <> 'payments' OR EXISTS (
                       SELECT 1 FROM marts.rpt_object_fates f
                       WHERE f.objectname = 'payment' AND f.source_id = s.object_id
                         AND f.partition_date = s.partition_date)),
                   s.reason_code
            FROM wh.dirt_rows AS d
            JOIN marts.rpt_source_rows AS s
              ON s.source_id = d.source_id AND s.source_table = d.table_name
            ORDER BY ALL""").fetchall()


def test_a_mart_older_than_the_extract_is_reported_in_counts_and_amounts(
    dirty_env: tuple[Path, Path], sandbox_admin: SandboxAdmin
) -> None:
    db, _ = dirty_env
    assert run_job(partition_key=DAY.isoformat()).success
    with duckdb.connect(str(db)) as con:
        assert source_row_problems(con, DAY, DAY + timedelta(days=1)) == []
        # the extract re-read the day (an amount corrected, a row more) after the marts ran
        con.execute("""UPDATE raw.invoices SET amount = amount + 1 WHERE source_row = (
                           SELECT min(source_row) FROM raw.invoices WHERE partition_date = ?)
                         AND partition_date = ?""", [DAY, DAY])
        con.execute("""INSERT INTO raw.payments BY NAME SELECT * REPLACE ('LATE-1' AS payment_id,
                           1000000 AS source_row) FROM raw.payments
                       WHERE partition_date = ? LIMIT 1""", [DAY])
        problems = source_row_problems(con, DAY, DAY + timedelta(days=1))
    by_table = {p["objectname"]: p["problem"] for p in problems}
    assert set(by_table) == {"source:invoices", "source:payments"}, problems
    assert "amounts" in by_table["source:invoices"] and "stale" in by_table["source:invoices"]
    assert "accounts for" in by_table["source:payments"]
