"""POST /webapi/api/Batch over real HTTP: envelope, validation, idempotency, references."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sandbox_http import Api
from sandbox_payloads import (
    FNR_2,
    ORGNR,
    ORGNR_2,
    action,
    batch,
    creditor,
    debtor,
    documented_example,
    invoice,
    kid_mod10,
    payment,
)

from amili import jsonio
from amili.models import BatchResponse


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def test_documented_example_gets_the_documented_shape(api: Api) -> None:
    response = api.post(documented_example())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert list(answer) == ["statuscode", "errors", "responses"]
    BatchResponse.model_validate(answer)
    # the placeholders ("string", 0) are rejected object by object, each where it stands
    assert answer["statuscode"] == 2
    assert answer["responses"] == []
    assert [(e["objectname"], e["objectindex"]) for e in answer["errors"]] == [
        ("creditor", 0), ("invoice", 0), ("payment", 0), ("action", 0)
    ]
    for error in answer["errors"]:
        assert set(error) == {"objectname", "objectindex", "message"}
        assert error["message"].startswith(f"{error['objectname']}[0].")
    assert "creditor[0].idnumber: 'string' is not a valid Norwegian organisation number" in (
        answer["errors"][0]["message"]
    )


def test_valid_batch_is_accepted_with_uuid_ledgerrefs(api: Api) -> None:
    body = batch(
        "valid-1",
        creditor=[creditor()],
        invoice=[invoice(1), invoice(2, debtors=[debtor(identificationNumber=FNR_2)]),
                 invoice(3, debtors=[debtor(type="COMPANY", name="Firma AS",
                                            organizationNumber=ORGNR_2,
                                            identificationNumber=None)])],
    )
    answer = api.answer(body)
    assert answer["statuscode"] == 0, answer["errors"]
    assert answer["errors"] == []
    assert [(r["objectname"], r["objectindex"], r["status_statuscode"])
            for r in answer["responses"]] == [
        ("creditor", 0, "CREATED"), ("invoice", 0, "CREATED"), ("invoice", 1, "CREATED"),
        ("invoice", 2, "CREATED"),
    ]
    assert answer["responses"][0]["ledgerref"] == ORGNR
    assert all(_is_uuid(r["ledgerref"]) for r in answer["responses"][1:])
    # a known creditor sent again is UPDATED
    again = api.answer(batch("valid-2", creditor=[creditor(fullname="New name AS")]))
    assert again["responses"][0]["status_statuscode"] == "UPDATED"


def test_an_identity_number_of_the_wrong_kind_rejects_only_its_invoice(api: Api) -> None:
    """A COMPANY debtor carries an organisation number and no personal number; a PRIVATE
    debtor no organisation number, and its personal number is optional."""
    company = {"type": "COMPANY", "name": "Firma AS", "identificationNumber": None}
    invoices = [
        invoice(1, debtors=[debtor(**company, organizationNumber=ORGNR_2)]),       # ok
        invoice(2, debtors=[debtor(type="COMPANY", name="Firma AS")]),              # fnr only
        invoice(3, debtors=[debtor(**{**company, "identificationNumber": FNR_2},
                                   organizationNumber=ORGNR_2)]),                   # both
        invoice(4, debtors=[debtor(organizationNumber=ORGNR_2)]),                   # PRIVATE
        invoice(5, debtors=[debtor(identificationNumber=None)]),                    # ok
        invoice(6, debtors=[debtor(identificationNumber=ORGNR_2)]),                 # orgnr
        invoice(7, debtors=[debtor(), debtor(**company, organizationNumber="")]),   # 2nd
    ]
    answer = api.answer(batch("identity-kind-1", invoice=invoices))
    assert answer["statuscode"] == 1
    assert [(r["objectname"], r["objectindex"]) for r in answer["responses"]] == [
        ("invoice", 0), ("invoice", 4)
    ]
    messages = {e["objectindex"]: e["message"] for e in answer["errors"]}
    assert all(e["objectname"] == "invoice" for e in answer["errors"])
    company_has_fnr = ("identificationNumber: a COMPANY debtor carries an organisation "
                       "number, not a personal number")
    company_needs_org = ("organizationNumber: a COMPANY debtor needs an organisation number "
                         "(organisasjonsnummer)")
    assert messages == {
        1: f"invoice[1].debtors[0].{company_has_fnr}; invoice[1].debtors[0].{company_needs_org}",
        2: f"invoice[2].debtors[0].{company_has_fnr}",
        3: "invoice[3].debtors[0].organizationNumber: a PRIVATE debtor carries no organisation "
           "number (a company is a COMPANY debtor)",
        5: f"invoice[5].debtors[0].identificationNumber: '{ORGNR_2}' is not a valid Norwegian "
           "national identity number (fødselsnummer)",
        6: f"invoice[6].debtors[1].{company_needs_org}",
    }


def test_fee_and_interest_claims_come_on_top_of_the_principal(api: Api) -> None:
    claims = [
        {"type": "PRINCIPAL", "remainingAmount": Decimal("1500.00")},
        {"type": "FEE", "remainingAmount": Decimal("35.00"), "description": "Purregebyr"},
        {"type": "INTEREST", "remainingAmount": Decimal("4.11")},
    ]
    answer = api.answer(batch("claims-1", invoice=[invoice(1, claims=claims)]))
    assert answer["statuscode"] == 0, answer["errors"]


def test_plain_application_json_is_accepted_and_other_types_are_not(api: Api) -> None:
    body = batch("ct-1", creditor=[creditor()])
    assert api.post(body, headers={"Content-Type": "application/json"}).status_code == 200
    refused = api.post(batch("ct-2"), headers={"Content-Type": "text/plain"})
    assert refused.status_code == 415
    assert refused.json()["statuscode"] == 2


def _break(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set (or with ``...`` delete) a dotted path like ``debtors.0.addresses.0.zipCode``."""

    def apply(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = obj
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        key: Any = int(last) if last.isdigit() else last
        if value is ...:
            del node[key]
        else:
            node[key] = value

    return apply


# (array, change to object 1 of 2, text the message must contain)
RULES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("invoice", _break("dueDate", ...), "invoice[1].dueDate: Field required"),
    ("invoice", _break("invoiceNumber", ...), "invoice[1].invoiceNumber: Field required"),
    ("invoice", _break("uniqueSourceInvoiceId", ...), "invoice[1].uniqueSourceInvoiceId: Field"),
    ("invoice", _break("type", "SOMETHING"), "invoice[1].type: Input should be"),
    ("invoice", _break("originalInvoiceAmount", Decimal("-5")), "invoice[1].originalInvoiceAmount"),
    ("invoice", _break("originalInvoiceAmount", "abc"),
     "invoice[1].originalInvoiceAmount: must be a JSON number"),
    ("invoice", _break("originalInvoiceAmount", "1500.00"),
     "invoice[1].originalInvoiceAmount: must be a JSON number, not a string"),
    ("invoice", _break("originalInvoiceAmount", Decimal("1.234")),
     "invoice[1].originalInvoiceAmount: Decimal input should have no more than 2 decimal"),
    ("invoice", _break("currency", "XYZ"), "invoice[1].currency: 'XYZ' is not a known ISO 4217"),
    ("invoice", _break("dueDate", "2024-12-01"), "invoice[1].dueDate: 2024-12-01 is before"),
    ("invoice", _break("ocrReferenceNumber", "12345"),
     "invoice[1].ocrReferenceNumber: '12345' is not a valid KID"),
    ("invoice", _break("ocrReferenceNumber", "12-344"), "ocrReferenceNumber: '12-344'"),
    ("invoice", _break("claims.0.remainingAmount", Decimal("0")),
     "invoice[1].claims: the sum of remainingAmount (0) must be greater than 0"),
    ("invoice", _break("claims.0.remainingAmount", Decimal("2000.00")),
     "invoice[1].claims: the PRINCIPAL claims' remainingAmount (2000.00) exceeds "
     "originalInvoiceAmount"),
    ("invoice", _break("claims.0.remainingAmount", "abc"),
     "invoice[1].claims[0].remainingAmount: must be a JSON number"),
    ("invoice", _break("claims", []), "invoice[1].claims: List should have at least 1 item"),
    ("invoice", _break("debtors", []), "invoice[1].debtors: List should have at least 1 item"),
    ("invoice", _break("debtors.0.identificationNumber", "01010112345"),
     "invoice[1].debtors[0].identificationNumber: '01010112345' is not a valid Norwegian "
     "national identity number (fødselsnummer)"),
    ("invoice", _break("debtors.0.organizationNumber", "123456789"),
     "invoice[1].debtors[0].organizationNumber: '123456789' is not a valid Norwegian "
     "organisation number"),
    ("invoice", _break("debtors.0.firstname", None),
     "invoice[1].debtors[0]: a PRIVATE debtor needs firstname and lastname, or name"),
    ("invoice", _break("debtors.0", debtor(type="COMPANY", firstname=None, lastname=None)),
     "invoice[1].debtors[0].name: a COMPANY debtor needs name"),
    # the identity number must be of the debtor's kind (docs/sandbox-assumptions.md)
    ("invoice", _break("debtors.0", debtor(type="COMPANY", name="Firma AS")),
     "invoice[1].debtors[0].identificationNumber: a COMPANY debtor carries an organisation "
     "number, not a personal number"),
    ("invoice", _break("debtors.0", debtor(type="COMPANY", name="Firma AS",
                                           identificationNumber=None)),
     "invoice[1].debtors[0].organizationNumber: a COMPANY debtor needs an organisation number"),
    ("invoice", _break("debtors.0.organizationNumber", ORGNR_2),
     "invoice[1].debtors[0].organizationNumber: a PRIVATE debtor carries no organisation "
     "number"),
    ("invoice", _break("debtors.0.identificationNumber", ORGNR_2),
     f"invoice[1].debtors[0].identificationNumber: '{ORGNR_2}' is not a valid Norwegian "
     "national identity number (fødselsnummer)"),
    ("invoice", _break("debtors.0.type", "ALIEN"), "invoice[1].debtors[0].type: Input should be"),
    ("invoice", _break("debtors.0.addresses", []),
     "invoice[1].debtors[0].addresses: at least one address with street, zipCode and city"),
    ("invoice", _break("debtors.0.addresses.0.city", ""),
     "invoice[1].debtors[0].addresses: at least one address"),
    ("invoice", _break("debtors.0.addresses.0.zipCode", "123"),
     "invoice[1].debtors[0].addresses[0].zipCode: '123' is not a Norwegian postcode"),
    ("invoice", _break("debtors.0.emails.0.value", "ola@@example"),
     "invoice[1].debtors[0].emails[0].value: 'ola@@example' is not a valid e-mail address"),
    ("creditor", _break("idnumber", "998447357"),
     "creditor[1].idnumber: '998447357' is not a valid Norwegian organisation number"),
    ("creditor", _break("idnumber", ...), "creditor[1].idnumber: Field required"),
    ("creditor", _break("bankaccountno", "76940512058"),
     "creditor[1].bankaccountno: '76940512058' is not a valid Norwegian bank account number"),
    ("creditor", _break("iban", "NO9386011117948"), "creditor[1].iban: 'NO9386011117948' is not "
     "a valid IBAN"),
    ("creditor", _break("swift", "DNB"), "creditor[1].swift: 'DNB' is not a valid BIC"),
    ("creditor", _break("emailinvoice", "nobody"), "creditor[1].emailinvoice: 'nobody' is not"),
    ("creditor", _break("contact.email", "x@"), "creditor[1].contact.email: 'x@' is not"),
    ("creditor", _break("countrycode", "NOR"), "creditor[1].countrycode: String should have at "
     "most 2 characters"),
]


