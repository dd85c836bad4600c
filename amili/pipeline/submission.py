"""Submit a window of days to Amili's Batch API: validate, quarantine, chunk, ledger, POST.

This is the Dagster-free core of the submission stage; an asset calls :func:`submit_window`
and turns its :class:`SubmissionSummary` into metadata. What it guarantees, and how:

* **Nothing is lost.** Every eligible row of a day ends in exactly one bucket: quarantined
  (failed validation, with the sandbox's own message), held (dbt says it must wait, e.g. a
  payment whose invoice has no Amili id yet), skipped as unchanged (already acknowledged with
  the same payload) or sent; a sent row is then accepted, a duplicate, rejected, or in a
  failed batch. Counts and amounts per bucket are in the summary.
* **Nothing is sent twice.** Each batch is written to the ledger as ``prepared`` before its
  POST (see :mod:`amili.pipeline.ledger`). A re-run first re-posts, byte for byte and under
  the same batchid, every batch whose fate is unknown (``prepared``, or ``failed`` without an
  HTTP answer or with a 5xx), so Amili replays its answer or says DUPLICATE instead of
  creating anything again; then it sends only rows not yet acknowledged.
* **Bounded memory.** Rows stream from DuckDB with ``fetchmany``; a body is built per chunk
  with :mod:`amili.chunking` and posted by :meth:`AmiliClient.post_batches` with a bounded
  number in flight. All DuckDB work stays in the calling thread (post_batches pulls the next
  batch and yields each answer there).

Batches are cut per creditor, with the creditor object at the head of each of its batches:
the sandbox (our stand-in for Amili) gives a batch's invoices to its one creditor object and
otherwise to the sender, so an invoice must never share a batch with another creditor's.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import duckdb

from amili import jsonio
from amili.chunking import BatchObject, Chunk, batch_id_with_prefix, chunk_objects
from amili.client import AmiliAPIError, AmiliClient, AmiliError, BatchOutcome, PostResult
from amili.models import ObjectName
from amili.pipeline import ledger
from amili.pipeline.duckdb_io import LOCK_WAIT_SECONDS, connect_writer
from amili.pipeline.ledger import BatchState, ObjectOutcome
from amili.sandbox.assumptions import DEFAULT_ASSUMPTIONS, SandboxAssumptions
from amili.validation import validate_object

log = logging.getLogger("amili.pipeline.submission")

__all__ = [
    "BatchFailure",
    "DaySummary",
    "ObjectTally",
    "Relations",
    "SubmissionError",
    "SubmissionSummary",
    "submit_window",
]

#: The arrays in body order; a row's ``kind`` is its position here.
_NAMES: tuple[ObjectName, ...] = (
    ObjectName.CREDITOR, ObjectName.INVOICE, ObjectName.PAYMENT, ObjectName.ACTION,
)
#: The same as plain strings: the hot loop indexes these by kind instead of touching enums.
_VALUES: tuple[str, ...] = tuple(name.value for name in _NAMES)
#: The column of each input relation that identifies its row (the ledger's source_id).
_ID_COLUMN = {
    ObjectName.CREDITOR: "creditor_id",
    ObjectName.INVOICE: "invoice_id",
    ObjectName.PAYMENT: "payment_id",
    ObjectName.ACTION: "action_id",
}
#: The payload field that must equal the row's id, so Amili's deduplication (on these ids)
#: and the ledger's (on source_id) are about the same thing.
_UNIQUE_FIELD = {
    ObjectName.INVOICE: "uniqueSourceInvoiceId",
    ObjectName.PAYMENT: "uniqueSourcePaymentId",
}
_QUARANTINE_FLUSH_ROWS = 1000
#: Rows per fetchmany: about 1.5 kB of Python objects each for an invoice.
_FETCH_ROWS = 500
_MAX_ERRORS_KEPT = 20
_RELATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")


class SubmissionError(RuntimeError):
    """Every batch of at least one day failed (see :meth:`SubmissionSummary.raise_for_failures`)."""


# --------------------------------------------------------------------------------------------
# Input relations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Relations:
    """Where dbt put the four batch-ready relations (``schema.name`` or ``db.schema.name``)."""

    creditors: str = "main.batch_creditors_json"
    invoices: str = "main.batch_invoices_json"
    payments: str = "main.batch_payments_json"
    actions: str = "main.batch_actions_json"

    @classmethod
    def in_schema(cls, schema: str) -> Relations:
        """The four ``batch_*_json`` relations in ``schema`` (dbt currently builds ``batch``)."""
        return cls(*(f"{schema}.batch_{kind}_json"
                     for kind in ("creditors", "invoices", "payments", "actions")))

    def __post_init__(self) -> None:
        for name in (self.creditors, self.invoices, self.payments, self.actions):
            if not _RELATION_NAME.match(name):
                raise ValueError(f"relation name {name!r} is not a plain dotted identifier")

    def day_sql(self) -> str:
        """One day's rows of all four relations, as (kind, objectname, creditor_id, source_id,
        payload, hold_reason); ``$day`` is the partition day."""
        c, i, p, a = (_quote(n) for n in (self.creditors, self.invoices, self.payments,
                                           self.actions))
        return f"""
            SELECT 0 AS kind, 'creditor' AS objectname, creditor_id, creditor_id AS source_id,
                   payload, NULL::VARCHAR AS hold_reason
            FROM {c} WHERE partition_date = $day
            UNION ALL
            SELECT 1, 'invoice', creditor_id, invoice_id, payload, NULL
            FROM {i} WHERE partition_date = $day
            UNION ALL
            SELECT 2, 'payment', creditor_id, payment_id, payload, hold_reason
            FROM {p} WHERE partition_date = $day
            UNION ALL
            SELECT 3, 'action', creditor_id, action_id, payload, hold_reason
            FROM {a} WHERE partition_date = $day
        """


def _quote(dotted: str) -> str:
    return ".".join(f'"{part}"' for part in dotted.split("."))


# The day's rows with the hash of their payload, and the amount and currency of invoices and
# payments. json_transform reads a number's text straight into a DECIMAL (json_extract would
# go through a double and round big amounts). Needs the CTE ``day`` before it.
_HASHED_SQL = """
    m AS (
        SELECT *, sha256(payload) AS payload_hash,
            CASE WHEN kind IN (1, 2) AND json_valid(payload) THEN json_transform(payload,
                '{"originalInvoiceAmount": "DECIMAL(38,6)", "amount": "DECIMAL(38,6)",
                  "currency": "VARCHAR"}') END AS money
        FROM day
    ),
    h AS (
        SELECT * EXCLUDE (money),
            CASE kind WHEN 1 THEN money.originalInvoiceAmount WHEN 2 THEN money.amount
            END AS amount,
            money.currency AS currency
        FROM m
    )
