"""The extract against real DuckDB files made by the demo warehouse generator."""

from __future__ import annotations

import shutil
from datetime import UTC, date, timedelta
from pathlib import Path

import duckdb
import pytest
from dagster import materialize

from amili.pipeline.extract import RAW_TABLES, WarehouseContractError, extract_window
from amili.pipeline.raw_types import widest_type
from amili.warehouse import export_parquet, generate_demo_warehouse
from assets.extract import receivables_extract
from orchestration.partitions import daily_partitions, window_days
from orchestration.resources import PipelineResource

END = date(2026, 11, 24)
DAYS = 4


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wh") / "warehouse.duckdb"
    generate_demo_warehouse(path, days=DAYS, invoices_per_day=30, end_date=END, seed=7)
    return path


# source_row only tells the rows of one extract apart: its numbering is not part of the data

def raw_rows(db: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            f"SELECT * EXCLUDE (extracted_at, source_row) FROM raw.{table} ORDER BY ALL"
        ).fetchall()


def test_extract_takes_exactly_the_eligible_invoices(warehouse: Path, tmp_path: Path) -> None:
    db = tmp_path / "pipeline.duckdb"
    first = END - timedelta(days=DAYS - 1)
    summary = extract_window(db, warehouse, first, END + timedelta(days=1))
    # the rule, restated independently in Python over the warehouse rows
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            """SELECT i.invoice_id, i.status, i.remaining_amount, i.disputed, i.due_date,
                      c.collection_delay_days, i.handed_over_to_collection_at
               FROM invoices i JOIN creditors c USING (creditor_id)"""
        ).fetchall()
    expected = {
        (invoice_id, due + timedelta(days=delay))
        for invoice_id, status, remaining, disputed, due, delay, handed_over in rows
        if status == "OPEN" and remaining > 0 and not disputed and handed_over is None
        and first <= due + timedelta(days=delay) <= END
    }
    with duckdb.connect(str(db), read_only=True) as con:
        got = set(con.execute("SELECT invoice_id, partition_date FROM raw.invoices").fetchall())
    assert got == expected
    assert summary.row_counts["invoices"] == len(expected) == DAYS * 30
    assert sum(summary.eligible_amount_by_currency.values()) > 0
    # every invoice's debtor and creditor came along, once per day
    with duckdb.connect(str(db), read_only=True) as con:
        orphans = con.execute(
            """SELECT count(*) FROM raw.invoices i
               LEFT JOIN raw.customers c USING (partition_date, customer_id)
               LEFT JOIN raw.creditors k ON k.partition_date = i.partition_date
                                         AND k.creditor_id = i.creditor_id
               WHERE c.customer_id IS NULL OR k.creditor_id IS NULL"""
        ).fetchone()[0]
        dupes = con.execute(
            """SELECT count(*) FROM (SELECT partition_date, customer_id FROM raw.customers
               GROUP BY ALL HAVING count(*) > 1)"""
        ).fetchone()[0]
    assert orphans == 0
    assert dupes == 0


def test_paid_since_collection_day_comes_from_the_same_snapshot_as_the_balance(
    warehouse: Path, tmp_path: Path
) -> None:
    """remaining_amount is the balance now, which nets payments of days after the window;
    paid_since_collection_day sums those too, whatever window is extracted, so the balance
    at hand-over (their sum) is the same for a day extracted alone or with later days."""
    first = END - timedelta(days=DAYS - 1)
    alone, together = tmp_path / "alone.duckdb", tmp_path / "together.duckdb"
    extract_window(alone, warehouse, first, first + timedelta(days=1))
    extract_window(together, warehouse, first, END + timedelta(days=1))
    sql = """SELECT invoice_id, remaining_amount + paid_since_collection_day
             FROM raw.invoices WHERE partition_date = ? ORDER BY ALL"""
    with duckdb.connect(str(alone), read_only=True) as con:
        balances = con.execute(sql, [first]).fetchall()
    with duckdb.connect(str(together), read_only=True) as con:
        assert con.execute(sql, [first]).fetchall() == balances
    # restated over the warehouse: every payment registered on an Oslo day >= the
    # invoice's collection day, including days the extract of `alone` did not take
    with duckdb.connect(str(warehouse), read_only=True) as con:
        expected = dict(con.execute(
            """SELECT i.invoice_id, sum(p.amount)
               FROM invoices i JOIN creditors c USING (creditor_id)
               JOIN payments p USING (invoice_id)
               WHERE timezone('Europe/Oslo', p.registered_at)::DATE
                     >= i.due_date + c.collection_delay_days
               GROUP BY ALL""").fetchall())
    with duckdb.connect(str(alone), read_only=True) as con:
        paid = dict(con.execute("SELECT invoice_id, paid_since_collection_day FROM raw.invoices"
                                ).fetchall())
    assert any(paid.values()), "the demo data has payments after the hand-over"
    assert paid == {invoice: expected.get(invoice, 0) for invoice in paid}


