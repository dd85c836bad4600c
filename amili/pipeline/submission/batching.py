"""Phase 2 of a day: read the day's rows creditor by creditor, sort each into its bucket, and
cut the rows to send into batch bodies.

Each row reaches Python with its status decided in SQL (:mod:`.classify`): held and skipped
rows are counted, rows changed after hand-over counted and recorded (:mod:`.changes`), rows
the SQL could not prove valid checked (:mod:`.quarantine`), and the rest go into bodies.
:func:`_group_objects` is the hot loop (once per row of a million):
it keeps what it touches in local variables and builds tuples directly.

Batches are cut per creditor, with the creditor object at the head of each of its batches:
the sandbox (our stand-in for Amili) gives a batch's invoices to its one creditor object and
otherwise to the sender, so an invoice must never share a batch with another creditor's.

**Bounded memory.** Rows stream from DuckDB with ``fetchmany`` (``fetch_rows`` at a time;
DuckDB itself is held to ``duckdb_memory_limit``), one query per creditor, never one sort of
the whole day; only a small day (``_BUFFER_ROWS``) is held at once. Bodies are cut by
:func:`amili.chunking.chunk_objects` as the rows stream, and :mod:`.posting` holds only the
batches in flight.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterator
from functools import partial
from typing import Any

import duckdb

from amili.chunking import BatchObject, ObjectTooLargeError, chunk_objects
from amili.models import ObjectName
from amili.pipeline.submission.answers import _count_sent
from amili.pipeline.submission.changes import _changed
from amili.pipeline.submission.classify import (
    _CHANGED,
    _CHECK,
    _HELD,
    _KNOWN_SQL,
    _NOTHING_KNOWN_SQL,
    _QUARANTINE,
    _SEND,
    _SKIP,
    _day_rows_sql,
)
from amili.pipeline.submission.objects import (
    _NAMES,
    _VALUES,
    _amount,
    _Batch,
    _compact,
    _content_hash,
    _CreditorFate,
    _Key,
)
from amili.pipeline.submission.quarantine import (
    _QUARANTINE_FLUSH_ROWS,
    _check,
    _flush_quarantine,
    _quarantine,
)
from amili.pipeline.submission.state import DayState

#: Rows per fetchmany: about 1.5 kB of Python objects each for an invoice.
_FETCH_ROWS = 500
#: A day with at most this many invoices, payments and actions is read in one query and kept
#: per creditor (about 1.5 kB each); a larger one is streamed creditor by creditor.
_BUFFER_ROWS = 10_000


class _Group:
    """One creditor's rows as they stream by: its header (creditor object) and its fate."""

    def __init__(self, creditor_id: str | None) -> None:
        self.creditor_id = creditor_id
        self.header: BatchObject | None = None
        self.header_acknowledged = False
        self.header_reason: str | None = None


def _next_chunk_number(st: DayState) -> int:
    """The chunk number of the day's first new batch: after every batch the ledger holds for
    the day, so a new batch never takes an earlier one's number."""
    first_number = st.con.execute(
        "SELECT coalesce(max(chunk_number) + 1, 0) FROM amili.submission_ledger "
        "WHERE partition_date = ?", [st.day],
    ).fetchone()
    return int(first_number[0]) if first_number else 0


def _duplicates(st: DayState) -> dict[tuple[str, str | None], int]:
    """The (objectname, source_id) pairs that occur more than once on the day, and how often:
    such rows are quarantined, since answers could not be mapped back to one of them."""
    rows = st.con.execute(
        f"""SELECT objectname, source_id, count(*) FROM ({st.day_sql})
            GROUP BY ALL HAVING count(*) > 1""",
        st.params,
    ).fetchall()
    return {(name, source_id): n for name, source_id, n in rows}


def _rows_sql(st: DayState, where: str, known_where: str, checks: bool = True,
              creditor_id: bool = True) -> str:
    """The day's classified rows matching ``where`` (see :func:`_day_rows_sql`)."""
    return _day_rows_sql(st.day_sql, st.opts.assumptions, st.opts.typed, where,
                         known_where, checks, creditor_id)


