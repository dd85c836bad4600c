"""Extract: copy one window of Oslo days from the warehouse into the pipeline's ``raw`` schema.

For each collection day it takes the invoices that become eligible for collection that day
(the rule is :data:`ELIGIBILITY_RULE`, and only there), their claim lines and reminders, the
payments registered that day, the case actions (pause, resume, withdraw, message) the
creditor's case handlers requested that day, and the debtors and creditors all these need.
Each raw row carries its ``partition_date``; re-running a window first deletes that window's
rows, in the same transaction, so a re-run replaces and never duplicates.

Everything is set-based SQL inside DuckDB: a day of a million invoices is a handful of
statements, not a Python loop. A DuckDB file is attached read-only and a Parquet folder read
in place; from a PostgreSQL server only the window's rows are fetched, as Arrow, and the same
SQL runs over them (amili/pipeline/postgres_source.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa

from amili.pipeline import postgres_source
from amili.pipeline.duckdb_io import connect_writer
from amili.pipeline.postgres_source import is_database_url, mask_url
from amili.pipeline.raw_types import follow_source_columns, quoted_name

OSLO_TZ = "Europe/Oslo"

#: Source tables read from the warehouse (a DuckDB file, a folder of Parquet files, or a
#: PostgreSQL schema).
SOURCE_TABLES: tuple[str, ...] = (
    "creditors", "customers", "invoices", "invoice_lines", "reminders", "payments",
    "case_actions",
)

#: The columns each source table must have: what the extract and dbt's staging read. A
#: warehouse that lacks one fails the extract at once, in the warehouse's own terms.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "creditors": (
        "creditor_id", "organization_number", "name", "street", "zip_code", "city",
        "country_code", "bank_account", "iban", "swift", "email_invoice", "contact_name",
        "contact_phone", "contact_email", "only_debt_collection", "reminder_flow",
        "kid_algorithm", "collection_delay_days",
    ),
    "customers": (
        "customer_id", "creditor_id", "customer_number", "customer_type", "first_name",
        "last_name", "company_name", "national_id", "organization_number", "date_of_birth",
        "street", "zip_code", "city", "country_code", "email", "phone",
    ),
    "invoices": (
        "invoice_id", "creditor_id", "customer_id", "invoice_number", "invoice_date",
        "due_date", "amount", "currency", "kid", "status", "remaining_amount", "disputed",
        "description", "handed_over_to_collection_at",
    ),
    "invoice_lines": ("invoice_id", "line_no", "line_type", "amount", "description"),
    "reminders": ("invoice_id", "reminder_no", "sent_date", "fee_amount"),
    "payments": (
        "payment_id", "invoice_id", "payment_date", "registered_at", "amount", "currency",
        "method", "kid",
    ),
    "case_actions": (
        "action_id", "invoice_id", "creditor_id", "action_type", "requested_at", "due_date",
        "subject", "message", "conversation_id",
    ),
}


#: The type family of each required column (the rest are text): what the extract and dbt's
#: staging read it as. Checked for every kind of source before anything is read.
COLUMN_FAMILIES: dict[str, dict[str, str]] = {
    "creditors": {"only_debt_collection": "boolean", "reminder_flow": "integer",
                  "collection_delay_days": "integer"},
    "customers": {"date_of_birth": "date"},
    "invoices": {"invoice_date": "date", "due_date": "date", "amount": "exact number",
                 "remaining_amount": "exact number", "disputed": "boolean",
                 "handed_over_to_collection_at": "timestamp with time zone"},
    "invoice_lines": {"line_no": "integer", "amount": "exact number"},
    "reminders": {"reminder_no": "integer", "sent_date": "date", "fee_amount": "exact number"},
    "payments": {"payment_date": "date", "registered_at": "timestamp with time zone",
                 "amount": "exact number"},
    "case_actions": {"requested_at": "timestamp with time zone", "due_date": "date"},
}

#: Which families a required family accepts (an integer amount is exact too).
_ACCEPTS = {"exact number": {"exact number", "integer"}}

#: A source type's family: DuckDB's names (DESCRIBE) and PostgreSQL's (information_schema).
_FAMILY_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"varchar|text|string|character varying|character|char|bpchar|uuid", "text"),
    (r"u?(tinyint|smallint|integer|bigint|hugeint)|int[248]?", "integer"),
    (r"(decimal|numeric)(\(.*\))?", "exact number"),
    (r"date", "date"),
    (r"timestamp with time zone|timestamptz", "timestamp with time zone"),
    (r"timestamp( without time zone)?(_(s|ms|ns))?", "timestamp without time zone"),
    (r"boolean|bool", "boolean"),
    (r"double|float|real|double precision", "floating-point number"),
)


def type_family(source_type: str) -> str:
    """The family of a DuckDB or PostgreSQL column type (its own name when none fits)."""
    name = source_type.strip().lower()
    for pattern, family in _FAMILY_PATTERNS:
        if re.fullmatch(pattern, name):
            return family
    return name


def column_family(table: str, column: str) -> str:
    """The family the pipeline reads a required column as."""
    return COLUMN_FAMILIES.get(table, {}).get(column, "text")


class WarehouseContractError(ValueError):
    """The warehouse lacks a table or column the pipeline reads: the whole day cannot run."""


#: Raw tables written, in the order they are filled.
RAW_TABLES: tuple[str, ...] = (
    "invoices", "invoice_lines", "reminders", "payments", "case_actions", "customers",
    "creditors",
)

#: When an invoice becomes eligible for collection: unpaid, not disputed, not handed over
#: already, and its collection day (due date + the creditor's delay, or the default) is the
#: partition day. ``i`` is the invoice, ``c`` its creditor; ``{default_delay}`` is filled in.
ELIGIBILITY_RULE = """
    i.status = 'OPEN'
    AND i.remaining_amount > 0
    AND NOT coalesce(i.disputed, false)
    AND i.handed_over_to_collection_at IS NULL