@pytest.mark.parametrize(("array", "change", "expected"), RULES, ids=[r[2][:60] for r in RULES])
def test_each_rule_rejects_only_the_broken_object(
    api: Api, array: str, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    pairs = {"invoice": [invoice(1), invoice(2)], "creditor": [creditor(), creditor(ORGNR_2)]}
    objects = pairs[array]
    change(objects[1])
    answer = api.answer(batch(f"rule-{uuid.uuid4()}", **{array: objects}))
    assert answer["statuscode"] == 1
    assert len(answer["errors"]) == 1, answer["errors"]
    error = answer["errors"][0]
    assert (error["objectname"], error["objectindex"]) == (array, 1)
    assert expected in error["message"]
    assert [(r["objectname"], r["objectindex"]) for r in answer["responses"]] == [(array, 0)]


def test_payment_rules(api: Api) -> None:
    accepted = api.answer(batch("p-0", invoice=[invoice(1)]))
    ledgerref = accepted["responses"][0]["ledgerref"]
    payments = [
        payment(ledgerref, 1, "100.00"),
        payment(ledgerref, 2, "0"),
        payment(ledgerref, 3, "-1"),
        payment(ledgerref, 4),
        payment(ledgerref, 5, currency="NKK"),
        payment(str(uuid.uuid4()), 6),
        payment(ledgerref, 7, "5000.00"),
    ]
    payments[3]["amount"] = "12.50"
    answer = api.answer(batch("p-1", payment=payments))
    assert answer["statuscode"] == 1
    messages = {e["objectindex"]: e["message"] for e in answer["errors"]}
    assert [(r["objectindex"], r["status_statuscode"]) for r in answer["responses"]] == [
        (0, "CREATED")
    ]
    assert "payment[1].amount: must be greater than 0" in messages[1]
    assert "payment[2].amount: " in messages[2] and "negative" in messages[2]
    assert "payment[3].amount: must be a JSON number, not a string ('12.50')" in messages[3]
    assert "payment[4].currency: 'NKK' is not a known ISO 4217" in messages[4]
    assert "payment[5].invoiceId: unknown invoice" in messages[5]
    assert "payment[6].amount: 5000.00 exceeds the open amount 1400.00" in messages[6]


def test_action_needs_a_known_invoice(api: Api) -> None:
    ledgerref = api.answer(batch("a-0", invoice=[invoice(1)]))["responses"][0]["ledgerref"]
    answer = api.answer(batch("a-1", action=[action(ledgerref), action("no-such-case")]))
    assert answer["statuscode"] == 1
    assert answer["responses"][0]["objectindex"] == 0
    assert _is_uuid(answer["responses"][0]["ledgerref"])
    assert answer["errors"][0]["objectindex"] == 1
    assert "action[1].ledgerref: unknown invoice 'no-such-case'" in answer["errors"][0]["message"]


def test_non_numeric_amounts_never_cause_a_500(api: Api) -> None:
    raw = (
        b'{"batchid": "nan-1", "invoice": [{"originalInvoiceAmount": "abc"}, '
        b'{"originalInvoiceAmount": NaN}, {"originalInvoiceAmount": 1e999}, '
        b'{"originalInvoiceAmount": true}, 17, null], "payment": [{"amount": [1]}]}'
    )
    response = api.post(raw)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["statuscode"] == 2
    assert [(e["objectname"], e["objectindex"]) for e in answer["errors"]] == [
        ("invoice", i) for i in range(6)
    ] + [("payment", 0)]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"batchid": "x", "invoice": [', "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"invoice": []}', "batchid: Field required"),
        (b'{"batchid": "", "invoice": []}', "batchid: must be a non-empty string"),
        (b'{"batchid": "b", "invoice": {}}', "invoice: must be an array"),
    ],
)
def test_batch_level_errors_are_400_in_the_legacy_envelope(
    api: Api, raw: bytes, fragment: str
) -> None:
    response = api.post(raw)
    assert response.status_code == 400
    answer = response.json()
    assert answer["statuscode"] == 2 and answer["responses"] == []
    assert answer["errors"][0]["objectname"] == "batch"
    assert answer["errors"][0]["objectindex"] == 0
    assert fragment in answer["errors"][0]["message"]


