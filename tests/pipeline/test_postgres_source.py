"""PostgreSQL as the warehouse, against a real server (tests/postgres_server.py).

The same dirty demo warehouse is loaded into a DuckDB file and into PostgreSQL; the same days
are extracted from both and must give the same raw rows, while only the window's rows cross
the wire. The contract, the login failures and the password's absence are checked on both.
"""

from __future__ import annotations

import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import psycopg
import pytest

from amili.pipeline.extract import (
    RAW_TABLES,
    REQUIRED_COLUMNS,
    WarehouseContractError,
    extract_window,
)
from amili.pipeline.postgres_source import (
    PostgresLocation,
    WarehouseConnectionError,
    WarehouseQueryError,
    mask_url,
)
from amili.warehouse import export_parquet, generate_demo_warehouse
from amili.warehouse.dirt import add_dirt
from amili.warehouse.postgres import load_into_postgres
from tests.postgres_server import PostgresServer

END = date(2026, 11, 24)
DAYS = 4
FIRST = END - timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def duck_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo warehouse with every kind of dirt (duplicates, third decimals, amounts
    beyond range, unknown invoices...), so both paths must agree on the hard rows too."""
    path = tmp_path_factory.mktemp("pgwh") / "warehouse.duckdb"
    generate_demo_warehouse(path, days=DAYS, invoices_per_day=40, end_date=END, seed=11)
    add_dirt(path, share=0.2, seed=5)
    return path


@pytest.fixture(scope="module")
def pg_warehouse(postgres_server: PostgresServer, duck_warehouse: Path) -> str:
    url = postgres_server.create_database("amili_wh")
    load_into_postgres(duck_warehouse, url + "?schema=erp")
    return url + "?schema=erp"


def raw_rows(db: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            f"SELECT * EXCLUDE (extracted_at, source_row) FROM raw.{table} ORDER BY ALL"
        ).fetchall()


def raw_types(db: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(f"DESCRIBE raw.{table}").fetchall()


@pytest.mark.parametrize("window", [(END, END + timedelta(days=1)),
                                    (FIRST, FIRST + timedelta(days=1)),
                                    (FIRST, END + timedelta(days=1))],
                         ids=["last day", "first day (later payments)", "four days"])
def test_the_same_window_from_postgres_and_duckdb_gives_the_same_raw_rows(
    duck_warehouse: Path, pg_warehouse: str, tmp_path: Path, window: tuple[date, date]
) -> None:
    from_duck, from_pg = tmp_path / "duck.duckdb", tmp_path / "pg.duckdb"
    a = extract_window(from_duck, duck_warehouse, *window)
    b = extract_window(from_pg, pg_warehouse, *window)
    assert a.row_counts == b.row_counts
    assert a.row_counts["invoices"] > 0
    # payments of the window, or (first day) those of its invoices registered later on
    assert b.rows_read["payments"] > 0
    assert a.eligible_amount_by_currency == b.eligible_amount_by_currency
    for table in RAW_TABLES:
        assert raw_types(from_duck, table) == raw_types(from_pg, table), table
        assert raw_rows(from_duck, table) == raw_rows(from_pg, table), table
    assert a.rows_read == {} and set(b.rows_read) == set(RAW_TABLES)


def test_only_the_windows_rows_are_read_from_the_server(
    pg_warehouse: str, tmp_path: Path
) -> None:
    """The counts fetched per table equal what the window needs, restated here in plain SQL on
    the server (Oslo days through AT TIME ZONE, no index-friendly rewriting), and are far
    below the tables' sizes: no table is copied whole."""
    day = FIRST  # its eligible invoices have payments registered on later days too
    summary = extract_window(tmp_path / "p.duckdb", pg_warehouse, day, day + timedelta(days=1))
    oslo = "(%s AT TIME ZONE 'Europe/Oslo')::date"
    eligible = """SELECT i.invoice_id, i.customer_id, i.creditor_id,
                          (i.due_date + coalesce(c.collection_delay_days, 14)) AS cday
                   FROM erp.invoices i JOIN erp.creditors c USING (creditor_id)
                   WHERE i.status = 'OPEN' AND i.remaining_amount > 0
                     AND NOT coalesce(i.disputed, false)
                     AND i.handed_over_to_collection_at IS NULL
                     AND i.due_date + coalesce(c.collection_delay_days, 14) = %(d)s"""
    refs = f"""SELECT invoice_id FROM erp.payments WHERE {oslo % 'registered_at'} = %(d)s
               UNION SELECT invoice_id FROM erp.case_actions
               WHERE {oslo % 'requested_at'} = %(d)s"""
    expected_sql = {
        "invoices": f"""SELECT count(*) FROM erp.invoices i WHERE i.invoice_id IN (
                            SELECT invoice_id FROM ({eligible}) e UNION {refs})""",
        "invoice_lines": f"""SELECT count(*) FROM erp.invoice_lines
                             WHERE invoice_id IN (SELECT invoice_id FROM ({eligible}) e)""",
        "reminders": f"""SELECT count(*) FROM erp.reminders
                         WHERE invoice_id IN (SELECT invoice_id FROM ({eligible}) e)""",
        "payments": f"""SELECT count(*) FROM erp.payments p
                        WHERE {oslo % 'registered_at'} = %(d)s OR EXISTS (
                            SELECT 1 FROM ({eligible}) e WHERE e.invoice_id = p.invoice_id
                            AND {oslo % 'p.registered_at'} >= e.cday)""",
        "case_actions": f"""SELECT count(*) FROM erp.case_actions
                            WHERE {oslo % 'requested_at'} = %(d)s""",
        "customers": f"""SELECT count(*) FROM erp.customers WHERE customer_id IN (
                             SELECT customer_id FROM ({eligible}) e UNION
                             SELECT customer_id FROM erp.invoices
                             WHERE invoice_id IN ({refs}))""",
    }
    url = pg_warehouse.split("?")[0]
    with psycopg.connect(url) as con:
        for table, sql in expected_sql.items():
            expected = con.execute(sql, {"d": day}).fetchone()[0]
            assert summary.rows_read[table] == expected, table
        for table in ("invoices", "invoice_lines", "reminders", "payments"):
            total = con.execute(f"SELECT count(*) FROM erp.{table}").fetchone()[0]
            assert summary.rows_read[table] < total / 2, table
    assert summary.rows_read["invoices"] >= summary.row_counts["invoices"] > 0


