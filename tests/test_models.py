"""The pydantic models against Amili's documented example, and exact money and dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from amili import jsonio
from amili.examples import example_invoice
from amili.models import (
    BatchRequest,
    BatchResponse,
    Claim,
    DebtorType,
    Invoice,
    InvoiceType,
    Payment,
)
from tests.helpers import DATA_DIR, documented_example_body


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON document, lists flattened to ``[]``."""
    if isinstance(value, dict):
        paths: set[str] = set()
        for key, item in value.items():
            paths |= {f"{prefix}/{key}"} | key_paths(item, f"{prefix}/{key}")
        return paths
    if isinstance(value, list):
        paths = set()
        for item in value:
            paths |= key_paths(item, f"{prefix}[]")
        return paths
    return set()


def test_documented_request_round_trips_with_the_same_keys() -> None:
    original = jsonio.loads(documented_example_body())
    batch = BatchRequest.model_validate(original)
    dumped = jsonio.loads(jsonio.dumps(batch))
    assert key_paths(dumped) == key_paths(original)
    assert len(key_paths(original)) > 90  # the whole documented body, not a part of it
    # field names as the API spells them, lower case and camelCase side by side
    assert {"/batchid", "/creditor[]/idnumber", "/invoice[]/invoiceNumber",
            "/invoice[]/debtors[]/firstname", "/invoice[]/debtors[]/phoneNumbers[]/originalValue",
            "/payment[]/uniqueSourcePaymentId", "/action[]/actiontype"} <= key_paths(dumped)
    # the documented date-time and date forms survive unchanged
    assert dumped["invoice"][0]["invoiceDate"] == "2019-08-24T14:15:22.123Z"
    assert dumped["invoice"][0]["debtors"][0]["dateOfBirth"] == "2019-08-24"


def test_documented_response_parses() -> None:
    response = BatchResponse.model_validate_json(
        (DATA_DIR / "documented-batch-response.json").read_bytes()
    )
    assert response.statuscode == 0
    assert response.errors[0].objectindex == 0
    assert response.responses[0].status_statuscode == "string"


def test_amounts_are_exact_decimals_in_json() -> None:
    invoice = example_invoice("INV-1", amount=Decimal("1234567890123456.78"))
    text = jsonio.dumps(invoice).decode()
    assert '"originalInvoiceAmount":1234567890123456.78' in text
    assert '"remainingAmount":1234567890123456.78' in text
    parsed = jsonio.loads(text)
    assert parsed["originalInvoiceAmount"] == Decimal("1234567890123456.78")


def test_amount_trailing_zeros_are_kept() -> None:
    claim = Claim(type="PRINCIPAL", remainingAmount=Decimal("100.50"))
    assert jsonio.dumps(claim) == b'{"type":"PRINCIPAL","remainingAmount":100.50}'


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        (Decimal("-1.00"), "must not be negative"),
        ("abc", "decimal"),
        (Decimal("1.005"), "decimal places"),
        (True, "boolean"),
    ],
)
def test_bad_amounts_are_rejected(amount: Any, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        Claim(type="PRINCIPAL", remainingAmount=amount)


@pytest.mark.parametrize(
    ("amount", "error_type"),
    [
        (Decimal("1.555"), "decimal_max_places"),
        (1.255, "decimal_max_places"),  # a float, through its shortest repr
        (Decimal("-0.001"), "decimal_max_places"),
        (Decimal("1E+20"), "decimal_max_digits"),
        (10**18, "decimal_max_digits"),
        (Decimal("123456789012345678.9"), "decimal_max_digits"),
        (Decimal("NaN"), "finite_number"),
        (Decimal("Infinity"), "finite_number"),
        (Decimal("-1"), "value_error"),
        ([], "decimal_type"),
    ],
)
def test_amount_limits_are_pydantics_own_errors(amount: Any, error_type: str) -> None:
    """The limits are checked by pydantic-core on the decimal (their place in ``Amount``),
    with pydantic's own error types and messages, which the quarantine reasons quote."""
    with pytest.raises(ValidationError) as caught:
        Claim(type="PRINCIPAL", remainingAmount=amount)
    assert [e["type"] for e in caught.value.errors()] == [error_type]


@pytest.mark.parametrize("amount", [Decimal("0.00"), Decimal("1E+2"), 1.25,
                                    Decimal("1234567890123456.78")])
def test_amounts_within_the_limits_pass(amount: Any) -> None:
    assert Claim(type="PRINCIPAL", remainingAmount=amount).remainingAmount == Decimal(
        repr(amount) if isinstance(amount, float) else amount)


def test_datetimes_serialize_as_utc_with_milliseconds() -> None:
    oslo_winter = timezone(timedelta(hours=1))
    payment = Payment(
        invoiceId="4f163819-178d-470c-a246-d6768476a6ec",
        type="DIRECT_PAYMENT",
        amount=Decimal("10"),
        currency="NOK",
        date=datetime(2026, 1, 15, 0, 30, 0, 123456, tzinfo=oslo_winter),
        uniqueSourcePaymentId="P-1",
    )
    assert jsonio.loads(jsonio.dumps(payment))["date"] == "2026-01-14T23:30:00.123Z"
    # a plain date where a date-time is documented becomes midnight UTC
    payment = payment.model_copy(update={"date": None})
    assert Payment.model_validate({**payment.model_dump(), "date": date(2026, 3, 1)}).date == (
        datetime(2026, 3, 1, tzinfo=UTC)
    )


def test_enums_accept_documented_and_assumed_values_and_reject_unknown() -> None:
    data = jsonio.loads(jsonio.dumps(example_invoice("INV-1")))
    for value in ("PAYMENT_REMINDER", "NOTICE", "COLLECTION_NOTICE"):
        assert Invoice.model_validate({**data, "type": value}).type == InvoiceType(value)
    with pytest.raises(ValidationError, match="type"):
        Invoice.model_validate({**data, "type": "SOMETHING_ELSE"})
    data["debtors"][0]["type"] = "COMPANY"
    assert Invoice.model_validate(data).debtors[0].type is DebtorType.COMPANY


def test_required_fields_are_named_in_errors() -> None:
    data = jsonio.loads(jsonio.dumps(example_invoice("INV-1")))
    del data["dueDate"]
    with pytest.raises(ValidationError, match="dueDate"):
        Invoice.model_validate(data)


@pytest.mark.parametrize(("text", "expected"), [
    (b'{"amount": 1234567890123456.78}', {"amount": Decimal("1234567890123456.78")}),
    (b'{"amount": 0.10}', {"amount": Decimal("0.10")}),  # the written digits, not 0.1
    (b'{"amount": 1.5e3, "n": 12345678901234567890}',
     {"amount": Decimal("1.5E+3"), "n": 12345678901234567890}),
    ('{"name": "Ærlig Østby Ås"}', {"name": "Ærlig Østby Ås"}),
])
def test_json_numbers_with_a_fraction_are_read_as_exact_decimals(
    text: bytes | str, expected: dict[str, Any]
) -> None:
    parsed = jsonio.loads(text)
    assert parsed == expected
    assert all(type(parsed[k]) is type(v) for k, v in expected.items())
    assert str(parsed.get("amount", "")) == str(expected.get("amount", ""))


@pytest.mark.parametrize("text", [
    b'{"amount": 1', b'{"a": 1} trailing', b"\xff\xfe", b"", b'"\\ud800"', b'{"a": 01}',
])
def test_malformed_json_raises_value_error_naming_where(text: bytes) -> None:
    with pytest.raises(ValueError, match="line 1 column"):
        jsonio.loads(text)
