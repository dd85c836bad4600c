"""An invoice and a payment changed in the warehouse after Amili took them, end to end: the
sandbox as a real HTTP server, real DuckDB files, the real extract and `dbt build`.

Two demo days go through the daily runs (day 1's invoices, then day 2's payments of them once
Amili's ids are known). Then one accepted invoice of day 1 is corrected down in the
warehouse and one accepted payment of day 2 too (which changes its invoice's payload as well,
though not its amount: the claims count what was paid); both days are extracted, built and
submitted again, and the marts rebuilt. Amili (the sandbox) must still hold the old amounts,
nothing may be posted for the changed objects, and the ledger, the marts and the checks must
say what happened: the fate ``changed_after_handover`` with the amount Amili holds and the
difference, the day still balancing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from pydantic import SecretStr

from amili.client import AmiliClient
from amili.pipeline.extract import extract_window
from amili.pipeline.ledger import record_results
from amili.pipeline.reconciliation import (
    balance_problems,
    changes_after_handover,
    reconciliation_summary,
)
from amili.pipeline.submission import Relations, SubmissionSummary, submit_window
from amili.reporting.snapshot import publish_snapshot
from amili.sandbox.server import SandboxServer
from amili.settings import ClientSettings, load
from amili.warehouse import generate_demo_warehouse
from tests.dbt.test_dbt_build import assert_green, dbt_vars, start_dbt

pytestmark = pytest.mark.timeout(600)

DAY1, DAY2 = date(2026, 11, 23), date(2026, 11, 24)
WINDOW = (DAY1, DAY2 + timedelta(days=1))
RELATIONS = Relations.in_schema("batch")
MARTS = "path:models/marts"
CUT = Decimal("100.00")  # the invoice's correction
PAYMENT_CUT = Decimal("1.00")


def rows(con: duckdb.DuckDBPyConnection, query: str, params: Any = None) -> list[dict[str, Any]]:
    cur = con.execute(query, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, values, strict=True)) for values in cur.fetchall()]


@dataclass
class Changed:
    db: Path
    invoice: dict[str, Any]
    """The changed invoice's fate before the change (accepted)."""
    payment: dict[str, Any]
    paid_invoice: str
    """The invoice the changed payment pays (its payload changes with the payment)."""
    amili_before: dict[str, Any]
    amili_after: dict[str, Any]
    cases: dict[str, Decimal]
    """Amili's original sum per invoice ledgerref, after the re-runs."""
    posted_for: set[str]
    """Source ids of the objects the re-runs posted."""
    reruns: dict[date, SubmissionSummary]
    snapshot: Path


def stored(stats: dict[str, Any]) -> dict[str, Any]:
    """The sandbox's counters of what it stored and the batches posted to it."""
    return {**{k: v for k, v in stats.items() if k != "requests"},
            "posts": stats["requests"].get("POST /webapi/api/Batch")}


def paid_amount(changed: Changed) -> Decimal:
    """The amount of the invoice the changed payment pays (unchanged)."""
    with duckdb.connect(str(changed.db), read_only=True) as con:
        [(amount,)] = con.execute(
            "SELECT originalInvoiceAmount FROM batch.batch_invoices WHERE invoice_id = ?",
            [changed.paid_invoice]).fetchall()
    return Decimal(amount)


