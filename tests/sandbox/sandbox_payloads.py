"""Valid batch objects built from identifiers python-stdnum accepts, and the documented body.

Tests start from these and break one field at a time, so a rejection can only come from the
rule under test.
"""

from __future__ import annotations

import copy
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from stdnum import luhn

ORGNR = "998447356"  # valid organisasjonsnummer (reference §7)
ORGNR_2 = "123456785"  # valid: 12345678 + check digit 5
FNR = "15108695088"  # valid fødselsnummer
FNR_2 = "31129956715"
KONTONR = "76940512057"
IBAN = "NO9386011117947"
BIC = "DNBANOKKXXX"

REPO = Path(__file__).resolve().parents[2]


def kid_mod10(body: str) -> str:
    """A KID with a valid MOD10 (Luhn) check digit."""
    return body + luhn.calc_check_digit(body)


def creditor(idnumber: str = ORGNR, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "idnumber": idnumber,
        "fullname": "Fjordkraft Testkreditor AS",
        "street": "Strandgata 1",
        "city": "Bergen",
        "zipcode": "5004",
        "countrycode": "NO",
        "emailinvoice": "faktura@example.no",
        "bankaccountno": KONTONR,
        "iban": IBAN,
        "swift": BIC,
        "contact": {"fullname": "Kari Nordmann", "email": "kari@example.no"},
    }
    data.update(changes)
    return data


def debtor(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "PRIVATE",
        "firstname": "Ola",
        "lastname": "Nordmann",
        "customerNumber": "C-1001",
        "identificationNumber": FNR,
        "emails": [{"value": "ola@example.no"}],
        "addresses": [
            {"street": "Karl Johans gate 1", "zipCode": "0154", "city": "Oslo",
             "countryCode": "NO"}
        ],
    }
    data.update(changes)
    return data


def invoice(n: int = 1, amount: str = "1500.00", **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "PAYMENT_REMINDER",
        "invoiceNumber": f"INV-{n:05d}",
        "vat": False,
        "fees": False,
        "originalInvoiceAmount": Decimal(amount),
        "currency": "NOK",
        "invoiceDate": "2025-01-10T00:00:00.000Z",
        "dueDate": "2025-02-09T00:00:00.000Z",
        "ocrReferenceNumber": kid_mod10(f"{1000 + n}"),
        "uniqueSourceInvoiceId": f"erp-invoice-{n}",
        "description": "Overdue invoice",
        "debtors": [debtor()],
        "claims": [{"type": "PRINCIPAL", "remainingAmount": Decimal(amount)}],
    }
    data.update(changes)
    return data


def payment(invoice_id: str, n: int = 1, amount: str = "500.00", **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "invoiceId": invoice_id,
        "type": "DIRECT_PAYMENT",
        "amount": Decimal(amount),
        "currency": "NOK",
        "date": "2025-03-01T10:00:00.000Z",
        "description": "Paid by debtor",
        "uniqueSourcePaymentId": f"erp-payment-{n}",
    }
    data.update(changes)
    return data


def action(ledgerref: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "creditorid": ORGNR,
        "ledgerref": ledgerref,
        "actiontype": 1,
        "subject": "Pause",
        "message": "Debtor disputes the claim",
    }
    data.update(changes)
    return data


def batch(batchid: str, **arrays: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {"batchid": batchid, "offline": False}
    body.update(copy.deepcopy(arrays))
    return body


def documented_example() -> bytes:
    """The JSON of the documented curl example: what follows ``--data-raw '`` in the seed."""
    candidates = [
        Path(os.environ["AMILI_SHARED_DIR"]) if "AMILI_SHARED_DIR" in os.environ else None,
        REPO.parent / "shared",
        REPO / "shared",
    ]
    for folder in candidates:
        if folder is not None and (folder / "seed-amili-legacy-batch-post.txt").is_file():
            text = (folder / "seed-amili-legacy-batch-post.txt").read_text(encoding="utf-8")
            start = text.index("--data-raw '") + len("--data-raw '")
            end = text.index("'", start)
            return text[start:end].encode()
    copy_in_repo = REPO / "tests" / "data" / "documented-batch-request.json"
    return copy_in_repo.read_bytes()