def _break(kind: str, warehouse: Path | str, duck_copy: Path) -> Path | str:
    """A warehouse whose invoices.amount is text and payments.registered_at missing, as a
    DuckDB file, a Parquet folder or a PostgreSQL schema."""
    if kind in ("duckdb", "parquet"):
        shutil.copy(warehouse, duck_copy)
        with duckdb.connect(str(duck_copy)) as con:
            con.execute("ALTER TABLE invoices ALTER amount TYPE VARCHAR")
            con.execute("ALTER TABLE payments DROP COLUMN registered_at")
        if kind == "parquet":
            export_parquet(duck_copy, duck_copy.with_suffix(""))
            return duck_copy.with_suffix("")
        return duck_copy
    url = str(warehouse)
    with psycopg.connect(url.split("?")[0], autocommit=True) as con:
        con.execute("DROP SCHEMA IF EXISTS broken CASCADE")
        con.execute("CREATE SCHEMA broken")
        for table in RAW_TABLES:
            con.execute(f"CREATE TABLE broken.{table} AS SELECT * FROM erp.{table}")
        con.execute("ALTER TABLE broken.invoices ALTER amount TYPE text")
        con.execute("ALTER TABLE broken.payments DROP COLUMN registered_at")
    return url.split("?")[0] + "?schema=broken"


