"""The API client against the sandbox running as a real server on a loopback port."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr

from amili import jsonio
from amili.client import (
    AmiliAPIError,
    AmiliClient,
    AmiliTransportError,
    parse_retry_after,
)
from amili.examples import example_creditor, example_invoice
from amili.models import BatchRequest
from amili.sandbox.settings import SandboxSettings
from amili.settings import ClientSettings, SettingsError, load
from tests.conftest import SandboxAdmin
from tests.helpers import documented_example_body

MakeClient = Callable[..., AmiliClient]


def valid_batch(batchid: str, *source_ids: str) -> BatchRequest:
    return BatchRequest(
        batchid=batchid,
        creditor=[example_creditor()],
        invoice=[example_invoice(source_id) for source_id in source_ids],
    )


class RecordingSleep:
    """Sleeps for real and remembers how long it was asked to (to check Retry-After)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        time.sleep(seconds)


def test_ping(make_client: MakeClient) -> None:
    assert make_client().ping()["senderid"] == "test-sender"  # sent on every request


def test_documented_example_body_gets_the_documented_answer_shape(
    make_client: MakeClient,
) -> None:
    result = make_client().post_batch(documented_example_body())
    assert result.http_status == 200
    # the placeholder values ("string") are not valid data: every object is answered per
    # object, by its array name and index
    named = {(e.objectname, e.objectindex) for e in result.response.errors}
    named |= {(r.objectname, r.objectindex) for r in result.response.responses}
    assert {("creditor", 0), ("invoice", 0), ("payment", 0), ("action", 0)} <= named
    assert all(error.message for error in result.response.errors)


def test_valid_batch_is_accepted_with_ledgerrefs(
    make_client: MakeClient, sandbox_admin: SandboxAdmin
) -> None:
    result = make_client().post_batch(valid_batch("b-1", "INV-1", "INV-2"))
    assert result.response.statuscode == 0
    assert result.response.errors == []
    invoices = [r for r in result.response.responses if r.objectname == "invoice"]
    assert [r.objectindex for r in invoices] == [0, 1]
    assert all(r.ledgerref for r in invoices)
    assert result.attempts == 1
    assert sandbox_admin.stats()["invoices"] == 2


def test_get_batches_answers_cases_and_settlements(make_client: MakeClient) -> None:
    client = make_client()
    result = client.post_batch(valid_batch("b-1", "INV-1"))
    ledgerref = result.response.responses[-1].ledgerref
    found = client.get_batches(ledgerref=ledgerref)
    assert [case.ledgerref for case in found.case] == [ledgerref]
    assert found.case[0].originalsum == Decimal("1250.00")


def test_per_object_rejections_map_back_to_the_source_index(make_client: MakeClient) -> None:
    batch = valid_batch("b-1", "INV-1", "INV-2", "INV-3")
    batch.invoice[1].debtors[0].identificationNumber = "15108695077"  # wrong check digits
    result = make_client().post_batch(batch)
    assert result.response.statuscode != 0
    [error] = result.response.errors
    assert (error.objectname, error.objectindex) == ("invoice", 1)
    assert "identificationNumber" in error.message
    assert batch.invoice[error.objectindex].uniqueSourceInvoiceId == "INV-2"


@pytest.mark.parametrize("problem", ["bad signature", "expired", "garbage"])
def test_bad_tokens_get_401_without_retries(make_client: MakeClient, problem: str) -> None:
    sandbox = load(SandboxSettings)
    now = datetime.now(UTC)
    claims = {"sub": "x", "iss": sandbox.jwt_issuer, "aud": sandbox.jwt_audience,
              "iat": now, "exp": now + timedelta(hours=1)}
    if problem == "bad signature":
        token = jwt.encode(claims, "not-the-sandbox-secret-but-long-enough-32b", "HS256")
    elif problem == "expired":
        claims.update(iat=now - timedelta(hours=2), exp=now - timedelta(hours=1))
        token = jwt.encode(claims, sandbox.jwt_secret.get_secret_value(), "HS256")
    else:
        token = "not-a-jwt"
    client = make_client(token=SecretStr(token))
    with pytest.raises(AmiliAPIError) as caught:
        client.ping()
    assert caught.value.status_code == 401
    assert caught.value.attempts == 1


def test_missing_settings_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("AMILI_BASE_URL", "AMILI_TOKEN", "AMILI_SENDER_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AMILI_BASE_URL", "http://127.0.0.1:1")
    with pytest.raises(SettingsError) as caught:
        AmiliClient.from_env()
    assert "AMILI_TOKEN is not set" in str(caught.value)
    assert "AMILI_SENDER_ID is not set" in str(caught.value)
    assert "AMILI_BASE_URL" not in str(caught.value)
    monkeypatch.setenv("AMILI_BASE_URL", "not a url")
    with pytest.raises(SettingsError, match="AMILI_BASE_URL is invalid"):
        AmiliClient.from_env()


