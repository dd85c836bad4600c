"""One submission step of one day in a fresh process, for its time and peak RSS.

Usage: ``AMILI_TOKEN=... python -m bench.submit_once PIPELINE_DB BASE_URL DAY
[--profile OUT.html] [--python-memory]``; the token comes from the environment, as the
pipeline's own does (on the command line, ``ps`` would show it).
Prints one JSON line: seconds, per-kind tallies, batches, peak RSS (VmHWM) in MiB.
With ``--profile`` the run is recorded by pyinstrument and the report written to OUT.html
(and a text summary to stderr). With ``--python-memory`` tracemalloc records the peak of
Python's own allocations (``python_peak_mib``; the run is then several times slower): RSS
also holds DuckDB's buffer pool, which fills up to ``duckdb_memory_limit`` on a large day.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from datetime import date, timedelta

from amili.client import AmiliClient
from amili.pipeline.submission import Relations, submit_window
from amili.settings import ClientSettings, load
from bench.common import max_rss_mib


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("base_url")
    parser.add_argument("day", type=date.fromisoformat)
    parser.add_argument("--profile")
    parser.add_argument("--python-memory", action="store_true")
    args = parser.parse_args()
    settings = load(ClientSettings, base_url=args.base_url, sender_id="bench")  # AMILI_TOKEN
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.002)
        profiler.start()
    started = time.perf_counter()
    python_peak = None
    with AmiliClient(settings) as client:
        if args.python_memory:
            tracemalloc.start()
        summary = submit_window(args.db, client, args.day, args.day + timedelta(days=1),
                                relations=Relations.in_schema("batch"))
        if args.python_memory:
            python_peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.stop()
        with open(args.profile, "w") as out:
            out.write(profiler.output_html())
        import sys

        print(profiler.output_text(unicode=False, color=False, show_all=False), file=sys.stderr)
    summary.raise_for_failures()
    objects = {name: tally.counts() for name, tally in summary.objects().items()}
    print(json.dumps({"seconds": seconds, "objects": objects, "batches": dict(summary.batches),
                      "max_rss_mib": max_rss_mib(), "python_peak_mib": python_peak}))


if __name__ == "__main__":
    main()
