"""The extract of one day from PostgreSQL against the same day from the DuckDB file, and the
ADBC connector's read rate against ``COPY (query) TO STDOUT`` through psycopg.

Generates the demo warehouse (``--invoices`` eligible invoices a day, ``--days`` days, so
the tables hold more than the day), loads it into a throwaway PostgreSQL server started from
``initdb``/``pg_ctl`` (tests/postgres_server.py; ``--url`` uses a server of yours instead),
then, in interleaved rounds:

* ``extract duckdb``: :func:`extract_window` of the last day from the DuckDB file;
* ``extract postgres``: the same day from PostgreSQL (pushdown, Arrow, DuckDB over it);
* ``adbc``: the seven window queries alone, fetched as Arrow tables (what the extract reads);
* ``copy``: the same seven queries (parameters written in as literals, since ``COPY`` takes
  none) through ``COPY (...) TO STDOUT``, bytes read and dropped: the floor for reading
  rows out of PostgreSQL.

Usage: ``uv run --frozen python -m bench.warehouse_postgres [--invoices 100000] [--days 3]
[--rounds 3] [--url postgresql://...]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
import psycopg

from amili.pipeline.extract import ELIGIBILITY_RULE, extract_window
from amili.pipeline.postgres_source import PostgresLocation, fetch_window, window_queries
from amili.warehouse import generate_demo_warehouse
from amili.warehouse.postgres import load_into_postgres
from bench.common import DAY, table


@contextmanager
def _server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from tests.postgres_server import running_postgres

    with running_postgres() as server:
        yield server.create_database("amili_bench")


def _copy_rows(uri: str, schema: str, day: date) -> tuple[int, int]:
    """Rows and bytes of the seven window queries through COPY TO STDOUT."""
    literals = {"$1": f"'{day.isoformat()}'", "$2": f"'{(day + timedelta(days=1)).isoformat()}'",
                "$3": "14"}
    rows = size = 0
    with psycopg.connect(uri) as con:
        for sql in window_queries(schema, ELIGIBILITY_RULE).values():
            for marker, literal in literals.items():
                sql = sql.replace(marker, literal)
            with con.cursor().copy(f"COPY ({sql}) TO STDOUT") as copy:
                for data in copy:
                    size += len(data)
                    rows += bytes(data).count(b"\n")
    return rows, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="a PostgreSQL database to load into (default: a "
                        "throwaway server); its schema amili_bench is replaced")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amili-bench-pg-"))
    try:
        _run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path) -> None:
    duck = work / "warehouse.duckdb"
    started = time.perf_counter()
    generate_demo_warehouse(duck, days=args.days, invoices_per_day=args.invoices, end_date=DAY)
    print(f"generated in {time.perf_counter() - started:.1f} s")
    with _server(args.url) as base:
        url = base.split("?")[0] + "?schema=amili_bench"
        started = time.perf_counter()
        counts = load_into_postgres(duck, url)
        print(f"loaded {counts} in {time.perf_counter() - started:.1f} s")
        location = PostgresLocation.parse(url)
        window = (DAY, DAY + timedelta(days=1))
        times: dict[str, list[float]] = {k: [] for k in
                                         ("extract duckdb", "extract postgres", "adbc", "copy")}
        fetched = copied = copied_bytes = 0
        eligible = 0
        for n in range(args.rounds):
            t = time.perf_counter()
            summary = extract_window(work / f"d{n}.duckdb", duck, *window)
            times["extract duckdb"].append(time.perf_counter() - t)
            t = time.perf_counter()
            pg_summary = extract_window(work / f"p{n}.duckdb", url, *window)
            times["extract postgres"].append(time.perf_counter() - t)
            assert pg_summary.row_counts == summary.row_counts
            eligible = summary.row_counts["invoices"]
            t = time.perf_counter()
            with adbc.connect(location.uri) as con:
                arrow = fetch_window(con, location.schema, ELIGIBILITY_RULE, *window, 14)
            times["adbc"].append(time.perf_counter() - t)
            fetched = sum(a.num_rows for a in arrow.values())
            t = time.perf_counter()
            copied, copied_bytes = _copy_rows(location.uri, location.schema, DAY)
            times["copy"].append(time.perf_counter() - t)
        assert copied == fetched, (copied, fetched)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows = [
            ("extract of the day from the DuckDB file", f"{med['extract duckdb']:.2f} s",
             f"{eligible:,} eligible invoices"),
            ("extract of the day from PostgreSQL", f"{med['extract postgres']:.2f} s",
             f"{med['extract postgres'] / med['extract duckdb']:.2f}x the file; rows read "
             f"{pg_summary.rows_read}"),
            ("ADBC: the window queries as Arrow", f"{med['adbc']:.2f} s",
             f"{fetched / med['adbc']:,.0f} rows/s ({fetched:,} rows)"),
            ("COPY (query) TO STDOUT via psycopg", f"{med['copy']:.2f} s",
             f"{copied / med['copy']:,.0f} rows/s ({copied_bytes / 2**20:.0f} MiB of text); "
             f"ADBC/COPY time {med['adbc'] / med['copy']:.2f}x"),
        ]
        print(table(["what", f"median of {args.rounds}", "detail"], rows))


if __name__ == "__main__":
    main()