def test_429_retry_after_is_honoured_then_success(
    make_client: MakeClient, sandbox_admin: SandboxAdmin
) -> None:
    sandbox_admin.add_faults({"kind": "status", "status": 429, "retry_after": 1, "times": 1})
    sleep = RecordingSleep()
    started = time.perf_counter()
    result = make_client(client_kwargs={"sleep": sleep}).post_batch(valid_batch("b-1", "I-1"))
    assert result.response.statuscode == 0
    assert result.attempts == 2
    assert sleep.calls == [1.0]  # the server's Retry-After, not the (tiny) backoff
    assert time.perf_counter() - started >= 1.0


def test_503_twice_then_success(make_client: MakeClient, sandbox_admin: SandboxAdmin) -> None:
    sandbox_admin.add_faults({"kind": "status", "status": 503, "times": 2})
    result = make_client().post_batch(valid_batch("b-1", "I-1"))
    assert result.attempts == 3
    assert result.response.statuscode == 0
    assert sandbox_admin.stats()["invoices"] == 1


def test_retries_are_bounded(make_client: MakeClient, sandbox_admin: SandboxAdmin) -> None:
    sandbox_admin.add_faults({"kind": "status", "status": 502, "times": None})
    with pytest.raises(AmiliAPIError) as caught:
        make_client(max_retries=2).post_batch(valid_batch("b-1", "I-1"))
    assert caught.value.status_code == 502
    assert caught.value.attempts == 3


def test_timeout_is_retried_and_then_reported(
    make_client: MakeClient, sandbox_admin: SandboxAdmin
) -> None:
    sandbox_admin.add_faults({"kind": "slow", "delay_seconds": 1.5, "times": None})
    client = make_client(timeout_seconds=0.3, max_retries=1)
    started = time.perf_counter()
    with pytest.raises(AmiliTransportError, match="Timeout") as caught:
        client.post_batch(valid_batch("b-1", "I-1"))
    assert caught.value.attempts == 2
    assert time.perf_counter() - started < 1.4  # gave up on time, did not wait the server out


def test_slow_answer_once_then_success(
    make_client: MakeClient, sandbox_admin: SandboxAdmin
) -> None:
    sandbox_admin.add_faults({"kind": "slow", "delay_seconds": 1.0, "times": 1})
    result = make_client(timeout_seconds=0.3).post_batch(valid_batch("b-1", "I-1"))
    assert result.attempts == 2
    assert result.response.statuscode == 0


def test_no_retry_on_400(make_client: MakeClient, sandbox_admin: SandboxAdmin) -> None:
    with pytest.raises(AmiliAPIError) as caught:
        make_client().post_batch(b'{"batchid": "broken", "invoice": [')
    assert caught.value.status_code == 400
    assert caught.value.attempts == 1
    assert caught.value.body  # the server's explanation travels with the error


@pytest.mark.parametrize("after_processing", [False, True])
def test_dropped_connection_is_retried_without_duplicates(
    make_client: MakeClient, sandbox_admin: SandboxAdmin, after_processing: bool
) -> None:
    sandbox_admin.add_faults(
        {"kind": "drop", "after_processing": after_processing, "times": 1}
    )
    result = make_client().post_batch(valid_batch("b-1", "I-1", "I-2"))
    assert result.attempts == 2
    assert result.response.statuscode == 0
    assert sandbox_admin.stats()["invoices"] == 2  # stored once, even when the first POST was


def test_reposting_the_same_batch_creates_nothing_new(
    make_client: MakeClient, sandbox_admin: SandboxAdmin
) -> None:
    client = make_client()
    first = client.post_batch(valid_batch("b-1", "I-1", "I-2"))
    again = client.post_batch(valid_batch("b-1", "I-1", "I-2"))
    assert again.response == first.response
    other_batch = client.post_batch(valid_batch("b-2", "I-1", "I-2"))
    assert {r.status_statuscode for r in other_batch.response.responses
            if r.objectname == "invoice"} == {"DUPLICATE"}
    assert [r.ledgerref for r in other_batch.response.responses if r.objectname == "invoice"] == [
        r.ledgerref for r in first.response.responses if r.objectname == "invoice"
    ]
    assert sandbox_admin.stats()["invoices"] == 2


class CountingTransport(httpx.HTTPTransport):
    """A real HTTP transport that also records how many requests were in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            response = super().handle_request(request)
            response.read()
            return response
        finally:
            with self._lock:
                self.in_flight -= 1


class HeadRecordingTransport(httpx.HTTPTransport):
    """A real HTTP transport that also keeps the headers of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.heads: list[httpx.Headers] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.heads.append(request.headers.copy())
        return super().handle_request(request)


def test_a_body_goes_out_whole_on_every_attempt_and_is_let_go_once_sent(
    make_client: MakeClient, sandbox_admin: SandboxAdmin
) -> None:
    sandbox_admin.add_faults({"kind": "status", "status": 503, "times": 1})
    transport = HeadRecordingTransport()
    client = make_client(client_kwargs={"transport": transport})
    body = jsonio.dumps(valid_batch("b-1", "I-1", "I-2"))
    gc.disable()  # what keeps the body alive must be a reference, not uncollected garbage
    try:
        references = sys.getrefcount(body)
        result = client.post_batch(body)
        del result
        assert sys.getrefcount(body) == references  # httpx's response cycle does not hold it
    finally:
        gc.enable()
    assert len(transport.heads) == 2  # the 503, then the retry with the same bytes
    for head in transport.heads:
        assert head["Content-Length"] == str(len(body)) and "Transfer-Encoding" not in head
    assert sandbox_admin.stats()["invoices"] == 2


