"""One submission step of one day in a fresh process, for its time and peak RSS.

Usage: ``python -m bench.submit_once PIPELINE_DB BASE_URL TOKEN DAY [--profile OUT.html]``.
Prints one JSON line: seconds, per-kind tallies, batches, peak RSS (ru_maxrss) in MiB.
With ``--profile`` the run is recorded by pyinstrument and the report written to OUT.html
(and a text summary to stderr).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date, timedelta

from pydantic import SecretStr

from amili.client import AmiliClient
from amili.pipeline.submission import Relations, submit_window
from amili.settings import ClientSettings, load
from bench.common import max_rss_mib


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("base_url")
    parser.add_argument("token")
    parser.add_argument("day", type=date.fromisoformat)
    parser.add_argument("--profile")
    args = parser.parse_args()
    settings = load(ClientSettings, base_url=args.base_url, token=SecretStr(args.token),
                    sender_id="bench")
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.002)
        profiler.start()
    started = time.perf_counter()
    with AmiliClient(settings) as client:
        summary = submit_window(args.db, client, args.day, args.day + timedelta(days=1),
                                relations=Relations.in_schema("batch"))
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
                      "max_rss_mib": max_rss_mib()}))


if __name__ == "__main__":
    main()