@pytest.mark.parametrize("kind", ["duckdb", "parquet", "postgres"])
def test_a_wrong_type_and_a_missing_column_fail_in_the_warehouses_terms(
    kind: str, duck_warehouse: Path, pg_warehouse: str, tmp_path: Path
) -> None:
    source = _break(kind, pg_warehouse if kind == "postgres" else duck_warehouse,
                    tmp_path / "broken.duckdb")
    db = tmp_path / "pipeline.duckdb"
    with pytest.raises(WarehouseContractError) as caught:
        extract_window(db, source, END, END + timedelta(days=1))
    message = str(caught.value)
    assert "the warehouse table invoices column amount is text" in message
    assert "the pipeline reads it as an exact number" in message
    assert "the warehouse table payments has no column registered_at" in message
    assert not db.exists() or duckdb.connect(str(db), read_only=True).execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw'"
    ).fetchone() == (0,)
    if kind == "postgres":
        password = PostgresLocation.parse(source).uri.split(":")[2].split("@")[0]
        assert password not in message and "***" in message


def test_a_wrong_password_or_an_unreachable_server_fails_fast_without_the_password(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    wrong = f"postgresql://{postgres_server.user}:NotThePassword42@127.0.0.1:" \
            f"{postgres_server.port}/amili_wh"
    nowhere = "postgresql://someone:Secret99@127.0.0.1:9/amili_wh"  # discard port: refused
    for url, words in ((wrong, "password authentication failed"),
                       (nowhere, "Connection refused")):
        started = time.perf_counter()
        with pytest.raises(WarehouseConnectionError) as caught:
            extract_window(tmp_path / "p.duckdb", url, END, END + timedelta(days=1))
        assert time.perf_counter() - started < 5
        message = str(caught.value)
        assert words in message and "cannot connect to the warehouse" in message
        assert "NotThePassword42" not in message and "Secret99" not in message
        assert mask_url(url) in message
    assert not (tmp_path / "p.duckdb").exists()  # failed before the pipeline DB was opened


def test_the_password_may_come_from_pgpassword(
    postgres_server: PostgresServer, pg_warehouse: str, duck_warehouse: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    monkeypatch.setenv("PGHOST", postgres_server.host)
    monkeypatch.setenv("PGPORT", str(postgres_server.port))
    monkeypatch.setenv("PGUSER", postgres_server.user)
    summary = extract_window(tmp_path / "p.duckdb", "postgresql:///amili_wh?schema=erp",
                             END, END + timedelta(days=1))
    reference = extract_window(tmp_path / "d.duckdb", duck_warehouse, END,
                               END + timedelta(days=1))
    assert summary.row_counts == reference.row_counts


def test_masked_urls_hide_the_password_and_keep_the_rest() -> None:
    assert mask_url("postgresql://amili:s3cr%40t@db.example:5432/erp?schema=ar&sslmode=require"
                    ) == "postgresql://amili:***@db.example:5432/erp?schema=ar&sslmode=require"
    assert mask_url("postgres://u@h/db?password=abc") == "postgres://u@h/db?password=***"
    assert mask_url("data/warehouse.duckdb") == "data/warehouse.duckdb"
    location = PostgresLocation.parse("postgresql://u:p@h/db?schema=erp&sslmode=disable")
    assert (location.uri, location.schema) == (
        "postgresql://u:p@h/db?sslmode=disable&connect_timeout=10", "erp")
    assert PostgresLocation.parse("postgresql:///db?connect_timeout=3").uri == \
        "postgresql:///db?connect_timeout=3"
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        PostgresLocation.parse('postgresql://u:p@h/db?schema=x"; DROP TABLE y; --')


def test_demo_warehouse_command_loads_the_demo_into_postgres(
    postgres_server: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from amili.cli import main

    url = postgres_server.create_database("amili_cli") + "?schema=demo"
    path = tmp_path / "demo.duckdb"
    assert main(["demo-warehouse", "--days", "2", "--invoices-per-day", "20", "--path",
                 str(path), "--postgres", url]) == 0
    out = capsys.readouterr().out
    assert postgres_server.password not in out
    assert f"Loaded into {mask_url(url)}" in out
    with duckdb.connect(str(path), read_only=True) as con:
        duck = {(t, c): typ for t, c, typ in con.execute(
            """SELECT table_name, column_name, data_type FROM information_schema.columns
               WHERE table_schema = 'main'""").fetchall()}
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in RAW_TABLES}
    with psycopg.connect(url.split("?")[0]) as con:
        pg = {(t, c): typ for t, c, typ in con.execute(
            """SELECT table_name, column_name, CASE WHEN data_type = 'numeric'
                      THEN format('DECIMAL(%s,%s)', numeric_precision, numeric_scale)
                      ELSE upper(data_type) END
               FROM information_schema.columns WHERE table_schema = 'demo'""").fetchall()}
        indexed = {row[0] for row in con.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'demo'").fetchall()}
        pg_counts = {t: con.execute(f"SELECT count(*) FROM demo.{t}").fetchone()[0]
                     for t in RAW_TABLES}
    same_names = {"VARCHAR": "TEXT", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP WITH TIME ZONE"}
    assert set(pg) == set(duck)
    for key, typ in duck.items():
        assert pg[key] == same_names.get(typ, typ), key
    assert pg_counts == counts
    assert any("payments USING btree (registered_at)" in d for d in indexed)
    assert any("invoices USING btree (due_date)" in d for d in indexed)


def _copy_with_loose_numeric(con: psycopg.Connection, schema: str) -> None:
    """The demo's tables copied into ``schema``, with invoices.remaining_amount a
    ``numeric`` without precision or scale."""
    con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    con.execute(f"CREATE SCHEMA {schema}")
    for table in RAW_TABLES:
        con.execute(f"CREATE TABLE {schema}.{table} AS SELECT * FROM erp.{table}")
    con.execute(f"ALTER TABLE {schema}.invoices ALTER remaining_amount TYPE numeric")

def test_an_unconstrained_numeric_arrives_exact(pg_warehouse: str, tmp_path: Path) -> None:
    """``numeric`` without precision holds any number of decimals: each arrives as it is, so
    the quarantine still sees a third (or twelfth) decimal."""
    url = pg_warehouse.split("?")[0]
    with psycopg.connect(url, autocommit=True) as con:
        _copy_with_loose_numeric(con, "loose")
        before = tmp_path / "before.duckdb"
        extract_window(before, url + "?schema=loose", END, END + timedelta(days=1))
        (invoice_id,) = duckdb.connect(str(before), read_only=True).execute(
            "SELECT min(invoice_id) FROM raw.invoices").fetchone()
        con.execute("UPDATE loose.invoices SET remaining_amount = 123.456789012345 "
                    "WHERE invoice_id = %s", (invoice_id,))
    db = tmp_path / "p.duckdb"
    extract_window(db, url + "?schema=loose", END, END + timedelta(days=1))
    with duckdb.connect(str(db), read_only=True) as con:
        (value,) = con.execute("SELECT remaining_amount FROM raw.invoices WHERE invoice_id = ?",
                               [invoice_id]).fetchone()
    assert str(value) == "123.456789012345"


def test_a_later_day_with_more_decimals_keeps_them_in_the_same_pipeline_file(
    pg_warehouse: str, tmp_path: Path
) -> None:
    """An unconstrained ``numeric`` arrives as DECIMAL(38, <the window's decimals>): a day of
    two decimals makes the raw column DECIMAL(38, 2). A later day's third decimal must still
    reach the raw table exactly (widened), not be rounded away on insert."""
    url = pg_warehouse.split("?")[0]
    db = tmp_path / "p.duckdb"
    with psycopg.connect(url, autocommit=True) as con:
        _copy_with_loose_numeric(con, "later")
        con.execute("UPDATE later.invoices SET remaining_amount = round(remaining_amount, 2)")
        extract_window(db, url + "?schema=later", END - timedelta(days=1), END)
        assert ("remaining_amount", "DECIMAL(38,2)") in {
            (name, type_name) for name, type_name, *_ in raw_types(db, "invoices")}
        extract_window(tmp_path / "probe.duckdb", url + "?schema=later", END,
                       END + timedelta(days=1))
        (invoice_id,) = duckdb.connect(str(tmp_path / "probe.duckdb"), read_only=True).execute(
            "SELECT min(invoice_id) FROM raw.invoices").fetchone()
        con.execute("UPDATE later.invoices SET remaining_amount = 123.456 "
                    "WHERE invoice_id = %s", (invoice_id,))
    before = raw_rows(db, "invoices")
    summary = extract_window(db, url + "?schema=later", END, END + timedelta(days=1))
    assert summary.raw_columns_changed == {
        "invoices": ["remaining_amount DECIMAL(38,2) -> DECIMAL(38,3)"]}
    with duckdb.connect(str(db), read_only=True) as con:
        (value,) = con.execute("SELECT remaining_amount FROM raw.invoices WHERE invoice_id = ?",
                               [invoice_id]).fetchone()
        earlier = con.execute(
            "SELECT * EXCLUDE (extracted_at, source_row) FROM raw.invoices "
            "WHERE partition_date < ? ORDER BY ALL", [END]).fetchall()
    assert str(value) == "123.456"
    assert earlier == before  # the earlier day's values are unchanged

def test_a_reader_with_select_only_works_and_one_without_is_told_which_table(
    postgres_server: PostgresServer, pg_warehouse: str, tmp_path: Path
) -> None:
    url = pg_warehouse.split("?")[0]
    with psycopg.connect(url, autocommit=True) as con:
        for role in ("amili_reader", "amili_stranger"):
            if con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                con.execute(f"DROP OWNED BY {role}")
                con.execute(f"DROP ROLE {role}")
            con.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'Reader-Pass-1'")
            con.execute(f"GRANT USAGE ON SCHEMA erp TO {role}")
        con.execute("GRANT SELECT ON ALL TABLES IN SCHEMA erp TO amili_reader")
        con.execute("GRANT SELECT ON erp.invoices, erp.creditors TO amili_stranger")
    server = f"127.0.0.1:{postgres_server.port}/amili_wh?schema=erp"
    summary = extract_window(tmp_path / "r.duckdb",
                             f"postgresql://amili_reader:Reader-Pass-1@{server}",
                             END, END + timedelta(days=1))
    assert summary.row_counts["invoices"] > 0
    stranger = f"postgresql://amili_stranger:Reader-Pass-1@{server}"
    with pytest.raises(WarehouseContractError) as caught:  # the catalogue hides the rest
        extract_window(tmp_path / "s.duckdb", stranger, END, END + timedelta(days=1))
    message = str(caught.value)
    assert "no table payments (nothing named payments in schema erp that this login may " \
        "read)" in message
    assert "invoices" not in message.split(":", 3)[-1].split(".")[0]  # that one it may read
    assert "Reader-Pass-1" not in message
    # the required columns of invoices readable, its updated_at not: the contract holds, but
    # the extract reads whole rows (the raw tables mirror the warehouse's), so it fails there
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("REVOKE SELECT ON erp.invoices FROM amili_stranger")
        con.execute("GRANT SELECT ON ALL TABLES IN SCHEMA erp TO amili_stranger")
        con.execute("REVOKE SELECT ON erp.invoices FROM amili_stranger")
        columns = ", ".join(REQUIRED_COLUMNS["invoices"])
        con.execute(f"GRANT SELECT ({columns}) ON erp.invoices TO amili_stranger")
    with pytest.raises(WarehouseQueryError) as failed:
        extract_window(tmp_path / "s2.duckdb", stranger, END, END + timedelta(days=1))
    message = str(failed.value)
    assert "reading the window's invoices from the warehouse schema erp failed" in message
    assert "permission denied for table invoices" in message
    assert "Reader-Pass-1" not in message
