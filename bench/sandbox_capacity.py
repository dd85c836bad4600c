"""The receivers' own capacity, so that none of them is what limits the other figures.

Posts ready bodies of 5,000 real invoices each (from the 10k benchmark day) to each receiver
in its own process, over keep-alive connections, from 1 and from 4 client threads, and prints
invoices and megabytes per second. The full sandbox validates and stores every object, so it
gets fewer bodies (and distinct batch ids).

Usage: ``uv run --frozen python -m bench.sandbox_capacity``.
"""

from __future__ import annotations

import argparse
import http.client
import threading
import time
from urllib.parse import urlsplit

import duckdb

from bench.common import DAY, prepared_day, receiver, table


def _bodies(count: int, per_body: int) -> list[bytes]:
    _, db = prepared_day(10_000, bad_share=0.001)
    with duckdb.connect(str(db), read_only=True) as con:
        creditor = con.execute(
            "SELECT creditor_id, payload FROM batch.batch_creditors_json WHERE partition_date = ? "
            "ORDER BY creditor_id LIMIT 1", [DAY]).fetchone()
        invoices = [r[0] for r in con.execute(
            "SELECT payload FROM batch.batch_invoices_json WHERE partition_date = ? "
            "AND creditor_id = ? ORDER BY invoice_id LIMIT ?", [DAY, creditor[0], per_body]
        ).fetchall()]
    array = ",".join(invoices).encode()
    return [b'{"batchid":"cap-%d","offline":false,"creditor":[%s],"invoice":[%s]}'
            % (i, creditor[1].encode(), array) for i in range(count)]


def _post_all(base_url: str, token: str, bodies: list[bytes], threads: int) -> float:
    url = urlsplit(base_url)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json-patch+json"}
    shares = [bodies[i::threads] for i in range(threads)]

    def worker(share: list[bytes]) -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
        for body in share:
            conn.request("POST", "/webapi/api/Batch?senderid=capacity", body=body,
                         headers=headers)
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"HTTP {answer.status}")
        conn.close()

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=40)
    args = parser.parse_args()
    per_body = 4_999
    plan = {"sink": args.bodies, "ack-only": args.bodies, "full": 2}
    rows = []
    for kind, count in plan.items():
        bodies = _bodies(count, per_body)
        size = sum(map(len, bodies))
        with receiver(kind) as target:
            for threads in (1, 4):
                if kind == "full":  # a fresh sandbox stores each batch id once
                    bodies = [b.replace(b'"cap-', b'"cap%d-' % threads, 1) for b in bodies]
                seconds = _post_all(target.base_url, target.token, bodies, threads)
                rows.append([kind, str(threads), str(count), f"{count * per_body / seconds:,.0f}",
                             f"{size / seconds / 1e6:,.0f}"])
                print(table(_HEADERS, rows[-1:]), flush=True)
    print("\nReceivers, posting bodies of 4,999 invoices (about 5 MB) each:")
    print(table(_HEADERS, rows))


_HEADERS = ["receiver", "client threads", "bodies", "invoices/s", "MB/s"]

if __name__ == "__main__":
    main()
