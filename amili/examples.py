"""A valid creditor and invoice as the Batch API expects them, for demos and tests.

Identifiers are valid per python-stdnum, so a test changes one field to make one defect.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from amili.models import (
    Address,
    Claim,
    ClaimType,
    Creditor,
    Debtor,
    DebtorType,
    Email,
    Invoice,
    InvoiceType,
)


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
    """A Norwegian creditor with a valid organisation number, account number and IBAN."""
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
