"""Posting a phase's batches: the ledger as an outbox, the POSTs, and their answers recorded.

**Nothing is sent twice.** Each batch is written to the ledger as ``prepared`` before its
POST (:func:`_prepared`, see :mod:`amili.pipeline.ledger`), a group at a time in one
transaction. A run killed after that leaves the batch in doubt, and the next run first
re-posts it byte for byte under the same batchid (:mod:`.reposts`), so Amili replays its
answer or says DUPLICATE instead of creating anything again; only then does it send rows
not yet acknowledged (:mod:`.batching`, which skips the acknowledged in SQL). A batch id is
the day, the chunk number and a hash of the content (:func:`.objects._content_hash`).

The bodies of at most one prepared group and the posts in flight are held at once
(:meth:`AmiliClient.post_batches` pulls the next batch and yields each answer in the
calling thread, where all DuckDB work stays).
"""

from __future__ import annotations

from collections.abc import Iterator

from amili.pipeline import ledger
from amili.pipeline.submission.answers import _flush_answers, _record, _record_not_sent
from amili.pipeline.submission.objects import _VALUES, _Batch, _money_arrays
from amili.pipeline.submission.state import DayState

#: Answers are written to the ledger in groups this large (and at the end of each phase): one
#: statement per group instead of one per batch, each touching only the day's rows.
_ANSWERS_PER_FLUSH = 50
#: Batches are written to the ledger as prepared as many at a time as may be in flight (at
#: least this many, or this many body bytes), in one transaction: the bodies of a group are
#: held until they are posted. A group larger than the posts in flight leaves its last
#: batches waiting for a free slot while the next group could have been built.
_PREPARE_BATCHES = 4
_PREPARE_BYTES = 32_000_000


def _send(st: DayState, batches: Iterator[_Batch]) -> list[str]:
    """Post (or, in a dry run, write) the batches; returns their ids.

    If Amili refuses the token, posting stops (:meth:`AmiliClient.post_batches`): the
    batches already prepared are recorded ``not_sent``, the rest of ``batches`` is never
    built, and :attr:`DaySummary.refused` says so."""
    ids: list[str] = []
    if st.summary.dry_run:
        assert st.opts.dry_run_dir is not None
        for batch in batches:
            path = st.opts.dry_run_dir / f"{batch.batchid}.json"
            path.write_bytes(batch.body)
            st.summary.files.append(path)
            st.summary.batches["written"] += 1
            ids.append(batch.batchid)
        return ids
    client = st.opts.client
    assert client is not None
    in_flight = st.opts.max_concurrency or client.settings.max_concurrency
    prepared = _prepared(st, batches, in_flight)
    outcomes = client.post_batches(prepared, max_concurrency=in_flight)
    try:
        for outcome in outcomes:
            _record(st, outcome)
            ids.append(outcome.item.batchid)
            if len(st.answers) >= _ANSWERS_PER_FLUSH:
                _flush_answers(st)
    finally:
        try:
            _flush_answers(st)  # what was answered is kept even if a later step fails
        finally:
            # close the generators here (and the caller ``batches``, see :func:`.day._submit_day`),
            # while the connection their queries use is open; closing post_batches waits
            # for the posts still in flight
            outcomes.close()
            prepared.close()
    if st.unposted:
        _record_not_sent(st)
    return ids


def _prepared(st: DayState, batches: Iterator[_Batch], in_flight: int) -> Iterator[_Batch]:
    """Write batches to the ledger as ``prepared`` before they are handed to POST, a
    group at a time (one transaction per group, see :func:`ledger.prepare_batches`)."""
    group: list[_Batch] = []
    size = 0
    group_size = max(in_flight, _PREPARE_BATCHES)
    for batch in batches:
        group.append(batch)
        size += len(batch.body)
        if len(group) >= group_size or size >= _PREPARE_BYTES:
            yield from _prepare(st, group)
            group, size = [], 0
    yield from _prepare(st, group)


def _prepare(st: DayState, group: list[_Batch]) -> Iterator[_Batch]:
    """Write the group as prepared, then hand its batches on one by one."""
    ledger.prepare_batches(st.con, [
        ledger.PreparedBatch(
            batchid=batch.chunk.batchid,
            partition_date=st.day,
            chunk_number=batch.chunk.number,
            content_hash=batch.chunk.content_hash,
            object_count=batch.chunk.object_count(),
            body_bytes=len(batch.chunk.body),
            arrays=[
                ledger.ObjectRows(
                    value, [k.source_id for k in keys], [k.payload_hash for k in keys],
                    *(_money_arrays(keys) if kind in (1, 2) and keys else (None, None)),
                )
                for kind, (value, keys) in enumerate(zip(_VALUES, batch.keys(), strict=True))
            ],
        )
        for batch in group
    ])
    st.unposted.update((batch.batchid, batch) for batch in group)
    for batch in group:
        del st.unposted[batch.batchid]  # handed to the POST
        yield batch
