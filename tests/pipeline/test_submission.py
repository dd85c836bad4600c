"""The submission core against the sandbox as a real HTTP server, on real DuckDB files.

The four input relations that dbt builds are created here as plain tables with the same
columns, filled with payloads made from the API models, so each test controls its rows.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import json
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pydantic import SecretStr

from amili import jsonio
from amili.chunking import BATCHID_MAX_LENGTH
from amili.client import AmiliClient
from amili.examples import example_creditor, example_invoice
from amili.models import Action, BatchRequest, Payment, PaymentType
from amili.pipeline import submission
from amili.pipeline.ledger import record_results
from amili.pipeline.submission import (
    Relations,
    SubmissionError,
    TypedObjects,
    submit_window,
)
from amili.sandbox.faults import REJECT_MESSAGE, fault_rejects
from amili.sandbox.server import SandboxServer
from amili.sandbox.settings import SandboxSettings
from amili.settings import ClientSettings, load
from tests.conftest import SandboxAdmin
from tests.receiver import Receiver

DAY = date(2026, 11, 24)
NEXT = DAY + timedelta(days=1)
CREDITOR = "CR01"
ORGNR_2 = "123456785"  # a second valid organisasjonsnummer
BAD_FNR = "15108695077"  # wrong check digits

ClientFactory = Callable[..., AmiliClient]

# --------------------------------------------------------------------------------------------
# Input tables, as dbt would build them
# --------------------------------------------------------------------------------------------

_TABLES = {
    "batch_creditors_json": "partition_date DATE, creditor_id VARCHAR, payload VARCHAR",
    "batch_invoices_json": (
        "partition_date DATE, invoice_id VARCHAR, creditor_id VARCHAR, payload VARCHAR"
    ),
    "batch_payments_json": (
        "partition_date DATE, payment_id VARCHAR, invoice_id VARCHAR, creditor_id VARCHAR, "
        "hold_reason VARCHAR, payload VARCHAR"
    ),
    "batch_actions_json": (
        "partition_date DATE, action_id VARCHAR, invoice_id VARCHAR, creditor_id VARCHAR, "
        "hold_reason VARCHAR, payload VARCHAR"
    ),
}


def dumps(value: Any) -> str:
    return jsonio.dumps(value).decode()


def invoice_payload(source_id: str, **changes: Any) -> str:
    data = jsonio.to_jsonable(example_invoice(source_id))
    data.update(changes)
    return dumps(data)


def creditor_payload(**changes: Any) -> str:
    data = jsonio.to_jsonable(example_creditor())
    data.update(changes)
    return dumps(data)


def payment_payload(payment_id: str, invoice_id: str | None, amount: str = "250.00") -> str:
    payment = Payment(
        invoiceId=invoice_id or "pending", type=PaymentType.DIRECT_PAYMENT,
        amount=Decimal(amount), currency="NOK", date=datetime(2026, 11, 23, tzinfo=UTC),
        uniqueSourcePaymentId=payment_id,
    )
    data = jsonio.to_jsonable(payment)
    if invoice_id is None:
        data["invoiceId"] = None  # how dbt shapes a held payment
    return dumps(data)


def action_payload(ledgerref: str | None) -> str:
    data = jsonio.to_jsonable(Action(creditorid=example_creditor().idnumber,
                                     ledgerref=ledgerref or "pending", actiontype=4,
                                     subject="Ny adresse"))
    if ledgerref is None:
        data["ledgerref"] = None
    return dumps(data)


class Inputs:
    """The pipeline database with the four ``main.batch_*_json`` tables."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with duckdb.connect(str(path)) as con:
            for name, columns in _TABLES.items():
                con.execute(f"CREATE TABLE IF NOT EXISTS main.{name} ({columns})")

    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list:
        with duckdb.connect(str(self.path)) as con:
            return con.execute(query, params).fetchall()

    def creditor(self, creditor_id: str = CREDITOR, payload: str | None = None,
                 day: date = DAY) -> None:
        self.sql("INSERT INTO batch_creditors_json VALUES (?, ?, ?)",
                 [day, creditor_id, payload or creditor_payload()])

    def invoices(self, rows: Sequence[tuple[str, str]], creditor_id: str = CREDITOR,
                 day: date = DAY) -> None:
        with duckdb.connect(str(self.path)) as con:
            con.execute(
                "INSERT INTO batch_invoices_json SELECT $day, unnest($ids), $creditor, "
                "unnest($payloads)",
                {"day": day, "ids": [r[0] for r in rows], "creditor": creditor_id,
                 "payloads": [r[1] for r in rows]},
            )

    def many_invoices(self, count: int, prefix: str = "INV-", day: date = DAY) -> int:
        """``count`` valid invoices made in SQL from one template; returns their JSON bytes."""
        template = invoice_payload("__ID__")
        self.sql(
            f"""INSERT INTO batch_invoices_json SELECT $day, $prefix || lpad(i::VARCHAR, 6, '0'),
                $creditor, replace($template, '__ID__', $prefix || lpad(i::VARCHAR, 6, '0'))
                FROM range({count}) AS t(i)""",
            {"day": day, "prefix": prefix, "creditor": CREDITOR, "template": template},
        )
        return int(self.sql("SELECT sum(strlen(payload)) FROM batch_invoices_json"
                            )[0][0])

    def payment(self, payment_id: str, invoice_id: str, amili_id: str | None,
                amount: str = "250.00", day: date = DAY) -> None:
        hold = None if amili_id else "invoice not yet acknowledged by Amili"
        self.sql("INSERT INTO batch_payments_json VALUES (?, ?, ?, ?, ?, ?)",
                 [day, payment_id, invoice_id, CREDITOR, hold,
                  payment_payload(payment_id, amili_id, amount)])

    def action(self, action_id: str, invoice_id: str, amili_id: str | None,
               day: date = DAY) -> None:
        hold = None if amili_id else "invoice not yet acknowledged by Amili"
        self.sql("INSERT INTO batch_actions_json VALUES (?, ?, ?, ?, ?, ?)",
                 [day, action_id, invoice_id, CREDITOR, hold, action_payload(amili_id)])

    def ledger(self) -> list[tuple[Any, ...]]:
        return self.sql("SELECT batchid, state, http_status, object_count, body_bytes, attempts, "
                        "posts, error FROM amili.submission_ledger ORDER BY chunk_number")

    def states(self) -> dict[str, str]:
        return {row[0]: row[1] for row in self.ledger()}


@pytest.fixture
def inputs(tmp_path: Path) -> Inputs:
    return Inputs(tmp_path / "pipeline.duckdb")


def valid_invoices(count: int, prefix: str = "INV-") -> list[tuple[str, str]]:
    return [(f"{prefix}{i:04d}", invoice_payload(f"{prefix}{i:04d}")) for i in range(count)]


def posts(admin: SandboxAdmin) -> dict[str, int]:
    return admin.stats()["requests"].get("POST /webapi/api/Batch", {})


# --------------------------------------------------------------------------------------------
# One day end to end, and re-runs
# --------------------------------------------------------------------------------------------


