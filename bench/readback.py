"""Reading back cases and settlements for many handed-over invoices from the full sandbox.

Hands ``--invoices`` invoices of ``--creditors`` creditors over to the full sandbox (its own
process, validating and storing everything), records their Amili ids in a pipeline DuckDB
file as the results stage does, moves the sandbox's clock 100 days on (the default fates:
about 55 % collected in full or in part, 10 % credited, 5 % closed), then times, each in
this process:

* ``read_cases``: the whole ``amili.cases`` snapshot (one request per creditor);
* ``read_settlements``: every settlement from cursor 0 (pages of 1,000);
* ``read_settlements`` again: the incremental case, nothing new (one request per creditor).

Requests are counted by the sandbox (``/sandbox/stats``), not by the client. Peak memory is
measured for the whole process and, the high-water mark reset before each, for each read on
its own (``cases_peak_rss_mib``, ``settlements_peak_rss_mib``).

Usage: ``uv run --frozen python -m bench.readback [--invoices 100000] [--creditors 4]
[--page-size 1000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import httpx
from pydantic import SecretStr
from stdnum.no import orgnr

from amili.client import AmiliClient
from amili.examples import example_creditor, example_invoice
from amili.models import BatchRequest
from amili.pipeline.ledger import ensure_schema
from amili.pipeline.readback import read_cases, read_settlements
from amili.settings import ClientSettings, load
from bench.common import max_rss_mib, receiver, sandbox_stats, table

PER_BATCH = 4999  # plus the creditor: the sandbox takes 5,000 objects a batch


def creditor_ids(count: int) -> list[str]:
    """``count`` valid organisation numbers (checked by python-stdnum)."""
    out: list[str] = []
    candidate = 910000000
    while len(out) < count:
        candidate += 1
        if orgnr.is_valid(str(candidate)):
            out.append(str(candidate))
    return out


def reset_peak_rss() -> bool:
    """Start this process's peak resident memory (``VmHWM``) afresh from its current size,
    so that the next :func:`max_rss_mib` is one phase's peak (Linux: ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def gets(base_url: str) -> int:
    stats = sandbox_stats(base_url)["requests"]
    return sum(stats.get("GET /webapi/api/Batch", {}).values())  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--creditors", type=int, default=4)
    parser.add_argument("--page-size", type=int, default=None,
                        help="the sandbox's settlements per answer (default: its 1,000)")
    args = parser.parse_args()
    if args.page_size is not None:  # the sandbox process reads it from its environment
        os.environ["AMILI_SANDBOX_LIFECYCLE"] = json.dumps(
            {"settlement_page_size": args.page_size})
    template = example_creditor()
    idnumbers = creditor_ids(args.creditors)
    figures: dict[str, object] = {"invoices": args.invoices, "creditors": args.creditors,
                                  "settlement_page_size": args.page_size or 1000}
    with receiver("full") as sandbox, tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "pipeline.duckdb"
        httpx.post(f"{sandbox.base_url}/sandbox/clock",
                   json={"now": "2026-11-01T06:00:00Z"}).raise_for_status()
        settings = load(ClientSettings, base_url=sandbox.base_url,
                        token=SecretStr(sandbox.token), sender_id="bench-readback",
                        timeout_seconds=600.0)
        batches = []
        for start in range(0, args.invoices, PER_BATCH):
            idnumber = idnumbers[(start // PER_BATCH) % len(idnumbers)]
            creditor = template.model_copy(update={"idnumber": idnumber})
            invoices = [example_invoice(f"RB-{k:07d}", amount=Decimal(100 + k % 900) +
                                        Decimal("0.45"))
                        for k in range(start, min(start + PER_BATCH, args.invoices))]
            batches.append(BatchRequest(batchid=f"rb-{start}", creditor=[creditor],
                                        invoice=invoices))
        started = time.perf_counter()
        acknowledged: list[tuple[str, str]] = []
        with AmiliClient(settings) as client:
            for outcome in client.post_batches(batches, max_concurrency=2):
                assert outcome.result is not None, outcome.error
                batch = outcome.item
                for answer in outcome.result.response.responses:
                    if answer.objectname == "invoice":
                        acknowledged.append((batch.invoice[answer.objectindex]
                                             .uniqueSourceInvoiceId, answer.ledgerref or ""))
        figures["hand_over_seconds"] = round(time.perf_counter() - started, 1)
        del batches  # 100k invoice models: the reads below must not be measured on top of them
        with duckdb.connect(str(db)) as con:
            ensure_schema(con)
            con.execute("INSERT INTO amili.acknowledged_invoices SELECT unnest($s), "
                        "unnest($a), now()", {"s": [s for s, _ in acknowledged],
                                             "a": [a for _, a in acknowledged]})
        del acknowledged
        started = time.perf_counter()
        clock = httpx.post(f"{sandbox.base_url}/sandbox/clock", json={"advance_days": 100},
                           timeout=600).json()
        figures["sandbox_fates_seconds"] = round(time.perf_counter() - started, 1)
        figures["fates"] = clock["fates_stored"]

        figures["peak_rss_mib_before_reads"] = round(max_rss_mib())
        with AmiliClient(settings) as client:
            before = gets(sandbox.base_url)
            resettable = reset_peak_rss()
            if resettable:  # what the process holds anyway (the hand-over's leftovers)
                figures["rss_mib_before_cases"] = round(max_rss_mib())
            cases = read_cases(db, client, idnumbers)
            if resettable:
                figures["cases_peak_rss_mib"] = round(max_rss_mib())
            figures["cases_rows"] = cases.rows
            figures["cases_seconds"] = round(cases.seconds, 2)
            figures["cases_requests"] = gets(sandbox.base_url) - before

            before = gets(sandbox.base_url)
            if reset_peak_rss():
                figures["rss_mib_after_cases"] = round(max_rss_mib())
            settled = read_settlements(db, client, idnumbers)
            if resettable:
                figures["settlements_peak_rss_mib"] = round(max_rss_mib())
            settled.raise_for_failures()
            figures["settlements"] = settled.inserted
            figures["settlements_seconds"] = round(settled.seconds, 2)
            figures["settlements_requests"] = gets(sandbox.base_url) - before

            before = gets(sandbox.base_url)
            again = read_settlements(db, client, idnumbers)
            figures["rerun_added"] = again.inserted
            figures["rerun_seconds"] = round(again.seconds, 2)
            figures["rerun_requests"] = gets(sandbox.base_url) - before
        figures["peak_rss_mib_last_phase"] = round(max_rss_mib())
    print(table(["figure", "value"], [[k, v] for k, v in figures.items()]))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
