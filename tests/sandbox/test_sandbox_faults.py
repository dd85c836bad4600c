"""Fault injection, seen from a plain httpx client over a real TCP connection."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from sandbox_http import SENDER, Api
from sandbox_payloads import batch, creditor, invoice

from amili import jsonio
from amili.sandbox.faults import REJECT_MESSAGE, fault_rejects

DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)


def test_429_with_retry_after_then_normal(api: Api) -> None:
    api.add_faults({"kind": "status", "status": 429, "retry_after": 7, "times": 1})
    body = batch("f-429", invoice=[invoice(1)])
    first = api.post(body)
    assert first.status_code == 429
    assert first.headers["retry-after"] == "7"
    assert first.json()["statuscode"] == 2
    assert api.stats()["invoices"] == 0
    second = api.post(body)
    assert second.status_code == 200 and second.json()["statuscode"] == 0
    stats = api.stats()
    assert stats["requests"]["POST /webapi/api/Batch"] == {"429": 1, "200": 1}


def test_503_until_cleared(api: Api) -> None:
    api.add_faults({"kind": "status", "status": 503})
    for _ in range(3):
        response = api.post(batch("f-503"))
        assert response.status_code == 503
        assert "retry-after" not in response.headers
    listed = api.http.get("/sandbox/faults").json()["faults"]
    assert listed[0]["applied"] == 3 and listed[0]["remaining"] is None
    assert api.http.delete("/sandbox/faults").json() == {"cleared": 1}
    assert api.post(batch("f-503")).status_code == 200


def test_500_on_get_only(api: Api) -> None:
    api.add_faults({"kind": "status", "status": 500, "method": "GET", "times": 1,
                    "message": "database on fire"})
    assert api.post(batch("f-500")).status_code == 200
    response = api.get()
    assert response.status_code == 500
    assert response.json()["errors"][0]["message"] == "database on fire"
    assert api.get().status_code == 200


def test_slow_answers_late_but_still_processes(api: Api) -> None:
    api.add_faults({"kind": "slow", "delay_seconds": 0.6, "times": 2})
    started = time.monotonic()
    assert api.post(batch("f-slow-1")).status_code == 200
    assert time.monotonic() - started >= 0.6
    # a client that gives up waiting: the batch is processed anyway, a retry is a replay
    with pytest.raises(httpx.ReadTimeout):
        api.post(batch("f-slow-2", invoice=[invoice(1)]), timeout=0.2)
    deadline = time.monotonic() + 5
    while api.stats()["invoices"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.stats()["invoices"] == 1
    retry = api.post(batch("f-slow-2", invoice=[invoice(1)]))
    assert retry.status_code == 200 and api.stats()["replays"] == 1


def test_drop_before_processing_stores_nothing(api: Api) -> None:
    api.add_faults({"kind": "drop", "times": 1})
    body = batch("f-drop-1", invoice=[invoice(1)])
    with pytest.raises(DROPPED):
        api.post(body)
    stats = api.stats()
    assert stats["batches"] == 0 and stats["invoices"] == 0
    assert stats["requests"]["POST /webapi/api/Batch"] == {"dropped": 1}
    retry = api.post(body)  # the client's pool opens a new connection
    assert retry.status_code == 200 and retry.json()["statuscode"] == 0
    assert api.stats()["replays"] == 0


def test_drop_after_processing_stores_and_the_retry_is_replayed(api: Api) -> None:
    api.add_faults({"kind": "drop", "after_processing": True, "times": 1})
    body = batch("f-drop-2", invoice=[invoice(1), invoice(2)])
    with pytest.raises(DROPPED):
        api.post(body)
    stats = api.stats()
    assert stats["batches"] == 1 and stats["invoices"] == 2
    retry = api.post(body)
    assert retry.status_code == 200
    assert [r["status_statuscode"] for r in retry.json()["responses"]] == ["CREATED", "CREATED"]
    stats = api.stats()
    assert stats["replays"] == 1 and stats["invoices"] == 2
    # the same invoices under a new batchid are duplicates with the same ledgerrefs
    fresh = api.post(batch("f-drop-3", invoice=[invoice(1), invoice(2)])).json()
    assert [r["ledgerref"] for r in fresh["responses"]] == [
        r["ledgerref"] for r in retry.json()["responses"]
    ]
    assert {r["status_statuscode"] for r in fresh["responses"]} == {"DUPLICATE"}


def test_reject_share_is_predictable(api: Api) -> None:
    api.add_faults({"kind": "reject_share", "share": 0.5, "seed": 42, "times": 1})
    invoices = [invoice(i) for i in range(40)]
    expected = {
        i for i, inv in enumerate(invoices)
        if fault_rejects(42, "invoice", inv["uniqueSourceInvoiceId"], 0.5)
    }
    assert 0 < len(expected) < 40
    answer = api.answer(batch("f-share", creditor=[creditor()], invoice=invoices))
    rejected = {e["objectindex"] for e in answer["errors"] if e["objectname"] == "invoice"}
    assert rejected == expected
    assert all(REJECT_MESSAGE in e["message"] for e in answer["errors"])
    assert answer["statuscode"] == 1
    creditor_rejected = fault_rejects(42, "creditor", creditor()["idnumber"], 0.5)
    assert any(e["objectname"] == "creditor" for e in answer["errors"]) == creditor_rejected
    assert api.stats()["injected_rejections"] == len(answer["errors"])
    # the rule was used up: the rejected invoices go through in a new batch
    retry = api.answer(batch("f-share-2", invoice=[invoices[i] for i in sorted(expected)]))
    assert retry["statuscode"] == 0


def test_full_rejection_gives_statuscode_2(api: Api) -> None:
    api.add_faults({"kind": "reject_share", "share": 1})
    answer = api.answer(batch("f-all", invoice=[invoice(1), invoice(2)]))
    assert answer["statuscode"] == 2 and answer["responses"] == []


def test_fault_admin_validation(api: Api) -> None:
    bad = api.http.post("/sandbox/faults", json={"faults": [{"kind": "status"}]})
    assert bad.status_code == 400 and "needs 'status'" in bad.json()["error"]
    assert api.http.post("/sandbox/faults", content=b"{").status_code == 400
    single = api.http.post("/sandbox/faults", json={"kind": "slow", "delay_seconds": 0})
    assert single.status_code == 200 and single.json()["added"][0]["kind"] == "slow"
    listed = api.http.get("/sandbox/faults").json()["faults"]
    assert [f["kind"] for f in listed] == ["slow"]


def test_admin_endpoints_are_never_faulted(api: Api) -> None:
    api.add_faults({"kind": "status", "status": 503, "method": "*", "path": "*"})
    assert api.post(batch("any")).status_code == 503
    assert api.http.get("/webapi/api/Ping").status_code == 503
    assert api.http.get("/sandbox/stats").status_code == 200
    assert api.http.delete("/sandbox/faults").status_code == 200


def test_faults_set_at_start(start_sandbox: Callable[..., Api]) -> None:
    faulty = start_sandbox(faults=[{"kind": "status", "status": 503, "retry_after": 1,
                                    "times": 2}])
    codes = [faulty.post(batch("start")).status_code for _ in range(3)]
    assert codes == [503, 503, 200]


def test_a_reset_cancels_slow_requests_still_in_flight(api: Api) -> None:
    api.add_faults({"kind": "slow", "delay_seconds": 0.5, "times": 1})
    with pytest.raises(httpx.ReadTimeout):
        api.post(batch("f-late", invoice=[invoice(1)]), timeout=0.1)
    api.http.post("/sandbox/reset").raise_for_status()  # as the next test's fixture does
    time.sleep(0.7)
    assert api.stats()["batches"] == 0  # the late request stored nothing after the reset


@pytest.mark.parametrize("token", ["expired", "missing"])
def test_an_injected_401_is_answered_as_a_refused_token_is(api: Api, token: str) -> None:
    """One 401 shape (body, challenge, content type), so a client tested against injected
    401s handles the real ones; given the same reason, the two answers are the same bytes."""
    headers = {"Content-Type": "application/json-patch+json"}
    if token == "expired":
        headers["Authorization"] = f"Bearer {api.server.issue_token(ttl_seconds=-60)}"
    url = f"{api.server.base_url}/webapi/api/Batch"
    body = jsonio.dumps(batch("f-401", invoice=[invoice(1)]))
    refused = httpx.post(url, params={"senderid": SENDER}, content=body, headers=headers)
    assert refused.status_code == 401
    api.add_faults({"kind": "status", "status": 401, "times": 1,
                    "message": refused.json()["message"]})

    injected = httpx.post(url, params={"senderid": SENDER}, content=body, headers=headers)

    assert injected.status_code == 401
    assert api.http.get("/sandbox/faults").json()["faults"][0]["applied"] == 1
    assert injected.content == refused.content
    for name in ("content-type", "www-authenticate"):
        assert injected.headers[name] == refused.headers[name]
    assert refused.json()["error"] == ("invalid_token" if token == "expired" else "unauthorized")
    assert api.stats()["batches"] == 0
