"""The README's main command: `amili demo` runs the whole chain for one day and balances."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest


def test_amili_demo_runs_the_chain_and_prints_a_balanced_reconciliation(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AMILI_WAREHOUSE": str(tmp_path / "data" / "warehouse.duckdb"),
        "AMILI_PIPELINE_DB": str(tmp_path / "data" / "pipeline.duckdb"),
    }
    env.pop("DAGSTER_HOME", None)
    completed = subprocess.run(
        [sys.executable, "-m", "amili.cli", "demo", "--day", "2026-11-24"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "creating the demo warehouse" in output
    assert "Run succeeded" in output
    assert "balances: all" in output
    assert "Sandbox stopped." in output
    assert (tmp_path / "data" / "logs" / "demo-2026-11-24.log").exists()


def run_demo(tmp_path: Path, *args: str, **env_changes: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "AMILI_WAREHOUSE": str(tmp_path / "data" / "warehouse.duckdb"),
        "AMILI_PIPELINE_DB": str(tmp_path / "data" / "pipeline.duckdb"),
        **env_changes,
    }
    env.pop("DAGSTER_HOME", None)
    completed = subprocess.run(
        [sys.executable, "-m", "amili.cli", "demo", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    return completed.returncode, completed.stdout + completed.stderr


@pytest.mark.parametrize(("args", "env", "says"), [
    (["--day", "2020-01-01"], {}, "there is no partition 2020-01-01: the daily partitions run "
                                  "from 2025-01-01 (AMILI_PARTITION_START) to "),
    (["--day", "2999-01-01"], {}, "there is no partition 2999-01-01"),
    ([], {"AMILI_DUCKDB_MEMORY_LIMIT": "lots"}, "AMILI_DUCKDB_MEMORY_LIMIT is not a memory size"),
])
def test_amili_demo_refuses_what_it_cannot_run_with_a_message(
    tmp_path: Path, args: list[str], env: dict[str, str], says: str
) -> None:
    code, output = run_demo(tmp_path, *args, **env)
    assert code != 0, output
    assert says in output
    assert "Traceback" not in output
    assert not (tmp_path / "data").exists()  # nothing was created


def test_a_failed_demo_run_says_which_step_failed_and_why(tmp_path: Path) -> None:
    """A fresh pipeline database and a warehouse without the tables: the extract fails, and
    the demo says so instead of printing "Run FAILED" and a traceback."""
    (tmp_path / "data").mkdir()
    duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb")).close()  # empty
    code, output = run_demo(tmp_path, "--day", "2026-11-24")
    assert code == 1, output
    assert "Run FAILED" in output
    assert "Step receivables_extract failed: WarehouseContractError" in output
    assert "the warehouse has no table invoices" in output
    assert "invoices does not exist" in output
    assert "No reconciliation of 2026-11-24 to show" in output
    assert "Traceback" not in output
    assert "Sandbox stopped." in output
