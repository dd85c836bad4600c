"""What a submission reports: per day and object kind, rows and amounts per bucket
(:data:`STATES`, see :class:`ObjectTally`; :mod:`.answers` says how every row lands in
exactly one); the batches per state; the errors :func:`submit_window` raises."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from amili.client import AmiliAuthError
from amili.pipeline.ledger import BatchState
from amili.pipeline.submission.objects import _NAMES


class SubmissionError(RuntimeError):
    """Every batch of at least one day failed (see :meth:`SubmissionSummary.raise_for_failures`)."""


class SubmissionRefusedError(SubmissionError):
    """Amili refused the credentials: the window stopped at once (see :func:`submit_window`).

    ``summary`` holds the days as far as they went; the message says what was answered and
    what was not sent.
    """

    def __init__(self, message: str, summary: SubmissionSummary) -> None:
        super().__init__(message)
        self.summary = summary



#: Buckets a row is counted in; amounts are kept for the same buckets.
STATES: tuple[str, ...] = (
    "seen", "quarantined", "held", "skipped_unchanged", "changed_after_handover", "sent",
    "accepted", "duplicates", "rejected", "unconfirmed", "failed", "not_sent", "changed",
)
#: The buckets a sent row ends in besides ``accepted`` (which is the rest of ``sent``).
_NOT_ACCEPTED: tuple[str, ...] = ("duplicates", "rejected", "unconfirmed", "failed", "not_sent")


@dataclass
class ObjectTally:
    """Rows of one object kind, per bucket, and their amounts per bucket and currency.

    ``seen = quarantined + held + skipped_unchanged + changed_after_handover + sent`` and
    ``sent = accepted + duplicates + rejected + unconfirmed + failed + not_sent`` (after a
    real run; a dry run only gets as far as ``sent``, meaning written). ``unconfirmed``: the
    answer did not say what became of the row; ``not_sent``: its batch was prepared but
    never posted (the token was refused first). ``changed_after_handover``: invoices,
    payments and actions Amili took that day with another payload, not sent again (their
    amount is the warehouse's current one; ``amili.changes_after_handover`` has what Amili
    holds). ``changed`` counts the sent rows that had been acknowledged before with another
    payload (a creditor, which Amili updates, or any row of a forced re-send). Amounts are
    for invoices (``originalInvoiceAmount``) and payments (``amount``) only.
    """

    seen: int = 0
    quarantined: int = 0
    held: int = 0
    skipped_unchanged: int = 0
    changed_after_handover: int = 0
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    unconfirmed: int = 0
    failed: int = 0
    not_sent: int = 0
    changed: int = 0
    amounts: dict[str, dict[str, Decimal]] = field(default_factory=dict)

    def add(self, state: str, amount: Decimal | None = None, currency: str | None = None) -> None:
        setattr(self, state, getattr(self, state) + 1)
        if amount is not None:
            by_currency = self.amounts.setdefault(state, {})
            key = currency or "?"
            by_currency[key] = by_currency.get(key, Decimal(0)) + amount

    def add_many(
        self, state: str, count: int, amount: Decimal | None, currency: str | None
    ) -> None:
        """``count`` rows of one currency at once, ``amount`` being their sum."""
        setattr(self, state, getattr(self, state) + count)
        if amount is not None:
            by_currency = self.amounts.setdefault(state, {})
            key = currency or "?"
            by_currency[key] = by_currency.get(key, Decimal(0)) + amount

    def amount(self, state: str, currency: str = "NOK") -> Decimal:
        """The sum in ``currency`` of the rows in bucket ``state``."""
        return self.amounts.get(state, {}).get(currency, Decimal(0))

    def merge(self, other: ObjectTally) -> None:
        for state in STATES:
            setattr(self, state, getattr(self, state) + getattr(other, state))
        for state, by_currency in other.amounts.items():
            mine = self.amounts.setdefault(state, {})
            for currency, value in by_currency.items():
                mine[currency] = mine.get(currency, Decimal(0)) + value

    def counts(self) -> dict[str, int]:
        return {state: getattr(self, state) for state in STATES}


@dataclass(frozen=True)
class BatchFailure:
    """A batch whose POST raised: which, with what HTTP status (None: no answer) and why."""

    batchid: str
    http_status: int | None
    error: str


@dataclass
class DaySummary:
    """What happened to one partition day."""

    day: date
    dry_run: bool = False
    objects: dict[str, ObjectTally] = field(
        default_factory=lambda: {name.value: ObjectTally() for name in _NAMES}
    )
    batches: Counter[str] = field(default_factory=Counter)
    """Batches posted (or written, in a dry run) per resulting state."""
    reposted: int = 0
    """Of those, in-doubt batches of an earlier run re-posted under their own batchid."""
    superseded: list[str] = field(default_factory=list)
    failures: list[BatchFailure] = field(default_factory=list)
    """The first few failed batches (all are in the ledger)."""
    held_reasons: Counter[str] = field(default_factory=Counter)
    files: list[Path] = field(default_factory=list)
    """Dry run: the bodies written."""
    refused: AmiliAuthError | None = None
    """Amili refused the token on this day: posting stopped (see :func:`submit_window`), and
    the day's object counts are partial (the rows not yet cut into batches are in none)."""
    refusals: int = 0
    """Batches answered 401 or 403."""
    not_sent: list[str] = field(default_factory=list)
    """Batches prepared and never posted because posting stopped (``not_sent``)."""
    seconds: float = 0.0

    @property
    def batches_posted(self) -> int:
        return sum(self.batches.values())

    @property
    def batches_failed(self) -> int:
        return self.batches[BatchState.FAILED.value]

    @property
    def all_failed(self) -> bool:
        """Every batch of the day failed (and there was at least one)."""
        return self.batches_posted > 0 and self.batches_failed == self.batches_posted

    @property
    def partially_failed(self) -> bool:
        return 0 < self.batches_failed < self.batches_posted

    def total(self) -> ObjectTally:
        """All object kinds together (amounts are invoices' and payments' together)."""
        total = ObjectTally()
        for tally in self.objects.values():
            total.merge(tally)
        return total


