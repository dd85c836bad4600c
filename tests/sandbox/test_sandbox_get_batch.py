"""GET /webapi/api/Batch over real HTTP: cases, settlements, creditors and every filter."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sandbox_http import Api
from sandbox_payloads import ORGNR, batch, creditor, debtor, invoice, payment

from amili.models import BatchQueryResponse


@pytest.fixture
def stored(api: Api) -> dict[str, Any]:
    """A creditor, three invoices (two customers), three payments on two dates; one closed."""
    answer = api.answer(batch(
        "get-0",
        creditor=[creditor(password="secret-password")],
        invoice=[
            invoice(1, amount="1000.00", debtors=[debtor(customerNumber="C-1")]),
            invoice(2, amount="300.00", debtors=[debtor(customerNumber="C-2")]),
            invoice(3, amount="50.00", debtors=[debtor(customerNumber="C-1", name="Ola N",
                                                       firstname=None, lastname=None)]),
        ],
    ))
    refs = [r["ledgerref"] for r in answer["responses"][1:]]
    paid = api.answer(batch(
        "get-1",
        payment=[
            payment(refs[0], 1, "100.00", date="2025-03-01T10:00:00.000Z"),
            payment(refs[1], 2, "300.00", date="2025-03-02T10:00:00.000Z"),
            payment(refs[0], 3, "0.50", date="2025-03-02T23:30:00.000Z"),
        ],
    ))
    assert paid["statuscode"] == 0, paid["errors"]
    return {"refs": refs}


def test_answer_shape_and_sums(api: Api, stored: dict[str, Any]) -> None:
    answer = api.query()
    BatchQueryResponse.model_validate(answer)
    assert answer["batchid"] is None and answer["offline"] is False
    refs = stored["refs"]
    cases = {c["ledgerref"]: c for c in answer["case"]}
    assert set(cases) == {refs[0], refs[2]}  # invoice 2 is fully paid: closed, left out
    first = cases[refs[0]]
    assert first["status_statuscode"] == "OPEN"
    assert first["referencenumber"] == "INV-00001"
    assert first["customerref"] == "C-1"
    assert first["customername"] == "Ola Nordmann"
    assert first["casenumber"] == "5000001"
    assert first["currencycode"] == "NOK"
    assert first["billdate"] == "2025-01-10T00:00:00.000Z"
    assert first["duedate"] == "2025-02-09T00:00:00.000Z"
    assert first["regdate"].endswith("Z")
    assert (first["originalsum"], first["paidsum"], first["remainingsum"]) == (
        Decimal("1000.00"), Decimal("100.50"), Decimal("899.50")
    )
    assert first["paymentDetails"]["kid"] == invoice(1)["ocrReferenceNumber"]
    assert cases[refs[2]]["customername"] == "Ola N"
    # direct payments reach the creditor directly: they reduce cases, Amili remits nothing
    assert answer["settlement"] == []
    assert (first["substatus"], first["creditedsum"]) == ("PARTIALLY_PAID", Decimal("0.00"))
    assert first["uniqueSourceInvoiceId"] == invoice(1)["uniqueSourceInvoiceId"]
    assert first["creditorid"] == ORGNR
    [info] = answer["creditor"]
    assert info["idnumber"] == ORGNR and info["fullname"] == "Fjordkraft Testkreditor AS"
    assert info["lastsettlementid"] == 0
    assert "password" not in info


def test_includeclosed(api: Api, stored: dict[str, Any]) -> None:
    cases = {c["ledgerref"]: c for c in api.query(includeclosed="true")["case"]}
    closed = cases[stored["refs"][1]]
    assert closed["status_statuscode"] == "CLOSED"
    assert closed["remainingsum"] == Decimal("0.00")
    assert closed["paidsum"] == Decimal("300.00")
    assert closed["closuredate"].endswith("Z")
    assert closed["substatus"] == "PAID"
    assert len(api.query(includeclosed="false")["case"]) == 2


def test_filters(api: Api, stored: dict[str, Any]) -> None:
    refs = stored["refs"]
    by_customer = api.query(customerref="C-1", includeclosed="true")
    assert {c["ledgerref"] for c in by_customer["case"]} == {refs[0], refs[2]}
    by_ledgerref = api.query(ledgerref=refs[1], includeclosed="true")
    assert [c["ledgerref"] for c in by_ledgerref["case"]] == [refs[1]]
    by_creditor = api.query(creditorid=ORGNR)
    assert len(by_creditor["creditor"]) == 1 and len(by_creditor["case"]) == 2
    nobody = api.query(creditorid="123456785")
    assert nobody["creditor"] == [] and nobody["case"] == [] and nobody["settlement"] == []
    assert len(api.query(languagecode="nb")["case"]) == 2


def test_other_senders_see_nothing(api: Api, stored: dict[str, Any]) -> None:
    answer = api.query(senderid="sender-2", includeclosed="true")
    assert answer["creditor"] == [] and answer["case"] == [] and answer["settlement"] == []


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"senderid": ""}, "senderid"),
        ({"includeclosed": "perhaps"}, "includeclosed"),
        ({"lastsettlementid": "x"}, "lastsettlementid"),
        ({"lastsettlementid": "-1"}, "lastsettlementid"),
        ({"remittancedate": "02.03.2025"}, "remittancedate"),
    ],
)
def test_bad_parameters_are_400(api: Api, params: dict[str, str], fragment: str) -> None:
    response = api.get(**params)
    assert response.status_code == 400
    answer = response.json()
    assert answer["statuscode"] == 2
    assert fragment in answer["errors"][0]["message"]


def test_missing_senderid_is_400(api: Api) -> None:
    response = api.http.get("/webapi/api/Batch")
    assert response.status_code == 400
    assert "senderid" in response.json()["errors"][0]["message"]
