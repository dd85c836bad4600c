"""Shared pieces of the benchmarks: prepared pipeline databases, receivers, tables.

Nothing here is timed; it sets up what the scripts time. Prepared databases are cached under
``AMILI_BENCH_DIR`` (default ``data/bench``, git-ignored) because a million-invoice day takes
a minute to generate, extract and shape, and the figures are about what comes after.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(os.environ.get("AMILI_BENCH_DIR", ROOT / "data" / "bench"))
DBT_DIR = ROOT / "dbt_project"
#: The partition every single-day benchmark uses.
DAY = date(2026, 11, 24)
BIN = Path(sys.executable).parent


def max_rss_mib() -> float:
    """Peak resident memory of this process since it started, in MiB.

    Not ``ru_maxrss``: Linux carries it across ``execve``, so a child that ``subprocess``
    starts (vfork, then exec) reports its parent's peak whenever that is the higher one. On a
    first run, where ``bench.submission`` had built the day in its own process, the floor and
    the pipeline both showed the builder's peak (2,096 MiB at 1M). ``VmHWM`` is the
    high-water mark of this process's own memory, which exec starts afresh.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # in kB
    except OSError:
        pass  # no /proc (macOS): ru_maxrss, in bytes there
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_dbt(pipeline_db: Path, start: date, end: date, command: str = "run") -> None:
    """dbt over the batch models (not the marts, which need the submission) for a window."""
    env = {**os.environ, "AMILI_PIPELINE_DB": str(pipeline_db.resolve())}
    dbt_vars = json.dumps({"min_date": start.isoformat(), "max_date": end.isoformat()})
    selection = [] if command == "seed" else ["--exclude", "amili.marts"]
    subprocess.run(
        [str(BIN / "dbt"), command, "--quiet", *selection, "--vars", dbt_vars],
        cwd=DBT_DIR, env=env, check=True,
    )


def prepared_day(invoices: int, *, bad_share: float, days: int = 1) -> tuple[Path, Path]:
    """(warehouse, pipeline DB with ``batch.*`` built) for ``days`` days ending at DAY.

    Cached by size; the pipeline DB's ``amili`` tables are dropped by :func:`reset_ledger`.
    """
    from amili.pipeline.extract import extract_window
    from amili.warehouse import generate_demo_warehouse

    folder = BENCH_DIR / f"n{invoices}-bad{bad_share}-d{days}-{_models_version()}"
    warehouse, pipeline = folder / "warehouse.duckdb", folder / "pipeline.duckdb"
    ready = folder / "ready"
    if ready.exists():
        return warehouse, pipeline
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    print(f"preparing {days} day(s) of {invoices:,} invoices in {folder} ...", file=sys.stderr)
    generate_demo_warehouse(warehouse, days=days, invoices_per_day=invoices,
                            bad_share=bad_share, end_date=DAY)
    start = DAY - timedelta(days=days - 1)
    extract_window(pipeline, warehouse, start, DAY + timedelta(days=1))
    run_dbt(pipeline, start, DAY + timedelta(days=1), "seed")
    run_dbt(pipeline, start, DAY + timedelta(days=1))
    ready.write_text("ok")
    # the builder's own peak (dbt runs in processes of its own), to tell it from the figures
    print(f"  prepared in {time.perf_counter() - started:.0f} s; peak RSS of this process "
          f"{max_rss_mib():.0f} MiB", file=sys.stderr)
    return warehouse, pipeline


def _models_version() -> str:
    """A short hash of the dbt project's models and macros and of the extract and warehouse
    code, so a cached database is rebuilt when what built it changed."""
    digest = hashlib.sha256()
    sources = [*sorted((DBT_DIR / "models").rglob("*.sql")),
               *sorted((DBT_DIR / "macros").rglob("*.sql")),
               *sorted((ROOT / "amili" / "warehouse").rglob("*.py")),
               ROOT / "amili" / "pipeline" / "extract.py"]
    for path in sources:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


def reset_ledger(pipeline_db: Path) -> None:
    """Forget every submission, so the next run sends the whole day again."""
    from amili.pipeline.ledger import ensure_schema

    with duckdb.connect(str(pipeline_db)) as con:
        ensure_schema(con)  # a ledger from before the arrays becomes the view over them
        con.execute("DROP VIEW amili.ledger_objects")
        for table in ("submission_ledger", "ledger_arrays", "ledger_object_answers",
                      "quarantine", "responses", "errors"):
            con.execute(f"DROP TABLE IF EXISTS amili.{table}")
        con.execute("CHECKPOINT")


def day_counts(pipeline_db: Path, day: date = DAY) -> dict[str, int]:
    with duckdb.connect(str(pipeline_db), read_only=True) as con:
        return {
            kind: int(con.execute(
                f"SELECT count(*) FROM batch.batch_{kind} WHERE partition_date = ?", [day]
            ).fetchone()[0])
            for kind in ("creditors", "invoices", "payments", "actions")
        }


@dataclass
class Receiver:
    """A receiver running in its own process, so its CPU and memory are not the step's."""

    name: str
    base_url: str
    token: str
    process: subprocess.Popen[bytes]


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"receiver exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("receiver did not start listening")


@contextmanager
def receiver(kind: str) -> Iterator[Receiver]:
    """``sink`` (reads the body, answers statuscode 0), ``ack-only`` or ``full`` sandbox."""
    from amili.sandbox.settings import SandboxSettings
    from amili.sandbox.tokens import issue_token
    from amili.settings import load

    port = free_port()
    if kind == "sink":
        args = [sys.executable, "-m", "bench.sink", str(port)]
    else:
        args = [str(BIN / "amili"), "sandbox", "--port", str(port)]
        if kind == "ack-only":
            args.append("--ack-only")
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               cwd=ROOT)
    try:
        _wait_listening(port, process)
        token = issue_token(load(SandboxSettings), subject="bench")
        yield Receiver(kind, f"http://127.0.0.1:{port}", token, process)
    finally:
        process.terminate()
        process.wait(10)


def sandbox_stats(base_url: str) -> dict[str, object]:
    return httpx.get(f"{base_url}/sandbox/stats").json()


def run_json(args: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a helper script in a fresh process; it prints one JSON object as its last line."""
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (pastes into the README as is)."""
    text = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h)
              for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |"
            for r in text]
    return "\n".join([line, rule, *body])
