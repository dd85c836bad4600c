"""Extract + dbt for one partition, materialized through Dagster's own API."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, materialize

from amili.warehouse import generate_demo_warehouse
from assets.dbt_models import amili_dbt_models
from assets.extract import receivables_extract
from orchestration.resources import PipelineResource, dbt_resource

DAY = date(2026, 11, 24)


@pytest.fixture
def pipeline_paths(tmp_path: Path) -> tuple[Path, Path]:
    warehouse = tmp_path / "warehouse.duckdb"
    generate_demo_warehouse(warehouse, days=3, invoices_per_day=25, end_date=DAY, seed=3)
    return warehouse, tmp_path / "pipeline.duckdb"


def test_extract_and_dbt_materialize_one_partition(
    pipeline_paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse, db = pipeline_paths
    monkeypatch.setenv("AMILI_PIPELINE_DB", str(db))
    result = materialize(
        [receivables_extract, amili_dbt_models],
        partition_key=DAY.isoformat(),
        resources={
            "pipeline": PipelineResource(warehouse=str(warehouse), pipeline_db=str(db)),
            "dbt": dbt_resource(),
        },
    )
    assert result.success
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert AssetKey(["raw", "invoices"]) in materialized
    assert AssetKey(["batch", "batch_invoices"]) in materialized
    checks = result.get_asset_check_evaluations()
    assert checks, "dbt tests should run as asset checks"
    assert all(check.passed for check in checks), [
        c.check_name for c in checks if not c.passed
    ]
    with duckdb.connect(str(db), read_only=True) as con:
        raw_days = con.execute("SELECT DISTINCT partition_date FROM raw.invoices").fetchall()
        batch_count = con.execute(
            "SELECT count(*) FROM batch.batch_invoices WHERE partition_date = ?", [DAY]
        ).fetchone()[0]
    assert raw_days == [(DAY,)]
    assert batch_count == 25