def test_rerunning_a_window_replaces_and_never_duplicates(
    warehouse: Path, tmp_path: Path
) -> None:
    db = tmp_path / "pipeline.duckdb"
    extract_window(db, warehouse, END - timedelta(days=3), END + timedelta(days=1))
    before = {table: raw_rows(db, table) for table in RAW_TABLES}
    # one day again, then the whole window again
    extract_window(db, warehouse, END, END + timedelta(days=1))
    extract_window(db, warehouse, END - timedelta(days=3), END + timedelta(days=1))
    after = {table: raw_rows(db, table) for table in RAW_TABLES}
    assert after == before
    assert all(before[table] for table in ("invoices", "invoice_lines", "payments"))


def test_a_daylight_saving_day_holds_exactly_that_oslo_day(tmp_path: Path) -> None:
    """2026-03-29 has 23 hours in Oslo; payments at its edges land on the right day."""
    warehouse = tmp_path / "warehouse.duckdb"
    generate_demo_warehouse(warehouse, days=2, invoices_per_day=5, end_date=date(2026, 3, 30))
    registered = {
        "PAY-EDGE-1": ("2026-03-28 22:59:59+00", date(2026, 3, 28)),  # 23:59:59 CET
        "PAY-EDGE-2": ("2026-03-28 23:00:00+00", date(2026, 3, 29)),  # 00:00 CET
        "PAY-EDGE-3": ("2026-03-29 21:59:59+00", date(2026, 3, 29)),  # 23:59:59 CEST
        "PAY-EDGE-4": ("2026-03-29 22:00:00+00", date(2026, 3, 30)),  # 00:00 CEST
    }
    with duckdb.connect(str(warehouse)) as con:
        invoice_id = con.execute("SELECT min(invoice_id) FROM invoices").fetchone()[0]
        for payment_id, (at, _) in registered.items():
            con.execute(
                """INSERT INTO payments BY NAME SELECT ? AS payment_id, ? AS invoice_id,
                   ?::TIMESTAMPTZ::DATE AS payment_date, ?::TIMESTAMPTZ AS registered_at,
                   10.00 AS amount, 'NOK' AS currency, 'BANK' AS method, NULL AS kid""",
                [payment_id, invoice_id, at, at],
            )
    # the partition's own window, as Dagster computes it
    window = daily_partitions.time_window_for_partition_key("2026-03-29")
    start, end = window_days(window)
    assert (start, end) == (date(2026, 3, 29), date(2026, 3, 30))
    assert window.end.astimezone(UTC) - window.start.astimezone(UTC) == timedelta(hours=23)
    db = tmp_path / "pipeline.duckdb"
    extract_window(db, warehouse, start, end)
    with duckdb.connect(str(db), read_only=True) as con:
        edge = {row[0] for row in con.execute(
            "SELECT payment_id FROM raw.payments WHERE payment_id LIKE 'PAY-EDGE-%'"
        ).fetchall()}
        outside = con.execute(
            "SELECT count(*) FROM raw.payments WHERE partition_date <> DATE '2026-03-29'"
        ).fetchone()[0]
    assert edge == {p for p, (_, day) in registered.items() if day == date(2026, 3, 29)}
    assert outside == 0


def test_a_parquet_folder_is_read_like_the_duckdb_file(warehouse: Path, tmp_path: Path) -> None:
    folder = tmp_path / "parquet"
    export_parquet(warehouse, folder)
    from_file, from_folder = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    extract_window(from_file, warehouse, END - timedelta(days=1), END + timedelta(days=1))
    extract_window(from_folder, folder, END - timedelta(days=1), END + timedelta(days=1))
    for table in RAW_TABLES:
        assert raw_rows(from_file, table) == raw_rows(from_folder, table), table