def test_missing_senderid_is_400(api: Api) -> None:
    response = api.post(batch("no-sender"), senderid=None)
    assert response.status_code == 400
    assert "senderid" in response.json()["errors"][0]["message"]
    assert api.post(batch("empty-sender"), senderid="").status_code == 400


def test_reposting_the_same_batch_replays_the_answer_and_creates_nothing(api: Api) -> None:
    body = batch("idem-1", creditor=[creditor()], invoice=[invoice(1), invoice(2)])
    first = api.post(body)
    before = api.stats()
    second = api.post(body)
    assert second.status_code == 200
    assert second.content == first.content
    after = api.stats()
    for table in ("batches", "creditors", "invoices", "payments", "actions"):
        assert after[table] == before[table]
    assert after["replays"] == before["replays"] + 1
    # key order and whitespace do not make it a different body
    reordered = jsonio.dumps(dict(reversed(list(body.items()))))
    assert api.post(reordered).content == first.content


def test_same_batchid_with_a_different_body_is_409(api: Api) -> None:
    api.answer(batch("conflict-1", invoice=[invoice(1)]))
    response = api.post(batch("conflict-1", invoice=[invoice(2)]))
    assert response.status_code == 409
    answer = response.json()
    assert answer["statuscode"] == 2
    assert "conflict-1" in answer["errors"][0]["message"]
    assert api.stats()["conflicts"] == 1
    # another sender may use the same batchid
    assert api.post(batch("conflict-1", invoice=[invoice(2)]), senderid="other").status_code == 200