"""
COLLECTION_DAY = "(i.due_date + coalesce(c.collection_delay_days, {default_delay}))::DATE"


@dataclass(frozen=True)
class ExtractSummary:
    """What one extract wrote: rows per raw table, and the eligible invoices' amounts."""

    start: date
    end: date  # exclusive
    row_counts: dict[str, int]
    eligible_amount_by_currency: dict[str, Decimal]
    preview: list[dict[str, object]] = field(default_factory=list)
    #: rows fetched per source table from a database server (empty for a file or folder,
    #: which DuckDB scans in place)
    rows_read: dict[str, int] = field(default_factory=dict)
    #: raw columns widened or added to hold what the warehouse now has (:mod:`raw_types`)
    raw_columns_changed: dict[str, list[str]] = field(default_factory=dict)


def source_relations(warehouse: str | Path) -> tuple[str | None, dict[str, str]]:
    """How to read each source table: an ATTACH statement (DuckDB file) and table expressions.

    A folder is read as ``<folder>/<table>.parquet``; anything else as a DuckDB file, attached
    read-only so the extract can never write to the company's warehouse.
    """
    path = Path(warehouse)
    if path.is_dir():
        missing = [t for t in SOURCE_TABLES if not (path / f"{t}.parquet").exists()]
        if missing:
            raise FileNotFoundError(
                f"warehouse folder {path} lacks {', '.join(f'{t}.parquet' for t in missing)}"
            )
        return None, {
            t: f"read_parquet('{_sql_string(str(path / f'{t}.parquet'))}')" for t in SOURCE_TABLES
        }
    if not path.exists():
        raise FileNotFoundError(
            f"warehouse {path} does not exist (set AMILI_WAREHOUSE, or create the demo "
            "warehouse with `amili demo-warehouse`)"
        )
    attach = f"ATTACH '{_sql_string(str(path))}' AS source_wh (READ_ONLY)"
    return attach, {t: f"source_wh.main.{t}" for t in SOURCE_TABLES}