@pytest.fixture(scope="module")
def changed(
    sandbox_server: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Changed]:
    tmp = tmp_path_factory.mktemp("changes")
    warehouse, db = tmp / "warehouse.duckdb", tmp / "pipeline.duckdb"
    generate_demo_warehouse(warehouse, days=2, invoices_per_day=20, end_date=DAY2, seed=11)

    def dbt(start: date, end: date, *args: str) -> None:
        assert_green(start_dbt(db, tmp / "t", "build", "--vars", dbt_vars(start, end), *args),
                     tmp / "t")

    httpx.post(f"{sandbox_server.base_url}/sandbox/reset").raise_for_status()
    base = sandbox_server.base_url
    client = AmiliClient(load(
        ClientSettings, base_url=base, token=SecretStr(sandbox_server.issue_token()),
        sender_id="changes", backoff_initial_seconds=0.01, backoff_max_seconds=0.05,
    ))

    def submit(day: date) -> SubmissionSummary:
        summary = submit_window(db, client, day, day + timedelta(days=1), relations=RELATIONS)
        record_results(db, *WINDOW)
        return summary

    try:
        # the daily runs: day 1's invoices, then day 2 rebuilt and its payments of them sent
        extract_window(db, warehouse, *WINDOW)
        dbt(*WINDOW)
        submit(DAY1)
        dbt(DAY2, WINDOW[1], "--exclude", MARTS)
        submit(DAY2)
        dbt(*WINDOW, "--select", MARTS)
        with duckdb.connect(str(db), read_only=True) as con:
            [invoice] = rows(con, """
                SELECT * FROM marts.rpt_object_fates WHERE partition_date = $day
                  AND objectname = 'invoice' AND fate = 'sent' AND outcome = 'accepted'
                  AND currency = 'NOK' ORDER BY source_id LIMIT 1""", {"day": DAY1})
            [payment] = rows(con, """
                SELECT * FROM marts.rpt_object_fates WHERE partition_date = $day
                  AND objectname = 'payment' AND fate = 'sent' AND outcome = 'accepted'
                  AND currency = 'NOK' ORDER BY source_id LIMIT 1""", {"day": DAY2})
            [(paid_invoice,)] = con.execute(
                "SELECT DISTINCT invoice_id FROM batch.batch_payments WHERE payment_id = ?",
                [payment["source_id"]]).fetchall()
            last_chunk = dict(con.execute(
                "SELECT partition_date, max(chunk_number) FROM amili.submission_ledger "
                "GROUP BY ALL").fetchall())
        amili_before = httpx.get(f"{base}/sandbox/stats").json()

        # the warehouse corrects the invoice and the payment after the hand-over
        with duckdb.connect(str(warehouse)) as con:
            con.execute("UPDATE invoices SET amount = amount - $cut WHERE invoice_id = $id",
                        {"cut": CUT, "id": invoice["source_id"]})
            con.execute("UPDATE payments SET amount = amount - $cut WHERE payment_id = $id",
                        {"cut": PAYMENT_CUT, "id": payment["source_id"]})

        # ... and both days run again
        extract_window(db, warehouse, *WINDOW)
        dbt(*WINDOW, "--exclude", MARTS)
        reruns = {day: submit(day) for day in (DAY1, DAY2)}
        dbt(*WINDOW, "--select", MARTS)
        amili_after = httpx.get(f"{base}/sandbox/stats").json()
        cases = {case.ledgerref: case.originalsum for case in client.get_batches().case}
        with duckdb.connect(str(db), read_only=True) as con:
            posted_for = {source_id for day, chunk, source_id in con.execute(
                "SELECT o.partition_date, l.chunk_number, o.source_id "
                "FROM amili.ledger_objects o JOIN amili.submission_ledger l USING (batchid)"
            ).fetchall() if chunk > last_chunk[day]}
        snapshot = tmp / "reporting.duckdb"
        publish_snapshot(db, snapshot, window=WINDOW)
    finally:
        client.close()
        httpx.post(f"{base}/sandbox/reset").raise_for_status()
    assert paid_invoice != invoice["source_id"]
    yield Changed(db, invoice, payment, paid_invoice, amili_before, amili_after, cases,
                  posted_for, reruns, snapshot)


def test_amili_keeps_what_it_took_and_nothing_is_posted_for_the_changed_objects(
    changed: Changed,
) -> None:
    assert stored(changed.amili_after)["invoices"] == stored(changed.amili_before)["invoices"]
    assert stored(changed.amili_after)["payments"] == stored(changed.amili_before)["payments"]
    assert changed.amili_after["duplicates"] == changed.amili_before["duplicates"]
    assert changed.cases[changed.invoice["ledgerref"]] == changed.invoice["amount"]
    assert changed.invoice["source_id"] not in changed.posted_for
    assert changed.payment["source_id"] not in changed.posted_for
    assert changed.paid_invoice not in changed.posted_for
    invoices = changed.reruns[DAY1].days[0].objects["invoice"]
    payments = changed.reruns[DAY2].days[0].objects["payment"]
    assert invoices.changed_after_handover == 2 and payments.changed_after_handover == 1
    assert invoices.amount("changed_after_handover") == (
        changed.invoice["amount"] - CUT + paid_amount(changed))
    assert payments.amount("changed_after_handover") == changed.payment["amount"] - PAYMENT_CUT
    assert invoices.sent == 0 and payments.sent == 0