def test_duplicates_get_the_original_ledgerref(api: Api) -> None:
    first = api.answer(batch("dup-1", invoice=[invoice(1), invoice(2)]))
    originals = [r["ledgerref"] for r in first["responses"]]
    again = api.answer(batch("dup-2", invoice=[invoice(2), invoice(1), invoice(3)]))
    assert again["statuscode"] == 0
    statuses = [(r["ledgerref"], r["status_statuscode"]) for r in again["responses"]]
    assert statuses[:2] == [(originals[1], "DUPLICATE"), (originals[0], "DUPLICATE")]
    assert statuses[2][1] == "CREATED"
    stats = api.stats()
    assert stats["invoices"] == 3 and stats["duplicates"] == 2
    # inside one batch the second copy is a duplicate of the first
    inside = api.answer(batch("dup-3", invoice=[invoice(9), invoice(9)]))
    assert inside["responses"][1]["status_statuscode"] == "DUPLICATE"
    assert inside["responses"][1]["ledgerref"] == inside["responses"][0]["ledgerref"]
    # the same source id from another sender is a different invoice
    other = api.answer(batch("dup-1", invoice=[invoice(1)]), senderid="sender-2")
    assert other["responses"][0]["status_statuscode"] == "CREATED"
    assert other["responses"][0]["ledgerref"] not in originals