def extract_window(
    pipeline_db: str | Path,
    warehouse: str | Path,
    start: date,
    end: date,
    *,
    default_delay_days: int = 14,
    preview_rows: int = 5,
) -> ExtractSummary:
    """Replace the raw rows of the Oslo days ``start <= day < end`` with fresh ones."""
    if end <= start:
        raise ValueError(f"empty window: start {start} is not before end {end}")
    fetched: dict[str, pa.Table] | None = None
    if is_database_url(str(warehouse)):
        # contract checked and the window read before the pipeline DB is touched
        fetched = _read_postgres(str(warehouse), start, end, default_delay_days)
        attach, src = None, {t: f"wh_{t}" for t in SOURCE_TABLES}
    else:
        attach, src = source_relations(warehouse)
    with connect_writer(pipeline_db) as con:
        if attach:
            con.execute(attach)
        if fetched is not None:
            _register_arrow(con, fetched)
        check_source_columns(con, src, warehouse)
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        _create_raw_tables(con, src)
        raw_columns_changed = {table: changes for table in RAW_TABLES if (
            changes := follow_source_columns(con, f"raw.{table}", src[table]))}
        window = {"start": start, "end": end}
        collection_day = COLLECTION_DAY.format(default_delay=int(default_delay_days))
        con.execute("BEGIN TRANSACTION")
        try:
            for table in RAW_TABLES:
                con.execute(
                    f"DELETE FROM raw.{table} WHERE partition_date >= $start "
                    "AND partition_date < $end", window,
                )
            con.execute(
                f"""
                CREATE TEMP TABLE eligible AS
                SELECT i.*, {collection_day} AS partition_date
                FROM {src['invoices']} i JOIN {src['creditors']} c USING (creditor_id)
                WHERE {ELIGIBILITY_RULE}
                  AND {collection_day} >= $start AND {collection_day} < $end
                """,
                window,
            )
            # remaining_amount is the warehouse's balance now, so it has netted every payment
            # registered up to now, including those of days after the window that raw.payments
            # does not hold yet. What was paid from the collection day on is summed from the
            # same snapshot, so the claims (balance at hand-over) never depend on which days
            # happen to be extracted already.
            con.execute(
                f"""INSERT INTO raw.invoices BY NAME
                SELECT e.*, TRY_CAST(coalesce(paid.amount, 0) AS DECIMAL(38, 6))
                           AS paid_since_collection_day,
                       row_number() OVER () AS source_row, now() AS extracted_at
                FROM eligible e
                LEFT JOIN (
                    SELECT e.invoice_id, e.partition_date, sum(t.amount) AS amount
                    FROM {src['payments']} t JOIN eligible e USING (invoice_id)
                    WHERE timezone('{OSLO_TZ}', t.registered_at)::DATE >= e.partition_date
                    GROUP BY ALL
                ) paid USING (invoice_id, partition_date)"""
            )
            for table in ("invoice_lines", "reminders"):
                con.execute(
                    f"""INSERT INTO raw.{table} BY NAME
                    SELECT t.*, e.partition_date, row_number() OVER () AS source_row,
                           now() AS extracted_at
                    FROM {src[table]} t JOIN eligible e USING (invoice_id)"""
                )
            # Payments and case actions belong to the Oslo day they were registered on. Both
            # learn whether the warehouse has their invoice; a payment also its creditor as
            # the warehouse has it, also of an invoice never handed over (which raw.invoices
            # does not hold), so that every row of a known invoice has a creditor. Where the
            # warehouse repeats the invoice id with different creditors (or one copy
            # without), it is NULL rather than a guess. An action carries its own creditor_id.
            # One grouped read of the warehouse's invoices answers both.
            warehouse_invoices = f"""(
                SELECT invoice_id,
                       CASE WHEN count(creditor_id) = count(*)
                             AND min(creditor_id::VARCHAR) = max(creditor_id::VARCHAR)
                            THEN min(creditor_id::VARCHAR) END AS creditor_id
                FROM {src['invoices']} GROUP BY invoice_id)"""
            for table, registered, extra in (
                    ("payments", "registered_at", "w.creditor_id AS invoice_creditor_id,"),
                    ("case_actions", "requested_at", "")):
                oslo_day = f"timezone('{OSLO_TZ}', t.{registered})::DATE"
                con.execute(
                    f"""INSERT INTO raw.{table} BY NAME
                    SELECT t.*, {oslo_day} AS partition_date,
                           row_number() OVER () AS source_row,
                           w.invoice_id IS NOT NULL AS invoice_known,
                           {extra}
                           now() AS extracted_at
                    FROM {src[table]} t
                    LEFT JOIN {warehouse_invoices} w ON w.invoice_id = t.invoice_id
                    WHERE {oslo_day} >= $start AND {oslo_day} < $end""",
                    window,
                )
            # The debtors and creditors the day's invoices, payments and actions refer to (an
            # action needs its creditor's organisation number only, not the debtor).
            con.execute(
                f"""CREATE TEMP TABLE day_refs AS
                SELECT DISTINCT partition_date, customer_id, creditor_id FROM eligible
                UNION
                SELECT DISTINCT p.partition_date, i.customer_id, i.creditor_id
                FROM raw.payments p JOIN {src['invoices']} i USING (invoice_id)
                WHERE p.partition_date >= $start AND p.partition_date < $end
                UNION
                SELECT DISTINCT partition_date, NULL, creditor_id FROM raw.case_actions
                WHERE partition_date >= $start AND partition_date < $end""",
                window,
            )
            for table, key in (("customers", "customer_id"), ("creditors", "creditor_id")):
                con.execute(
                    f"""INSERT INTO raw.{table} BY NAME
                    SELECT t.*, r.partition_date, row_number() OVER () AS source_row,
                           now() AS extracted_at
                    FROM {src[table]} t
                    JOIN (SELECT DISTINCT partition_date, {key} FROM day_refs) r USING ({key})"""
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        summary = replace(_summarize(con, start, end, preview_rows),
                          raw_columns_changed=raw_columns_changed)
    if fetched is not None:
        summary = replace(summary, rows_read={t: fetched[t].num_rows for t in SOURCE_TABLES})
    return summary


def _read_postgres(
    warehouse: str, start: date, end: date, default_delay_days: int
) -> dict[str, pa.Table]:
    """Check the contract on the server's catalogue, then fetch only the window's rows."""
    location = postgres_source.PostgresLocation.parse(warehouse)
    con = postgres_source.connect(location)
    try:
        types = postgres_source.column_types(con, location.schema, SOURCE_TABLES)
        check_contract(
            {t: types.get(t, f"nothing named {t} in schema {location.schema} that this "
                             "login may read")
             for t in SOURCE_TABLES},
            f"{location.masked} (schema {location.schema})")
        return postgres_source.fetch_window(
            con, location.schema, ELIGIBILITY_RULE, start, end, default_delay_days)
    finally:
        con.close()


def _register_arrow(con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]) -> None:
    """The fetched Arrow tables as the source relations ``wh_<table>``: numeric text cast to
    an exact DECIMAL (see :func:`postgres_source.numeric_type`), everything else as is."""
    for table, arrow in tables.items():
        con.register(f"_pg_{table}", arrow)
        casts = []
        for fld in arrow.schema:
            name = quoted_name(fld.name)
            observed = None
            meta = fld.metadata or {}
            if meta.get(b"POSTGRESQL:type") == b"numeric" and \
                    int(meta.get(b"POSTGRESQL:typmod", b"-1")) < 4:
                observed = con.execute(
                    f"SELECT max(length(split_part(ltrim({name}, '-'), '.', 1))), "
                    f"max(length(split_part({name}, '.', 2))) FROM _pg_{table}").fetchone()
            decimal = postgres_source.numeric_type(fld, observed)
            if decimal:
                casts.append(f"CAST({name} AS {decimal}) AS {name}")
        replace_clause = f" REPLACE ({', '.join(casts)})" if casts else ""
        con.execute(f"CREATE OR REPLACE TEMP VIEW wh_{table} AS "
                    f"SELECT *{replace_clause} FROM _pg_{table}")