def test_one_day_end_to_end_matches_the_sandbox(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    inputs.creditor()
    rows = valid_invoices(25)
    rows.append(("INV-BAD1", invoice_payload("INV-BAD1").replace("15108695088", BAD_FNR)))
    rows.append(("INV-BAD2", invoice_payload("INV-BAD2", ocrReferenceNumber="1002003001")))
    inputs.invoices(rows)
    inputs.payment("PAY-1", "INV-0001", None)
    inputs.action("ACT-1", "INV-0002", None)

    summary = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=10,
                            max_bytes=1_000_000)

    day = summary.days[0]
    invoices, creditors = day.objects["invoice"], day.objects["creditor"]
    assert (invoices.seen, invoices.quarantined, invoices.sent) == (27, 2, 25)
    assert invoices.accepted == 25
    assert (creditors.seen, creditors.sent, creditors.accepted) == (1, 1, 1)
    assert day.objects["payment"].held == 1 and day.objects["action"].held == 1
    assert day.held_reasons == {"payment: invoice not yet acknowledged by Amili": 1,
                                "action: invoice not yet acknowledged by Amili": 1}
    assert invoices.amount("accepted") == Decimal("1250.00") * 25
    assert invoices.amount("quarantined") == Decimal("2500.00")
    assert day.objects["payment"].amount("held") == Decimal("250.00")

    stats = sandbox_admin.stats()
    ledger = inputs.ledger()
    # 25 invoices at 9 per body (the creditor heads each of them) make 3 bodies
    assert len(ledger) == 3 == stats["batches"] == posts(sandbox_admin)["200"]
    assert {row[1] for row in ledger} == {"accepted"}
    assert stats["invoices"] == 25 and stats["creditors"] == 1 and stats["payments"] == 0
    assert stats["objects_accepted"] == 25 + 3  # the creditor once per body (UPDATED after 1)
    assert all(len(row[0]) <= BATCHID_MAX_LENGTH and row[0].startswith("20261124-")
               for row in ledger)
    assert inputs.sql("SELECT count(*) FROM amili.ledger_objects WHERE outcome = 'accepted'"
                      ) == [(28,)]

    quarantined = dict(inputs.sql("SELECT source_id, reason FROM amili.quarantine"))
    assert quarantined["INV-BAD1"] == (
        f"invoice.debtors[0].identificationNumber: '{BAD_FNR}' is not a valid Norwegian "
        "national identity number (fødselsnummer)"
    )
    assert quarantined["INV-BAD2"].startswith(
        "invoice.ocrReferenceNumber: '1002003001' is not a valid KID"
    )

    # Amili's ids of the invoices, as the results stage records them for dbt
    recorded = record_results(inputs.path, DAY, NEXT)
    assert (recorded.inserted, recorded.conflicts) == (25, [])
    with make_client() as client:
        cases = {case.ledgerref: case.referencenumber for case in client.get_batches().case}
    acknowledged = dict(inputs.sql(
        "SELECT unique_source_invoice_id, amili_invoice_id FROM amili.acknowledged_invoices"))
    assert {cases[amili_id] for amili_id in acknowledged.values()} == {
        f"F-{source_id}" for source_id in acknowledged}
    assert "INV-BAD1" not in acknowledged
    assert record_results(inputs.path, DAY, NEXT).already_known == 25  # idempotent
    inputs.sql("UPDATE amili.acknowledged_invoices SET amili_invoice_id = 'someone-else' "
               "WHERE unique_source_invoice_id = 'INV-0003'")
    again = record_results(inputs.path, DAY, NEXT)
    assert [c[:2] for c in again.conflicts] == [("INV-0003", "someone-else")]  # not overwritten


def test_a_rerun_of_the_day_posts_nothing_new(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    inputs.creditor()
    inputs.invoices([*valid_invoices(12), ("INV-BAD", invoice_payload("INV-BAD", currency="XXX"))])
    submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=5, max_bytes=1_000_000)
    before = sandbox_admin.stats()

    again = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=5,
                          max_bytes=1_000_000)

    after = sandbox_admin.stats()
    assert after["requests"]["POST /webapi/api/Batch"] == before["requests"][
        "POST /webapi/api/Batch"] == {"200": 3}
    assert {k: v for k, v in after.items() if k != "requests"} == {
        k: v for k, v in before.items() if k != "requests"}
    day = again.days[0]
    assert day.batches_posted == 0
    assert day.objects["invoice"].skipped_unchanged == 12
    assert day.objects["invoice"].quarantined == 1
    assert day.objects["creditor"].skipped_unchanged == 1
    assert day.total().sent == 0
    assert inputs.sql("SELECT count(*) FROM amili.quarantine") == [(1,)]  # replaced, not added


def _stored(stats: dict[str, Any]) -> dict[str, Any]:
    """The sandbox's counters of what it stored, and the batches posted to it."""
    return {**{k: v for k, v in stats.items() if k != "requests"},
            "posts": stats["requests"].get("POST /webapi/api/Batch")}


def test_a_changed_invoice_is_not_sent_again_but_recorded_as_changed_after_handover(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    """Amili keeps the invoice it took (a re-post would be answered DUPLICATE): the changed
    row is not posted, not called accepted, and recorded with both amounts."""
    inputs.creditor()
    inputs.invoices(valid_invoices(4))
    submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=10, max_bytes=1_000_000)
    one = Decimal(jsonio.loads(invoice_payload("INV-1"))["originalInvoiceAmount"])
    new = invoice_payload("INV-0002", originalInvoiceAmount=one - Decimal("250.50"))
    inputs.sql("UPDATE batch_invoices_json SET payload = ? WHERE invoice_id = 'INV-0002'", [new])
    before = sandbox_admin.stats()

    for _ in range(2):  # a second re-run replaces the day's record, it does not add to it
        day = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=10,
                            max_bytes=1_000_000).days[0]

        invoices = day.objects["invoice"]
        assert (invoices.seen, invoices.sent, invoices.changed_after_handover,
                invoices.skipped_unchanged, invoices.changed) == (4, 0, 1, 3, 0)
        assert invoices.amount("changed_after_handover") == one - Decimal("250.50")
        assert invoices.amount("skipped_unchanged") == 3 * one
        assert invoices.amount("seen") == 4 * one - Decimal("250.50")
        assert day.batches_posted == 0
    assert _stored(sandbox_admin.stats()) == _stored(before)  # nothing posted or stored
    with make_client() as client:
        cases = {case.referencenumber: case.originalsum for case in client.get_batches().case}
    assert cases["F-INV-0002"] == one  # Amili holds what it took
    assert inputs.sql(
        "SELECT objectname, source_id, acknowledged_payload_hash, acknowledged_amount, "
        "acknowledged_currency, payload_hash, payload, amount, currency "
        "FROM amili.changes_after_handover"
    ) == [("invoice", "INV-0002", hashlib.sha256(invoice_payload("INV-0002").encode()
                                                 ).hexdigest(), one, "NOK",
           hashlib.sha256(new.encode()).hexdigest(), new, one - Decimal("250.50"), "NOK")]
    # the ledger keeps each invoice's amount as sent: what Amili holds
    assert inputs.sql("SELECT DISTINCT amount, currency FROM amili.ledger_objects "
                      "WHERE objectname = 'invoice'") == [(one, "NOK")]
    meta = submission.SubmissionSummary([day]).as_metadata()
    assert meta["invoice.changed_after_handover"] == 1
    assert meta["days_with_changes_after_handover"] == 1


def test_a_changed_payment_is_not_sent_again(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    inputs.creditor()
    inputs.invoices(valid_invoices(1))
    submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=10, max_bytes=1_000_000)
    record_results(inputs.path, DAY, NEXT)
    [(amili_id,)] = inputs.sql("SELECT amili_invoice_id FROM amili.acknowledged_invoices")
    inputs.payment("PAY-1", "INV-0000", amili_id, amount="250.00")
    first = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=10,
                          max_bytes=1_000_000).days[0]
    assert first.objects["payment"].accepted == 1
    inputs.sql("UPDATE batch_payments_json SET payload = ? WHERE payment_id = 'PAY-1'",
               [payment_payload("PAY-1", amili_id, "300.00")])
    before = sandbox_admin.stats()

    day = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=10,
                        max_bytes=1_000_000).days[0]

    payments = day.objects["payment"]
    assert (payments.sent, payments.changed_after_handover) == (0, 1)
    assert payments.amount("changed_after_handover") == Decimal("300.00")
    assert _stored(sandbox_admin.stats()) == _stored(before) and before["payments"] == 1
    assert inputs.sql("SELECT acknowledged_amount, amount FROM amili.changes_after_handover"
                      ) == [(Decimal("250.00"), Decimal("300.00"))]