def test_a_missing_warehouse_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="amili demo-warehouse"):
        extract_window(tmp_path / "p.duckdb", tmp_path / "nope.duckdb", END, END + timedelta(1))
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileNotFoundError, match=r"invoices\.parquet"):
        extract_window(tmp_path / "p.duckdb", tmp_path / "folder", END, END + timedelta(1))


def test_extract_materializes_through_dagster(warehouse: Path, tmp_path: Path) -> None:
    db = tmp_path / "pipeline.duckdb"
    result = materialize(
        [receivables_extract],
        partition_key=END.isoformat(),
        resources={"pipeline": PipelineResource(warehouse=str(warehouse), pipeline_db=str(db))},
    )
    assert result.success
    events = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert set(events) == {f"raw/{table}" for table in RAW_TABLES}
    assert events["raw/invoices"]["dagster/row_count"].value == 30
    amounts = events["raw/invoices"]["eligible_amount"].value.records
    assert "NOK" in [record.data["currency"] for record in amounts]
    with duckdb.connect(str(db), read_only=True) as con:
        days = con.execute("SELECT DISTINCT partition_date FROM raw.invoices").fetchall()
    assert days == [(END,)]


def test_a_renamed_warehouse_column_fails_at_once_in_the_warehouses_terms(
    warehouse: Path, tmp_path: Path
) -> None:
    renamed = tmp_path / "renamed.duckdb"
    shutil.copy(warehouse, renamed)
    with duckdb.connect(str(renamed)) as con:
        con.execute("ALTER TABLE invoices RENAME amount TO total")
    db = tmp_path / "pipeline.duckdb"
    with pytest.raises(WarehouseContractError) as caught:
        extract_window(db, renamed, END, END + timedelta(days=1))
    message = str(caught.value)
    assert "the warehouse table invoices has no column amount" in message
    assert "total" in message  # what it has instead
    with duckdb.connect(str(db), read_only=True) as con:  # nothing was written
        assert con.execute("SELECT count(*) FROM information_schema.tables "
                           "WHERE table_schema = 'raw'").fetchone() == (0,)


def test_a_payment_carries_its_warehouse_invoices_creditor(
    warehouse: Path, tmp_path: Path
) -> None:
    """invoice_creditor_id is the creditor the warehouse gives the payment's invoice, also of
    an invoice never handed over (not in raw.invoices); NULL for an invoice the warehouse
    does not have, and for one it repeats with different creditors."""
    source = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse, source)
    with duckdb.connect(str(source)) as con:
        creditors = [r[0] for r in con.execute(
            "SELECT creditor_id FROM creditors ORDER BY creditor_id").fetchall()]
        payment, invoice = con.execute(
            """SELECT payment_id, invoice_id FROM payments
               WHERE timezone('Europe/Oslo', registered_at)::DATE = ?
               ORDER BY payment_id LIMIT 1""", [END]).fetchone()
        # a payment of an invoice the warehouse does not have
        con.execute("""INSERT INTO payments SELECT * REPLACE (
                           'P-UNKNOWN' AS payment_id, 'NO-SUCH-INVOICE' AS invoice_id)
                       FROM payments WHERE payment_id = ?""", [payment])
        # a payment of an invoice the warehouse repeats with another creditor
        twin = con.execute("SELECT invoice_id FROM invoices WHERE invoice_id <> ? "
                           "ORDER BY invoice_id LIMIT 1", [invoice]).fetchone()[0]
        con.execute("""INSERT INTO invoices SELECT * REPLACE (
                           (SELECT min(creditor_id) FROM creditors
                            WHERE creditor_id <> i.creditor_id) AS creditor_id)
                       FROM invoices i WHERE invoice_id = ?""", [twin])
        con.execute("""INSERT INTO payments SELECT * REPLACE (
                           'P-TWIN' AS payment_id, ? AS invoice_id)
                       FROM payments WHERE payment_id = ?""", [twin, payment])
        expected = dict(con.execute(
            """SELECT p.payment_id, i.creditor_id FROM payments p JOIN invoices i
               USING (invoice_id)
               WHERE timezone('Europe/Oslo', p.registered_at)::DATE = ?
                 AND p.invoice_id <> ?""", [END, twin]).fetchall())
    assert len(creditors) > 1
    db = tmp_path / "pipeline.duckdb"
    extract_window(db, source, END, END + timedelta(days=1))
    with duckdb.connect(str(db), read_only=True) as con:
        got = dict(con.execute(
            "SELECT payment_id, invoice_creditor_id FROM raw.payments").fetchall())
        not_handed_over = con.execute(
            """SELECT count(*) FROM raw.payments
               WHERE invoice_id NOT IN (SELECT invoice_id FROM raw.invoices)
                 AND invoice_creditor_id IS NOT NULL""").fetchone()[0]
    assert got.pop("P-UNKNOWN") is None
    assert got.pop("P-TWIN") is None  # two creditors: no guess
    assert got == expected
    assert not_handed_over > 0, "the day has payments of invoices never handed over"