def check_source_columns(
    con: duckdb.DuckDBPyConnection, src: dict[str, str], warehouse: str | Path
) -> None:
    """Fail before anything is written when a source table or column is missing or of the
    wrong type family, naming the warehouse's table and column (not the pipeline's later
    names for them)."""
    found: dict[str, dict[str, str] | str] = {}
    for table in REQUIRED_COLUMNS:
        try:
            found[table] = {str(row[0]).lower(): str(row[1]) for row in
                            con.execute(f"DESCRIBE SELECT * FROM {src[table]}").fetchall()}
        except duckdb.Error as exc:
            found[table] = str(exc).splitlines()[0]
    check_contract(found, warehouse)


def check_contract(found: dict[str, dict[str, str] | str], warehouse: str | Path) -> None:
    """The one source contract: ``found`` maps each table to ``{column: source type}`` (or to
    why it could not be read); names and type families are compared with the pipeline's."""
    problems = []
    for table, needed in REQUIRED_COLUMNS.items():
        have = found.get(table)
        if not isinstance(have, dict) or not have:
            detail = f" ({have})" if isinstance(have, str) else ""
            problems.append(f"the warehouse has no table {table}{detail}")
            continue
        missing = [c for c in needed if c not in have]
        if missing:
            problems.append(
                f"the warehouse table {table} has no column "
                f"{', '.join(missing)} (it has {', '.join(sorted(have))})")
        for column in needed:
            if column not in have:
                continue
            want, got = column_family(table, column), type_family(have[column])
            if got not in _ACCEPTS.get(want, {want}):
                declared = "" if have[column].lower() == got else f" ({have[column]})"
                problems.append(
                    f"the warehouse table {table} column {column} is {got}{declared}; "
                    "the pipeline reads it as "
                    f"{'an' if want[0] in 'aeiou' else 'a'} {want}")
    if problems:
        raise WarehouseContractError(
            f"warehouse {mask_url(str(warehouse))}: " + "; ".join(problems)
            + ". Nothing was extracted; rename or convert the columns in the warehouse (or a "
            "view) to these names and types, see amili/pipeline/extract.py REQUIRED_COLUMNS "
            "and COLUMN_FAMILIES")