def test_the_ledger_records_the_changes_with_what_amili_holds(changed: Changed) -> None:
    with duckdb.connect(str(changed.db), read_only=True) as con:
        recorded = rows(con, "SELECT * FROM amili.changes_after_handover ORDER BY objectname")
    assert sorted((r["partition_date"], r["objectname"], r["source_id"]) for r in recorded) == [
        (DAY1, "invoice", source_id)
        for source_id in sorted([changed.invoice["source_id"], changed.paid_invoice])
    ] + [(DAY2, "payment", changed.payment["source_id"])]
    by_id = {r["source_id"]: r for r in recorded}
    invoice, payment = by_id[changed.invoice["source_id"]], by_id[changed.payment["source_id"]]
    paid = by_id[changed.paid_invoice]
    assert paid["acknowledged_amount"] == paid["amount"]
    assert paid["acknowledged_payload_hash"] != paid["payload_hash"]
    assert invoice["acknowledged_payload_hash"] == changed.invoice["payload_hash"]
    assert invoice["payload_hash"] != changed.invoice["payload_hash"]
    assert (invoice["acknowledged_amount"], invoice["amount"]) == (
        changed.invoice["amount"], changed.invoice["amount"] - CUT)
    assert invoice["acknowledged_batchid"] == changed.invoice["batchid"]
    assert (payment["acknowledged_amount"], payment["amount"]) == (
        changed.payment["amount"], changed.payment["amount"] - PAYMENT_CUT)


def test_the_marts_show_the_fate_the_held_amount_and_the_difference(changed: Changed) -> None:
    with duckdb.connect(str(changed.db), read_only=True) as con:
        fates = {(r["objectname"], r["source_id"]): r for r in rows(
            con, "SELECT * FROM marts.rpt_object_fates WHERE fate = 'changed_after_handover'")}
        daily = rows(con, "SELECT * FROM marts.rpt_reconciliation_daily "
                          "WHERE changed_after_handover_count > 0 ORDER BY partition_date")
        problems = balance_problems(con, *WINDOW)
        listed = changes_after_handover(con, *WINDOW)
        summary = reconciliation_summary(con, *WINDOW)
    assert set(fates) == {("invoice", changed.invoice["source_id"]),
                          ("invoice", changed.paid_invoice),
                          ("payment", changed.payment["source_id"])}
    assert fates[("invoice", changed.paid_invoice)]["amount_difference"] == 0
    invoice = fates[("invoice", changed.invoice["source_id"])]
    assert (invoice["amount"], invoice["acknowledged_amount"], invoice["amount_difference"]) == (
        changed.invoice["amount"] - CUT, changed.invoice["amount"], -CUT)
    assert invoice["acknowledged_on"] == DAY1 and invoice["outcome"] is None
    payment = fates[("payment", changed.payment["source_id"])]
    assert payment["amount_difference"] == -PAYMENT_CUT
    assert [(r["partition_date"], r["objectname"], r["changed_after_handover_count"],
             r["changed_after_handover_difference"]) for r in daily] == [
        (DAY1, "invoice", 2, -CUT), (DAY2, "payment", 1, -PAYMENT_CUT)]
    assert daily[0]["changed_after_handover_acknowledged_amount"] == (
        changed.invoice["amount"] + paid_amount(changed))
    assert all(row["balances"] for row in daily)
    assert problems == []  # the blocking check passes
    assert [(r["objectname"], r["changed_after_handover_difference"]) for r in listed] == [
        ("invoice", str(-CUT)), ("payment", str(-PAYMENT_CUT))]
    assert "changed after hand-over (not sent again" in summary
    assert "balances: all" in summary


def test_the_snapshot_lists_them_as_problems_with_the_difference(changed: Changed) -> None:
    with duckdb.connect(str(changed.snapshot), read_only=True) as con:
        listed = rows(con, "SELECT * FROM report.problems "
                           "WHERE kind = 'changed after hand-over' ORDER BY objectname")
    assert {(r["objectname"], r["source_id"], r["acknowledged_amount"], r["amount_difference"])
            for r in listed} == {
        ("invoice", changed.invoice["source_id"], changed.invoice["amount"], -CUT),
        ("invoice", changed.paid_invoice, paid_amount(changed), 0),
        ("payment", changed.payment["source_id"], changed.payment["amount"], -PAYMENT_CUT)}
