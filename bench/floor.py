"""The floor: the least work that sends one day's rows as the pipeline's JSON bodies.

What any submission of the day must do, and nothing more: read each object's JSON from
DuckDB (its own ``to_json``, the ``batch.batch_*_json`` views), cut the objects into bodies
of the same cut as the pipeline's (one creditor per body, its creditor object at the head,
at most ``max_objects`` objects and ``max_bytes`` bytes), and post them over one keep-alive
connection to a receiver that only reads them. No validation, no ledger, no answers parsed.
The ratio ``bench.submission`` reports is therefore "this far above the least work the job
needs".

How it keeps to the least work:

* **Streamed, not sorted.** One query per creditor and array (``creditor_id`` and
  ``partition_date`` filtered, no ``ORDER BY``) read as Arrow record batches
  (``to_arrow_reader``): the day is never held whole, and no sort spills a million rows.
* **No Python object per row.** DuckDB appends the comma to each payload
  (``payload || ','``), so the objects of a body that came in one record batch are one
  contiguous slice of the Arrow string array's data buffer. A body's cut is found on the
  array's offsets by bisection (O(log n) per body, not a loop per row), and the body is one
  ``b"".join`` of a few buffer slices.
* **Building overlaps posting.** One thread reads and builds bodies, the main thread posts
  them (``http.client``, ``TCP_NODELAY``, headers and body sent without copying them into
  one buffer); a small queue between them bounds the memory to a few bodies.

Run as a subprocess by ``bench/submission.py``; prints one JSON line: seconds, invoices,
bodies, peak RSS.

Usage: ``AMILI_TOKEN=... python -m bench.floor PIPELINE_DB BASE_URL DAY MAX_OBJECTS MAX_BYTES``
(the token comes from the environment: on the command line, ``ps`` would show it).
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import socket
import sys
import threading
import time
from bisect import bisect_right
from collections.abc import Iterator
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa

from bench.common import max_rss_mib

#: Rows per Arrow record batch: large enough that a body is a slice or two, small enough that
#: a batch of ~700-byte invoices stays in the tens of MB.
ROWS_PER_BATCH = 16_384
#: Bodies built ahead of the one being posted.
QUEUE_DEPTH = 2

_CREDITORS = """
    SELECT creditor_id, payload FROM batch.batch_creditors_json
    WHERE partition_date = $day ORDER BY creditor_id
"""
#: The arrays after the creditor, in body order: (name, view, what the pipeline leaves out).
_ARRAYS = (
    (b"invoice", "batch.batch_invoices_json", ""),
    (b"payment", "batch.batch_payments_json", " AND hold_reason IS NULL"),
    (b"action", "batch.batch_actions_json", " AND hold_reason IS NULL"),
)
_OBJECTS = """
    SELECT payload || ',' FROM {view} WHERE partition_date = $day AND creditor_id = $c{extra}
"""


def _envelope(number: int) -> tuple[bytes, int]:
    """The body's opening up to the creditor object, and the size of all its fixed parts."""
    head = b'{"batchid":"floor-%d","offline":false,"creditor":[' % number
    rest = sum(len(b'],"' + name + b'":[') for name, _, _ in _ARRAYS) + len(b"]}")
    return head, len(head) + rest


def _close(number: int, header: bytes, arrays: list[list[memoryview]]) -> bytes:
    head, _ = _envelope(number)
    parts = [head, header]
    for (name, _, _), slices in zip(_ARRAYS, arrays, strict=True):
        parts += [b'],"', name, b'":[']
        if slices:
            slices[-1] = slices[-1][:-1]  # every payload ends in a comma: drop the last one
            parts += slices
    parts.append(b"]}")
    return b"".join(parts)


def build_bodies(
    con: duckdb.DuckDBPyConnection, day: str, max_objects: int, max_bytes: int
) -> Iterator[tuple[bytes, int]]:
    """Each body of the day with the number of invoices in it, in the pipeline's cut."""
    number = 0
    for creditor_id, payload in con.execute(_CREDITORS, {"day": day}).fetchall():
        header = payload.encode()
        arrays: list[list[memoryview]] = [[], [], []]
        count, invoices = 1, 0
        size = _envelope(number)[1] + len(header)
        for k, (_, view, extra) in enumerate(_ARRAYS):
            query = _OBJECTS.format(view=view, extra=extra)
            reader = con.sql(query, params={"day": day, "c": creditor_id}).to_arrow_reader(
                ROWS_PER_BATCH)
            for batch in reader:
                column = batch.column(0)
                n = len(column)
                if not n:
                    continue
                if column.null_count:
                    raise ValueError(f"a NULL payload in {view}")
                width = "q" if pa.types.is_large_string(column.type) else "i"
                _, offset_buffer, data_buffer = column.buffers()
                offsets = memoryview(offset_buffer).cast(width)[column.offset:column.offset + n + 1]
                data = memoryview(data_buffer)
                i = 0
                while i < n:
                    # objects i..j-1 fit when their bytes (each with its comma; the first of an
                    # array has none) and their count stay within the body's room
                    first = not arrays[k]
                    room = max_bytes - size + first
                    j = min(n, i + max_objects - count)
                    if offsets[j] - offsets[i] > room:
                        j = bisect_right(offsets, offsets[i] + room, i, j + 1) - 1
                    if j > i:
                        arrays[k].append(data[offsets[i]:offsets[j]])
                        size += offsets[j] - offsets[i] - first
                        count += j - i
                        if k == 0:
                            invoices += j - i
                        i = j
                    if i < n:  # the body is full
                        if count == 1:
                            raise ValueError(f"an object of {view} fits in no body of "
                                             f"{max_bytes} bytes")
                        yield _close(number, header, arrays), invoices
                        number += 1
                        arrays, count, invoices = [[], [], []], 1, 0
                        size = _envelope(number)[1] + len(header)
        if count > 1:
            yield _close(number, header, arrays), invoices
            number += 1


def main(db: str, base_url: str, token: str, day: str, max_objects: int, max_bytes: int) -> None:
    started = time.perf_counter()
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    path = "/webapi/api/Batch?senderid=floor"
    ready: queue.Queue[tuple[bytes, int] | BaseException | None] = queue.Queue(QUEUE_DEPTH)
    stop = threading.Event()

    def hand(item: tuple[bytes, int] | BaseException | None) -> bool:
        """Queue ``item`` for the posting thread; False once that thread has given up."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def build() -> None:
        try:
            with duckdb.connect(db, read_only=True) as con:
                for item in build_bodies(con, day, max_objects, max_bytes):
                    if not hand(item):
                        return
            hand(None)
        except BaseException as error:  # handed to the posting thread, which raises it
            hand(error)

    # not a daemon: one still inside DuckDB when the interpreter exits aborts the process
    builder = threading.Thread(target=build, name="floor-build")
    builder.start()
    bodies = invoices = 0
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            body, count = item
            conn.putrequest("POST", path, skip_accept_encoding=True)
            conn.putheader("Authorization", f"Bearer {token}")
            conn.putheader("Content-Type", "application/json-patch+json")
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            conn.send(body)
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"HTTP {answer.status}")
            bodies += 1
            invoices += count
    finally:
        stop.set()
        builder.join()
    conn.close()
    print(json.dumps({"seconds": time.perf_counter() - started, "invoices": invoices,
                      "bodies": bodies, "max_rss_mib": max_rss_mib()}))


if __name__ == "__main__":
    token = os.environ.get("AMILI_TOKEN")
    if not token:
        sys.exit("bench.floor: AMILI_TOKEN is not set")
    main(sys.argv[1], sys.argv[2], token, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