#: Columns the extract adds to a raw table besides ``partition_date`` and ``extracted_at``.
_DERIVED_COLUMNS: dict[str, str] = {
    # payments registered from the collection day up to the extract, as the warehouse had
    # them when remaining_amount was read (wide: a sum beyond what the API carries is a
    # defect that staging names, not a cast error here)
    "invoices": "NULL::DECIMAL(38, 6) AS paid_since_collection_day, ",
    # whether the warehouse has the invoice the row points at (NULL: it points at none);
    # for a payment also that invoice's creditor_id (NULL: no invoice, or no single creditor)
    "payments": "NULL::BOOLEAN AS invoice_known, NULL::VARCHAR AS invoice_creditor_id, ",
    "case_actions": "NULL::BOOLEAN AS invoice_known, ",
}


def _create_raw_tables(con: duckdb.DuckDBPyConnection, src: dict[str, str]) -> None:
    """Raw tables mirror the source columns plus ``partition_date`` and ``extracted_at``
    (and the :data:`_DERIVED_COLUMNS`)."""
    for table in RAW_TABLES:
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS raw.{table} AS
            SELECT *, {_DERIVED_COLUMNS.get(table, '')}NULL::DATE AS partition_date,
                   NULL::BIGINT AS source_row, NULL::TIMESTAMPTZ AS extracted_at
            FROM {src[table]} LIMIT 0"""
        )
    # raw tables made by an older version lack the derived columns, or have them narrower
    con.execute("ALTER TABLE raw.invoices ADD COLUMN IF NOT EXISTS "
                "paid_since_collection_day DECIMAL(38, 6)")
    con.execute("ALTER TABLE raw.invoices ALTER paid_since_collection_day "
                "TYPE DECIMAL(38, 6)")
    for table in RAW_TABLES:
        con.execute(f"ALTER TABLE raw.{table} ADD COLUMN IF NOT EXISTS source_row BIGINT")
    for table in ("payments", "case_actions"):
        con.execute(f"ALTER TABLE raw.{table} ADD COLUMN IF NOT EXISTS invoice_known BOOLEAN")
    con.execute("ALTER TABLE raw.payments ADD COLUMN IF NOT EXISTS invoice_creditor_id VARCHAR")


def _summarize(
    con: duckdb.DuckDBPyConnection, start: date, end: date, preview_rows: int
) -> ExtractSummary:
    window = {"start": start, "end": end}
    counts = {
        table: con.execute(
            f"SELECT count(*) FROM raw.{table} WHERE partition_date >= $start "
            "AND partition_date < $end", window,
        ).fetchone()[0]
        for table in RAW_TABLES
    }
    amounts = dict(
        con.execute(
            """SELECT currency, sum(remaining_amount) FROM raw.invoices
            WHERE partition_date >= $start AND partition_date < $end
            GROUP BY currency ORDER BY currency""", window,
        ).fetchall()
    )
    cursor = con.execute(
        f"""SELECT partition_date, invoice_id, creditor_id, invoice_number, due_date,
                   remaining_amount, currency
        FROM raw.invoices WHERE partition_date >= $start AND partition_date < $end
        ORDER BY partition_date, invoice_id LIMIT {int(preview_rows)}""", window,
    )
    columns = [d[0] for d in cursor.description]
    preview = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return ExtractSummary(start, end, counts, amounts, preview)


def days(start: date, end: date) -> list[date]:
    """The days of a half-open window."""
    return [start + timedelta(days=n) for n in range((end - start).days)]


def _sql_string(value: str) -> str:
    return value.replace("'", "''")
