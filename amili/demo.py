"""``amili demo``: the API round trip on embedded defaults, with nothing to configure.

Starts the sandbox on a free loopback port, posts one batch (a creditor and two invoices,
one of them deliberately invalid), then a payment against the invoice Amili acknowledged,
reads the case back with ``GET Batch``, prints what happened and stops the sandbox.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TextIO

from pydantic import SecretStr

from amili.client import AmiliClient
from amili.models import (
    Address,
    BatchRequest,
    Claim,
    ClaimType,
    Creditor,
    Debtor,
    DebtorType,
    Email,
    Invoice,
    InvoiceType,
    Payment,
    PaymentType,
)
from amili.sandbox.settings import SandboxSettings
from amili.settings import ClientSettings, load


def example_invoice(
    source_id: str, *, amount: Decimal = Decimal("1250.00"), national_id: str = "15108695088"
) -> Invoice:
    """A valid overdue invoice of a private debtor (identifiers valid per python-stdnum)."""
    return Invoice(
        type=InvoiceType.PAYMENT_REMINDER,
        invoiceNumber=f"F-{source_id}",
        originalInvoiceAmount=amount,
        currency="NOK",
        invoiceDate=date(2026, 10, 1),
        dueDate=date(2026, 10, 15),
        ocrReferenceNumber="1002003000",  # MOD10 (Luhn) check digit 0
        uniqueSourceInvoiceId=source_id,
        description="Konsulenttimer oktober",
        debtors=[
            Debtor(
                type=DebtorType.PRIVATE,
                firstname="Bjørn",
                lastname="Ødegård",
                customerNumber="K-1001",
                identificationNumber=national_id,
                emails=[Email(value="bjorn.odegard@example.no")],
                addresses=[
                    Address(street="Løkkeveien 12", zipCode="4008", city="Stavanger",
                            countryCode="NO")
                ],
            )
        ],
        claims=[Claim(type=ClaimType.PRINCIPAL, remainingAmount=amount)],
    )


def example_creditor() -> Creditor:
    return Creditor(
        idnumber="998447356",
        fullname="Fjordkraft Demo AS",
        street="Strandkaien 2",
        zipcode="5013",
        city="Bergen",
        countrycode="NO",
        bankaccountno="76940512057",
        iban="NO9876940512057",
        swift="DNBANOKKXXX",
    )


def run_api_demo(out: TextIO) -> None:
    from amili.sandbox.server import SandboxServer

    with SandboxServer(load(SandboxSettings, port=0)) as sandbox:
        print(f"Sandbox listening on {sandbox.base_url}", file=out)
        settings = load(
            ClientSettings,
            base_url=sandbox.base_url,
            token=SecretStr(sandbox.issue_token()),
            sender_id="demo-sender",
        )
        with AmiliClient(settings) as client:
            print(f"Ping: {client.ping()}", file=out)
            batch = BatchRequest(
                batchid="demo-0001",
                creditor=[example_creditor()],
                invoice=[
                    example_invoice("INV-1001"),
                    example_invoice("INV-1002", national_id="15108695077"),  # bad check digits
                ],
            )
            result = client.post_batch(batch)
            print(f"\nPOST batch {batch.batchid}: HTTP {result.http_status}, "
                  f"statuscode {result.response.statuscode}", file=out)
            for answer in result.response.responses:
                print(f"  accepted {answer.objectname}[{answer.objectindex}] "
                      f"ledgerref={answer.ledgerref} status={answer.status_statuscode}", file=out)
            for error in result.response.errors:
                print(f"  rejected {error.objectname}[{error.objectindex}]: {error.message}",
                      file=out)

            invoice_id = next(
                a.ledgerref for a in result.response.responses
                if a.objectname == "invoice" and a.objectindex == 0
            )
            payment = Payment(
                invoiceId=invoice_id or "",
                type=PaymentType.DIRECT_PAYMENT,
                amount=Decimal("250.00"),
                currency="NOK",
                date=datetime.now(UTC),
                uniqueSourcePaymentId="PAY-5001",
            )
            paid = client.post_batch(BatchRequest(batchid="demo-0002", payment=[payment]))
            print(f"\nPOST batch demo-0002 (payment): statuscode {paid.response.statuscode}",
                  file=out)

            cases = client.get_batches(ledgerref=invoice_id)
            for case in cases.case:
                print(f"\nGET Batch: case {case.casenumber} ledgerref={case.ledgerref} "
                      f"original={case.originalsum} paid={case.paidsum} "
                      f"remaining={case.remainingsum} status={case.status_statuscode}", file=out)
    print("\nSandbox stopped.", file=out)
