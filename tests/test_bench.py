"""The benchmark's helpers measure what they say: each contender's own memory, and the token
kept off command lines. The contenders run as the benchmark runs them, in fresh processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

import bench.floor
from amili.chunking import BatchObject, ObjectName, chunk_objects
from amili.sandbox.server import SandboxServer
from bench.common import reset_ledger, run_json
from bench.floor import build_bodies
from tests.pipeline.test_submission import (
    DAY,
    Inputs,
    creditor_payload,
    payment_payload,
    valid_invoices,
)

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


def _batch_views(path: Path) -> None:
    """The ``batch`` schema, where the benchmark's contenders read the day."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA batch")
        for kind in ("creditors", "invoices", "payments", "actions"):
            con.execute(f"CREATE VIEW batch.batch_{kind}_json AS "
                        f"SELECT * FROM main.batch_{kind}_json")


@pytest.fixture
def bench_day(tmp_path: Path) -> Path:
    """A small day of one creditor and 12 invoices."""
    inputs = Inputs(tmp_path / "pipeline.duckdb")
    inputs.creditor()
    inputs.invoices(valid_invoices(12))
    _batch_views(inputs.path)
    return inputs.path


@pytest.fixture
def two_creditors_day(tmp_path: Path) -> Path:
    """Two creditors, invoices of two lengths, payments and actions (some held)."""
    inputs = Inputs(tmp_path / "pipeline.duckdb")
    inputs.creditor()
    inputs.invoices(valid_invoices(12))
    for i in range(5):
        inputs.payment(f"PAY-{i}", f"INV-{i:04d}", None if i == 2 else f"L{i}")
    inputs.action("ACT-0", "INV-0000", "L0")
    inputs.action("ACT-1", "INV-0001", None)
    inputs.creditor("CR02", creditor_payload(creditorid="CR02-CREDITOR"))
    inputs.invoices(valid_invoices(9, prefix="INVOICE-WITH-A-LONGER-ID-"), creditor_id="CR02")
    inputs.sql("INSERT INTO batch_payments_json VALUES (?, 'PAY-X', 'INV-X', 'CR02', NULL, ?)",
               [DAY, payment_payload("PAY-X", "L9")])
    _batch_views(inputs.path)
    return inputs.path


def _pipeline_cut(path: Path, max_objects: int, max_bytes: int) -> list[bytes]:
    """The same day cut by the pipeline's chunker, with the floor's batch ids."""
    bodies: list[bytes] = []
    with duckdb.connect(str(path), read_only=True) as con:
        creditors = con.execute("SELECT creditor_id, payload FROM batch.batch_creditors_json "
                                "ORDER BY creditor_id").fetchall()
        for creditor_id, header in creditors:
            objects = [
                BatchObject(ObjectName(name), payload.encode(), source_id)
                for name, table, held in (("invoice", "invoices", "TRUE"),
                                          ("payment", "payments", "hold_reason IS NULL"),
                                          ("action", "actions", "hold_reason IS NULL"))
                for source_id, payload in con.execute(
                    f"SELECT {name}_id, payload FROM batch.batch_{table}_json "
                    f"WHERE creditor_id = ? AND {held}", [creditor_id]).fetchall()
            ]
            bodies += [chunk.body for chunk in chunk_objects(
                objects, max_objects=max_objects, max_bytes=max_bytes,
                batch_id=lambda number, _: f"floor-{number}", first_number=len(bodies),
                header=BatchObject(ObjectName.CREDITOR, header.encode(), creditor_id))]
    return bodies


@pytest.mark.parametrize("limit", ["objects", "bytes", "bytes exactly full", "a byte short"])
def test_the_floor_cuts_the_bodies_the_pipeline_cuts(
    two_creditors_day: Path, monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    """Byte for byte the chunker's bodies, whichever limit binds, to the byte (a body exactly
    ``max_bytes`` long, and one byte short of it), with bodies that span record batches
    (3 rows each) and held payments and actions left out."""
    monkeypatch.setattr(bench.floor, "ROWS_PER_BATCH", 3)
    with duckdb.connect(str(two_creditors_day), read_only=True) as con:
        invoice = con.execute("SELECT max(strlen(payload)) FROM batch.batch_invoices_json"
                              ).fetchone()[0]
        creditor = con.execute("SELECT max(strlen(payload)) FROM batch.batch_creditors_json"
                               ).fetchone()[0]
    # a body of the creditor and three invoices, as long as it is
    three = len(_pipeline_cut(two_creditors_day, 4, 8_000_000)[0])
    max_objects, max_bytes = {
        "objects": (4, 8_000_000),
        "bytes": (1000, 120 + creditor + invoice * 5 // 2),  # about two and a half invoices
        "bytes exactly full": (1000, three),
        "a byte short": (1000, three - 1),
    }[limit]
    expected = _pipeline_cut(two_creditors_day, max_objects, max_bytes)
    with duckdb.connect(str(two_creditors_day), read_only=True) as con:
        made = list(build_bodies(con, DAY.isoformat(), max_objects, max_bytes))
    assert [body for body, _ in made] == expected
    assert len(expected) >= 7  # the limit did cut: 21 invoices, 5 payments, 1 action
    assert sum(invoices for _, invoices in made) == 21
    if limit == "bytes exactly full":
        assert len(made[0][0]) == max_bytes and made[0][1] == 3
    if limit == "a byte short":
        assert made[0][1] == 2
    assert all(len(body) <= max_bytes for body in expected)


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