def test_a_dry_run_writes_the_changes_after_handover_to_a_file(
    inputs: Inputs, make_client: ClientFactory, tmp_path: Path
) -> None:
    inputs.creditor()
    inputs.invoices(valid_invoices(2))
    submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=10, max_bytes=1_000_000)
    inputs.sql("UPDATE batch_invoices_json SET payload = replace(payload, 'oktober', 'november') "
               "WHERE invoice_id = 'INV-0001'")

    day = submit_window(inputs.path, None, DAY, NEXT, dry_run_dir=tmp_path / "dry").days[0]

    assert day.objects["invoice"].changed_after_handover == 1
    [line] = (tmp_path / "dry" / f"changes-after-handover-{DAY}.jsonl").read_text().splitlines()
    assert jsonio.loads(line)["source_id"] == "INV-0001"
    assert inputs.sql("SELECT count(*) FROM amili.changes_after_handover") == [(0,)]


def test_force_resend_sends_everything_in_new_batches(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    inputs.creditor()
    inputs.invoices(valid_invoices(6))
    first = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=10,
                          max_bytes=1_000_000)
    day = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=10,
                        max_bytes=1_000_000, force_resend=True).days[0]
    assert day.objects["invoice"].sent == 6 and day.objects["invoice"].duplicates == 6
    assert day.objects["invoice"].changed == 0
    assert sandbox_admin.stats()["invoices"] == 6
    assert sandbox_admin.stats()["replays"] == 0  # a new batchid, not a replay
    assert len(inputs.ledger()) == first.days[0].batches_posted + 1


# --------------------------------------------------------------------------------------------
# Crashes and failures
# --------------------------------------------------------------------------------------------


def test_a_batch_stored_by_amili_but_never_answered_is_not_duplicated(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    """The connection drops after the sandbox stored the batch: a real crash window."""
    inputs.creditor()
    inputs.invoices(valid_invoices(20))
    sandbox_admin.add_faults({"kind": "drop", "after_processing": True, "times": 1})

    first = submit_window(inputs.path, make_client(max_retries=0), DAY, NEXT, max_objects=6,
                          max_bytes=1_000_000, max_concurrency=1)

    day = first.days[0]
    assert day.batches_failed == 1 and day.partially_failed and not day.all_failed
    first.raise_for_failures()  # a partial failure does not raise
    assert first.partial_failures == [day]
    failed = [row for row in inputs.ledger() if row[1] == "failed"]
    assert len(failed) == 1 and failed[0][2] is None  # no HTTP answer: in doubt
    assert day.objects["invoice"].failed == 5
    assert sandbox_admin.stats()["invoices"] == 20  # ... yet the sandbox has all of them

    again = submit_window(inputs.path, make_client(max_retries=0), DAY, NEXT, max_objects=6,
                          max_bytes=1_000_000)

    stats = sandbox_admin.stats()
    assert stats["invoices"] == 20 and stats["replays"] == 1
    assert again.days[0].reposted == 1 and again.days[0].objects["invoice"].sent == 5
    assert again.days[0].objects["invoice"].skipped_unchanged == 15
    assert set(inputs.states().values()) == {"accepted"}
    assert inputs.states()[failed[0][0]] == "accepted"  # the same batchid, re-posted


def test_a_run_killed_between_post_and_ledger_update_is_reposted(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    inputs.creditor()
    inputs.invoices(valid_invoices(12))
    submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=5, max_bytes=1_000_000)
    # What a kill -9 after the POSTs leaves behind: the ledger still says 'prepared'.
    inputs.sql("UPDATE amili.submission_ledger SET state = 'prepared', http_status = NULL, "
               "response_body = NULL, answered_at = NULL")
    inputs.sql("DELETE FROM amili.ledger_object_answers")
    # ... and one invoice changed meanwhile, so its batch cannot be rebuilt as it was
    inputs.sql("UPDATE batch_invoices_json SET payload = replace(payload, 'oktober', 'november') "
               "WHERE invoice_id = 'INV-0011'")
    before = sandbox_admin.stats()

    day = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=5,
                        max_bytes=1_000_000).days[0]

    stats = sandbox_admin.stats()
    assert stats["invoices"] == before["invoices"] == 12
    assert stats["replays"] == 2  # two batches re-posted as they were: the stored answers
    assert day.reposted == 2 and len(day.superseded) == 1
    invoices = day.objects["invoice"]
    assert invoices.seen == 12 and invoices.sent == 12
    assert invoices.accepted + invoices.duplicates == 12
    assert invoices.duplicates == 4  # the superseded batch's invoices, sent in a new batch
    states = sorted(inputs.states().values())
    assert states == ["accepted", "accepted", "accepted", "superseded"]
    recorded = record_results(inputs.path, DAY, NEXT)
    assert recorded.inserted == 12 and recorded.conflicts == []


def test_a_run_killed_mid_day_loses_nothing_and_the_next_one_sends_nothing_twice(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin,
    clean_sandbox: SandboxServer,
) -> None:
    """A real kill -9 while batches are in flight: the ledger's writes since the last
    checkpoint are only in DuckDB's WAL (the submission defers checkpoints), and must all
    come back when the file is opened again."""
    inputs.creditor()
    inputs.invoices(valid_invoices(40))
    # each answer takes a second: the kill comes after the first, well before the fourth
    # (after which the next group of four batches would be prepared)
    sandbox_admin.add_faults({"kind": "slow", "delay_seconds": 1.0, "times": None})
    run = textwrap.dedent(f"""
        from datetime import date
        from pydantic import SecretStr
        from amili.client import AmiliClient
        from amili.pipeline.submission import submit_window
        from amili.settings import ClientSettings, load
        client = AmiliClient(load(ClientSettings, base_url={clean_sandbox.base_url!r},
                                  token=SecretStr({clean_sandbox.issue_token()!r}),
                                  sender_id="test-sender"))
        submit_window({str(inputs.path)!r}, client, date.fromisoformat({DAY.isoformat()!r}),
                      date.fromisoformat({NEXT.isoformat()!r}), max_objects=5,
                      max_bytes=1_000_000, max_concurrency=1)
    """)
    process = subprocess.Popen([sys.executable, "-c", run])
    try:
        deadline = time.monotonic() + 60
        while not posts(sandbox_admin) and time.monotonic() < deadline:  # one answered
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        assert posts(sandbox_admin), "no batch was answered within 60 s"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    assert Path(f"{inputs.path}.wal").exists()  # what it wrote is in the WAL alone
    prepared = inputs.states()
    assert len(prepared) == 4 and set(prepared.values()) == {"prepared"}  # the first group
    sandbox_admin.clear_faults()

    day = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=5,
                        max_bytes=1_000_000).days[0]

    assert day.reposted == 4 and day.objects["invoice"].sent == 40
    assert set(inputs.states().values()) == {"accepted"} and len(inputs.states()) == 10
    stats = sandbox_admin.stats()
    assert stats["invoices"] == 40  # each once, though some were posted twice
    assert stats["replays"] >= 1  # at least the batch answered before the kill


def test_a_batch_prepared_with_the_hash_of_its_body_is_still_reposted_as_it_was(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin, tmp_path: Path
) -> None:
    """A ledger from before content hashes were made of payload hashes holds the sha256 of
    each body's arrays: its in-doubt batches must be re-posted, not superseded and sent
    again in new batches."""
    inputs.creditor()
    inputs.invoices(valid_invoices(8))
    submit_window(inputs.path, None, DAY, NEXT, dry_run_dir=tmp_path, max_objects=5,
                  max_bytes=1_000_000)
    bodies = {p.stem: p.read_bytes() for p in tmp_path.glob("*.json")}
    submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=5, max_bytes=1_000_000)
    assert sorted(inputs.states()) == sorted(bodies)
    inputs.sql("UPDATE amili.submission_ledger SET state = 'prepared', http_status = NULL, "
               "response_body = NULL, answered_at = NULL")
    inputs.sql("DELETE FROM amili.ledger_object_answers")
    for batchid, body in bodies.items():  # the body from its arrays to the last array's ]
        legacy = hashlib.sha256(body[body.index(b',"creditor":['):-1]).hexdigest()
        inputs.sql("UPDATE amili.submission_ledger SET content_hash = ? WHERE batchid = ?",
                   [legacy, batchid])
    before = sandbox_admin.stats()

    day = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=5,
                        max_bytes=1_000_000).days[0]

    assert day.reposted == 2 and day.superseded == []
    assert sandbox_admin.stats()["replays"] - before.get("replays", 0) == 2
    assert sandbox_admin.stats()["invoices"] == 8
    assert set(inputs.states().values()) == {"accepted"}


