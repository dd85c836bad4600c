"""Small shared test helpers."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from amili.warehouse import generate_demo_warehouse

DATA_DIR = Path(__file__).parent / "data"


def documented_example_body() -> bytes:
    """The request body of the documented curl example (copied from Amili's API page)."""
    return (DATA_DIR / "documented-batch-request.json").read_bytes()


def forget_last_ledger_object(con: Any, batchid: str, objectname: str) -> str:
    """Lose the last object of one array of a batch from the ledger (and its answer), as a
    damaged ledger would; returns its source id. The last, because the ledger keeps each
    array packed in body order (amili.ledger_arrays): the others keep their positions."""
    row = con.execute(
        """SELECT from_json(source_ids, '["VARCHAR"]')[-1], object_count
           FROM amili.ledger_arrays WHERE batchid = ? AND objectname = ?""",
        [batchid, objectname],
    ).fetchone()
    source_id, count = row
    con.execute(
        """UPDATE amili.ledger_arrays SET object_count = object_count - 1,
               source_ids = to_json(from_json(source_ids, '["VARCHAR"]')[:-2])::VARCHAR,
               payload_hashes = left(payload_hashes, 64 * (object_count - 1))
           WHERE batchid = ? AND objectname = ?""",
        [batchid, objectname],
    )
    con.execute(
        "DELETE FROM amili.ledger_object_answers WHERE batchid = ? AND objectname = ? "
        "AND objectindex = ?", [batchid, objectname, count - 1],
    )
    return str(source_id)


def demo_pipeline_env(
    tmp_path: Path, sandbox: Any, *, end_date: date, days: int = 4, invoices_per_day: int = 20,
    sender_id: str = "job-test", seed: int = 11,
) -> dict[str, str]:
    """A demo warehouse in ``tmp_path``, and the ``AMILI_*`` variables that point the
    pipeline at it, at ``tmp_path/pipeline.duckdb`` and at the sandbox (a ``SandboxServer``)."""
    warehouse = tmp_path / "warehouse.duckdb"
    generate_demo_warehouse(warehouse, days=days, invoices_per_day=invoices_per_day,
                            end_date=end_date, seed=seed)
    return {
        "AMILI_WAREHOUSE": str(warehouse),
        "AMILI_PIPELINE_DB": str(tmp_path / "pipeline.duckdb"),
        "AMILI_BASE_URL": sandbox.base_url,
        "AMILI_TOKEN": sandbox.issue_token(ttl_seconds=3600),
        "AMILI_SENDER_ID": sender_id,
        "AMILI_BACKOFF_INITIAL_SECONDS": "0.01",
    }
