"""The benchmark's helpers measure what they say: each contender's own memory, and the token
kept off command lines. The contenders run as the benchmark runs them, in fresh processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from amili.sandbox.server import SandboxServer
from bench.common import reset_ledger, run_json
from tests.pipeline.test_submission import DAY, Inputs, valid_invoices

ROOT = Path(__file__).resolve().parents[1]


def test_a_fresh_process_reports_its_own_peak_rss_not_its_parents() -> None:
    """A parent that once held 300 MiB starts a child, as bench.submission starts the floor
    after building the day: the child's figure must be its own (ru_maxrss, carried across
    exec on Linux, made both contenders report the builder's peak)."""
    parent = textwrap.dedent("""
        import subprocess, sys
        from bench.common import max_rss_mib
        held = bytearray(300 * 2**20)
        for i in range(0, len(held), 4096):  # touch every page, so it is resident
            held[i] = 1
        del held
        child = subprocess.run(
            [sys.executable, "-c", "from bench.common import max_rss_mib; print(max_rss_mib())"],
            capture_output=True, text=True, check=True)
        print(max_rss_mib(), float(child.stdout))
    """)
    done = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    parent_peak, child_peak = map(float, done.stdout.split())
    assert parent_peak >= 300
    assert child_peak < 150, (parent_peak, child_peak)  # an interpreter and bench.common


@pytest.fixture
def bench_day(tmp_path: Path) -> Path:
    """A small day in the ``batch`` schema, where the benchmark's contenders read it."""
    inputs = Inputs(tmp_path / "pipeline.duckdb")
    inputs.creditor()
    inputs.invoices(valid_invoices(12))
    with duckdb.connect(str(inputs.path)) as con:
        con.execute("CREATE SCHEMA batch")
        for kind in ("creditors", "invoices", "payments", "actions"):
            con.execute(f"CREATE VIEW batch.batch_{kind}_json AS "
                        f"SELECT * FROM main.batch_{kind}_json")
    return inputs.path


def test_floor_and_submit_once_take_the_token_from_the_environment(
    bench_day: Path, clean_sandbox: SandboxServer
) -> None:
    """Neither takes the token as an argument (``ps`` shows arguments); the sandbox, which
    refuses a wrong token, accepts their posts with AMILI_TOKEN alone."""
    url, day = clean_sandbox.base_url, DAY.isoformat()
    good = {"AMILI_TOKEN": clean_sandbox.issue_token()}
    once = run_json(["-m", "bench.submit_once", str(bench_day), url, day], env=good)
    floor = run_json(["-m", "bench.floor", str(bench_day), url, day, "5000", "8000000"],
                     env=good)
    assert once["objects"]["invoice"]["accepted"] == 12
    assert floor["invoices"] == 12 and floor["bodies"] == 1
    assert once["max_rss_mib"] > 0 and floor["max_rss_mib"] > 0

    wrong = {"AMILI_TOKEN": good["AMILI_TOKEN"] + "x"}
    with pytest.raises(RuntimeError, match="HTTP 401"):
        run_json(["-m", "bench.floor", str(bench_day), url, day, "5000", "8000000"], env=wrong)
    with pytest.raises(RuntimeError, match="AMILI_TOKEN is not set"):
        run_json(["-m", "bench.floor", str(bench_day), url, day, "5000", "8000000"],
                 env={"AMILI_TOKEN": ""})
    reset_ledger(bench_day)  # else there is nothing left to send
    with pytest.raises(RuntimeError, match="HTTP 401"):
        run_json(["-m", "bench.submit_once", str(bench_day), url, day], env=wrong)