def test_429_and_503_are_retried_and_the_run_completes(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    inputs.creditor()
    inputs.invoices(valid_invoices(10))
    sandbox_admin.add_faults(
        {"kind": "status", "status": 429, "retry_after": 0, "times": 2},
        {"kind": "status", "status": 503, "times": 2},
    )
    summary = submit_window(inputs.path, make_client(max_retries=5), DAY, NEXT, max_objects=4,
                            max_bytes=1_000_000, max_concurrency=2)
    summary.raise_for_failures()
    assert summary.batches == {"accepted": 4}
    assert summary.days[0].objects["invoice"].accepted == 10
    requests = posts(sandbox_admin)
    assert requests["429"] == 2 and requests["503"] == 2 and requests["200"] == 4
    assert sum(row[5] for row in inputs.ledger()) == 8  # attempts, retries included
    assert sandbox_admin.stats()["invoices"] == 10


def test_when_every_batch_of_a_day_fails_the_summary_raises(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    inputs.creditor()
    inputs.invoices(valid_invoices(6))
    sandbox_admin.add_faults({"kind": "status", "status": 422, "message": "no thanks"})
    summary = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=4,
                            max_bytes=1_000_000)
    with pytest.raises(SubmissionError, match=r"all 2 batches of 2026-11-24 failed: .*422"):
        summary.raise_for_failures()
    assert {(row[1], row[2]) for row in inputs.ledger()} == {("failed", 422)}
    assert summary.days[0].objects["invoice"].failed == 6

    # A 4xx means Amili took nothing: the next run sends the rows in new batches.
    sandbox_admin.clear_faults()
    again = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=4,
                          max_bytes=1_000_000)
    again.raise_for_failures()
    assert again.days[0].reposted == 0 and again.days[0].objects["invoice"].accepted == 6
    assert sandbox_admin.stats()["invoices"] == 6


def test_rejected_objects_map_back_to_their_source_rows(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    inputs.creditor()
    rows = valid_invoices(40)
    inputs.invoices(rows)
    share, seed = 0.3, 6
    sandbox_admin.add_faults({"kind": "reject_share", "share": share, "seed": seed})
    expected = {sid for sid, _ in rows if fault_rejects(seed, "invoice", sid, share)}
    assert 0 < len(expected) < 40

    day = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=15,
                        max_bytes=1_000_000).days[0]

    rejected = inputs.sql(
        "SELECT source_id, error_message FROM amili.ledger_objects "
        "WHERE outcome = 'rejected' AND objectname = 'invoice'")
    assert {sid for sid, _ in rejected} == expected
    assert all(REJECT_MESSAGE in message for _, message in rejected)
    assert day.objects["invoice"].rejected == len(expected)
    assert day.objects["invoice"].accepted == 40 - len(expected)
    # the accepted are the rest of the sent, in amounts too
    one = Decimal(jsonio.loads(rows[0][1])["originalInvoiceAmount"])
    assert day.objects["invoice"].amount("rejected") == len(expected) * one
    assert day.objects["invoice"].amount("accepted") == (40 - len(expected)) * one
    assert "partially_rejected" in inputs.states().values()
    # the fault picks creditors by idnumber too; this one is spared with this seed
    assert not fault_rejects(seed, "creditor", example_creditor().idnumber, share)
    assert day.objects["creditor"].accepted == 1

    sandbox_admin.clear_faults()
    again = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=15,
                          max_bytes=1_000_000).days[0]
    assert again.objects["invoice"].sent == len(expected) == again.objects["invoice"].accepted
    assert sandbox_admin.stats()["invoices"] == 40


# --------------------------------------------------------------------------------------------
# Validation, holds, creditors
# --------------------------------------------------------------------------------------------


def test_invalid_rows_are_quarantined_with_the_sandboxs_own_message(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    good = json.loads(invoice_payload("X"))
    late = {**good, "dueDate": "2026-09-01T00:00:00.000Z"}
    email = copy.deepcopy(good)
    email["debtors"][0]["emails"][0]["value"] = "not an address"
    claims = {**good, "claims": [{"type": "PRINCIPAL", "remainingAmount": Decimal("9999.00")}]}
    defects = {"INV-LATE": late, "INV-MAIL": email, "INV-CLAIM": claims}
    inputs.creditor()
    inputs.invoices([
        *((sid, dumps({**obj, "uniqueSourceInvoiceId": sid})) for sid, obj in defects.items()),
        ("INV-OTHER", invoice_payload("INV-ELSE")),  # its id differs from the row's
        ("INV-TWICE", invoice_payload("INV-TWICE")),
        ("INV-TWICE", invoice_payload("INV-TWICE")),
        ("INV-JSON", '{"type": '),
        ("INV-OK", invoice_payload("INV-OK")),
    ])
    # a second creditor with a bad organisation number takes its invoices with it
    inputs.creditor("CR02", creditor_payload(idnumber="123456789"))
    inputs.invoices([("INV-CR2", invoice_payload("INV-CR2"))], creditor_id="CR02")

    day = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=10,
                        max_bytes=1_000_000).days[0]

    assert day.objects["invoice"].sent == 1 and day.objects["invoice"].quarantined == 8
    assert day.objects["creditor"].quarantined == 1
    assert sandbox_admin.stats()["invoices"] == 1
    reasons = dict(inputs.sql("SELECT source_id || ':' || objectname, reason "
                              "FROM amili.quarantine"))
    assert "appears 2 times" in reasons["INV-TWICE:invoice"]
    assert "not valid JSON" in reasons["INV-JSON:invoice"]
    assert "differs from the row's invoice_id 'INV-OTHER'" in reasons["INV-OTHER:invoice"]
    assert reasons["CR02:creditor"] == (
        "creditor.idnumber: '123456789' is not a valid Norwegian organisation number "
        "(organisasjonsnummer)"
    )
    assert reasons["INV-CR2:invoice"].startswith("invoice: its creditor 'CR02' is quarantined")

    # The sandbox, sent the same objects, answers with the same words (index aside).
    with make_client() as client:
        answer = client.post_batch(BatchRequest.model_validate(
            {"batchid": "direct", "invoice": [
                {**obj, "uniqueSourceInvoiceId": sid} for sid, obj in defects.items()]}))
    for error in answer.response.errors:
        sid = list(defects)[error.objectindex]
        assert error.message.replace(f"invoice[{error.objectindex}]", "invoice") == (
            reasons[f"{sid}:invoice"])


def test_held_payments_wait_and_acknowledged_ones_point_at_amilis_invoice(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    inputs.creditor()
    inputs.invoices(valid_invoices(3))
    inputs.payment("PAY-1", "INV-0000", None, "100.00")
    inputs.payment("PAY-2", "INV-0001", None, "200.00")
    day = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=10,
                        max_bytes=1_000_000).days[0]
    payments = day.objects["payment"]
    assert (payments.seen, payments.held, payments.sent) == (2, 2, 0)
    assert payments.amount("held") == Decimal("300.00")
    assert sandbox_admin.stats()["payments"] == 0
    record_results(inputs.path, DAY, NEXT)

    # The next day dbt joins the payments to Amili's ids; one invoice is still unknown.
    amili_id = inputs.sql("SELECT amili_invoice_id FROM amili.acknowledged_invoices "
                          "WHERE unique_source_invoice_id = 'INV-0000'")[0][0]
    later = NEXT
    inputs.creditor(day=later)
    inputs.payment("PAY-1", "INV-0000", amili_id, "100.00", day=later)
    inputs.payment("PAY-9", "INV-9999", None, "50.00", day=later)
    inputs.action("ACT-1", "INV-0000", amili_id, day=later)
    day2 = submit_window(inputs.path, make_client(), later, later + timedelta(days=1),
                         max_objects=10, max_bytes=1_000_000).days[0]
    assert day2.objects["payment"].accepted == 1 and day2.objects["payment"].held == 1
    assert day2.objects["action"].accepted == 1
    assert day2.objects["payment"].amount("accepted") == Decimal("100.00")
    assert sandbox_admin.stats()["payments"] == 1 and sandbox_admin.stats()["actions"] == 1