def test_an_older_raw_payments_table_gains_invoice_creditor_id(
    warehouse: Path, tmp_path: Path
) -> None:
    db = tmp_path / "pipeline.duckdb"
    extract_window(db, warehouse, END, END + timedelta(days=1))
    with duckdb.connect(str(db)) as con:
        con.execute("ALTER TABLE raw.payments DROP COLUMN invoice_creditor_id")
    extract_window(db, warehouse, END, END + timedelta(days=1))
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*), count(invoice_creditor_id) FROM raw.payments "
                           "WHERE invoice_known").fetchone()[0] > 0
        assert con.execute("SELECT count(*) FROM raw.payments WHERE invoice_known "
                           "AND invoice_creditor_id IS NULL").fetchone() == (0,)


def test_raw_columns_widen_to_a_warehouse_type_that_grew_and_take_new_columns(
    warehouse: Path, tmp_path: Path
) -> None:
    """The warehouse migrates its money columns to three decimals and gains a column after
    the first extract: the next day's third decimal reaches the raw table exactly (not
    rounded on insert into the first extract's DECIMAL(18,2)), earlier rows keep their
    values and the new column is carried."""
    source = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse, source)
    db = tmp_path / "pipeline.duckdb"
    first_day = END - timedelta(days=1)
    extract_window(db, source, first_day, END)
    before = raw_rows(db, "invoices")
    extract_window(tmp_path / "probe.duckdb", source, END, END + timedelta(days=1))
    (invoice_id,) = duckdb.connect(str(tmp_path / "probe.duckdb"), read_only=True).execute(
        "SELECT min(invoice_id) FROM raw.invoices").fetchone()
    with duckdb.connect(str(source)) as con:
        con.execute("ALTER TABLE invoices ALTER remaining_amount TYPE DECIMAL(18,3)")
        con.execute("ALTER TABLE invoices ADD COLUMN cost_centre VARCHAR")
        con.execute("UPDATE invoices SET remaining_amount = 100.005, cost_centre = 'K-7' "
                    "WHERE invoice_id = ?", [invoice_id])
    summary = extract_window(db, source, END, END + timedelta(days=1))
    assert summary.raw_columns_changed == {"invoices": [
        "remaining_amount DECIMAL(18,2) -> DECIMAL(19,3)", "cost_centre added as VARCHAR"]}
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute(
            "SELECT remaining_amount::VARCHAR, cost_centre FROM raw.invoices "
            "WHERE invoice_id = ?", [invoice_id]).fetchone() == ("100.005", "K-7")
        earlier = con.execute(
            "SELECT * EXCLUDE (extracted_at, source_row, cost_centre) FROM raw.invoices "
            "WHERE partition_date < ? ORDER BY ALL", [END]).fetchall()
    assert earlier == before


@pytest.mark.parametrize(("held", "incoming", "wider"), [
    ("DECIMAL(18,2)", "DECIMAL(18,2)", "DECIMAL(18,2)"),
    ("DECIMAL(18,2)", "DECIMAL(18,3)", "DECIMAL(19,3)"),  # the 16 integer digits stay
    ("DECIMAL(12,2)", "DECIMAL(18,3)", "DECIMAL(18,3)"),
    ("DECIMAL(18,3)", "DECIMAL(18,2)", "DECIMAL(19,3)"),  # 16 integer digits beside 3
    ("DECIMAL(38,2)", "DECIMAL(38,3)", "DECIMAL(38,3)"),  # DuckDB's own rule keeps (38,2)
    ("DECIMAL(18,2)", "BIGINT", "DECIMAL(21,2)"),
    ("INTEGER", "DECIMAL(18,4)", "DECIMAL(18,4)"),
    ("INTEGER", "BIGINT", "BIGINT"),
    ("DATE", "TIMESTAMP", "TIMESTAMP"),
])
def test_widest_type_never_loses_a_digit(held: str, incoming: str, wider: str) -> None:
    with duckdb.connect() as con:
        assert widest_type(con, held, incoming) == wider
