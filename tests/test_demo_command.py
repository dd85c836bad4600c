"""The README's main command: `amili demo` runs the whole chain for one day and balances."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus, RunsFilter

from orchestration import daily_demo

REPO = Path(__file__).resolve().parents[1]


def test_amili_demo_runs_the_chain_and_prints_a_balanced_reconciliation(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"  # never the repository's own dagster_home
    env = {
        **os.environ,
        "AMILI_WAREHOUSE": str(tmp_path / "data" / "warehouse.duckdb"),
        "AMILI_PIPELINE_DB": str(tmp_path / "data" / "pipeline.duckdb"),
        "DAGSTER_HOME": str(home),
    }
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
    # the run is in the instance the UI reads, with the day's materializations
    assert f"Dagster instance: {home}" in output
    with DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs(RunsFilter(job_name="amili_daily"))
        assert run.status == DagsterRunStatus.SUCCESS
        assert run.run_id in output
        records = instance.fetch_materializations(AssetRecordsFilter(
            asset_key=AssetKey(["amili", "responses"]), asset_partitions=["2026-11-24"]),
            limit=1).records
        assert records and records[0].run_id == run.run_id


def test_the_demo_records_in_the_projects_dagster_home_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without DAGSTER_HOME the demo's run goes to the project's dagster_home (the one the
    README starts the UI with), not a throwaway instance; --ephemeral keeps the old way."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert daily_demo.demo_dagster_home() == REPO / "dagster_home"
    assert (daily_demo.demo_dagster_home() / "dagster.yaml").exists()  # pools, no telemetry
    assert daily_demo.demo_dagster_home(ephemeral=True) is None
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert daily_demo.demo_dagster_home() == tmp_path
    assert daily_demo.demo_dagster_home(ephemeral=True) is None


def run_demo(tmp_path: Path, *args: str, **env_changes: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "AMILI_WAREHOUSE": str(tmp_path / "data" / "warehouse.duckdb"),
        "AMILI_PIPELINE_DB": str(tmp_path / "data" / "pipeline.duckdb"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),  # never the repository's own
        **env_changes,
    }
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
