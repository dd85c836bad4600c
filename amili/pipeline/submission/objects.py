"""What a day's objects and batches carry between the phases: a key per object, a built batch,
the running sums of amounts, a creditor's fate, and the small conversions they share.

Every phase module imports from here and nothing here imports a phase, so the package has
no import cycles.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from amili.chunking import Chunk
from amili.models import ObjectName

if TYPE_CHECKING:
    from amili.pipeline.submission.summary import ObjectTally

#: The arrays in body order; a row's ``kind`` is its position here.
_NAMES: tuple[ObjectName, ...] = (
    ObjectName.CREDITOR, ObjectName.INVOICE, ObjectName.PAYMENT, ObjectName.ACTION,
)
#: The same as plain strings: the hot loop indexes these by kind instead of touching enums.
_VALUES: tuple[str, ...] = tuple(name.value for name in _NAMES)


class _Key(NamedTuple):
    """What the ledger and the summary need of one object in a body.

    It rides through :func:`chunk_objects` as the object's ``source_id``, so each chunk hands
    back, per array and in body order, exactly the keys of the objects it holds.
    """

    source_id: str
    payload_hash: str
    amount: int | Decimal | None
    """Whole øre as an int where the amount is a DECIMAL(18,2) (see :class:`_Amounts`)."""
    currency: str | None
    changed: bool


@dataclass(slots=True)
class _Batch:
    """A built body and the keys of its objects per array, in body order (``HasBody``)."""

    chunk: Chunk
    reposted: bool = False

    @property
    def body(self) -> bytes:
        return self.chunk.body

    @property
    def batchid(self) -> str:
        return self.chunk.batchid

    @property
    def number(self) -> int:
        return self.chunk.number

    def keys(self) -> tuple[tuple[_Key, ...], ...]:
        ids = self.chunk.source_ids
        return tuple(ids[name] for name in _NAMES)


class _Amounts:
    """Counts and amounts per (state, kind, currency), summed in whole øre where they can be.

    Why: this is added to once per row; an int add is several times cheaper than a Decimal
    add (and DuckDB hands over an int far cheaper than a Decimal). The sums become Decimals
    once, when the day is settled (:meth:`add_to`).
    """

    __slots__ = ("entries", "sent_cents", "sent_count")

    def __init__(self) -> None:
        # (state, kind, currency) -> [count, øre, exact Decimal or None, any amount seen]
        self.entries: dict[tuple[str, int, str | None], list[Any]] = {}
        # the hot path's own: rows sent with an amount in whole øre, per kind (and currency)
        self.sent_count = [0] * len(_NAMES)
        self.sent_cents: list[dict[str | None, int]] = [{} for _ in _NAMES]

    def add(self, state: str, kind: int, currency: str | None, amount: int | Decimal | None,
            count: int = 1) -> None:
        entry = self.entries.get((state, kind, currency))
        if entry is None:
            entry = self.entries[(state, kind, currency)] = [0, 0, None, False]
        entry[0] += count
        if type(amount) is int:
            entry[1] += amount * count
            entry[3] = True
        elif amount is not None:
            entry[2] = amount * count if entry[2] is None else entry[2] + amount * count
            entry[3] = True

    def add_to(self, tallies: list[ObjectTally]) -> None:
        """Fold the sums into the tallies (by kind)."""
        for kind, by_currency in enumerate(self.sent_cents):
            tallies[kind].sent += self.sent_count[kind]
            self.sent_count[kind] = 0
            for currency, cents in by_currency.items():
                tallies[kind].add_many("sent", 0, Decimal(cents).scaleb(-2), currency)
            by_currency.clear()
        for (state, kind, currency), (count, cents, exact, seen) in self.entries.items():
            amount = None
            if seen:
                amount = Decimal(cents).scaleb(-2)
                if exact is not None:
                    amount += exact
            tallies[kind].add_many(state, count, amount, currency)
        self.entries.clear()


_PAYLOAD_HASH = operator.attrgetter("payload_hash")
_AMOUNT = operator.attrgetter("amount")
_CURRENCY = operator.attrgetter("currency")


def _ore(amount: Decimal) -> int | None:
    """A key's Decimal amount (kroner) in whole øre, or None if it has a finer part."""
    ore = amount.scaleb(2)
    return int(ore) if ore == ore.to_integral_value() else None


def _money_arrays(keys: Sequence[_Key]) -> tuple[str, str]:
    """The ledger's ``amounts`` and ``currencies`` of one array of invoices or payments: each
    amount in whole øre and each currency, JSON arrays in body order (one currency when all
    are the same, as they nearly always are). Why JSON text: like ``source_ids``, one string
    per array is far cheaper to hand to DuckDB than a list of values per object."""
    currencies = list(map(_CURRENCY, keys))
    if currencies.count(currencies[0]) == len(currencies):
        currencies = currencies[:1]
    return (orjson.dumps(list(map(_AMOUNT, keys)), default=_ore).decode(),
            orjson.dumps(currencies).decode())


def _content_hash(ids: Sequence[Sequence[_Key]]) -> str:
    """A batch's content hash from its objects' payload hashes: sha256 over each array's name,
    object count and hashes (64 hex characters each), in body order.

    Why: every payload is hashed for the ledger anyway; hashing the body's bytes once more
    for its content hash cost as much again (``chunk_objects``' default). The same objects
    still give the same hash, and different payloads a different one."""
    digest = hashlib.sha256()
    for name, keys in zip(_VALUES, ids, strict=True):
        digest.update(b"%s:%d:" % (name.encode(), len(keys)))
        digest.update("".join(map(_PAYLOAD_HASH, keys)).encode())
    return digest.hexdigest()


def _decimal(amount: int | Decimal | None) -> Decimal | None:
    """A key's amount as a Decimal (whole øre become kroner with two decimals)."""
    return Decimal(amount).scaleb(-2) if type(amount) is int else amount


@dataclass
class _CreditorFate:
    """A creditor row goes in many bodies (one per chunk of its group); summed up at the end."""

    included: bool = False
    outcomes: set[str] = field(default_factory=set)


_CENT = Decimal("0.01")


def _amount(value: Decimal | None) -> Decimal | None:
    """An amount as read by DuckDB, in øre when it has no finer part (it then always has)."""
    if value is None:
        return None
    cents = value.quantize(_CENT)
    return cents if cents == value else value.normalize()


def _compact(payload: str | bytes) -> bytes:
    """The payload's bytes as they go in the body (surrounding whitespace dropped)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return data if data[:1] == b"{" and data[-1:] == b"}" else data.strip()

