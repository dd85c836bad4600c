"""Submission throughput and peak memory against the floor, at 10k, 100k and 1M invoices.

For each size, one partition day of the demo warehouse (``--bad-share`` of it defective) is
generated, extracted and shaped by dbt once (cached in ``data/bench``). Then, ``--rounds`` times
(the figures are the medians), each in a fresh process whose peak RSS is its own (``VmHWM``,
see :func:`bench.common.max_rss_mib`), not the peak of this one, which may have built the day:

* the floor (:mod:`bench.floor`): the same rows as the same bodies, posted to the sink;
* the submission step (:func:`amili.pipeline.submission.submit_window`, the asset's code)
  against the sandbox in ack-only mode (it reads each body and answers statuscode 0), and
  against the sink, from an empty ledger.

The receivers run in processes of their own. Usage::

    uv run --frozen python -m bench.submission                  # 10k, 100k, 1M
    uv run --frozen python -m bench.submission --sizes 10000 --profile data/bench/prof
"""

from __future__ import annotations

import argparse
from itertools import pairwise
from pathlib import Path
from statistics import median
from typing import Any

from amili.settings import ClientSettings
from bench.common import DAY, day_counts, prepared_day, receiver, reset_ledger, run_json, table

_LIMITS = ClientSettings.model_fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--bad-share", type=float, default=0.001,
                        help="share of deliberately defective invoices (default 0.001)")
    parser.add_argument("--profile", help="folder for pyinstrument reports of the pipeline runs")
    parser.add_argument("--no-sink", action="store_true",
                        help="skip the pipeline run against the sink")
    parser.add_argument("--rounds", type=int, default=3,
                        help="floor and pipeline runs per size, interleaved; the figures are "
                             "their medians (default 3)")
    parser.add_argument("--python-memory", action="store_true",
                        help="one more run per size under tracemalloc: the peak of Python's "
                             "own allocations, apart from DuckDB's buffer pool (slow)")
    args = parser.parse_args()
    max_objects = _LIMITS["max_batch_objects"].default
    max_bytes = _LIMITS["max_batch_bytes"].default

    rows = []
    python_peaks: dict[int, float] = {}
    seconds_by_size: dict[int, float] = {}
    targets = ["ack-only"] if args.no_sink else ["ack-only", "sink"]
    for size in args.sizes:
        _, db = prepared_day(size, bad_share=args.bad_share)
        counts = day_counts(db)
        floors: list[dict[str, Any]] = []
        runs: dict[str, list[dict[str, Any]]] = {target: [] for target in targets}
        with receiver("sink") as sink:
            # rounds interleave floor and pipeline: this VM's speed drifts by a third within
            # minutes, so one run of each can say little about their ratio
            for round_number in range(args.rounds):
                floors.append(run_json(["-m", "bench.floor", str(db), sink.base_url,
                                        DAY.isoformat(), str(max_objects), str(max_bytes)],
                                       env={"AMILI_TOKEN": sink.token}))
                for target in targets:
                    reset_ledger(db)
                    extra = []
                    if args.profile and round_number == 0:
                        Path(args.profile).mkdir(parents=True, exist_ok=True)
                        extra = ["--profile", f"{args.profile}/submission-{size}-{target}.html"]
                    if target == "sink":
                        runs[target].append(run_json(["-m", "bench.submit_once", str(db),
                                                      sink.base_url, DAY.isoformat(), *extra],
                                                     env={"AMILI_TOKEN": sink.token}))
                        continue
                    with receiver("ack-only") as sandbox:
                        runs[target].append(run_json(["-m", "bench.submit_once", str(db),
                                                      sandbox.base_url, DAY.isoformat(),
                                                      *extra],
                                                     env={"AMILI_TOKEN": sandbox.token}))
            if args.python_memory:
                reset_ledger(db)
                traced = run_json(["-m", "bench.submit_once", str(db), sink.base_url,
                                   DAY.isoformat(), "--python-memory"],
                                  env={"AMILI_TOKEN": sink.token})
                python_peaks[size] = float(traced["python_peak_mib"])
        invoices = int(floors[0]["invoices"])
        floor_seconds = median(float(f["seconds"]) for f in floors)
        floor_rss = max(float(f["max_rss_mib"]) for f in floors)
        seconds_by_size[invoices] = median(float(r["seconds"]) for r in runs[targets[-1]])
        for target, target_runs in runs.items():
            sent = target_runs[0]["objects"]["invoice"]["sent"]
            seconds = median(float(r["seconds"]) for r in target_runs)
            ratios = [float(r["seconds"]) / float(f["seconds"])
                      for r, f in zip(target_runs, floors, strict=True)]
            rows.append([
                f"{counts['invoices']:,}", target, f"{sent:,}",
                f"{floor_seconds:.2f}", f"{invoices / floor_seconds:,.0f}", f"{floor_rss:.0f}",
                f"{seconds:.2f}", f"{sent / seconds:,.0f}",
                f"{max(float(r['max_rss_mib']) for r in target_runs):.0f}",
                f"{seconds / floor_seconds:.2f}",
                f"{min(ratios):.2f}-{max(ratios):.2f}",
            ])
        print(table(_HEADERS, rows[-len(runs):]), flush=True)
    print(f"\nSubmission of one partition day (median of {args.rounds} interleaved rounds; "
          f"max_batch_objects {max_objects}, max_batch_bytes {max_bytes}, "
          f"bad share {args.bad_share}; RSS the largest of the rounds):")
    print(table(_HEADERS, rows))
    if len(seconds_by_size) > 1:
        # linear growth: the cost of each further invoice stays the same from size to size
        # (a quadratic step, e.g. a ledger look-up per row, would make it grow with the size)
        sizes = sorted(seconds_by_size)
        print(f"\nPipeline ({targets[-1]}): time per further invoice between sizes:")
        print(table(["from", "to", "µs per further invoice"], [
            [f"{a:,}", f"{b:,}",
             f"{(seconds_by_size[b] - seconds_by_size[a]) / (b - a) * 1e6:.1f}"]
            for a, b in pairwise(sizes)]))
    if python_peaks:
        print("\nPeak of Python's own allocations (tracemalloc, against the sink):")
        print(table(["invoices in day", "Python peak MiB"],
                    [[f"{size:,}", f"{peak:.0f}"] for size, peak in python_peaks.items()]))


_HEADERS = ["invoices in day", "receiver", "invoices sent", "floor s", "floor inv/s",
            "floor RSS MiB", "pipeline s", "pipeline inv/s", "pipeline RSS MiB",
            "pipeline/floor", "per round"]

if __name__ == "__main__":
    main()
