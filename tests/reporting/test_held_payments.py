"""Held payments in the snapshot, on a small hand-made pipeline database (no job run)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb

from amili.pipeline.ledger import ensure_schema
from amili.reporting import queries as q
from amili.reporting.snapshot import publish_snapshot


def test_a_payment_held_until_its_invoice_is_acknowledged_is_listed_once_while_held(
    tmp_path: Path,
) -> None:
    pipeline = tmp_path / "pipeline.duckdb"
    with duckdb.connect(str(pipeline)) as con:
        ensure_schema(con)  # the amili.* tables exactly as the submission makes them
        con.execute("CREATE SCHEMA batch")
        con.execute("""CREATE TABLE batch.batch_payments AS SELECT * FROM (VALUES
            -- P1 held on day 1, carried to day 2 and held again: listed once, day 2
            (DATE '2026-11-01', 'P1', 'INV1', 'CR01', 'invoice not acknowledged',
             12.50::DECIMAL(18, 2), 'NOK'),
            (DATE '2026-11-02', 'P1', 'INV1', 'CR01', 'invoice not acknowledged',
             12.50::DECIMAL(18, 2), 'NOK'),
            -- P2 held on day 1, then sent and accepted on day 2: no longer held
            (DATE '2026-11-01', 'P2', 'INV2', 'CR01', 'invoice not acknowledged',
             7.00::DECIMAL(18, 2), 'NOK'),
            (DATE '2026-11-02', 'P2', 'INV2', 'CR01', NULL, 7.00::DECIMAL(18, 2), 'NOK')
            ) AS t(partition_date, payment_id, invoice_id, creditor_id, hold_reason,
                   amount, currency)""")
        con.execute("""INSERT INTO amili.submission_ledger
            (batchid, partition_date, chunk_number, content_hash, object_count, body_bytes,
             state, prepared_at)
            VALUES ('B2', DATE '2026-11-02', 1, 'h', 1, 10, 'accepted', now())""")
        con.execute("""INSERT INTO amili.ledger_arrays VALUES
            ('B2', 'payment', DATE '2026-11-02', 1, '["P2"]', repeat('0', 64), '[700]',
             '["NOK"]')""")
        con.execute("""INSERT INTO amili.ledger_object_answers VALUES
            ('B2', 'payment', 0, DATE '2026-11-02', 'accepted', 'CREATED', 'L2', NULL,
             NULL, NULL)""")
        con.execute("INSERT INTO amili.acknowledged_invoices VALUES ('INV2', 'A2', now())")

    summary = publish_snapshot(pipeline, tmp_path / "reporting.duckdb")
    assert "report.held_payments" in summary.row_counts
    assert "marts.rpt_reconciliation_daily" in summary.missing  # no marts in this database
    with q.connect_snapshot(summary.path) as con:
        held = q.held_payments(con, q.Filters(date(2026, 11, 1), date(2026, 11, 30)))
    assert [(r["day"], r["payment_id"], r["amount"]) for r in held] == [
        (date(2026, 11, 2), "P1", Decimal("12.50"))]
    assert held[0]["invoice_now_acknowledged"] is False
