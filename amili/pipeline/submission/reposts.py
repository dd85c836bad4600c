"""Phase 1 of a day: re-post, byte for byte, the batches of earlier runs whose fate is unknown.

A batch is in doubt (:data:`amili.pipeline.ledger.IN_DOUBT`) when it was written as
``prepared`` and then never answered: the run died, posting stopped (``not_sent``), or the
POST failed without an HTTP answer, with a 5xx, or with a 2xx that could not be read. Amili
may or may not have taken it. Rebuilt from the
day's rows under its own batchid, with the same content hash, it lets Amili replay its
answer or say DUPLICATE instead of creating anything again (see :mod:`.posting` for the
guarantee this serves). A batch that cannot be rebuilt as it was (a row changed or left the
day) is superseded, and its rows go in new batches in phase 2.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from amili.chunking import BatchObject, chunk_objects
from amili.models import ObjectName
from amili.pipeline import ledger
from amili.pipeline.submission.answers import _count_sent
from amili.pipeline.submission.objects import _amount, _Batch, _compact, _content_hash, _Key
from amili.pipeline.submission.state import DayState

log = logging.getLogger("amili.pipeline.submission")


def _supersede_in_doubt(st: DayState, reason: str) -> None:
    """Give up every in-doubt batch of the day (a forced re-send sends its rows anew)."""
    rows = st.con.execute(
        f"SELECT batchid FROM amili.submission_ledger WHERE partition_date = ? "
        f"AND {ledger.IN_DOUBT}", [st.day],
    ).fetchall()
    for (batchid,) in rows:
        if not st.summary.dry_run:
            ledger.supersede(st.con, batchid, reason)
        st.summary.superseded.append(batchid)


def _reposts(st: DayState) -> Generator[_Batch, None, None]:
    """Rebuild each in-doubt batch of the day exactly as it was, or supersede it."""
    pending = st.con.execute(
        f"SELECT count(*) FROM amili.submission_ledger WHERE partition_date = ? "
        f"AND {ledger.IN_DOUBT}", [st.day],
    ).fetchone()
    if not pending or not pending[0]:
        return
    cur = st.con.cursor()
    try:
        cur.execute(
            f"""
            WITH day AS ({st.day_sql}),
            pending AS (
                SELECT batchid, chunk_number, content_hash FROM amili.submission_ledger
                WHERE partition_date = $day AND {ledger.IN_DOUBT}
            ),
            wanted AS (
                SELECT o.batchid, p.chunk_number, p.content_hash, o.objectname,
                       o.objectindex, o.source_id, o.payload_hash
                FROM amili.ledger_objects AS o JOIN pending AS p USING (batchid)
                WHERE o.partition_date = $day
            ),
            current AS (
                SELECT d.*, sha256(d.payload) AS payload_hash,
                    CASE WHEN d.kind IN (1, 2) AND json_valid(d.payload)
                         THEN json_transform(d.payload, '{{"originalInvoiceAmount":
                             "DECIMAL(38,6)", "amount": "DECIMAL(38,6)",
                             "currency": "VARCHAR"}}') END AS money
                FROM day AS d
                WHERE EXISTS (SELECT 1 FROM wanted AS w WHERE w.objectname = d.objectname
                              AND w.source_id = d.source_id)
            )
            SELECT w.batchid, w.chunk_number, w.content_hash, w.objectname,
                   w.objectindex, w.source_id, w.payload_hash, c.payload,
                   CASE c.kind WHEN 1 THEN c.money.originalInvoiceAmount
                               WHEN 2 THEN c.money.amount END,
                   c.money.currency
            FROM wanted AS w LEFT JOIN current AS c
              ON c.objectname = w.objectname AND c.source_id = w.source_id
             AND c.payload_hash = w.payload_hash
            ORDER BY w.chunk_number, w.batchid,
                list_position(['creditor', 'invoice', 'payment', 'action'], w.objectname),
                w.objectindex
            """,
            st.params,
        )
        group: list[tuple[Any, ...]] = []
        while rows := cur.fetchmany(st.opts.fetch_rows):
            for row in rows:
                if group and row[0] != group[0][0]:
                    batch = _rebuild(st, group)
                    if batch is not None:
                        yield batch
                    group = []
                group.append(row)
            del rows  # let go of this block before the next one is fetched
        if group:
            batch = _rebuild(st, group)
            if batch is not None:
                yield batch
    finally:
        cur.close()


def _rebuild(st: DayState, rows: list[tuple[Any, ...]]) -> _Batch | None:
    """One in-doubt batch from its ledger rows and the day's current payloads; None (and
    superseded) unless its body comes out with the content hash it was prepared with."""
    batchid, number, content_hash = rows[0][0], rows[0][1], rows[0][2]
    objs: list[BatchObject] = []
    seen: set[tuple[str, int]] = set()
    missing = 0
    for _, _, _, objectname, index, source_id, payload_hash, payload, amount, currency in rows:
        if (objectname, index) in seen:  # the same row twice in the day's relation
            continue
        seen.add((objectname, index))
        if payload is None:
            missing += 1
            continue
        key = _Key(source_id, payload_hash, _amount(amount), currency, False)
        objs.append(BatchObject(ObjectName(objectname), _compact(payload), key))
    batch = None
    if not missing:
        # (a batch prepared before the content hash was made of payload hashes has the
        # hash of its body's arrays: chunk_objects' default)
        for hasher in (_content_hash, None):
            chunks = list(chunk_objects(
                objs, max_objects=max(len(objs), 1), max_bytes=2**62,
                batch_id=lambda _n, _h: batchid, first_number=number, content_hash=hasher))
            if len(chunks) == 1 and chunks[0].content_hash == content_hash:
                batch = _Batch(chunks[0], reposted=True)
                break
    if batch is None:
        reason = (
            f"cannot be re-posted as it was: {missing} of its objects changed or left the "
            f"day's rows since it was prepared; they are sent in new batches"
            if missing else "cannot be re-posted as it was: its rebuilt body differs"
        )
        log.warning("batch %s of %s: %s", batchid, st.day, reason)
        if not st.summary.dry_run:
            ledger.supersede(st.con, batchid, reason)
        st.summary.superseded.append(batchid)
        return None
    st.summary.reposted += 1
    _count_sent(st, batch)  # (a creditor row is counted as seen among the day's rows)
    return batch
