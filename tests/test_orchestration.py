"""The Dagster code location loads, and its ping asset materializes against the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import materialize

from assets.api_health import amili_api_ping
from orchestration.dbt_project import prune_invocation_targets
from orchestration.definitions import defs
from orchestration.resources import AmiliApiResource, dbt_resource
from orchestration.run_failures import run_failures
from tests.conftest import SandboxServer


def test_definitions_load() -> None:
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert "amili_api_ping" in keys


def test_workspace_loads_with_the_dagster_cli() -> None:
    """What `dagster dev -w workspace.yaml` does first: load the code location."""
    completed = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        capture_output=True, text=True, timeout=180,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_ping_asset_materializes(
    clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMILI_BASE_URL", clean_sandbox.base_url)
    token = clean_sandbox.issue_token()
    monkeypatch.setenv("AMILI_TOKEN", token)
    monkeypatch.setenv("AMILI_SENDER_ID", "dagster-test")
    result = materialize([amili_api_ping], resources={"amili": AmiliApiResource()})
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["latency_ms"].value >= 0
    assert all(token not in str(value.value) for value in metadata.values())


def test_ping_asset_fails_with_a_message_naming_the_missing_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    monkeypatch.delenv("AMILI_TOKEN", raising=False)
    monkeypatch.setenv("AMILI_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AMILI_SENDER_ID", "x")
    result = materialize(
        [amili_api_ping], resources={"amili": AmiliApiResource()}, raise_on_error=False
    )
    assert not result.success
    # the resource checks its settings as the run starts, before the step
    assert not result.get_step_failure_events()
    [failure] = run_failures(result.all_events)
    assert failure.where == "resource setup"
    assert "AMILI_TOKEN is not set" in failure.message


def test_the_dbt_resource_knows_the_version_the_dbt_executable_reports() -> None:
    """The resource skips dagster-dbt's ``dbt --version`` subprocess; what it says instead
    must be what that subprocess would say."""
    from orchestration.dbt_project import dbt_executable
    from orchestration.resources import dbt_resource

    reported = subprocess.run([dbt_executable(), "--version"], capture_output=True, text=True,
                              timeout=120, check=True).stdout
    resource = dbt_resource()
    assert f"installed: {resource._cli_version}" in reported, reported


def test_metadata_tables_keep_amounts_exact() -> None:
    """TableRecord takes no Decimal or date: they become their exact text, never a float."""
    from datetime import date
    from decimal import Decimal

    from assets.metadata import metadata_table

    table = metadata_table([("day", "date"), ("amount", "decimal"), ("n", "int")],
                           [{"day": date(2026, 11, 24), "amount": Decimal("0.10"), "n": 3}])
    assert [column.name for column in table.schema.columns] == ["day", "amount", "n"]
    assert [record.data for record in table.records] == [
        {"day": "2026-11-24", "amount": "0.10", "n": 3}]


def test_old_dbt_invocation_folders_are_pruned_and_project_files_kept(tmp_path: Path) -> None:
    day = 86400
    now = time.time()
    old = [tmp_path / "amili_dbt_models-1a2b3c4-5d6e7f8", tmp_path / "0a1b2c3"]
    recent = tmp_path / "amili_reconciliation_models-1a2b3c4-9e8d7c6"
    kept = [recent, tmp_path / "compiled", tmp_path / "notes-of-mine"]
    for folder in [*old, *kept]:
        folder.mkdir()
        (folder / "run_results.json").write_text("{}")
    (tmp_path / "partial_parse.msgpack").write_bytes(b"x")
    for folder in [*old, tmp_path / "compiled", tmp_path / "notes-of-mine"]:
        os.utime(folder, (now - 20 * day, now - 20 * day))
    os.utime(recent, (now - 13 * day, now - 13 * day))

    assert sorted(prune_invocation_targets(tmp_path, keep_days=14, now=now)) == sorted(old)
    assert all(folder.exists() for folder in kept) and not any(f.exists() for f in old)
    assert (tmp_path / "partial_parse.msgpack").exists()


def test_the_dbt_resource_prunes_before_each_invocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real dbt invocation through the project's resource, into a target folder of the
    test's own: an invocation folder older than AMILI_DBT_TARGET_KEEP_DAYS goes first."""
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path))
    monkeypatch.setenv("AMILI_DBT_TARGET_KEEP_DAYS", "1")
    stale = tmp_path / "amili_dbt_models-1a2b3c4-5d6e7f8"
    stale.mkdir()
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    invocation = dbt_resource().cli(["--version"])
    invocation.wait()
    assert not stale.exists()
    assert invocation.target_path.parent == tmp_path  # the invocation used that folder