def test_every_body_carries_exactly_its_own_creditor(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    inputs.creditor()
    inputs.creditor("CR02", creditor_payload(idnumber=ORGNR_2, fullname="Annen Kreditor AS"))
    inputs.invoices(valid_invoices(7, "A-"))
    inputs.invoices(valid_invoices(5, "B-"), creditor_id="CR02")
    summary = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=4,
                            max_bytes=1_000_000)
    assert summary.days[0].objects["creditor"].accepted == 2
    per_batch = inputs.sql(
        "SELECT batchid, count(*) FILTER (objectname = 'creditor') FROM amili.ledger_objects "
        "GROUP BY batchid")
    assert {n for _, n in per_batch} == {1} and len(per_batch) == 3 + 2
    with make_client() as client:
        assert len(client.get_batches(creditorid=example_creditor().idnumber).case) == 7
        assert len(client.get_batches(creditorid=ORGNR_2).case) == 5


def test_a_small_day_read_at_once_gives_the_bodies_of_one_read_per_creditor(
    inputs: Inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small day is read in one query and kept per creditor, a large one streamed creditor
    by creditor; the two must give the same bodies, buckets and quarantine."""
    from amili.pipeline.submission import batching

    inputs.creditor()
    inputs.creditor("CR02", creditor_payload(idnumber=ORGNR_2, fullname="Annen Kreditor AS"))
    # the two creditors' rows interleaved in the relation, as a warehouse may load them
    for k in range(3):
        inputs.invoices(valid_invoices(3, f"A{k}-"))
        inputs.invoices(valid_invoices(2, f"B{k}-"), creditor_id="CR02")
    inputs.invoices([("B-BAD", invoice_payload("B-BAD", currency="HRK"))], creditor_id="CR02")
    inputs.payment("PAY-1", "A0-0000", "amili-1")
    inputs.payment("PAY-2", "A0-0001", None)
    seen = []
    for buffer_rows in (10_000, 0):
        monkeypatch.setattr(batching, "_BUFFER_ROWS", buffer_rows)
        folder = tmp_path / f"buffer-{buffer_rows}"
        day = submit_window(inputs.path, None, DAY, NEXT, dry_run_dir=folder, max_objects=4,
                            max_bytes=1_000_000).days[0]
        bodies = sorted((f.name, f.read_text()) for f in folder.iterdir())
        seen.append((bodies, {k: t.counts() for k, t in day.objects.items()}))
    assert seen[0] == seen[1]
    bodies, counts = seen[0]
    assert counts["invoice"]["sent"] == 15 and counts["invoice"]["quarantined"] == 1
    assert counts["payment"]["sent"] == 1 and counts["payment"]["held"] == 1
    # CR01: 9 invoices and 1 payment, 3 a body after its creditor; CR02: 6; the quarantine
    assert len(bodies) == 4 + 2 + 1


def test_an_unchanged_creditor_with_nothing_else_that_day_is_not_posted_alone(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    def run(day: date) -> Any:
        return submit_window(inputs.path, make_client(), day, day + timedelta(days=1),
                             max_objects=10, max_bytes=1_000_000).days[0]

    inputs.creditor()
    inputs.invoices(valid_invoices(2))
    assert run(DAY).objects["creditor"].accepted == 1
    # the next day: the same creditor, nothing else -> skipped as unchanged, nothing posted
    inputs.creditor(day=NEXT)
    second = run(NEXT)
    assert (second.objects["creditor"].skipped_unchanged, second.batches_posted) == (1, 0)
    assert posts(sandbox_admin) == {"200": 1}
    # changed: posted alone (Amili answers UPDATED)
    third_day = NEXT + timedelta(days=1)
    renamed = creditor_payload(fullname="Nytt Navn AS")
    inputs.creditor(payload=renamed, day=third_day)
    third = run(third_day)
    assert (third.objects["creditor"].sent, third.objects["creditor"].accepted) == (1, 1)
    assert third.batches_posted == 1
    # unchanged but with invoices: it still heads their body
    fourth_day = third_day + timedelta(days=1)
    inputs.creditor(payload=renamed, day=fourth_day)
    inputs.invoices(valid_invoices(1, "D-"), day=fourth_day)
    fourth = run(fourth_day)
    assert (fourth.objects["creditor"].sent, fourth.objects["invoice"].accepted) == (1, 1)
    assert posts(sandbox_admin) == {"200": 3}
    # a forced re-send sends it again even alone
    again = submit_window(inputs.path, make_client(), NEXT, NEXT + timedelta(days=1),
                          max_objects=10, max_bytes=1_000_000, force_resend=True).days[0]
    assert again.objects["creditor"].sent == 1


def test_bodies_are_cut_by_bytes_and_an_object_too_large_is_quarantined(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    inputs.creditor()
    inputs.invoices([*valid_invoices(30),
                     ("INV-HUGE", invoice_payload("INV-HUGE", description="x" * 5000))])
    max_bytes = 4000
    day = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=1000,
                        max_bytes=max_bytes).days[0]
    ledger = inputs.ledger()
    assert all(row[4] <= max_bytes for row in ledger)
    assert max(row[4] for row in ledger) > max_bytes - 700  # full bodies, not half-empty ones
    invoices = day.objects["invoice"]
    assert invoices.accepted == invoices.sent == 30 and invoices.quarantined == 1
    # the huge one was counted as sent when it came, and taken back when it did not fit
    one = Decimal(jsonio.loads(invoice_payload("INV-1"))["originalInvoiceAmount"])
    assert invoices.amount("sent") == invoices.amount("accepted") == 30 * one
    assert invoices.amount("quarantined") == one
    assert invoices.amount("seen") == 31 * one
    assert "does not fit in a batch body of at most 4000 bytes" in inputs.sql(
        "SELECT reason FROM amili.quarantine")[0][0]


def test_relation_names_are_parameters(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin
) -> None:
    inputs.sql("CREATE SCHEMA batch")
    for name in _TABLES:
        inputs.sql(f"CREATE VIEW batch.{name} AS SELECT * FROM main.{name}")
    inputs.creditor()
    inputs.invoices(valid_invoices(2))
    relations = Relations.in_schema("batch")
    day = submit_window(inputs.path, make_client(), DAY, NEXT, relations=relations,
                        max_objects=10, max_bytes=1_000_000).days[0]
    assert day.objects["invoice"].accepted == 2
    with pytest.raises(ValueError, match="not a plain dotted identifier"):
        Relations(invoices="main.x; DROP TABLE y")


def test_typed_objects_are_checked_as_their_json_would_be(
    inputs: Inputs, tmp_path: Path
) -> None:
    """dbt's views hand over the typed object each payload is to_json of; the checks then read
    its fields instead of parsing the JSON. Same rows, same bodies, same quarantine."""
    from amili.pipeline.sql_checks import OBJECT_TYPES

    inputs.creditor()
    debtor_without_name = jsonio.to_jsonable(example_invoice("INV-N"))
    debtor_without_name["debtors"][0].update(firstname=None, name=None)
    inputs.invoices([
        *valid_invoices(6),
        ("INV-FNR", invoice_payload("INV-FNR").replace("15108695088", BAD_FNR)),
        ("INV-NEG", invoice_payload("INV-NEG", originalInvoiceAmount=-5)),
        ("INV-NUM", invoice_payload("INV-NUM", invoiceNumber="")),
        ("INV-CUR", invoice_payload("INV-CUR", currency="HRK")),
        ("INV-ID", invoice_payload("INV-OTHER")),
        ("INV-N", dumps(debtor_without_name)),
    ])
    inputs.payment("PAY-1", "INV-0000", "amili-1")
    inputs.sql("INSERT INTO batch_payments_json VALUES (?, 'PAY-2', 'INV-0001', ?, NULL, ?)",
               [DAY, CREDITOR, payment_payload("PAY-2", "amili-2").replace("250.00", "-1.00")])
    inputs.payment("PAY-3", "INV-0002", None)
    # an amount of 10^14 or more: its øre overflow DECIMAL(18,2) arithmetic (found by the
    # property test of malformed rows), and it is still a valid amount
    inputs.sql("INSERT INTO batch_payments_json VALUES (?, 'PAY-BIG', 'INV-0003', ?, NULL, ?)",
               [DAY, CREDITOR,
                payment_payload("PAY-BIG", "amili-3").replace("250.00", "224854089581292.28")])
    inputs.sql("CREATE SCHEMA typed")
    inputs.sql("CREATE SCHEMA plain")
    for kind in ("creditors", "actions"):
        for schema in ("typed", "plain"):
            inputs.sql(f"CREATE VIEW {schema}.batch_{kind}_json AS "
                       f"SELECT * FROM main.batch_{kind}_json")
    for kind, name in (("invoices", "invoice"), ("payments", "payment")):
        inputs.sql(f"""CREATE VIEW typed.batch_{kind}_json AS
            SELECT * EXCLUDE (payload), to_json({name}_object) AS payload FROM (
                SELECT *, TRY_CAST(payload::JSON AS {OBJECT_TYPES[name]}) AS {name}_object
                FROM main.batch_{kind}_json)""")
        inputs.sql(f"CREATE TABLE plain.batch_{kind}_json AS "
                   f"SELECT * EXCLUDE ({name}_object) FROM typed.batch_{kind}_json")

    with duckdb.connect(str(inputs.path)) as con:
        assert Relations.in_schema("typed").typed_objects(con) == TypedObjects(
            "invoice_object", "payment_object")
        assert Relations.in_schema("plain").typed_objects(con) == TypedObjects()
    out: dict[str, list[tuple[str, str]]] = {}
    for schema in ("typed", "plain"):
        folder = tmp_path / schema
        summary = submit_window(inputs.path, None, DAY, NEXT, dry_run_dir=folder,
                                max_objects=4, max_bytes=1_000_000,
                                relations=Relations.in_schema(schema))
        assert summary.days[0].objects["invoice"].quarantined == 6
        assert summary.days[0].objects["payment"].quarantined == 1
        out[schema] = sorted((f.name, f.read_text()) for f in folder.iterdir())
    assert out["typed"] == out["plain"]


# --------------------------------------------------------------------------------------------
# Dry run and memory
# --------------------------------------------------------------------------------------------


def test_dry_run_writes_the_bodies_and_posts_nothing(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin, tmp_path: Path
) -> None:
    inputs.creditor()
    inputs.invoices([*valid_invoices(9), ("INV-BAD", invoice_payload("INV-BAD", currency="HRK"))])
    out = tmp_path / "dry"
    summary = submit_window(inputs.path, None, DAY, NEXT, dry_run_dir=out, max_objects=4,
                            max_bytes=1_000_000)

    assert posts(sandbox_admin) == {}
    bodies = sorted(out.glob("*.json"))
    assert [p.name for p in bodies] == sorted(p.name for p in summary.days[0].files)
    parsed = [BatchRequest.model_validate(jsonio.loads(p.read_bytes())) for p in bodies]
    assert sum(len(b.invoice) for b in parsed) == 9
    assert all(len(b.creditor) == 1 for b in parsed)
    assert inputs.sql("SELECT count(*) FROM amili.submission_ledger") == [(0,)]
    assert inputs.sql("SELECT count(*) FROM amili.quarantine") == [(0,)]
    lines = (out / "quarantine-2026-11-24.jsonl").read_text().splitlines()
    assert [json.loads(line)["source_id"] for line in lines] == ["INV-BAD"]

    # The real run sends exactly the bodies the dry run showed.
    submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=4, max_bytes=1_000_000)
    assert sorted(inputs.states()) == [p.stem for p in bodies]


@pytest.fixture
def ack_only_client() -> Iterator[AmiliClient]:
    with SandboxServer(load(SandboxSettings, port=0, ack_only=True)) as server:
        settings = load(ClientSettings, base_url=server.base_url,
                        token=SecretStr(server.issue_token()), sender_id="memory-test")
        with AmiliClient(settings) as client:
            yield client


def test_memory_stays_bounded_while_streaming_a_large_day(
    inputs: Inputs, ack_only_client: AmiliClient
) -> None:
    count = 20_000
    inputs.creditor()
    payload_bytes = inputs.many_invoices(count)

    tracemalloc.start()
    try:
        summary = submit_window(inputs.path, ack_only_client, DAY, NEXT, max_objects=250,
                                max_bytes=1_000_000, max_concurrency=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    invoices = summary.days[0].objects["invoice"]
    assert invoices.sent == invoices.accepted == count
    assert summary.batches == {"accepted": 81}
    # 13 MB of invoices went through; Python never held more than a few bodies of them
    # (two in flight, one being cut, the one the in-process sandbox reads), their keys and a
    # fetch block of 500 rows.
    assert peak < payload_bytes / 3, (peak, payload_bytes)  # measured: about 3.6 of 13 MB


def test_the_cycle_collector_is_tuned_while_days_stream_and_restored_after(
    inputs: Inputs, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs.creditor()
    inputs.invoices(valid_invoices(3))
    during: list[tuple[tuple[int, int, int], int]] = []
    stream_days = submission._submit_days

    def observed(*args: Any) -> None:
        during.append((gc.get_threshold(), gc.get_freeze_count()))
        stream_days(*args)

    monkeypatch.setattr(submission, "_submit_days", observed)
    threshold = gc.get_threshold()
    assert gc.get_freeze_count() == 0

    summary = submit_window(inputs.path, make_client(), DAY, NEXT)

    assert summary.days[0].objects["invoice"].accepted == 3
    (young, *older), frozen = during[0]
    assert young >= 10_000 and tuple(older) == threshold[1:] and frozen > 0
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0  # as it was

    def failing(*args: Any) -> None:
        raise RuntimeError("the day failed")

    monkeypatch.setattr(submission, "_submit_days", failing)
    with pytest.raises(RuntimeError, match="the day failed"):
        submit_window(inputs.path, make_client(), DAY, NEXT)
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0

    gc.freeze()  # a caller that froze its own objects keeps them frozen
    try:
        monkeypatch.setattr(submission, "_submit_days", observed)
        submit_window(inputs.path, make_client(), DAY, NEXT)
        assert during[-1][1] > 0 and gc.get_freeze_count() > 0  # not unfrozen by the step
    finally:
        gc.unfreeze()


def test_the_ledger_keeps_ids_whatever_characters_they_hold(inputs: Inputs) -> None:
    """A batch's ids and hashes go in packed per array (amili.ledger_arrays); the view
    amili.ledger_objects gives each object back, in body order, with its hash."""
    from amili.pipeline import ledger

    ids = ["INV-1", "INV\x1f2", "", "ÆØÅ 3", 'quote " and \\ backslash', "[1, 2]", "n\u0000ul"]
    hashes = [hashlib.sha256(i.encode()).hexdigest() for i in ids]
    with duckdb.connect(str(inputs.path)) as con:
        ledger.ensure_schema(con)
        ledger.prepare_batches(con, [ledger.PreparedBatch(
            batchid="b-1", partition_date=DAY, chunk_number=0, content_hash="h",
            object_count=len(ids) + 1, body_bytes=1,
            arrays=[ledger.ObjectRows("creditor", ["CR 1"], [hashes[0]]),
                    ledger.ObjectRows("invoice", ids, hashes)])])
        view = "SELECT objectname, objectindex, source_id, payload_hash, partition_date, " \
               "outcome FROM amili.ledger_objects WHERE batchid = 'b-1' ORDER BY 1, 2"
        invoices = [("invoice", k, i, h, DAY, None)
                    for k, (i, h) in enumerate(zip(ids, hashes, strict=True))]
        assert con.execute(view).fetchall() == [
            ("creditor", 0, "CR 1", hashes[0], DAY, None), *invoices]

        # answered as a whole: every object accepted, with nothing written per object
        answers = ledger.AnswerBuffer()
        answers.add("b-1", ledger.BatchState.ACCEPTED, 200, 0, 1, "{}", None)
        ledger.record_answers(con, DAY, answers)
        assert {r[-1] for r in con.execute(view).fetchall()} == {"accepted"}
        assert con.execute("SELECT count(*) FROM amili.ledger_object_answers").fetchone() == (0,)

        # a hash that is not a sha256 hex digest is refused, and nothing of the group stays
        with pytest.raises(ValueError, match="sha256"):
            ledger.prepare_batches(con, [ledger.PreparedBatch(
                batchid="b-2", partition_date=DAY, chunk_number=1, content_hash="h",
                object_count=1, body_bytes=1,
                arrays=[ledger.ObjectRows("invoice", ["INV-9"], ["not-a-hash"])])])
        assert con.execute("SELECT count(*) FROM amili.submission_ledger "
                           "WHERE batchid = 'b-2'").fetchone() == (0,)


def test_a_ledger_written_as_rows_is_moved_into_the_arrays_unchanged(inputs: Inputs) -> None:
    """A pipeline database from before amili.ledger_arrays had ledger_objects as a table, a
    row per object: ensure_schema moves it, and the view shows the same rows."""
    from amili.pipeline import ledger

    old_ddl = """CREATE TABLE amili.ledger_objects (batchid VARCHAR NOT NULL,
        objectname VARCHAR NOT NULL, objectindex INTEGER NOT NULL, source_id VARCHAR NOT NULL,
        payload_hash VARCHAR NOT NULL, partition_date DATE NOT NULL,
        outcome VARCHAR CHECK (outcome IN ('accepted', 'rejected')),
        status_statuscode VARCHAR, ledgerref VARCHAR, error_message VARCHAR)"""
    h = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(4)]
    old_rows = [
        ("b-1", "creditor", 0, "CR1", h[0], DAY, "accepted", "UPDATED", "L0", None),
        ("b-1", "invoice", 0, 'INV "1"', h[1], DAY, "accepted", "CREATED", "L1", None),
        ("b-1", "invoice", 1, "INV2", h[2], DAY, "rejected", None, None,
         "invoice[1].ocrReferenceNumber: '123' is not a valid KID: must be 2 to 25 digits"),
        ("b-2", "invoice", 0, "INV3", h[3], DAY, None, None, None, None),  # never answered
    ]
    with duckdb.connect(str(inputs.path)) as con:
        con.execute("CREATE SCHEMA amili")
        con.execute(old_ddl)
        con.executemany("INSERT INTO amili.ledger_objects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        old_rows)
        ledger.ensure_schema(con)  # creates submission_ledger too: the batches' rows follow
        con.execute("""INSERT INTO amili.submission_ledger (batchid, partition_date,
                chunk_number, content_hash, object_count, body_bytes, state, prepared_at)
            VALUES ('b-1', ?, 0, 'h', 3, 1, 'partially_rejected', now()),
                   ('b-2', ?, 1, 'h', 1, 1, 'prepared', now())""", [DAY, DAY])
        assert con.execute("SELECT table_type FROM information_schema.tables "
                           "WHERE table_schema = 'amili' AND table_name = 'ledger_objects'"
                           ).fetchone() == ("VIEW",)
        # (amounts were not kept then: unknown, not zero)
        assert con.execute("SELECT * EXCLUDE (amount, currency, error_code, error_value) "
                           "FROM amili.ledger_objects "
                           "ORDER BY batchid, objectname, objectindex").fetchall() == old_rows
        # the rejection's reason code and value are derived from its message on the way
        assert con.execute("SELECT source_id, error_code, error_value FROM amili.ledger_objects "
                           "WHERE error_message IS NOT NULL").fetchall() == [
            ("INV2", "kid_invalid", "123")]
        assert con.execute("SELECT count(*) FROM amili.ledger_objects WHERE amount IS NOT NULL "
                           "OR currency IS NOT NULL").fetchone() == (0,)
        ledger.ensure_schema(con)  # idempotent
        assert con.execute("SELECT count(*) FROM amili.ledger_objects").fetchone() == (4,)




# --------------------------------------------------------------------------------------------
# Answers believed only when they say so, and a refused token
# --------------------------------------------------------------------------------------------


@pytest.fixture
def receiver(clean_sandbox: SandboxServer) -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(answer: Callable[[int, bytes], tuple[int, str, bytes] | None]) -> Receiver:
        made.append(Receiver(clean_sandbox.base_url, answer))
        return made[-1]

    yield make
    for one in made:
        one.close()


def outcomes(inputs: Inputs) -> dict[str, str | None]:
    """Each invoice's latest outcome in the ledger view."""
    return dict(inputs.sql(
        """SELECT o.source_id, o.outcome FROM amili.ledger_objects o
           JOIN amili.submission_ledger l USING (batchid) WHERE o.objectname = 'invoice'
           QUALIFY row_number() OVER (PARTITION BY o.source_id
                                      ORDER BY l.chunk_number DESC) = 1"""))


STATUSCODE_2_EMPTY = (200, "application/json", b'{"statuscode": 2, "errors": [], "responses": []}')


def test_a_200_whose_statuscode_says_failed_and_names_nothing_leaves_objects_unconfirmed(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin,
    receiver: Callable[..., Receiver],
) -> None:
    inputs.creditor()
    inputs.invoices(valid_invoices(8))
    # the second of two batches is answered statuscode 2 with empty lists, and not created
    front = receiver(lambda n, _: STATUSCODE_2_EMPTY if n == 2 else None)
    summary = submit_window(inputs.path, make_client(base_url=front.url), DAY, NEXT,
                            max_objects=5, max_bytes=1_000_000, max_concurrency=1)
    day = summary.days[0]
    assert summary.batches == {"accepted": 1, "unconfirmed": 1}
    invoices = day.objects["invoice"]
    assert (invoices.sent, invoices.accepted, invoices.unconfirmed) == (8, 4, 4)
    assert invoices.amount("unconfirmed") == Decimal("1250.00") * 4
    assert summary.unconfirmed_days == [day]
    assert summary.as_metadata()["invoice.unconfirmed"] == 4
    states = inputs.ledger()
    assert [(row[1], row[2]) for row in states] == [("accepted", 200), ("unconfirmed", 200)]
    assert Counter(outcomes(inputs).values()) == {"accepted": 4, "unconfirmed": 4}
    assert sandbox_admin.stats()["invoices"] == 4  # nothing of the second batch was created
    # the results stage shows them as unconfirmed to analysts
    from amili.pipeline.results import publish_results
    tally = publish_results(inputs.path, DAY, NEXT)
    assert tally.objects_by_outcome["unconfirmed"] == 4 + 1  # its creditor too

    # The next run sends only the unconfirmed ones, in a new batch; none is stored twice.
    again = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=5,
                          max_bytes=1_000_000)
    assert again.batches == {"accepted": 1}
    assert again.days[0].objects["invoice"].sent == 4
    assert again.days[0].objects["invoice"].skipped_unchanged == 4
    assert set(outcomes(inputs).values()) == {"accepted"}
    assert sandbox_admin.stats()["invoices"] == 8