def _new_batches(st: DayState, reposted: list[str]) -> Generator[_Batch, None, None]:
    """Stream the day's rows creditor by creditor, sort each into its bucket, yield the
    bodies.

    One query per creditor rather than one ORDER BY creditor over the day: sorting a day's
    payloads makes DuckDB hold all of them (and it does not spill such a sort within a
    small memory limit); a filtered scan streams. Within a
    creditor the rows come in the relations' own (insertion) order, the same on every run.

    A small day (at most ``_BUFFER_ROWS`` rows) is read in one query instead and its rows
    kept per creditor: planning and starting the checks' expression, per query, was most of
    a small day's time (and a backfill of many small days paid it per creditor and day).
    Filtering a scan keeps its order, so both ways give the same bodies.
    """
    duplicates = _duplicates(st)
    params: dict[str, Any] = {**st.params, "force": st.opts.force_resend}
    cur = st.rows_cursor
    try:
        known = cur.execute("SELECT EXISTS (SELECT 1 FROM amili.ledger_arrays "
                            "WHERE partition_date = $day)", st.params).fetchone()
        if known and known[0]:
            cur.execute(_KNOWN_SQL.format(day_sql=st.day_sql),
                        {**st.params, "reposted": reposted})
        else:
            cur.execute(_NOTHING_KNOWN_SQL)
        # the creditor rows (few) first: each heads its group's bodies
        headers: dict[str | None, list[tuple[Any, ...]]] = {}
        for row in cur.execute(
            _rows_sql(st, "kind = 0", "objectname = 'creditor'", checks=False)
            + " ORDER BY creditor_id, source_id", params
        ).fetchall():
            headers.setdefault(row[1], []).append(row)  # a creditor's id is its source id
        counts = dict(cur.execute(
            f"SELECT creditor_id, count(*) FROM ({st.day_sql}) WHERE kind > 0 GROUP BY ALL",
            st.params,
        ).fetchall())
        with_rows = set(counts)
        buffered: dict[str | None, list[tuple[Any, ...]]] | None = None
        if 0 < sum(counts.values()) <= _BUFFER_ROWS:
            buffered = {}
            cur.execute(_rows_sql(st, "kind > 0", "true"), params)
            for row in _rows(st, cur):
                buffered.setdefault(row[-1], []).append(row)
        for creditor_id in sorted(headers.keys() | with_rows,
                                  key=lambda c: (c is None, c or "")):
            group = _Group(creditor_id)
            creditor_rows = headers.get(creditor_id, [])
            for k, row in enumerate(creditor_rows):  # a second one is a duplicate id
                _start_group(st, group if k == 0 else _Group(creditor_id), row, duplicates)
            objects: Iterator[BatchObject] = iter(())
            if buffered is not None:
                rows = iter(buffered.pop(creditor_id, ()))
                objects = _group_objects(st, group, rows, duplicates)
            elif creditor_id in with_rows:
                mine = ("creditor_id = $creditor" if creditor_id is not None
                        else "creditor_id IS NULL")
                cur.execute(_rows_sql(st, f"kind > 0 AND {mine}", mine,
                                               creditor_id=False),
                            {**params, "creditor": creditor_id} if creditor_id is not None
                            else params)
                objects = _group_objects(st, group, _rows(st, cur), duplicates)
            yield from _chunks(st, group, objects)
    finally:
        cur.execute("DROP TABLE IF EXISTS _amili_known")


def _rows(st: DayState, cur: duckdb.DuckDBPyConnection) -> Iterator[tuple[Any, ...]]:
    """The query's rows, ``fetch_rows`` at a time; the quarantine buffer is written as it
    fills."""
    while rows := cur.fetchmany(st.opts.fetch_rows):
        yield from rows
        if len(st.quarantine) >= _QUARANTINE_FLUSH_ROWS:
            _flush_quarantine(st)
        del rows  # let go of this block before the next one is fetched


def _start_group(
    st: DayState, group: _Group, row: tuple[Any, ...], duplicates: dict[tuple[str, str | None], int]
) -> None:
    """The creditor row that opens a group: it heads the group's bodies, if it is valid."""
    _, source_id, payload, status, defects, known_hash, _, _, _, _, _ = row
    acknowledged = status == _SKIP
    st.tallies[_VALUES[0]].add("seen")
    text = payload.decode() if payload is not None else None
    reason = (f"creditor: {defects}" if status == _QUARANTINE
              else _check(st, ObjectName.CREDITOR, source_id, text, duplicates))
    if reason is None:
        key = _Key(source_id, known_hash, None, None, False)
        group.header = BatchObject(ObjectName.CREDITOR, _compact(payload), key)
        group.header_acknowledged = bool(acknowledged)
        st.creditors.setdefault(source_id, _CreditorFate())
    else:
        group.header_reason = reason
        _quarantine(st, ObjectName.CREDITOR, source_id, reason, text, None, None)


