"""What happens to a case after hand-over, in the sandbox: a clock the tests set, and rules.

A real collector works on a case for weeks: the debtor pays Amili (Amili then remits the money
to the creditor in a *settlement*), the creditor credits the invoice, or Amili closes the case
as not collectable. The sandbox plays this deterministically, so a test can compute what it
must read back from what it sent:

* :class:`SandboxClock` is the sandbox's "now". It follows the wall clock until a test sets it
  (``POST /sandbox/clock``); from then on it moves only when told, and never backwards. Cases
  are registered at the clock's time, and nothing ever sleeps.
* :class:`LifecycleRules` give each case at most one fate, chosen by :func:`case_fate` from a
  hash of ``seed`` and the invoice's ``uniqueSourceInvoiceId``: the rules share the interval
  [0, 1) in order, each taking its ``share``. A fate happens ``after_days`` after the case was
  registered, when the clock has reached that time.
* :func:`realize` writes the fates that are due into the store, in time order: a
  ``collected`` fate pays (a ``fraction`` of) what is still open, and creates a settlement
  with the next settlement id and the amount collected (no fee is deducted: see
  ``docs/sandbox-assumptions.md``); ``credited`` credits what is open; ``closed`` closes the
  case with its open amount unpaid. Direct payments (``DIRECT_PAYMENT`` in a posted batch)
  reduce a case but create no settlement: the creditor already has that money.

Realized fates are stored, so their ids and amounts never change once read; the clock cannot
go back for the same reason.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from amili.models import format_utc_millis

Fate = Literal["collected", "credited", "closed"]

_CENT = Decimal("0.01")

# Sub-statuses the sandbox writes on a case (Amili documents only DEBT_COLLECTION_LIST_MANUAL).
SUBSTATUS_PAID = "PAID"
"""Closed: nothing left to pay (paid directly to the creditor, or collected by Amili)."""
SUBSTATUS_CREDITED = "CREDITED"
"""Closed: the creditor credited what was open."""
SUBSTATUS_WRITTEN_OFF = "WRITTEN_OFF"
"""Closed by Amili with an amount still open (not collectable)."""
SUBSTATUS_PARTIALLY_PAID = "PARTIALLY_PAID"
"""Open, part of it paid."""


class FateRule(BaseModel):
    """One fate for a ``share`` of the cases, ``after_days`` after their registration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fate: Fate
    share: float = Field(ge=0, le=1)
    after_days: float = Field(gt=0, description="days after the case was registered")
    fraction: Decimal = Field(
        default=Decimal(1), gt=0, le=1,
        description="collected only: the part of the open amount Amili collects "
        "(below 1 the case stays open)",
    )


def _default_rules() -> list[FateRule]:
    return [
        FateRule(fate="collected", share=0.45, after_days=21),
        FateRule(fate="collected", share=0.10, after_days=14, fraction=Decimal("0.5")),
        FateRule(fate="credited", share=0.10, after_days=30),
        FateRule(fate="closed", share=0.05, after_days=90),
    ]


class LifecycleRules(BaseModel):
    """The sandbox's case lifecycle (``AMILI_SANDBOX_LIFECYCLE='{...}'`` as JSON)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    rules: list[FateRule] = Field(default_factory=_default_rules)
    settlement_page_size: int = Field(
        default=1000, ge=1,
        description="at most this many settlements per GET answer, lowest ids first; the "
        "client reads on with lastsettlementid",
    )

    @model_validator(mode="after")
    def _shares_fit(self) -> Self:
        total = sum(rule.share for rule in self.rules)
        if total > 1 + 1e-9:
            raise ValueError(f"the rules' shares add up to {total}, more than 1")
        return self


def fate_draw(seed: int, unique_source_invoice_id: str) -> float:
    """A case's place in [0, 1): the first 8 bytes of SHA-256 of ``"{seed}:{id}"``."""
    digest = hashlib.sha256(f"{seed}:{unique_source_invoice_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def case_fate(rules: LifecycleRules, unique_source_invoice_id: str) -> FateRule | None:
    """The rule that decides this case's fate, or None (it stays open for good)."""
    draw = fate_draw(rules.seed, unique_source_invoice_id)
    start = 0.0
    for rule in rules.rules:
        if start <= draw < start + rule.share:
            return rule
        start += rule.share
    return None


def fate_amount(rule: FateRule, still_open: Decimal) -> Decimal:
    """What a fate takes off an open amount (collected: ``fraction`` of it, to the øre)."""
    if rule.fate == "collected":
        return (still_open * rule.fraction).quantize(_CENT, rounding=ROUND_HALF_UP)
    if rule.fate == "credited":
        return still_open
    return Decimal(0)


def parse_utc(text: str) -> datetime:
    """A stored ``...Z`` date-time back into an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class ClockError(ValueError):
    """The clock was asked to go backwards."""


class SandboxClock:
    """The sandbox's now: the wall clock until set, then only what tests make it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fixed: datetime | None = None

    @property
    def fixed(self) -> bool:
        return self._fixed is not None

    def now(self) -> datetime:
        with self._lock:
            return self._fixed if self._fixed is not None else datetime.now(UTC)

    def now_text(self) -> str:
        return format_utc_millis(self.now())

    def set(self, when: datetime) -> datetime:
        """Fix the clock at ``when`` (naive = UTC); refuses to go back before now."""
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        with self._lock:
            current = self._fixed if self._fixed is not None else datetime.now(UTC)
            if self._fixed is not None and when < current:
                raise ClockError(
                    f"the sandbox clock cannot go back from {format_utc_millis(current)} to "
                    f"{format_utc_millis(when)}: what happened in between is already stored")
            self._fixed = when
            return when

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ClockError("the sandbox clock only moves forward")
        return self.set(self.now() + delta)

    def release(self) -> None:
        """Follow the wall clock again (after a reset)."""
        with self._lock:
            self._fixed = None
