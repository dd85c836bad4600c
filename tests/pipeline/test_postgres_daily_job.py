"""The whole daily job (extract, dbt build, submission to the sandbox, reconciliation) from a
PostgreSQL warehouse and from the same warehouse as a DuckDB file: the same batch-ready rows
and the same reconciliation, and the password nowhere in Dagster's records of the run."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import httpx
import pytest
from dagster import AssetKey, DagsterInstance
from dagster._serdes import serialize_value

from amili.warehouse.dirt import add_dirt
from amili.warehouse.postgres import load_into_postgres
from orchestration.definitions import defs
from tests.conftest import SandboxServer
from tests.helpers import demo_pipeline_env
from tests.postgres_server import PostgresServer

DAY = date(2026, 11, 24)

#: What goes to Amili and what the day's reconciliation says; columns that hold when the
#: run happened (or the batch id, made of it) are left out.
COMPARED = (
    "batch.batch_invoices", "batch.batch_payments", "batch.batch_actions",
    "batch.batch_creditors", "marts.rpt_source_rows", "marts.rpt_reconciliation_daily",
    "amili.quarantine",
)
VOLATILE = ("extracted_at", "built_at", "batchid", "batch_id", "sent_at", "received_at",
            "created_at", "answered_at", "ledgerref", "quarantined_at", "run_id",
            "responded_at", "updated_at",
            "source_row")  # numbers the rows in the order they arrived: not data


def rows(db: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        columns = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall()
                   if c[0] not in VOLATILE and not c[0].endswith("_at")]
        return con.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY ALL").fetchall()


def run(instance: DagsterInstance) -> object:
    return defs.resolve_job_def("amili_daily").execute_in_process(
        partition_key=DAY.isoformat(), instance=instance, raise_on_error=False)


def test_the_daily_job_from_postgres_matches_the_duckdb_file_and_hides_the_password(
    tmp_path: Path, clean_sandbox: SandboxServer, postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = demo_pipeline_env(tmp_path, clean_sandbox, end_date=DAY, days=2,
                            invoices_per_day=30)
    add_dirt(env["AMILI_WAREHOUSE"], share=0.2, seed=3)
    url = postgres_server.create_database("amili_job") + "?schema=erp"
    load_into_postgres(env["AMILI_WAREHOUSE"], url)
    results = {}
    for kind, warehouse in (("duckdb", env["AMILI_WAREHOUSE"]), ("postgres", url)):
        httpx.post(f"{clean_sandbox.base_url}/sandbox/reset").raise_for_status()
        for name, value in {**env, "AMILI_WAREHOUSE": warehouse,
                            "AMILI_PIPELINE_DB": str(tmp_path / f"{kind}.duckdb")}.items():
            monkeypatch.setenv(name, value)
        with DagsterInstance.ephemeral() as instance:
            result = run(instance)
            assert result.success, [e.message for e in result.all_events if e.is_failure]
            records = instance.all_logs(result.run_id)
            text = serialize_value(records) + serialize_value(
                instance.get_run_by_id(result.run_id))
            results[kind] = (result, text)
    duck_db, pg_db = tmp_path / "duckdb.duckdb", tmp_path / "postgres.duckdb"
    for table in COMPARED:
        a, b = rows(duck_db, table), rows(pg_db, table)
        assert a == b, table
    assert rows(duck_db, "batch.batch_invoices") and rows(duck_db, "amili.quarantine")

    result, text = results["postgres"]
    assert postgres_server.password not in text
    assert "***@" in text  # the masked URL is what the log shows
    metadata = {
        e.asset_key: e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert metadata[AssetKey(["raw", "invoices"])]["warehouse_rows_read"].value > 0
