"""AMILI_DUCKDB_MEMORY_LIMIT: a day of wide rows streams through a small DuckDB memory limit.

The day is built as dbt builds it (``batch.batch_invoices`` holds the typed invoice objects,
the view ``batch.batch_invoices_json`` is their ``to_json``), with long description texts, and
posted to the sandbox over loopback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from amili.client import AmiliClient
from amili.pipeline.sql_checks import OBJECT_TYPES
from amili.pipeline.submission import Relations, SubmissionMemoryError, submit_window
from amili.sandbox.server import SandboxServer
from amili.sandbox.settings import SandboxSettings
from amili.settings import ClientSettings, load
from tests.conftest import SandboxAdmin
from tests.pipeline.test_submission import CREDITOR, DAY, NEXT, Inputs, invoice_payload

#: The description text of every invoice: about 2 kB (an invoice's JSON is then about 2.7 kB).
DESCRIPTION_BYTES = 2000


def wide_day(path: Path, count: int) -> int:
    """``count`` valid invoices of one creditor with long descriptions, shaped as dbt shapes
    them; returns the bytes of their JSON."""
    inputs = Inputs(path)
    inputs.creditor()
    template = invoice_payload("__ID__", description="__TEXT__")
    inputs.sql("CREATE SCHEMA batch")
    for kind in ("creditors", "payments", "actions"):
        inputs.sql(f"CREATE VIEW batch.batch_{kind}_json AS SELECT * FROM main.batch_{kind}_json")
    inputs.sql(
        f"""CREATE TABLE batch.batch_invoices AS
            SELECT $day AS partition_date, id AS invoice_id, $creditor AS creditor_id,
                   TRY_CAST(replace(replace($template, '__ID__', id), '__TEXT__',
                                id || ' ' || repeat('Konsulenttimer ', {DESCRIPTION_BYTES // 15}))
                        ::JSON AS {OBJECT_TYPES['invoice']}) AS invoice_object
            FROM (SELECT 'INV-' || lpad(i::VARCHAR, 6, '0') AS id FROM range({count}) AS t(i))""",
        {"day": DAY, "creditor": CREDITOR, "template": template},
    )
    assert inputs.sql("SELECT count(invoice_object) FROM batch.batch_invoices") == [(count,)]
    inputs.sql("CREATE VIEW batch.batch_invoices_json AS "
               "SELECT *, to_json(invoice_object) AS payload FROM batch.batch_invoices")
    return int(inputs.sql("SELECT sum(strlen(payload)) FROM batch.batch_invoices_json")[0][0])


@pytest.fixture
def ack_only_client() -> Iterator[AmiliClient]:
    """A client of a lean sandbox (acknowledges every batch): the receiver is not the
    bottleneck of 50,000 invoices."""
    with SandboxServer(load(SandboxSettings, port=0, ack_only=True)) as server:
        settings = load(ClientSettings, base_url=server.base_url,
                        token=SecretStr(server.issue_token()), sender_id="memory-test")
        with AmiliClient(settings) as client:
            yield client


def test_a_day_of_50k_wide_invoices_streams_through_a_small_memory_limit(
    tmp_path: Path, ack_only_client: AmiliClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """135 MB of invoice JSON through DuckDB held to 96MB, twice (a re-run skips them all).

    Not 64MB: DuckDB's to_json builds each vector of 2048 rows in an arena of about 12 times
    their JSON size, about 50 MB for these 2.7 kB invoices, so the floor is about 80MB
    whatever the day's size (measured: 72MB fails, 80MB passes; 4.7 kB invoices need 128MB).
    """
    count = 50_000
    db = tmp_path / "pipeline.duckdb"
    payload_bytes = wide_day(db, count)
    assert payload_bytes > 130_000_000
    monkeypatch.setenv("AMILI_DUCKDB_MEMORY_LIMIT", "96MB")

    started = time.perf_counter()
    first = submit_window(db, ack_only_client, DAY, NEXT, relations=Relations.in_schema("batch"))
    invoices = first.days[0].objects["invoice"]
    assert invoices.sent == invoices.accepted == count
    assert set(first.batches) == {"accepted"}

    again = submit_window(db, ack_only_client, DAY, NEXT, relations=Relations.in_schema("batch"))
    assert again.days[0].objects["invoice"].skipped_unchanged == count
    assert again.batches == {}
    assert time.perf_counter() - started < 60


def test_a_limit_below_what_a_vector_needs_fails_naming_the_setting_and_loses_nothing(
    tmp_path: Path, make_client: Callable[..., AmiliClient], sandbox_admin: SandboxAdmin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    count = 4_096  # two vectors
    db = tmp_path / "pipeline.duckdb"
    wide_day(db, count)
    monkeypatch.setenv("AMILI_DUCKDB_MEMORY_LIMIT", "40MB")
    with pytest.raises(SubmissionMemoryError) as caught:
        submit_window(db, make_client(), DAY, NEXT, relations=Relations.in_schema("batch"))
    message = str(caught.value)
    assert "AMILI_DUCKDB_MEMORY_LIMIT" in message and "40MB" in message
    assert f"submitting {DAY}" in message

    monkeypatch.setenv("AMILI_DUCKDB_MEMORY_LIMIT", "96MB")
    summary = submit_window(db, make_client(), DAY, NEXT, relations=Relations.in_schema("batch"))
    assert summary.days[0].objects["invoice"].rejected == 0
    assert sandbox_admin.stats()["invoices"] == count  # each stored once
