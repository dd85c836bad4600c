"""``amili api-demo``: the API round trip on embedded defaults, with nothing to configure.

Starts the sandbox on a free loopback port, posts one batch (a creditor and two invoices,
one of them deliberately invalid), then a payment against the invoice Amili acknowledged,
reads the case back with ``GET Batch``, prints what happened and stops the sandbox.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TextIO

from pydantic import SecretStr

from amili.client import AmiliClient
from amili.examples import example_creditor, example_invoice
from amili.models import BatchRequest, Payment, PaymentType
from amili.sandbox.settings import SandboxSettings
from amili.settings import ClientSettings, load


def run_api_demo(out: TextIO) -> None:
    """Post a creditor and two invoices (one invalid), then a payment; print the answers."""
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
