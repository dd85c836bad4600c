"""Copy a DuckDB warehouse (the demo) into a PostgreSQL schema, so the demo runs on a server.

Same tables, same column types (``DECIMAL(p,s)`` becomes ``numeric(p,s)``, ``TIMESTAMPTZ``
``timestamptz``), rows moved as Arrow through ADBC's bulk ingest (``COPY`` underneath), plus
the indexes the extract's pushdown queries use.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from amili.pipeline import postgres_source

#: The indexes the window queries of amili/pipeline/postgres_source.py use.
INDEXES: dict[str, tuple[str, ...]] = {
    "creditors": ("creditor_id",),
    "customers": ("customer_id",),
    "invoices": ("invoice_id", "due_date"),
    "invoice_lines": ("invoice_id",),
    "reminders": ("invoice_id",),
    "payments": ("invoice_id", "registered_at"),
    "case_actions": ("requested_at",),
}

_TYPES: tuple[tuple[str, str], ...] = (
    (r"VARCHAR", "text"),
    (r"INTEGER", "integer"),
    (r"BIGINT", "bigint"),
    (r"SMALLINT", "smallint"),
    (r"DATE", "date"),
    (r"TIMESTAMP WITH TIME ZONE", "timestamptz"),
    (r"TIMESTAMP", "timestamp"),
    (r"BOOLEAN", "boolean"),
    (r"DOUBLE", "double precision"),
)


def postgres_type(duckdb_type: str) -> str:
    """The PostgreSQL type of a DuckDB column type (the ones the warehouses here use)."""
    decimal = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", duckdb_type)
    if decimal:
        return f"numeric({decimal[1]}, {decimal[2]})"
    for pattern, pg_type in _TYPES:
        if re.fullmatch(pattern, duckdb_type):
            return pg_type
    raise ValueError(f"no PostgreSQL type for DuckDB type {duckdb_type}")


def load_into_postgres(duckdb_path: Path | str, url: str) -> dict[str, int]:
    """Replace the URL's schema's tables with the DuckDB file's ``main`` tables; rows per table.

    Each table is dropped, created with the mapped types, filled and indexed in one
    transaction, then analysed so the planner knows the row counts.
    """
    location = postgres_source.PostgresLocation.parse(url)
    schema = postgres_source.quote_identifier(location.schema)
    counts: dict[str, int] = {}
    with duckdb.connect(str(duckdb_path), read_only=True) as src:
        tables = [r[0] for r in src.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
            "AND database_name = current_database() ORDER BY table_name").fetchall()]
        con = postgres_source.connect(location)
        try:
            cur = con.cursor()
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for table in tables:
                name = postgres_source.quote_identifier(table)
                columns = src.execute(f'DESCRIBE main."{table}"').fetchall()
                ddl = ", ".join(f"{postgres_source.quote_identifier(c[0])} {postgres_type(c[1])}"
                                for c in columns)
                cur.execute(f"DROP TABLE IF EXISTS {schema}.{name}")
                cur.execute(f"CREATE TABLE {schema}.{name} ({ddl})")
                reader = src.sql(f'SELECT * FROM main."{table}"').to_arrow_reader()
                counts[table] = cur.adbc_ingest(table, reader, mode="append",
                                                db_schema_name=location.schema)
                for column in INDEXES.get(table, ()):
                    cur.execute(f"CREATE INDEX ON {schema}.{name} "
                                f"({postgres_source.quote_identifier(column)})")
            con.commit()
            for table in tables:
                cur.execute(f"ANALYZE {schema}.{postgres_source.quote_identifier(table)}")
            con.commit()
            cur.close()
        finally:
            con.close()
    return counts