@dataclass
class SubmissionSummary:
    """Per-day and total outcome of :func:`submit_window`."""

    days: list[DaySummary] = field(default_factory=list)

    def objects(self) -> dict[str, ObjectTally]:
        """Per object kind, summed over the days."""
        merged = {name.value: ObjectTally() for name in _NAMES}
        for day in self.days:
            for name, tally in day.objects.items():
                merged[name].merge(tally)
        return merged

    @property
    def batches(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for day in self.days:
            total.update(day.batches)
        return total

    @property
    def failed_days(self) -> list[DaySummary]:
        """Days on which every batch failed: the caller should fail."""
        return [day for day in self.days if day.all_failed]

    @property
    def partial_failures(self) -> list[DaySummary]:
        """Days on which some, not all, batches failed: worth surfacing, not failing."""
        return [day for day in self.days if day.partially_failed]

    @property
    def changed_days(self) -> list[DaySummary]:
        """Days with objects that changed after Amili took them (not sent again)."""
        return [day for day in self.days
                if any(tally.changed_after_handover for tally in day.objects.values())]

    @property
    def unconfirmed_days(self) -> list[DaySummary]:
        """Days with objects whose answer did not say what became of them."""
        return [day for day in self.days
                if any(tally.unconfirmed for tally in day.objects.values())]

    def raise_for_failures(self) -> None:
        """Raise :class:`SubmissionError` if every batch of some day failed.

        Partial failures do not raise: their batches are in the ledger as ``failed`` and the
        next run re-posts them; see :attr:`partial_failures`.
        """
        failed = self.failed_days
        if not failed:
            return
        messages = []
        for day in failed:
            first = day.failures[0].error if day.failures else "no error recorded"
            messages.append(f"all {day.batches_posted} batches of {day.day} failed: {first}")
        raise SubmissionError("; ".join(messages))

    def as_metadata(self) -> dict[str, int | str]:
        """Flat str/int values (Decimals as text), e.g. for Dagster metadata."""
        meta: dict[str, int | str] = {"days": len(self.days)}
        for state, count in sorted(self.batches.items()):
            meta[f"batches.{state}"] = count
        meta["days_all_failed"] = len(self.failed_days)
        meta["days_partially_failed"] = len(self.partial_failures)
        meta["days_with_unconfirmed"] = len(self.unconfirmed_days)
        meta["days_with_changes_after_handover"] = len(self.changed_days)
        for name, tally in self.objects().items():
            for state, count in tally.counts().items():
                meta[f"{name}.{state}"] = count
            for state, by_currency in sorted(tally.amounts.items()):
                for currency, value in sorted(by_currency.items()):
                    meta[f"{name}.amount.{state}.{currency}"] = str(value)
        return meta