def test_unnamed_objects_are_accepted_only_under_statuscode_0(
    inputs: Inputs, make_client: ClientFactory, receiver: Callable[..., Receiver],
) -> None:
    """An answer naming some objects: those it does not name are taken under statuscode 0
    (every object accepted, by the assumptions) and unconfirmed under any other."""
    inputs.creditor()
    inputs.invoices(valid_invoices(3))

    def answer(statuscode: int, errors: bool) -> Callable[[int, bytes], tuple[int, str, bytes]]:
        """Names invoice[0] created and, with ``errors``, invoice[1] rejected."""
        body = json.dumps({"statuscode": statuscode, "errors": [
            {"objectname": "invoice", "objectindex": 1, "message": "invoice[1]: no"}
        ] if errors else [], "responses": [{"objectname": "invoice", "objectindex": 0,
                                           "ledgerref": "L-0", "status_statuscode": "CREATED"}]})
        return lambda n, _: (200, "application/json", body.encode())

    submit_window(inputs.path, make_client(base_url=receiver(answer(1, True)).url), DAY, NEXT,
                  max_objects=10, max_bytes=1_000_000)
    assert outcomes(inputs) == {"INV-0000": "accepted", "INV-0001": "rejected",
                                "INV-0002": "unconfirmed"}
    assert inputs.states() and set(inputs.states().values()) == {"unconfirmed"}
    creditor = inputs.sql("SELECT outcome FROM amili.ledger_objects WHERE objectname = "
                          "'creditor'")
    assert creditor == [("unconfirmed",)]

    summary = submit_window(inputs.path, make_client(base_url=receiver(answer(0, False)).url),
                            DAY, NEXT, max_objects=10, max_bytes=1_000_000)
    # INV-0001 (rejected) and INV-0002 (unconfirmed) were sent again, with the creditor; the
    # answer names INV-0001 (now first) and not INV-0002, which statuscode 0 says was taken
    assert summary.days[0].objects["invoice"].sent == 2
    assert set(outcomes(inputs).values()) == {"accepted"}
    assert set(inputs.states().values()) == {"unconfirmed", "accepted"}


