"""The client's read side: typed cases and settlements of every documented revision, the GET's
retries, and reading settlements incrementally with ``lastsettlementid`` from a real sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from amili import jsonio
from amili.client import AmiliAPIError, AmiliClient
from amili.examples import example_creditor, example_invoice
from amili.models import (
    BatchQueryResponse,
    BatchRequest,
    Case,
    CurrentCase,
    CurrentSettlement,
    Settlement,
)
from amili.sandbox.server import SandboxServer
from amili.sandbox.settings import SandboxSettings
from amili.settings import ClientSettings, load

# The three documented shapes (reference §2.4, S3/S4 and S5; §3.8), with Apidog's placeholder
# values and one field no revision documents, which must be kept.
OLDER = b"""{"batchid": "string", "offline": true,
 "creditor": [{"idnumber": "string", "lastsettlementid": 0, "casehandler": {"fullname": "x"}}],
 "case": [{"customerref": "string", "customername": "string", "ledgerref": "string",
   "referencenumber": "string", "casenumber": "string", "currencycode": "string",
   "regdate": "2019-08-24T14:15:22.123Z", "closuredate": "2019-08-24T14:15:22.123Z",
   "isdebtcollection": true, "originalsum": 100.10, "paidsum": 0.1, "remainingsum": 100.00,
   "originalfee": 0, "remaininginterest": 0, "status_statuscode": "string",
   "history": [{"type": 0, "loggedat": "2019-08-24T14:15:22.123Z", "message": "string"}],
   "paymentDetails": {"paymentValue": 0, "currency": "string", "kid": "string"},
   "undocumented": {"kept": true}}],
 "settlement": [{"creditorid": "string", "customerref": "string", "ledgerref": "string",
   "referencenumber": "string", "casenumber": "string"}]}"""
NEWEST = b"""{"case": [{"caseId": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "caseNumber": 0,
   "organizationId": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "status": "OPEN",
   "subStatus": "DEBT_COLLECTION_LIST_MANUAL", "type": "PAYMENT_REMINDER",
   "registeredAt": "2019-08-24T14:15:22.123Z", "closedAt": "2019-08-24T14:15:22.123Z",
   "invoices": [{"invoiceId": "i-1", "invoiceNumber": "string", "originalAmount": 1200.50,
      "remainingAmount": 200.50, "paidAmount": 900.00, "creditedAmount": 100.00,
      "uniqueSourceInvoiceId": "erp-1", "currency": {"code": "NOK", "name": "krone"}},
     {"invoiceId": "i-2", "originalAmount": 10, "currency": "SEK"}],
   "debtors": [{"debtorId": "d", "type": "PRIVATE", "firstName": "Ola", "fullName": "O N"}]}],
 "settlement": [{"caseNumber": "5000001", "collectionType": "REMINDER", "currency": "NOK",
   "customerReference": "C-1", "exchangeRate": 1.0, "settlementId": "17",
   "settlementDate": "2026-11-03", "amount": 99.95, "newField": 1}]}"""


def test_the_older_revision_is_typed_and_keeps_unknown_fields() -> None:
    answer = BatchQueryResponse.model_validate(jsonio.loads(OLDER))
    [case] = answer.case
    assert isinstance(case, Case) and case.model_extra == {"undocumented": {"kept": True}}
    assert (case.originalsum, case.paidsum) == (Decimal("100.10"), Decimal("0.1"))
    [line] = answer.case_lines()
    assert (line.ledgerref, line.status, line.remaining_amount) == (
        "string", "string", Decimal("100.00"))
    [settlement] = answer.settlement
    assert isinstance(settlement, Settlement) and settlement.settlementid is None
    assert answer.last_settlement_id("string") == 0


def test_the_newest_revision_gives_one_line_per_case_and_invoice() -> None:
    answer = BatchQueryResponse.model_validate(jsonio.loads(NEWEST))
    assert isinstance(answer.case[0], CurrentCase)
    first, second = answer.case_lines()
    assert (first.casenumber, first.case_id, first.ledgerref) == (
        "0", "3fa85f64-5717-4562-b3fc-2c963f66afa6", "i-1")
    assert (first.paid_amount, first.credited_amount, first.remaining_amount) == (
        Decimal("900.00"), Decimal("100.00"), Decimal("200.50"))
    assert (first.currency, second.currency) == ("NOK", "SEK")
    assert (first.status, first.sub_status) == ("OPEN", "DEBT_COLLECTION_LIST_MANUAL")
    assert first.unique_source_invoice_id == "erp-1"
    [settlement] = answer.settlement
    assert isinstance(settlement, CurrentSettlement)
    assert settlement.model_extra == {"newField": 1}
    line = settlement.line()
    assert (line.settlement_id, line.amount, line.casenumber) == (17, Decimal("99.95"),
                                                                 "5000001")
    assert str(line.remittance_date) == "2026-11-03"


def test_a_float_that_cannot_be_exact_never_reaches_an_amount() -> None:
    case = Case.model_validate({"ledgerref": "x", "paidsum": 0.1})
    assert case.paidsum == Decimal("0.1")  # from the shortest repr, not 0.1000000000000000055


RULES = {"seed": 3, "settlement_page_size": 5,
         "rules": [{"fate": "collected", "share": 1.0, "after_days": 2}]}


@pytest.fixture
def lifecycle_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(load(SandboxSettings, port=0, lifecycle=RULES)) as server:
        httpx.post(f"{server.base_url}/sandbox/clock",
                   json={"now": "2026-11-01T00:00:00Z"}).raise_for_status()
        yield server


def client_for(server: SandboxServer, **overrides: Any) -> AmiliClient:
    values: dict[str, Any] = {
        "base_url": server.base_url, "token": SecretStr(server.issue_token()),
        "sender_id": "read-sender", "backoff_initial_seconds": 0.01,
        "backoff_max_seconds": 0.05, **overrides}
    return AmiliClient(load(ClientSettings, **values))


def gets(server: SandboxServer) -> dict[str, int]:
    stats = httpx.get(f"{server.base_url}/sandbox/stats").json()
    return stats["requests"].get("GET /webapi/api/Batch", {})


def test_settlements_are_read_page_by_page_from_the_cursor(
    lifecycle_sandbox: SandboxServer,
) -> None:
    server = lifecycle_sandbox
    invoices = [example_invoice(f"R-{k}", amount=Decimal(f"{10 + k}.25")) for k in range(12)]
    with client_for(server) as client:
        client.post_batch(BatchRequest(batchid="r-1", creditor=[example_creditor()],
                                       invoice=invoices))
        httpx.post(f"{server.base_url}/sandbox/clock", json={"advance_days": 3}
                   ).raise_for_status()
        idnumber = example_creditor().idnumber
        pages = list(client.iter_settlement_pages(idnumber))
        # 12 settlements, 5 a page: 3 pages, and the creditor's lastsettlementid ends it
        # without a fourth, empty request
        assert [len(p.settlements) for p in pages] == [5, 5, 2]
        assert [p.cursor for p in pages] == [5, 10, 12]
        assert gets(server) == {"200": 3}
        total = sum((s.amount or 0 for p in pages for s in p.settlements), Decimal(0))
        assert total == sum((i.originalInvoiceAmount for i in invoices), Decimal(0))
        assert list(client.iter_settlement_pages(idnumber, after=12)) == []
        assert [len(p.settlements) for p in client.iter_settlement_pages(idnumber, after=7)
                ] == [5]
        cases = client.get_cases(idnumber)
        assert len(cases.case_lines()) == 12
        assert {line.status for line in cases.case_lines()} == {"CLOSED"}
        assert {line.unique_source_invoice_id for line in cases.case_lines()} == {
            f"R-{k}" for k in range(12)}


def test_the_get_is_retried_like_the_post(lifecycle_sandbox: SandboxServer) -> None:
    server = lifecycle_sandbox
    httpx.post(f"{server.base_url}/sandbox/faults", json={"faults": [
        {"kind": "status", "status": 503, "method": "GET", "times": 2}]}).raise_for_status()
    with client_for(server) as client:
        assert client.get_batches(includeclosed=True).case == []
    assert gets(server) == {"503": 2, "200": 1}
    httpx.post(f"{server.base_url}/sandbox/faults", json={"faults": [
        {"kind": "status", "status": 503, "method": "GET"}]}).raise_for_status()
    with client_for(server, max_retries=2) as client, pytest.raises(AmiliAPIError) as caught:
        client.get_batches(creditorid="x")
    assert caught.value.status_code == 503 and caught.value.attempts == 3
