"""The floor: one day's rows read from DuckDB, as the same JSON bodies, posted to a sink.

No validation, no ledger, no answers parsed: DuckDB's own ``to_json`` (the ``batch_*_json``
views) builds each object, Python joins them into bodies of the same cut as the pipeline's
(one creditor per body at its head, at most ``max_objects`` objects and ``max_bytes``), and
``http.client`` posts them over one keep-alive connection. Run as a subprocess by
``bench/submission.py``; prints one JSON line: seconds, invoices, bodies, peak RSS.

Usage: ``AMILI_TOKEN=... python -m bench.floor PIPELINE_DB BASE_URL DAY MAX_OBJECTS MAX_BYTES``
(the token comes from the environment: on the command line, ``ps`` would show it).
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
from urllib.parse import urlsplit

import duckdb

from bench.common import max_rss_mib

_QUERY = """
    SELECT creditor_id, 0 AS kind, payload FROM batch.batch_creditors_json
        WHERE partition_date = $day
    UNION ALL SELECT creditor_id, 1, payload FROM batch.batch_invoices_json
        WHERE partition_date = $day
    UNION ALL SELECT creditor_id, 2, payload FROM batch.batch_payments_json
        WHERE partition_date = $day AND hold_reason IS NULL
    UNION ALL SELECT creditor_id, 3, payload FROM batch.batch_actions_json
        WHERE partition_date = $day AND hold_reason IS NULL
    ORDER BY creditor_id, kind
"""
_NAMES = (b"creditor", b"invoice", b"payment", b"action")


def main(db: str, base_url: str, token: str, day: str, max_objects: int, max_bytes: int) -> None:
    started = time.perf_counter()
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json-patch+json"}
    path = "/webapi/api/Batch?senderid=floor"
    bodies = invoices = 0

    def post(header: bytes, arrays: list[list[str]]) -> None:
        nonlocal bodies
        parts = [b'{"batchid":"floor-%d","offline":false,"creditor":[' % bodies, header]
        for name, array in zip(_NAMES[1:], arrays, strict=True):
            parts += [b'],"', name, b'":[', ",".join(array).encode()]
        parts.append(b"]}")
        body = b"".join(parts)
        conn.request("POST", path, body=body, headers=headers)
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"HTTP {answer.status}")
        bodies += 1

    with duckdb.connect(db, read_only=True) as con:
        cur = con.execute(_QUERY, {"day": day})
        creditor, header = None, b""
        arrays: list[list[str]] = [[], [], []]
        count = size = 0
        while rows := cur.fetchmany(5000):
            for creditor_id, kind, payload in rows:
                if kind == 0:
                    if count:
                        post(header, arrays)
                    creditor, header = creditor_id, payload.encode()
                    arrays, count, size = [[], [], []], 1, 200 + len(header)
                    continue
                if creditor_id != creditor:
                    continue  # no creditor object: the pipeline would not send it either
                length = len(payload) + 1
                if count + 1 > max_objects or size + length > max_bytes:
                    post(header, arrays)
                    arrays, count, size = [[], [], []], 1, 200 + len(header)
                arrays[kind - 1].append(payload)
                count += 1
                size += length
                invoices += kind == 1
        if count > 1:
            post(header, arrays)
    conn.close()
    print(json.dumps({"seconds": time.perf_counter() - started, "invoices": invoices,
                      "bodies": bodies, "max_rss_mib": max_rss_mib()}))


if __name__ == "__main__":
    token = os.environ.get("AMILI_TOKEN")
    if not token:
        sys.exit("bench.floor: AMILI_TOKEN is not set")
    main(sys.argv[1], sys.argv[2], token, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