def test_a_200_that_is_not_json_is_recorded_failed_and_the_other_answers_are_kept(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin,
    receiver: Callable[..., Receiver],
) -> None:
    inputs.creditor()
    inputs.invoices(valid_invoices(12))
    html = b"<html><body>Session expired, please log in" + b" " * 6000 + b"</body></html>"
    processed: list[int] = []

    def answer(n: int, body: bytes) -> tuple[int, str, bytes] | None:
        if n != 2:
            return None
        # a proxy that passes the batch on to Amili, then mangles the answer
        httpx_post = __import__("httpx").post
        processed.append(httpx_post(
            f"{sandbox_admin.base_url}/webapi/api/Batch", params={"senderid": "test-sender"},
            content=body, headers={"Authorization": f"Bearer {token}",
                                   "Content-Type": "application/json"}).status_code)
        return 200, "text/html; charset=utf-8", html

    client = make_client()
    token = client.settings.token.get_secret_value()
    front = receiver(answer)
    summary = submit_window(inputs.path, make_client(base_url=front.url), DAY, NEXT,
                            max_objects=5, max_bytes=1_000_000, max_concurrency=1)
    assert processed == [200]
    assert summary.batches == {"accepted": 2, "failed": 1}  # the answers around it are kept
    (failure,) = summary.days[0].failures
    ledger = {row[0]: row for row in inputs.ledger()}
    failed = ledger[failure.batchid]
    assert (failed[1], failed[2]) == ("failed", 200)
    assert failure.batchid in failure.error and "text/html" in failure.error
    assert "not a Batch answer" in failure.error
    stored = inputs.sql("SELECT response_body FROM amili.submission_ledger WHERE batchid = ?",
                        [failure.batchid])[0][0]
    assert stored.startswith("<html><body>Session expired") and len(stored) <= 4000
    assert summary.days[0].objects["invoice"].failed == 4

    # Amili may have taken it (it did): the next run re-posts it as it was, and Amili's
    # replayed answer settles it without storing anything twice.
    again = submit_window(inputs.path, client, DAY, NEXT, max_objects=5, max_bytes=1_000_000)
    assert again.days[0].reposted == 1 and again.batches == {"accepted": 1}
    assert inputs.states()[failure.batchid] == "accepted"
    assert sandbox_admin.stats()["invoices"] == 12
    assert set(outcomes(inputs).values()) == {"accepted"}