def test_post_batches_respects_the_concurrency_bound(
    make_client: MakeClient, sandbox_admin: SandboxAdmin
) -> None:
    sandbox_admin.add_faults({"kind": "slow", "delay_seconds": 0.2, "times": None})
    transport = CountingTransport()
    client = make_client(max_concurrency=3, client_kwargs={"transport": transport})
    batches = (valid_batch(f"b-{n}", f"I-{n}") for n in range(10))
    outcomes = list(client.post_batches(batches))
    assert len(outcomes) == 10
    assert all(outcome.ok for outcome in outcomes)
    assert {outcome.item.batchid for outcome in outcomes} == {f"b-{n}" for n in range(10)}
    assert transport.max_in_flight == 3
    assert sandbox_admin.stats()["invoices"] == 10


def test_post_batches_reports_failures_per_batch(
    make_client: MakeClient, sandbox_admin: SandboxAdmin
) -> None:
    client = make_client()
    outcomes = list(client.post_batches([valid_batch("b-ok", "I-1"), b"not json"]))
    assert sorted(outcome.ok for outcome in outcomes) == [False, True]  # as they finish
    by_kind = {outcome.ok: outcome for outcome in outcomes}
    good, bad = by_kind[True], by_kind[False]
    assert good.error is None and good.result is not None
    assert (good.result.batchid, good.result.http_status, good.result.response.statuscode) \
        == ("b-ok", 200, 0)
    assert [(r.objectname, r.objectindex) for r in good.result.response.responses
            if r.objectname == "invoice" and r.ledgerref] == [("invoice", 0)]
    assert bad.result is None and bad.item == b"not json"
    assert isinstance(bad.error, AmiliAPIError) and bad.error.status_code == 400
    assert bad.error.attempts == 1  # a 400 is not retried
    assert sandbox_admin.stats()["invoices"] == 1


def test_token_never_appears_in_logs_errors_or_reprs(
    make_client: MakeClient, sandbox_admin: SandboxAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # everything: ours, httpx's and httpcore's
    sandbox_admin.add_faults({"kind": "status", "status": 503, "times": None})
    client = make_client(max_retries=2)
    token = client.settings.token.get_secret_value()
    texts: list[str] = [repr(client), repr(client.settings), str(client.settings)]
    with pytest.raises(AmiliAPIError) as caught:
        client.post_batch(valid_batch("b-1", "I-1"))
    texts += [str(caught.value), repr(caught.value)]
    sandbox_admin.clear_faults()
    with pytest.raises(AmiliAPIError) as caught:
        make_client(token=SecretStr(token + "x")).ping()  # 401
    texts += [str(caught.value), repr(caught.value)]
    dead = make_client(base_url="http://127.0.0.1:9", max_retries=1)  # nothing listens on 9
    with pytest.raises(AmiliTransportError) as caught_transport:
        dead.ping()
    texts += [str(caught_transport.value), repr(caught_transport.value)]
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.args) for record in caplog.records]
    assert any("retrying" in text for text in texts)  # the failures were really logged
    assert not [text for text in texts if token in text]


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:05 GMT", now=now) == 5.0


def test_settings_reject_a_bad_retry_limit() -> None:
    with pytest.raises(SettingsError, match="AMILI_MAX_RETRIES is invalid"):
        load(ClientSettings, base_url="http://x", token="t", sender_id="s", max_retries=-1)


def test_the_client_cuts_batches_no_bigger_than_the_sandbox_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One contract: the client's default limits and the sandbox's are the same numbers."""
    for name in ("AMILI_MAX_BATCH_OBJECTS", "AMILI_MAX_BATCH_BYTES"):
        monkeypatch.delenv(name, raising=False)
    client = load(ClientSettings, base_url="http://x", token="t", sender_id="s")
    sandbox = SandboxSettings().assumptions
    assert (client.max_batch_objects, client.max_batch_bytes) == (
        sandbox.max_batch_objects, sandbox.max_body_bytes
    ) == (5000, 8_000_000)


def test_decimal_amount_survives_to_the_get_answer(make_client: MakeClient) -> None:
    client = make_client()
    batch = BatchRequest(batchid="b-big", creditor=[example_creditor()],
                         invoice=[example_invoice("I-big", amount=Decimal("1234567890123.45"))])
    result = client.post_batch(batch)
    assert result.response.statuscode == 0, result.response.errors
    ledgerref = result.response.responses[-1].ledgerref
    raw = httpx.get(f"{client.settings.base_url}webapi/api/Batch",
                    params={"senderid": client.settings.sender_id, "ledgerref": ledgerref},
                    headers={"Authorization": f"Bearer {client.settings.token.get_secret_value()}"})
    assert b"1234567890123.45" in raw.content
    assert jsonio.loads(raw.content)["case"][0]["originalsum"] == Decimal("1234567890123.45")
