"""End-to-end wall time of the daily job (extract, dbt, submission, results, reconciliation).

Runs the real Dagster job ``amili_daily`` in process (its in-process executor, as the demo and
the schedule run it), against the sandbox in ack-only mode in a process of its own, and prints:

* the fixed cost: importing the Definitions once, and a run of an empty day (nothing
  eligible), twice (the second one is the steady state);
* one partition of 10k and of 100k invoices, with the time of each step;
* a 30-day backfill (``--backfill-per-day`` invoices a day) as one run over the range (the
  single-run backfill policy, what the UI launches from the asset graph) against 30 runs of
  one day each, each on a fresh pipeline database.

Usage: ``uv run --frozen python -m bench.end_to_end [--sizes 10000 100000]
[--no-separate-runs]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, DAY, prepared_day, receiver, table

EMPTY_DAY = date(2025, 6, 2)  # before any demo data: nothing is eligible


def _env(warehouse: Path, pipeline_db: Path) -> None:
    os.environ["AMILI_WAREHOUSE"] = str(warehouse)
    os.environ["AMILI_PIPELINE_DB"] = str(pipeline_db)


def _fresh(name: str) -> Path:
    folder = BENCH_DIR / "e2e" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder / "pipeline.duckdb"


def _run(job: Any, instance: Any, **kwargs: Any) -> tuple[float, dict[str, float]]:
    """Wall seconds of one run, and seconds per step (from the run's event log)."""
    started = time.perf_counter()
    result = job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"run {result.run_id} failed")
    begun: dict[str, float] = {}
    steps: dict[str, float] = defaultdict(float)
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            begun[entry.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS" and entry.step_key in begun:
            steps[entry.step_key] += entry.timestamp - begun[entry.step_key]
    return seconds, dict(steps)


def _steps(steps: dict[str, float]) -> str:
    short = {"receivables_extract": "extract", "amili_dbt_models": "dbt",
             "amili_submission": "submission", "amili_results": "results",
             "amili_reconciliation_models": "marts"}
    parts = []
    for key, seconds in steps.items():
        name = next((v for k, v in short.items() if key.startswith(k)), key)
        parts.append(f"{name} {seconds:.1f}")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--backfill-per-day", type=int, default=1_000)
    parser.add_argument("--no-backfill", action="store_true")
    parser.add_argument("--no-separate-runs", action="store_true",
                        help="the backfill as one run only (30 separate runs take 15 minutes)")
    args = parser.parse_args()
    warehouses = {size: prepared_day(size, bad_share=0.001)[0] for size in args.sizes}
    backfill_wh = None
    if not args.no_backfill:
        backfill_wh = prepared_day(args.backfill_per_day, bad_share=0.001, days=30)[0]
    rows: list[list[str]] = []
    with receiver("ack-only") as sandbox:
        os.environ.update({"AMILI_BASE_URL": sandbox.base_url, "AMILI_TOKEN": sandbox.token,
                           "AMILI_SENDER_ID": "bench", "DAGSTER_DISABLE_TELEMETRY": "1"})
        first = next(iter(warehouses.values()))
        _env(first, _fresh("empty"))
        from orchestration.dbt_project import prepare_dbt_project

        prepare_dbt_project()  # a fresh clone has no manifest yet (not part of the timing)
        started = time.perf_counter()
        from dagster import DagsterInstance

        from orchestration.definitions import defs
        imported = time.perf_counter() - started
        job = defs.resolve_job_def("amili_daily")
        instance = DagsterInstance.ephemeral()
        rows.append(["import Definitions (once per process)", f"{imported:.1f}", ""])
        for attempt in ("first", "again"):
            seconds, steps = _run(job, instance, partition_key=EMPTY_DAY.isoformat())
            rows.append([f"empty day ({attempt})", f"{seconds:.1f}", _steps(steps)])
            print(table(["run", "wall s", "steps (s)"], rows[-1:]), flush=True)
        for size, warehouse in warehouses.items():
            _env(warehouse, _fresh(f"n{size}"))
            seconds, steps = _run(job, instance, partition_key=DAY.isoformat())
            rows.append([f"one day of {size:,} invoices", f"{seconds:.1f}", _steps(steps)])
            print(table(["run", "wall s", "steps (s)"], rows[-1:]), flush=True)
        first_day = DAY - timedelta(days=29)
        if backfill_wh is not None:
            _env(backfill_wh, _fresh("backfill-one-run"))
            seconds, steps = _run(job, instance, tags={
                "dagster/asset_partition_range_start": first_day.isoformat(),
                "dagster/asset_partition_range_end": DAY.isoformat(),
            })
            rows.append([f"30 days x {args.backfill_per_day:,} invoices, one run",
                         f"{seconds:.1f}", _steps(steps)])
            print(table(["run", "wall s", "steps (s)"], rows[-1:]), flush=True)
        if backfill_wh is not None and not args.no_separate_runs:
            _env(backfill_wh, _fresh("backfill-30-runs"))
            total = 0.0
            summed: dict[str, float] = defaultdict(float)
            for offset in range(30):
                day = first_day + timedelta(days=offset)
                seconds, steps = _run(job, instance, partition_key=day.isoformat())
                total += seconds
                for key, value in steps.items():
                    summed[key] += value
            rows.append([f"30 days x {args.backfill_per_day:,} invoices, 30 runs",
                         f"{total:.1f}", _steps(summed)])
    print("\nEnd to end, in process, against the ack-only sandbox:")
    print(table(["run", "wall s", "steps (s)"], rows))


if __name__ == "__main__":
    main()