def test_a_refused_token_stops_posting_fails_and_the_next_run_sends_the_rest(
    inputs: Inputs, make_client: ClientFactory, sandbox_admin: SandboxAdmin,
    receiver: Callable[..., Receiver],
) -> None:
    inputs.creditor()
    inputs.invoices(valid_invoices(20))
    inputs.creditor(day=NEXT)
    inputs.invoices(valid_invoices(3, prefix="NEXT-"), day=NEXT)
    refusal = (401, "application/json", b'{"statuscode": 2, "errors": [{"objectname": '
               b'"batch", "objectindex": 0, "message": "invalid token"}], "responses": []}')
    front = receiver(lambda n, _: refusal if n >= 3 else None)
    with pytest.raises(submission.SubmissionRefusedError) as raised:
        submit_window(inputs.path, make_client(base_url=front.url), DAY, NEXT + timedelta(1),
                      max_objects=3, max_bytes=1_000_000, max_concurrency=1)
    message = str(raised.value)
    assert "AMILI_TOKEN" in message and "HTTP 401" in message
    assert "{'accepted': 2}" in message and "refused: 1 batch(es)" in message
    assert "days 2026-11-25 to 2026-11-25 were not started" in message
    assert front.posts == 3  # nothing was posted after the refusal
    states = Counter(inputs.states().values())
    day = raised.value.summary.days[0]
    assert states == {"accepted": 2, "failed": 1, "not_sent": len(day.not_sent)}
    assert len(day.not_sent) >= 1 and f"{len(day.not_sent)} prepared batch(es)" in message
    assert inputs.sql("SELECT count(*) FROM amili.submission_ledger WHERE partition_date = ?",
                      [NEXT])[0][0] == 0
    assert sandbox_admin.stats()["invoices"] == 4

    # With the token fixed, the next run re-posts the not-sent batches as they were, sends
    # the rest, and nothing is stored twice.
    again = submit_window(inputs.path, make_client(), DAY, NEXT + timedelta(1), max_objects=3,
                          max_bytes=1_000_000)
    again.raise_for_failures()
    assert again.days[0].reposted == len(day.not_sent)
    assert set(inputs.states().values()) == {"accepted", "failed"}
    assert sandbox_admin.stats()["invoices"] == 23
    assert set(outcomes(inputs).values()) == {"accepted"}


def test_a_ledger_of_an_earlier_version_takes_the_new_states(inputs: Inputs) -> None:
    """A ledger whose CHECKs predate ``unconfirmed`` and ``not_sent`` is rebuilt with them,
    its rows unchanged."""
    from amili.pipeline import ledger

    with duckdb.connect(str(inputs.path)) as con:
        for ddl in ledger.DDL:
            con.execute(ddl.replace(", 'unconfirmed'", "").replace(", 'not_sent'", ""))
        con.execute("INSERT INTO amili.submission_ledger (batchid, partition_date, "
                    "chunk_number, content_hash, object_count, body_bytes, state, prepared_at) "
                    "VALUES ('B1', DATE '2026-11-24', 0, 'h', 1, 10, 'accepted', now())")
        with pytest.raises(duckdb.ConstraintException):
            con.execute("UPDATE amili.submission_ledger SET state = 'not_sent'")
        ledger.ensure_schema(con)
        con.execute("UPDATE amili.submission_ledger SET state = 'not_sent'")
        con.execute("INSERT INTO amili.ledger_object_answers VALUES "
                    "('B1', 'invoice', 0, DATE '2026-11-24', 'unconfirmed', NULL, NULL, NULL, "
                    "NULL, NULL)")
        assert con.execute("SELECT batchid, state FROM amili.submission_ledger").fetchall() == [
            ("B1", "not_sent")]
