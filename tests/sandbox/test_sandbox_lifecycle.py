"""The sandbox over (its own) time: a settable clock, case fates, settlements, paging.

Every expectation is computed from what was sent and from the public fate function
(:func:`amili.sandbox.lifecycle.case_fate`), never written down by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sandbox_http import Api
from sandbox_payloads import ORGNR, ORGNR_2, batch, creditor, invoice, payment

from amili.sandbox.lifecycle import LifecycleRules, case_fate, fate_amount

T0 = "2026-11-01T08:00:00.000Z"

RULES = {
    "seed": 7,
    "settlement_page_size": 4,
    "rules": [
        {"fate": "collected", "share": 0.4, "after_days": 10},
        {"fate": "collected", "share": 0.2, "after_days": 5, "fraction": "0.5"},
        {"fate": "credited", "share": 0.15, "after_days": 20},
        {"fate": "closed", "share": 0.1, "after_days": 30},
    ],
}


def set_clock(api: Api, **body: Any) -> dict[str, Any]:
    response = api.http.post("/sandbox/clock", json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def life(start_sandbox: Callable[..., Api]) -> Api:
    api = start_sandbox(lifecycle=RULES)
    set_clock(api, now=T0)
    return api


def send(api: Api, n: int, idnumber: str = ORGNR, first: int = 1) -> dict[str, str]:
    """``n`` invoices of one creditor; returns uniqueSourceInvoiceId -> ledgerref."""
    invoices = [invoice(k, amount=f"{100 + k}.10") for k in range(first, first + n)]
    answer = api.answer(batch(f"b-{idnumber}-{first}", creditor=[creditor(idnumber)],
                              invoice=invoices))
    assert answer["statuscode"] == 0, answer["errors"]
    return {inv["uniqueSourceInvoiceId"]: r["ledgerref"]
            for inv, r in zip(invoices, answer["responses"][1:], strict=True)}


def test_the_clock_is_set_advanced_and_never_goes_back(life: Api) -> None:
    assert life.http.get("/sandbox/clock").json() == {"now": T0, "fixed": True}
    assert set_clock(life, advance_days=1.5)["now"] == "2026-11-02T20:00:00.000Z"
    back = life.http.post("/sandbox/clock", json={"now": T0})
    assert back.status_code == 409 and "cannot go back" in back.json()["error"]
    assert life.http.post("/sandbox/clock", json={"advance_days": "x"}).status_code == 400
    send(life, 1)
    [case] = life.query()["case"]
    assert case["regdate"] == "2026-11-02T20:00:00.000Z"  # registered at the sandbox's now
    life.http.post("/sandbox/reset").raise_for_status()
    assert life.http.get("/sandbox/clock").json()["fixed"] is False


def test_fates_happen_when_due_and_settlements_add_up_to_what_was_collected(life: Api) -> None:
    refs = send(life, 40)
    rules = LifecycleRules.model_validate(RULES)
    fates = {source: case_fate(rules, source) for source in refs}
    assert {f.fate for f in fates.values() if f} == {"collected", "credited", "closed"}

    def expected(days: float) -> tuple[dict[str, tuple[str, Decimal]], Decimal]:
        """Per ledgerref (status, paid), and the total collected, ``days`` after T0."""
        out: dict[str, tuple[str, Decimal]] = {}
        collected = Decimal(0)
        for k, (source, ref) in enumerate(refs.items(), start=1):
            amount = Decimal(f"{100 + k}.10")
            rule = fates[source]
            if rule is None or rule.after_days > days:
                out[ref] = ("OPEN", Decimal("0.00"))
                continue
            taken = fate_amount(rule, amount)
            if rule.fate == "collected":
                collected += taken
                out[ref] = ("CLOSED" if taken == amount else "OPEN", taken)
            else:
                out[ref] = ("CLOSED", Decimal("0.00"))
        return out, collected

    for days in (0, 6, 12, 25, 31):
        if days:
            set_clock(life, now=(datetime(2026, 11, 1, 8, tzinfo=UTC)
                                 + timedelta(days=days)).isoformat())
        cases = life.query(includeclosed="true")["case"]
        seen = {c["ledgerref"]: (c["status_statuscode"], c["paidsum"]) for c in cases}
        want, collected = expected(days)
        assert seen == want, days
        settled = all_settlements(life, ORGNR)
        assert sum((s["amount"] for s in settled), Decimal(0)) == collected
        ids = [s["settlementid"] for s in settled]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
    credited = [c for c in cases if c.get("substatus") == "CREDITED"]
    assert credited and all(c["creditedsum"] == c["originalsum"] for c in credited)
    assert all(c["remainingsum"] == Decimal("0.00") for c in credited)
    written_off = [c for c in cases if c.get("substatus") == "WRITTEN_OFF"]
    assert written_off and all(c["remainingsum"] == c["originalsum"] for c in written_off)
    # the settlements' dates are when the money was collected, not when it was read
    assert {s["remittancedate"] for s in all_settlements(life, ORGNR)} == {
        "2026-11-06", "2026-11-11"}


def all_settlements(api: Api, idnumber: str) -> list[dict[str, Any]]:
    """Every settlement of a creditor, read page by page with lastsettlementid."""
    out: list[dict[str, Any]] = []
    cursor = 0
    while True:
        page = api.query(creditorid=idnumber, lastsettlementid=cursor)["settlement"]
        if not page:
            return out
        assert len(page) <= RULES["settlement_page_size"]
        out.extend(page)
        cursor = page[-1]["settlementid"]


def test_direct_payments_reduce_a_case_and_are_never_settled(life: Api) -> None:
    refs = send(life, 30)
    rules = LifecycleRules.model_validate(RULES)
    source, ref = next((s, r) for s, r in refs.items()
                       if (f := case_fate(rules, s)) and f.fate == "collected"
                       and f.fraction == 1)
    k = int(source.rsplit("-", 1)[1])
    life.answer(batch("pay", payment=[payment(ref, 1, "40.00")]))
    set_clock(life, advance_days=11)
    [case] = life.query(ledgerref=ref, includeclosed="true")["case"]
    open_before = Decimal(f"{100 + k}.10") - Decimal("40.00")
    assert case["paidsum"] == Decimal(f"{100 + k}.10")
    [settled] = [s for s in all_settlements(life, ORGNR) if s["ledgerref"] == ref]
    assert settled["amount"] == open_before  # only what Amili collected is remitted


def test_lastsettlementid_is_per_creditor_and_filters_hold(life: Api) -> None:
    send(life, 12, ORGNR)
    send(life, 12, ORGNR_2, first=100)
    set_clock(life, advance_days=40)
    one, two = all_settlements(life, ORGNR), all_settlements(life, ORGNR_2)
    assert one and two
    assert {s["creditorid"] for s in one} == {ORGNR} and {s["creditorid"] for s in two} == {
        ORGNR_2}
    answer = life.query(creditorid=ORGNR, lastsettlementid=0)
    assert answer["creditor"][0]["lastsettlementid"] == max(s["settlementid"] for s in one)
    day = one[0]["remittancedate"]
    on_day = life.query(remittancedate=day)["settlement"]
    assert on_day and all(s["remittancedate"] == day for s in on_day)
    ref = one[0]["ledgerref"]
    assert [s["ledgerref"] for s in life.query(ledgerref=ref)["settlement"]] == [ref]
    # reading again from the last id gives nothing new
    assert life.query(creditorid=ORGNR, lastsettlementid=one[-1]["settlementid"]
                      )["settlement"] == []


def test_a_fault_can_target_one_creditors_requests(life: Api) -> None:
    send(life, 2, ORGNR)
    life.add_faults({"kind": "status", "status": 503, "method": "GET",
                     "query": {"creditorid": ORGNR_2}})
    assert life.get(creditorid=ORGNR).status_code == 200
    assert life.get(creditorid=ORGNR_2).status_code == 503
    assert life.get().status_code == 200


def test_the_same_rules_give_the_same_history(start_sandbox: Callable[..., Api]) -> None:
    seen = []
    for _ in range(2):
        api = start_sandbox(lifecycle=RULES)
        set_clock(api, now=T0)
        send(api, 25)
        set_clock(api, advance_days=35)
        seen.append([(s["settlementid"], s["amount"], s["remittancedate"], s["referencenumber"])
                     for s in all_settlements(api, ORGNR)])
    assert seen[0] == seen[1] and seen[0]


def test_the_rules_shares_must_fit() -> None:
    with pytest.raises(ValueError, match="more than 1"):
        LifecycleRules.model_validate({"rules": [
            {"fate": "closed", "share": 0.7, "after_days": 1},
            {"fate": "credited", "share": 0.5, "after_days": 1}]})


def test_remittancedate_is_a_date(life: Api) -> None:
    assert life.get(remittancedate=date(2026, 11, 2).isoformat()).status_code == 200