def test_payment_duplicates_and_settlement_visibility(api: Api) -> None:
    ledgerref = api.answer(batch("pay-0", invoice=[invoice(1)]))["responses"][0]["ledgerref"]
    first = api.answer(batch("pay-1", payment=[payment(ledgerref, 1, "200.00")]))
    assert first["statuscode"] == 0
    again = api.answer(batch("pay-2", payment=[payment(ledgerref, 1, "200.00")]))
    assert again["responses"][0] == {**first["responses"][0], "status_statuscode": "DUPLICATE"}
    answer = api.query()
    assert answer["settlement"] == []  # a direct payment is no remittance by Amili
    assert answer["case"][0]["paidsum"] == Decimal("200.00")
    assert answer["case"][0]["remainingsum"] == Decimal("1300.00")


def test_large_decimal_survives_digit_for_digit(api: Api) -> None:
    amount = "1234567890123.45"
    body = batch("big-1", invoice=[invoice(1, amount=amount)])
    raw = jsonio.dumps(body)
    assert amount.encode() in raw
    assert api.answer(raw)["statuscode"] == 0
    response = api.get()
    assert f'"originalsum":{amount}'.encode() in response.content
    assert f'"remainingsum":{amount}'.encode() in response.content
    case = jsonio.loads(response.content)["case"][0]
    assert case["originalsum"] == Decimal(amount)


def test_invoice_owner_is_the_single_batch_creditor_else_the_sender(api: Api) -> None:
    api.answer(batch("own-1", creditor=[creditor()], invoice=[invoice(1)]))
    api.answer(batch("own-2", creditor=[creditor(), creditor(ORGNR_2)], invoice=[invoice(2)]))
    api.answer(batch("own-3", invoice=[invoice(3)]))
    def numbers(**filters: str) -> set[str]:
        return {c["referencenumber"] for c in api.query(**filters)["case"]}

    assert numbers() == {"INV-00001", "INV-00002", "INV-00003"}
    assert numbers(creditorid=ORGNR) == {"INV-00001"}
    assert numbers(creditorid="sender-1") == {"INV-00002", "INV-00003"}


def test_many_objects_in_one_batch_get_one_answer_each(api: Api) -> None:
    invoices = [invoice(i, ocrReferenceNumber=kid_mod10(f"{50000 + i}")) for i in range(300)]
    invoices[17]["currency"] = "???"
    invoices[250]["debtors"][0]["identificationNumber"] = "11111234567"
    answer = api.answer(batch("many-1", invoice=invoices))
    assert answer["statuscode"] == 1
    assert [e["objectindex"] for e in answer["errors"]] == [17, 250]
    assert len(answer["responses"]) == 298
    assert len({r["ledgerref"] for r in answer["responses"]}) == 298


def test_concurrent_posts_of_one_batch_create_it_once(sandbox: Any, api: Api) -> None:
    import concurrent.futures

    body = jsonio.dumps(batch("race-1", invoice=[invoice(i) for i in range(50)]))
    headers = {"Authorization": f"Bearer {sandbox.issue_token()}",
               "Content-Type": "application/json"}

    def post(_: int) -> bytes:
        with httpx.Client(base_url=sandbox.base_url, headers=headers) as client:
            response = client.post("/webapi/api/Batch?senderid=sender-1", content=body)
            assert response.status_code == 200
            return response.content

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert len(set(answers)) == 1
    stats = api.stats()
    assert stats["batches"] == 1 and stats["invoices"] == 50 and stats["replays"] == 7