def _group_objects(
    st: DayState,
    group: _Group,
    rows: Iterator[tuple[Any, ...]],
    duplicates: dict[tuple[str, str | None], int],
) -> Iterator[BatchObject]:
    """The group's invoices, payments and actions to send; the rest are counted (held,
    skipped) or quarantined here."""
    amounts = st.amounts
    sent_count, sent_cents = amounts.sent_count, amounts.sent_cents
    held_reasons = st.summary.held_reasons
    sha256 = hashlib.sha256
    new = tuple.__new__
    creditor_id = group.creditor_id
    # (final before the first row: _chunks settles the header before it pulls objects)
    header_bad = group.header_reason is not None
    for (kind, source_id, payload, status, hold_reason, known_hash, changed, cents,
         raw_amount, currency, _) in rows:
        if (status == _SEND and cents is not None and not changed and not duplicates
                and not (header_bad and kind == 1)):
            # the usual row, proven valid with an amount in whole øre: inline, cheapest
            sent_count[kind] += 1
            by_currency = sent_cents[kind]
            by_currency[currency] = by_currency.get(currency, 0) + cents
            key = new(_Key, (source_id, known_hash or sha256(payload).hexdigest(), cents,
                             currency, False))
            yield new(BatchObject, (_NAMES[kind], payload, key))
            continue
        amount = cents if cents is not None else (
            _amount(raw_amount) if raw_amount is not None else None)
        if status == _QUARANTINE:  # dbt named a defect of its warehouse rows
            text = payload.decode() if payload is not None else None
            _quarantine(st, _NAMES[kind], source_id, f"{_VALUES[kind]}: {hold_reason}", text,
                        amount, currency)
            continue
        if status == _HELD:
            amounts.add("held", kind, currency, amount)
            held_reasons[f"{_VALUES[kind]}: {hold_reason}"] += 1
            continue
        if status == _SKIP:
            amounts.add("skipped_unchanged", kind, currency, amount)
            continue
        if status == _CHANGED:  # Amili holds another payload of it: not sent again
            _changed(st, kind, source_id, payload, known_hash, amount, currency)
            continue
        if status == _CHECK or (duplicates and (_VALUES[kind], source_id) in duplicates) or (
            kind == 1 and header_bad
        ):
            text = payload.decode() if payload is not None else None
            reason = _check(st, _NAMES[kind], source_id, text, duplicates)
            if kind == 1 and header_bad:
                why = (f"invoice: its creditor {creditor_id!r} is quarantined, so it "
                       f"cannot be sent as that creditor's ({group.header_reason})")
                reason = why if reason is None else f"{reason}; {why}"
            if reason is not None:
                _quarantine(st, _NAMES[kind], source_id, reason, text, amount, currency)
                continue
            payload = _compact(payload)
        amounts.add("sent", kind, currency, amount)
        if changed:
            amounts.add("changed", kind, currency, amount)
        key = new(_Key, (source_id, known_hash or sha256(payload).hexdigest(), amount,
                         currency, bool(changed)))
        yield new(BatchObject, (_NAMES[kind], payload, key))


def _chunks(st: DayState, group: _Group, objects: Iterator[BatchObject]) -> Iterator[_Batch]:
    """The group's bodies, each headed by its creditor; an unacknowledged creditor with
    nothing else to send goes alone."""
    header = group.header
    fate = st.creditors.get(header.source_id.source_id) if header is not None else None
    alone = header is not None and not group.header_acknowledged and not (
        fate and fate.included)
    too_large = partial(_too_large, st)
    try:
        chunks = chunk_objects(
            objects, max_objects=st.opts.max_objects, max_bytes=st.opts.max_bytes,
            batch_id=st.batch_id, header=header, header_alone=alone,
            first_number=st.number, on_too_large=too_large,
            content_hash=_content_hash,
        )
    except ObjectTooLargeError as error:
        assert header is not None
        key = header.source_id
        group.header_reason = (
            f"creditor: its JSON is {error.size} bytes and does not fit in a batch body of "
            f"at most {st.opts.max_bytes} bytes and {st.opts.max_objects} objects "
            f"(with its creditor at the head)")
        _quarantine(st, ObjectName.CREDITOR, key.source_id, group.header_reason,
                         header.payload.decode(), None, None)
        st.creditors.pop(key.source_id, None)
        group.header = None
        chunks = chunk_objects(
            objects, max_objects=st.opts.max_objects, max_bytes=st.opts.max_bytes,
            batch_id=st.batch_id, first_number=st.number, on_too_large=too_large,
        )
    for chunk in chunks:
        st.number = chunk.number + 1
        batch = _Batch(chunk)
        _count_sent(st, batch)
        yield batch


def _too_large(st: DayState, obj: BatchObject, error: ObjectTooLargeError) -> None:
    """An object too large for any body: quarantined instead of sent (it was counted sent
    as it streamed by, so that is taken back)."""
    key: _Key = obj.source_id
    kind = _VALUES.index(obj.objectname)
    st.amounts.add("sent", kind, key.currency, key.amount, count=-1)  # counted as it came
    if key.changed:
        st.amounts.add("changed", kind, key.currency, key.amount, count=-1)
    reason = (f"{obj.objectname}: its JSON is {len(obj.payload)} bytes and does not fit in "
              f"a batch body of at most {st.opts.max_bytes} bytes and "
              f"{st.opts.max_objects} objects (with its creditor at the head)")
    _quarantine(st, ObjectName(obj.objectname), key.source_id, reason,
                     obj.payload.decode(), key.amount, key.currency)