"""


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------

#: Buckets a row is counted in; amounts are kept for the same buckets.
STATES: tuple[str, ...] = (
    "seen", "quarantined", "held", "skipped_unchanged", "sent",
    "accepted", "duplicates", "rejected", "failed", "changed",
)


@dataclass
class ObjectTally:
    """Rows of one object kind, per bucket, and their amounts per bucket and currency.

    ``seen = quarantined + held + skipped_unchanged + sent`` and
    ``sent = accepted + duplicates + rejected + failed`` (after a real run; a dry run only
    gets as far as ``sent``, meaning written). ``changed`` counts the sent rows that had been
    acknowledged before with another payload. Amounts are for invoices
    (``originalInvoiceAmount``) and payments (``amount``) only.
    """

    seen: int = 0
    quarantined: int = 0
    held: int = 0
    skipped_unchanged: int = 0
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    changed: int = 0
    amounts: dict[str, dict[str, Decimal]] = field(default_factory=dict)

    def add(self, state: str, amount: Decimal | None = None, currency: str | None = None) -> None:
        setattr(self, state, getattr(self, state) + 1)
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
        for name, tally in self.objects().items():
            for state, count in tally.counts().items():
                meta[f"{name}.{state}"] = count
            for state, by_currency in sorted(tally.amounts.items()):
                for currency, value in sorted(by_currency.items()):
                    meta[f"{name}.amount.{state}.{currency}"] = str(value)
        return meta


# --------------------------------------------------------------------------------------------
# Objects and batches in flight
# --------------------------------------------------------------------------------------------


class _Obj(NamedTuple):
    """One object on its way into a body, with what the summary needs to know about it."""

    kind: int
    """Its array: 0 creditor, 1 invoice, 2 payment, 3 action (the order of a body)."""
    payload: bytes
    source_id: str
    payload_hash: str
    amount: Decimal | None
    currency: str | None
    changed: bool


@dataclass(slots=True)
class _Batch:
    """A built body plus its objects per array, in body order (satisfies ``HasBody``)."""

    number: int
    chunk: Chunk
    objects: tuple[list[_Obj], ...]
    reposted: bool = False

    @property
    def body(self) -> bytes:
        return self.chunk.body

    @property
    def batchid(self) -> str:
        return self.chunk.batchid


def _build(
    number: int, objs: list[_Obj], max_bytes: int, batchid: Callable[[int, str], str]
) -> _Batch:
    """One body from ``objs`` with :func:`chunk_objects`; they must fit (the caller cut them)."""
    chunks = list(chunk_objects(
        (BatchObject(_NAMES[o.kind], o.payload, o.source_id) for o in objs),
        max_objects=len(objs), max_bytes=max_bytes,
        batch_id=lambda _n, content_hash: batchid(number, content_hash),
    ))
    if len(chunks) != 1:  # pragma: no cover - the cut is computed to fit
        raise AssertionError(f"chunk {number} did not fit in one body")
    arrays: tuple[list[_Obj], ...] = ([], [], [], [])
    for o in objs:  # the body has the payloads now; keep them only once while in flight
        arrays[o.kind].append(o._replace(payload=b""))
    return _Batch(number, chunks[0], arrays)


class _ObjectTooLarge(Exception):
    """A creditor object that cannot head a body within the limits."""


class _Chunker:
    """Cuts one creditor's objects into bodies, each headed by the creditor object.

    The cut is computed here (exactly as :func:`chunk_objects` measures a body) because the
    helper knows nothing of groups or of a header repeated in every body; the helper then
    builds each body, its hash and its id.
    """

    def __init__(self, day: date, first_number: int, max_objects: int, max_bytes: int) -> None:
        self.batchid = batch_id_with_prefix(f"{day:%Y%m%d}")
        self.number = first_number
        self.max_objects = max_objects
        self.max_bytes = max_bytes
        self._envelopes: dict[int, int] = {}
        self.header: _Obj | None = None
        self.pending: list[_Obj] = []
        self._reset()

    def _envelope(self) -> int:
        """Bytes of a body without objects, for the current chunk number's id length."""
        digits = len(str(self.number))
        if digits not in self._envelopes:
            probe = _build(self.number, [_Obj(0, b"{}", "probe", "", None, None, False)],
                           10**9, self.batchid)
            self._envelopes[digits] = len(probe.body) - 2
        return self._envelopes[digits]

    def _reset(self) -> None:
        self.pending = []
        self.counts = [0, 0, 0, 0]
        self.size = self._envelope()
        self.count = 0
        if self.header is not None:
            self._place(self.header)

    def _extra(self, obj: _Obj) -> int:
        return len(obj.payload) + (1 if self.counts[obj.kind] else 0)

    def _place(self, obj: _Obj) -> None:
        self.size += self._extra(obj)
        self.counts[obj.kind] += 1
        self.count += 1

    def _fits(self, obj: _Obj) -> bool:
        return self.count + 1 <= self.max_objects and self.size + self._extra(obj) <= self.max_bytes

    def start(self, header: _Obj | None) -> None:
        """Begin a creditor's group; raises :class:`_ObjectTooLarge` if the header alone
        does not fit in a body (or no object could ever join it)."""
        self.header = None
        self._reset()
        if header is None:
            return
        if self.max_objects < 2 or not self._fits(header):
            raise _ObjectTooLarge
        self.header = header
        self._reset()

    def add(self, obj: _Obj) -> tuple[_Batch | None, bool]:
        """Add an object; returns the body it closed (if any) and whether it fitted at all."""
        closed = None
        if not self._fits(obj):
            if self.pending:
                closed = self._close()
            if not self._fits(obj):
                return closed, False
        self._place(obj)
        self.pending.append(obj)
        return closed, True

    def finish(self, header_alone: bool) -> _Batch | None:
        """Close the group: its last body, or a body of the header alone if asked."""
        batch = None
        if self.pending or (header_alone and self.header is not None):
            batch = self._close()
        self.header = None
        self._reset()
        return batch

    def _close(self) -> _Batch:
        objs = ([self.header] if self.header is not None else []) + self.pending
        batch = _build(self.number, objs, self.max_bytes, self.batchid)
        self.number += 1
        self._reset()
        return batch


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


