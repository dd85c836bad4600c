"""The README's main command: `amili demo` runs the whole chain for one day and balances."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
