"""The sandbox's small pure parts: KID check digits, fault choice, rules, settings, tokens."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sandbox_payloads import invoice

from amili.contract import ISO_4217_CURRENCIES, ApiContract
from amili.models import ObjectName
from amili.sandbox.faults import FaultBook, FaultRule, fault_key, fault_rejects
from amili.sandbox.settings import SandboxSettings
from amili.sandbox.tokens import TokenError, bearer_token, issue_token, verify_token
from amili.sandbox.validation import (
    format_loc,
    is_valid_kid,
    kid_mod10_check_digit,
    kid_mod11_check_digit,
    kid_problem,
    validate_object,
)
from amili.settings import load


@pytest.mark.parametrize(
    ("body", "mod10", "mod11"),
    [("1234", "12344", "12343"), ("2345678", "23456783", "23456788")],
)
def test_kid_check_digits_match_reference_vectors(body: str, mod10: str, mod11: str) -> None:
    assert body + kid_mod10_check_digit(body) == mod10
    assert body + kid_mod11_check_digit(body) == mod11
    assert is_valid_kid(mod10)
    assert is_valid_kid(mod11)


def test_kid_mod11_remainder_ten_has_no_check_digit() -> None:
    # a body whose MOD11 check would be "10" has no MOD11 KID: only its MOD10 digit is valid
    body = next(f"{n}" for n in range(100, 10_000) if kid_mod11_check_digit(f"{n}") is None)
    valid = [d for d in "0123456789" if is_valid_kid(body + d)]
    assert valid == [kid_mod10_check_digit(body)]


@pytest.mark.parametrize(
    ("kid", "reason"),
    [
        ("12a44", "digits only"),
        ("4", "2 to 25 digits"),
        ("1" * 26, "2 to 25 digits"),
        ("12345", "check digit"),
    ],
)
def test_kid_problems_say_why(kid: str, reason: str) -> None:
    problem = kid_problem(kid)
    assert problem is not None and reason in problem


def test_kid_methods_are_configurable() -> None:
    only_mod10 = ApiContract(kid_check_methods=("MOD10",))
    assert is_valid_kid("12344", only_mod10)
    assert not is_valid_kid("12343", only_mod10)


def test_format_loc() -> None:
    loc = ("debtors", 0, "addresses", 2, "zipCode")
    assert format_loc(loc) == ".debtors[0].addresses[2].zipCode"


def test_valid_invoice_passes_and_broken_one_names_every_field() -> None:
    assert validate_object(ObjectName.INVOICE, 0, invoice()).ok
    broken = invoice(originalInvoiceAmount="abc", currency="XXX")
    del broken["dueDate"]
    check = validate_object(ObjectName.INVOICE, 3, broken)
    assert not check.ok and check.model is None
    assert "invoice[3].dueDate: Field required" in check.problems
    assert any(p.startswith("invoice[3].originalInvoiceAmount: must be a JSON number") for p in
               check.problems)
    assert any(p.startswith("invoice[3].currency: 'XXX'") for p in check.problems)


def test_currency_set_is_iso_4217_without_funds_or_metals() -> None:
    assert {"NOK", "SEK", "DKK", "EUR", "USD", "GBP"} <= ISO_4217_CURRENCIES
    assert not {"XAU", "XXX", "XTS", "HRK", "nok"} & ISO_4217_CURRENCIES


def test_fault_choice_is_deterministic_and_near_the_share() -> None:
    picks = [fault_rejects(7, "invoice", f"id-{i}", 0.3) for i in range(2000)]
    assert picks == [fault_rejects(7, "invoice", f"id-{i}", 0.3) for i in range(2000)]
    assert 0.25 < sum(picks) / len(picks) < 0.35
    assert picks != [fault_rejects(8, "invoice", f"id-{i}", 0.3) for i in range(2000)]
    assert not fault_rejects(1, "invoice", "x", 0.0)
    assert fault_rejects(1, "invoice", "x", 1.0)


def test_fault_key_prefers_the_unique_id() -> None:
    assert fault_key("invoice", 4, {"uniqueSourceInvoiceId": "erp-1"}) == "erp-1"
    assert fault_key("payment", 4, {"uniqueSourcePaymentId": "p-1"}) == "p-1"
    assert fault_key("creditor", 4, {"idnumber": "998447356"}) == "998447356"
    assert fault_key("action", 4, {"ledgerref": "x"}) == "4"
    assert fault_key("invoice", 2, "not an object") == "2"


def test_fault_rules_need_their_parameter_and_count_down() -> None:
    with pytest.raises(ValidationError, match="needs 'status'"):
        FaultRule(kind="status")
    with pytest.raises(ValidationError):
        FaultRule(kind="status", status=503, colour="red")  # type: ignore[call-arg]
    rule = FaultRule(kind="status", status=503, times=2)
    book = FaultBook([rule])
    assert book.take("status", "GET", "/webapi/api/Batch") is None  # default method is POST
    assert book.take("status", "POST", "/sandbox/stats") is None  # admin paths never fault
    assert book.take("slow", "POST", "/webapi/api/Batch") is None  # another kind
    assert book.take("status", "POST", "/webapi/api/Batch") == rule
    assert book.take("status", "POST", "/webapi/api/Batch") == rule
    assert book.take("status", "POST", "/webapi/api/Batch") is None
    assert book.list()[0]["remaining"] == 0 and book.list()[0]["applied"] == 2
    slow = FaultRule(kind="slow", delay_seconds=1, method="*", path="/webapi/*")
    wildcard = FaultBook([slow])
    assert wildcard.take("slow", "GET", "/webapi/api/Ping") == slow
    assert wildcard.take("slow", "GET", "/sandbox/stats") is None


def test_settings_read_faults_and_assumptions_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AMILI_SANDBOX_FAULTS", '[{"kind": "status", "status": 429, "times": 1}]')
    monkeypatch.setenv("AMILI_SANDBOX_ASSUMPTIONS__MAX_BATCH_OBJECTS", "10")
    monkeypatch.setenv("AMILI_SANDBOX_ACK_ONLY", "true")
    settings = load(SandboxSettings)
    assert settings.faults[0].status == 429
    assert settings.assumptions.max_batch_objects == 10
    assert settings.assumptions.max_body_bytes == 8_000_000
    assert settings.ack_only


def test_tokens_round_trip_and_refusals() -> None:
    settings = SandboxSettings()
    claims = verify_token(settings, issue_token(settings, subject="me"))
    assert claims["sub"] == "me" and claims["iss"] == settings.jwt_issuer
    with pytest.raises(TokenError, match="expired"):
        verify_token(settings, issue_token(settings, ttl_seconds=-10))
    other = SandboxSettings(jwt_secret="another-secret-that-is-long-enough-for-hs256")
    with pytest.raises(TokenError, match="signature"):
        verify_token(settings, issue_token(other))
    with pytest.raises(TokenError, match="audience"):
        verify_token(settings, issue_token(SandboxSettings(jwt_audience="someone-else")))
    with pytest.raises(TokenError, match="malformed"):
        verify_token(settings, "not.a.jwt")
    with pytest.raises(TokenError, match="Bearer"):
        bearer_token("Basic dXNlcjpwYXNz")
    with pytest.raises(TokenError, match="missing"):
        bearer_token(None)


def test_drop_without_a_reachable_transport_cuts_the_response_short() -> None:
    import asyncio

    from amili.sandbox.app import DroppedConnection, _drop_connection

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:  # a plain function: no transport
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    with pytest.raises(DroppedConnection):
        asyncio.run(_drop_connection(receive, send))  # type: ignore[arg-type]
    start, body = sent
    assert start["type"] == "http.response.start"
    declared = dict(start["headers"])[b"content-length"]  # type: ignore[call-overload]
    assert int(declared) > len(body["body"])  # type: ignore[arg-type]