def _compact(payload: str) -> bytes:
    """The payload's bytes as they go in the body (surrounding whitespace dropped)."""
    data = payload.encode()
    return data if data[:1] == b"{" and data[-1:] == b"}" else data.strip()


# --------------------------------------------------------------------------------------------
# One day
# --------------------------------------------------------------------------------------------


@dataclass
class _Options:
    client: AmiliClient | None
    dry_run_dir: Path | None
    force_resend: bool
    max_objects: int
    max_bytes: int
    max_concurrency: int | None
    relations: Relations
    assumptions: SandboxAssumptions
    fetch_rows: int


class _Day:
    """Submits one partition day; all DuckDB work happens in the calling thread."""

    def __init__(self, con: duckdb.DuckDBPyConnection, day: date, opts: _Options) -> None:
        self.con = con
        self.day = day
        self.opts = opts
        self.summary = DaySummary(day, dry_run=opts.dry_run_dir is not None)
        self.tallies = self.summary.objects
        self.creditors: dict[str, _CreditorFate] = {}
        self.quarantine: list[tuple[str, str | None, str, str]] = []
        self.day_sql = opts.relations.day_sql()
        self.params = {"day": day}

    # ---- driving -------------------------------------------------------------------------

    def run(self) -> DaySummary:
        started = time.perf_counter()
        if self.summary.dry_run:
            assert self.opts.dry_run_dir is not None
            self.opts.dry_run_dir.mkdir(parents=True, exist_ok=True)
            self._quarantine_file().write_text("")
        else:
            ledger.replace_quarantine_day(self.con, self.day)
        if self.opts.force_resend:
            reposted: list[str] = []
            self._supersede_in_doubt("a forced re-send of the day replaced it")
        else:
            reposted = self._send(self._reposts())
        first_number = self.con.execute(
            "SELECT coalesce(max(chunk_number) + 1, 0) FROM amili.submission_ledger "
            "WHERE partition_date = ?", [self.day],
        ).fetchone()
        self._send(self._new_batches(reposted, int(first_number[0]) if first_number else 0))
        self._flush_quarantine()
        self._settle_creditors()
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _send(self, batches: Iterator[_Batch]) -> list[str]:
        """Post (or, in a dry run, write) the batches; returns their ids."""
        ids: list[str] = []
        if self.summary.dry_run:
            assert self.opts.dry_run_dir is not None
            for batch in batches:
                path = self.opts.dry_run_dir / f"{batch.batchid}.json"
                path.write_bytes(batch.body)
                self.summary.files.append(path)
                self.summary.batches["written"] += 1
                ids.append(batch.batchid)
            return ids
        assert self.opts.client is not None
        outcomes = self.opts.client.post_batches(
            self._prepared(batches), max_concurrency=self.opts.max_concurrency
        )
        for outcome in outcomes:
            self._record(outcome)
            ids.append(outcome.item.batchid)
        return ids

    def _prepared(self, batches: Iterator[_Batch]) -> Iterator[_Batch]:
        """Write each batch to the ledger as ``prepared`` just before it is handed to POST."""
        for batch in batches:
            chunk = batch.chunk
            ledger.prepare_batch(
                self.con,
                batchid=chunk.batchid,
                partition_date=self.day,
                chunk_number=batch.number,
                content_hash=chunk.content_hash,
                object_count=chunk.object_count(),
                body_bytes=len(chunk.body),
                arrays=[
                    ledger.ObjectRows(
                        value, [o.source_id for o in objs], [o.payload_hash for o in objs]
                    )
                    for value, objs in zip(_VALUES, batch.objects, strict=True)
                ],
            )
            yield batch

    # ---- phase 1: in-doubt batches of earlier runs ---------------------------------------

    def _supersede_in_doubt(self, reason: str) -> None:
        rows = self.con.execute(
            f"SELECT batchid FROM amili.submission_ledger WHERE partition_date = ? "
            f"AND {ledger.IN_DOUBT}", [self.day],
        ).fetchall()
        for (batchid,) in rows:
            if not self.summary.dry_run:
                ledger.supersede(self.con, batchid, reason)
            self.summary.superseded.append(batchid)

    def _reposts(self) -> Iterator[_Batch]:
        """Rebuild each in-doubt batch of the day exactly as it was, or supersede it."""
        pending = self.con.execute(
            f"SELECT count(*) FROM amili.submission_ledger WHERE partition_date = ? "
            f"AND {ledger.IN_DOUBT}", [self.day],
        ).fetchone()
        if not pending or not pending[0]:
            return
        cur = self.con.cursor()
        try:
            cur.execute(
                f"""
                WITH day AS ({self.day_sql}),
                {_HASHED_SQL},
                pending AS (
                    SELECT batchid, chunk_number, content_hash FROM amili.submission_ledger
                    WHERE partition_date = $day AND {ledger.IN_DOUBT}
                ),
                wanted AS (
                    SELECT o.batchid, p.chunk_number, p.content_hash, o.objectname,
                           o.objectindex, o.source_id, o.payload_hash
                    FROM amili.ledger_objects AS o JOIN pending AS p USING (batchid)
                ),
                current AS (
                    SELECT * FROM h
                        WHERE EXISTS (SELECT 1 FROM wanted AS w WHERE w.objectname = h.objectname
                                  AND w.source_id = h.source_id)
                )
                SELECT w.batchid, w.chunk_number, w.content_hash, w.objectname,
                       w.objectindex, w.source_id, w.payload_hash, c.payload,
                       c.amount, c.currency
                FROM wanted AS w LEFT JOIN current AS c
                  ON c.objectname = w.objectname AND c.source_id = w.source_id
                 AND c.payload_hash = w.payload_hash
                ORDER BY w.chunk_number, w.batchid,
                    list_position(['creditor', 'invoice', 'payment', 'action'], w.objectname),
                    w.objectindex
                """,
                self.params,
            )
            group: list[tuple[Any, ...]] = []
            while rows := cur.fetchmany(self.opts.fetch_rows):
                for row in rows:
                    if group and row[0] != group[0][0]:
                        batch = self._rebuild(group)
                        if batch is not None:
                            yield batch
                        group = []
                    group.append(row)
                del rows  # let go of this block before the next one is fetched
            if group:
                batch = self._rebuild(group)
                if batch is not None:
                    yield batch
        finally:
            cur.close()

    def _rebuild(self, rows: list[tuple[Any, ...]]) -> _Batch | None:
        batchid, number, content_hash = rows[0][0], rows[0][1], rows[0][2]
        objs: list[_Obj] = []
        seen: set[tuple[str, int]] = set()
        missing = 0
        for _, _, _, objectname, index, source_id, payload_hash, payload, amount, currency in rows:
            if (objectname, index) in seen:  # the same row twice in the day's relation
                continue
            seen.add((objectname, index))
            if payload is None:
                missing += 1
                continue
            objs.append(_Obj(_VALUES.index(objectname), _compact(payload), source_id,
                             payload_hash, _amount(amount), currency, False))
        batch = None
        if not missing:
            batch = _build(number, objs, 2**62, lambda _n, _h: batchid)
            if batch.chunk.content_hash != content_hash:
                batch = None
        if batch is None:
            reason = (
                f"cannot be re-posted as it was: {missing} of its objects changed or left the "
                f"day's rows since it was prepared; they are sent in new batches"
                if missing else "cannot be re-posted as it was: its rebuilt body differs"
            )
            log.warning("batch %s of %s: %s", batchid, self.day, reason)
            if not self.summary.dry_run:
                ledger.supersede(self.con, batchid, reason)
            self.summary.superseded.append(batchid)
            return None
        batch.reposted = True
        self.summary.reposted += 1
        for o in objs:
            if o.kind:  # a creditor row is counted as seen among the day's rows
                self.tallies[_VALUES[o.kind]].add("seen", o.amount, o.currency)
            self._count_sent(o)
        return batch

    # ---- phase 2: the day's rows ----------------------------------------------------------

    def _duplicates(self) -> dict[tuple[str, str | None], int]:
        rows = self.con.execute(
            f"""SELECT objectname, source_id, count(*) FROM ({self.day_sql})
                GROUP BY ALL HAVING count(*) > 1""",
            self.params,
        ).fetchall()
        return {(name, source_id): n for name, source_id, n in rows}

    def _new_batches(self, reposted: list[str], first_number: int) -> Iterator[_Batch]:
        """Stream the day's rows by creditor, sort each into its bucket, yield the bodies."""
        duplicates = self._duplicates()
        chunker = _Chunker(self.day, first_number, self.opts.max_objects, self.opts.max_bytes)
        cur = self.con.cursor()
        try:
            cur.execute(
                f"""
                WITH day AS ({self.day_sql}),
                {_HASHED_SQL},
                mine AS (
                    SELECT objectname, source_id, payload_hash, outcome, batchid
                    FROM amili.ledger_objects WHERE partition_date = $day
                ),
                acked AS (
                    SELECT DISTINCT objectname, source_id, payload_hash FROM mine
                    WHERE outcome = 'accepted'
                ),
                known_ids AS (
                    SELECT DISTINCT objectname, source_id FROM mine WHERE outcome = 'accepted'
                ),
                reposted AS (
                    SELECT DISTINCT objectname, source_id, payload_hash FROM mine
                    WHERE list_contains($reposted::VARCHAR[], batchid)
                )
                SELECT h.kind, h.creditor_id, h.source_id, h.payload, h.hold_reason,
                       h.payload_hash, a.source_id IS NOT NULL AND NOT $force AS acknowledged,
                       k.source_id IS NOT NULL AND a.source_id IS NULL AS changed,
                       h.amount, h.currency
                FROM h
                LEFT JOIN acked AS a ON a.objectname = h.objectname
                     AND a.source_id = h.source_id AND a.payload_hash = h.payload_hash
                LEFT JOIN known_ids AS k ON k.objectname = h.objectname
                     AND k.source_id = h.source_id
                WHERE h.kind = 0 OR NOT EXISTS (
                    SELECT 1 FROM reposted AS r WHERE r.objectname = h.objectname
                       AND r.source_id = h.source_id AND r.payload_hash = h.payload_hash)
                ORDER BY h.creditor_id NULLS LAST, h.kind, h.source_id NULLS LAST
                """,
                {**self.params, "force": self.opts.force_resend, "reposted": reposted},
            )
            tallies = [self.tallies[value] for value in _VALUES]
            first = True
            group_key: str | None = None
            header: _Obj | None = None
            header_acknowledged = False
            header_reason: str | None = None
            while rows := cur.fetchmany(self.opts.fetch_rows):
                for row in rows:
                    (kind, creditor_id, source_id, payload, hold_reason, payload_hash,
                     acknowledged, changed, raw_amount, currency) = row
                    if first or creditor_id != group_key:
                        if not first:
                            yield from self._end_group(chunker, header, header_acknowledged)
                        first, group_key = False, creditor_id
                        header, header_acknowledged, header_reason = None, False, None
                        chunker.start(None)
                    name = _NAMES[kind]
                    tally = tallies[kind]
                    amount = _amount(raw_amount)
                    tally.add("seen", amount, currency)
                    if kind == 0:
                        header_reason = self._check(name, source_id, payload, duplicates)
                        if header_reason is None:
                            obj = _Obj(kind, _compact(payload), source_id, payload_hash, None,
                                       None, bool(changed))
                            try:
                                chunker.start(obj)
                            except _ObjectTooLarge:
                                header_reason = self._too_large(obj)
                            else:
                                header, header_acknowledged = obj, bool(acknowledged)
                                self.creditors.setdefault(source_id, _CreditorFate())
                        if header_reason is not None:
                            self._quarantine(name, source_id, header_reason, payload, amount,
                                             currency)
                        continue
                    if hold_reason is not None:
                        tally.add("held", amount, currency)
                        self.summary.held_reasons[f"{_VALUES[kind]}: {hold_reason}"] += 1
                        continue
                    if acknowledged:
                        tally.add("skipped_unchanged", amount, currency)
                        continue
                    reason = self._check(name, source_id, payload, duplicates)
                    if kind == 1 and header_reason is not None:
                        why = (f"invoice: its creditor {creditor_id!r} is quarantined, so it "
                               f"cannot be sent as that creditor's ({header_reason})")
                        reason = why if reason is None else f"{reason}; {why}"
                    if reason is not None:
                        self._quarantine(name, source_id, reason, payload, amount, currency)
                        continue
                    obj = _Obj(kind, _compact(payload), source_id, payload_hash, amount,
                               currency, bool(changed))
                    closed, fitted = chunker.add(obj)
                    if closed is not None:
                        yield self._emitted(closed)
                    if not fitted:
                        self._quarantine(name, source_id, self._too_large(obj), payload,
                                         amount, currency)
                        continue
                    self._count_sent(obj)
                if len(self.quarantine) >= _QUARANTINE_FLUSH_ROWS:
                    self._flush_quarantine()
                del rows, row  # let go of this block before the next one is fetched
            if not first:
                yield from self._end_group(chunker, header, header_acknowledged)
        finally:
            cur.close()

    def _end_group(
        self, chunker: _Chunker, header: _Obj | None, header_acknowledged: bool
    ) -> Iterator[_Batch]:
        """Close a creditor's group; an unacknowledged creditor with nothing else goes alone."""
        fate = self.creditors.get(header.source_id) if header is not None else None
        alone = header is not None and not header_acknowledged and not (fate and fate.included)
        batch = chunker.finish(header_alone=alone)
        if batch is not None:
            yield self._emitted(batch)

    def _emitted(self, batch: _Batch) -> _Batch:
        for o in batch.objects[0]:
            fate = self.creditors.setdefault(o.source_id, _CreditorFate())
            fate.included = True
        return batch

    def _check(
        self,
        name: ObjectName,
        source_id: str | None,
        payload: str | None,
        duplicates: dict[tuple[str, str | None], int],
    ) -> str | None:
        """Why this row must not be sent (the sandbox's own words), or None."""
        id_column = _ID_COLUMN[name]
        if source_id is None or not str(source_id).strip():
            return f"{name.value}: the row has no {id_column}"
        copies = duplicates.get((name.value, source_id))
        if copies:
            return (f"{name.value}: {id_column} {source_id!r} appears {copies} times on "
                    f"{self.day}; every row needs its own id")
        if payload is None:
            return f"{name.value}: the row has no payload"
        try:
            raw = jsonio.loads(payload)
        except (ValueError, RecursionError) as exc:
            return f"{name.value}: the payload is not valid JSON: {exc}"
        problems = validate_object(name, None, raw, self.opts.assumptions).problems
        unique_field = _UNIQUE_FIELD.get(name)
        if unique_field and isinstance(raw, dict):
            value = raw.get(unique_field)
            if isinstance(value, str) and value != source_id:
                problems.append(
                    f"{name.value}.{unique_field}: {value!r} differs from the row's "
                    f"{id_column} {source_id!r}; they must be equal so answers map to the row"
                )
        if problems:
            return self.opts.assumptions.error_message_separator.join(problems)
        if not _compact(payload).startswith(b"{"):  # pragma: no cover - validated as object
            return f"{name.value}: the payload is not a JSON object"
        return None

    def _too_large(self, obj: _Obj) -> str:
        return (f"{_VALUES[obj.kind]}: its JSON is {len(obj.payload)} bytes and does not fit in a "
                f"batch body of at most {self.opts.max_bytes} bytes and "
                f"{self.opts.max_objects} objects (with its creditor at the head)")

    # ---- bookkeeping ----------------------------------------------------------------------

    def _count_sent(self, o: _Obj) -> None:
        if not o.kind:
            self.creditors.setdefault(o.source_id, _CreditorFate()).included = True
            return
        tally = self.tallies[_VALUES[o.kind]]
        tally.add("sent", o.amount, o.currency)
        if o.changed:
            tally.add("changed", o.amount, o.currency)

    def _quarantine(
        self,
        name: ObjectName,
        source_id: str | None,
        reason: str,
        payload: str | None,
        amount: Decimal | None,
        currency: str | None,
    ) -> None:
        self.tallies[name.value].add("quarantined", amount, currency)
        self.quarantine.append((name.value, source_id, reason, payload or ""))

    def _quarantine_file(self) -> Path:
        assert self.opts.dry_run_dir is not None
        return self.opts.dry_run_dir / f"quarantine-{self.day.isoformat()}.jsonl"

    def _flush_quarantine(self) -> None:
        if not self.quarantine:
            return
        if self.summary.dry_run:
            with self._quarantine_file().open("ab") as out:
                for name, source_id, reason, payload in self.quarantine:
                    out.write(jsonio.dumps({
                        "partition_date": self.day.isoformat(), "objectname": name,
                        "source_id": source_id, "reason": reason, "payload": payload,
                    }) + b"\n")
        else:
            ledger.insert_quarantine(self.con, self.day, self.quarantine)
        self.quarantine = []

    def _settle_creditors(self) -> None:
        """Count each creditor row once, whatever number of bodies it went in."""
        tally = self.tallies[ObjectName.CREDITOR.value]
        for fate in self.creditors.values():
            if not fate.included:
                tally.add("skipped_unchanged")
                continue
            tally.add("sent")
            if self.summary.dry_run:
                continue
            for state in ("failed", "rejected", "accepted"):
                if state in fate.outcomes:
                    tally.add(state)
                    break

    # ---- answers ---------------------------------------------------------------------------

    def _record(self, outcome: BatchOutcome[_Batch]) -> None:
        batch = outcome.item
        if outcome.error is not None or outcome.result is None:
            self._record_failure(batch, outcome.error)
            return
        self._record_answer(batch, outcome.result)

    def _record_failure(self, batch: _Batch, error: AmiliError | None) -> None:
        status = error.status_code if isinstance(error, AmiliAPIError) else None
        body = error.body if isinstance(error, AmiliAPIError) else None
        text = str(error) if error is not None else "no answer"
        ledger.record_failure(
            self.con, batchid=batch.batchid, http_status=status,
            attempts=getattr(error, "attempts", 1), error=text, response_body=body,
        )
        self.summary.batches[BatchState.FAILED.value] += 1
        if len(self.summary.failures) < _MAX_ERRORS_KEPT:
            self.summary.failures.append(BatchFailure(batch.batchid, status, text))
        log.warning("batch %s of %s failed: %s", batch.batchid, self.day, text)
        for objs in batch.objects:
            for o in objs:
                self._count_outcome(o, "failed")

    def _record_answer(self, batch: _Batch, result: PostResult) -> None:
        answer = result.response
        errors: dict[tuple[str, int], str] = {}
        whole_batch: list[str] = []
        for e in answer.errors:
            if e.objectname in _VALUES:
                key = (e.objectname, e.objectindex)
                errors[key] = f"{errors[key]}; {e.message}" if key in errors else e.message
            else:
                whole_batch.append(e.message)
        responses = {(r.objectname, r.objectindex): r for r in answer.responses}
        results = ledger.ObjectResults([], [], [], [], [], [])
        rejected = accepted = 0
        for value, objs in zip(_VALUES, batch.objects, strict=True):
            for index, o in enumerate(objs):
                key = (value, index)
                message = errors.get(key)
                if message is None and whole_batch:
                    message = "; ".join(whole_batch)
                response = responses.get(key)
                status = response.status_statuscode if response is not None else None
                if message is not None:
                    outcome, state = ObjectOutcome.REJECTED, "rejected"
                    rejected += 1
                else:
                    # Objects not named in errors were taken: statuscode 0 with no per-object
                    # responses (an acknowledge-only receiver) means all were.
                    outcome = ObjectOutcome.ACCEPTED
                    state = "duplicates" if status == "DUPLICATE" else "accepted"
                    accepted += 1
                results.objectnames.append(value)
                results.objectindexes.append(index)
                results.outcomes.append(outcome.value)
                results.statuses.append(status)
                results.ledgerrefs.append(response.ledgerref if response is not None else None)
                results.messages.append(message)
                self._count_outcome(o, state)
        if not rejected:
            state = BatchState.ACCEPTED
        elif not accepted:
            state = BatchState.REJECTED
        else:
            state = BatchState.PARTIALLY_REJECTED
        ledger.record_answer(
            self.con, batchid=batch.batchid, state=state, http_status=result.http_status,
            statuscode=answer.statuscode, attempts=result.attempts,
            response_body=result.raw_body.decode("utf-8", "replace"), results=results,
        )
        self.summary.batches[state.value] += 1

    def _count_outcome(self, o: _Obj, state: str) -> None:
        if not o.kind:
            fate = self.creditors.setdefault(o.source_id, _CreditorFate())
            fate.included = True
            fate.outcomes.add("accepted" if state == "duplicates" else state)
            return
        self.tallies[_VALUES[o.kind]].add(state, o.amount, o.currency)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def submit_window(
    pipeline_db: str | Path,
    client: AmiliClient | None,
    start: date,
    end: date,
    *,
    dry_run_dir: Path | None = None,
    force_resend: bool = False,
    max_objects: int | None = None,
    max_bytes: int | None = None,
    max_concurrency: int | None = None,
    relations: Relations | None = None,
    assumptions: SandboxAssumptions = DEFAULT_ASSUMPTIONS,
    fetch_rows: int = _FETCH_ROWS,
    lock_wait_seconds: float = LOCK_WAIT_SECONDS,
) -> SubmissionSummary:
    """Submit every partition day of ``[start, end)`` on its own, in order.

    ``client`` may be None only for a dry run. ``max_objects``/``max_bytes`` bound each body
    (default: the client's settings). With ``dry_run_dir`` the bodies are written to
    ``<dir>/<batchid>.json`` and quarantined rows to ``<dir>/quarantine-<day>.jsonl``; nothing
    is posted and nothing in the database changes (beyond creating the ``amili`` tables if
    they are missing). ``force_resend`` sends every row again, in new batches, even those
    already acknowledged, and supersedes the day's in-doubt batches.

    Partial failures do not raise; call :meth:`SubmissionSummary.raise_for_failures`.
    """
    if end < start:
        raise ValueError(f"the window [{start}, {end}) ends before it starts")
    if dry_run_dir is None and client is None:
        raise ValueError("a client is needed unless dry_run_dir is given")
    settings = client.settings if client is not None else None
    objects = max_objects or (settings.max_batch_objects if settings else 5000)
    size = max_bytes or (settings.max_batch_bytes if settings else 8_000_000)
    if objects < 2:
        raise ValueError("max_objects must be at least 2 (a creditor heads every body)")
    opts = _Options(
        client=client,
        dry_run_dir=Path(dry_run_dir) if dry_run_dir is not None else None,
        force_resend=force_resend,
        max_objects=objects,
        max_bytes=size,
        max_concurrency=max_concurrency,
        relations=relations or Relations(),
        assumptions=assumptions,
        fetch_rows=fetch_rows,
    )
    summary = SubmissionSummary()
    with connect_writer(pipeline_db, wait_seconds=lock_wait_seconds) as con:
        ledger.ensure_schema(con)
        day = start
        while day < end:
            result = _Day(con, day, opts).run()
            summary.days.append(result)
            total = result.total()
            log.info(
                "%s%s: %d rows seen, %d sent, %d skipped unchanged, %d quarantined, %d held; "
                "batches %s (%.1f s)",
                day, " (dry run)" if opts.dry_run_dir else "", total.seen, total.sent,
                total.skipped_unchanged, total.quarantined, total.held,
                dict(result.batches), result.seconds,
            )
            day += timedelta(days=1)
    return summary

