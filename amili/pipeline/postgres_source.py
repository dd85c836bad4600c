"""PostgreSQL as the warehouse: the day's selection pushed down to the server, read as Arrow.

``AMILI_WAREHOUSE=postgresql://user:pass@host:port/db?schema=erp`` (``postgres://`` too; the
password may instead come from libpq's ``PG*`` variables such as ``PGPASSWORD``). ``schema``
is ours, not libpq's: it is taken off the URL before the URL reaches the driver, and defaults
to ``public``. Without a ``connect_timeout`` (or ``PGCONNECT_TIMEOUT``) one of 10 seconds is
added, so a silent host fails the run at its start instead of holding it.

The connector is the ADBC PostgreSQL driver: it returns Arrow, takes ``$1`` parameters, and has
siblings for Snowflake, BigQuery, Flight SQL and SQLite with the same API. Only what one window
of days needs is read (see :func:`fetch_window`); the extract's own DuckDB SQL then runs
unchanged over the Arrow tables, registered as its source relations.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyarrow as pa

if TYPE_CHECKING:
    from adbc_driver_manager.dbapi import Connection

#: URL schemes read as a PostgreSQL server.
SCHEMES = ("postgresql", "postgres")
OSLO_TZ = "Europe/Oslo"
#: How long to wait for the server unless the URL or PGCONNECT_TIMEOUT says otherwise.
CONNECT_TIMEOUT_SECONDS = 10
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


class WarehouseConnectionError(RuntimeError):
    """The warehouse server cannot be reached or refuses the login (message has no password)."""


class WarehouseQueryError(RuntimeError):
    """A window query failed on the server (e.g. no SELECT privilege on a table)."""


def is_database_url(location: str) -> bool:
    """True when ``AMILI_WAREHOUSE`` names a database server rather than a file or folder."""
    return urlsplit(str(location)).scheme.lower() in SCHEMES


def mask_url(location: str) -> str:
    """The location as it may be shown: a URL's password (and ``password=`` option) as ``***``.

    Anything that is not a database URL is returned as is (file paths carry no secret).
    """
    text = str(location)
    if not is_database_url(text):
        return text
    base, _, query = text.partition("?")
    scheme, _, rest = base.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        userinfo, host = authority.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        authority = f"{userinfo}@{host}"
    options = parse_qsl(query, keep_blank_values=True)
    masked = f"{scheme}://{authority}{slash}{path}"
    if query:
        masked += "?" + urlencode(
            [(k, "***" if k.lower() == "password" else v) for k, v in options], safe="*")
    return masked


@dataclass(frozen=True)
class PostgresLocation:
    """A warehouse URL split into what libpq gets and the schema the tables live in."""

    uri: str
    schema: str

    @classmethod
    def parse(cls, location: str) -> PostgresLocation:
        parts = urlsplit(location)
        options = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((v for k, v in options if k == "schema"), "public")
        if not _IDENTIFIER.fullmatch(schema):
            raise ValueError(
                f"warehouse {mask_url(location)}: schema {schema!r} is not a plain SQL "
                "identifier (letters, digits, _ and $, not starting with a digit)")
        kept = [(k, v) for k, v in options if k != "schema"]
        if not any(k == "connect_timeout" for k, _ in kept) and \
                "PGCONNECT_TIMEOUT" not in os.environ:
            kept.append(("connect_timeout", str(CONNECT_TIMEOUT_SECONDS)))  # libpq: forever
        rest = urlencode(kept)
        base = location.split("?", 1)[0].split("#", 1)[0]
        return cls(base + (f"?{rest}" if rest else ""), schema)

    @property
    def masked(self) -> str:
        return mask_url(self.uri)


def connect(location: PostgresLocation) -> Connection:
    """Open a read connection, failing fast and without the password when it cannot."""
    import adbc_driver_postgresql.dbapi as pg

    try:
        con = pg.connect(location.uri)
    except Exception as exc:  # the driver's OperationalError; libpq's text has no password
        detail = _scrub(str(exc), location.uri).strip().replace("\n", " ")
        raise WarehouseConnectionError(
            f"cannot connect to the warehouse {location.masked}: {detail}. Check the host, "
            "port, database, user and password (in AMILI_WAREHOUSE or PGPASSWORD)") from None
    return con


def _scrub(text: str, uri: str) -> str:
    """Belt and braces: remove the password from a driver message should libpq ever echo it."""
    password = urlsplit(uri).password
    return text.replace(password, "***") if password else text


def column_types(
    con: Connection, schema: str, tables: tuple[str, ...]
) -> dict[str, dict[str, str]]:
    """``{table: {column: data_type}}`` from ``information_schema.columns`` (tables and views)."""
    cur = con.cursor()
    try:
        cur.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = $1 ORDER BY table_name, ordinal_position", (schema,))
        rows = cur.fetchall()
    finally:
        cur.close()
        con.rollback()  # the window is read in a snapshot of its own
    found: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        if table in tables:
            found.setdefault(table, {})[column.lower()] = data_type
    return found


def quote_identifier(identifier: str) -> str:
    """A validated identifier, double-quoted (it cannot contain a quote: see ``_IDENTIFIER``)."""
    if not _IDENTIFIER.fullmatch(identifier):
        raise ValueError(f"not a plain SQL identifier: {identifier!r}")
    return f'"{identifier}"'


def window_queries(schema: str, eligibility_rule: str) -> dict[str, str]:
    """One parameterised query per source table: ``$1`` first day, ``$2`` day after the
    window, ``$3`` the default collection delay in days.

    Each returns the table's rows the extract's DuckDB SQL can touch for the window, each row
    once (duplicates the warehouse holds stay duplicates: the quarantine must see them):

    - invoices: eligible in the window, plus those the window's payments and actions refer to;
    - invoice_lines, reminders: of the eligible invoices;
    - payments: registered in the window, plus those of eligible invoices registered from
      their collection day on (``paid_since_collection_day``);
    - case_actions: requested in the window;
    - customers, creditors: those the rows above refer to.

    Time bounds are ranges on the stored timestamps (Oslo midnights), so indexes on
    ``registered_at``, ``requested_at``, ``due_date`` and ``invoice_id`` serve them.
    """
    s = quote_identifier(schema)
    t = f"'{OSLO_TZ}'"
    prefix = f"""
    WITH w AS (
        SELECT $1::date AS d0, $2::date AS d1, $3::integer AS delay,
               ($1::date::timestamp AT TIME ZONE {t}) AS t0,
               ($2::date::timestamp AT TIME ZONE {t}) AS t1
    ), delays AS (
        SELECT min(coalesce(c.collection_delay_days, w.delay)) AS lo,
               max(coalesce(c.collection_delay_days, w.delay)) AS hi
        FROM {s}.creditors c, w
    ), elig AS (
        SELECT i.invoice_id, i.customer_id, i.creditor_id,
               (i.due_date + coalesce(c.collection_delay_days, w.delay))::date AS collection_day
        FROM {s}.invoices i JOIN {s}.creditors c ON c.creditor_id = i.creditor_id, w, delays
        WHERE {eligibility_rule}
          AND i.due_date >= w.d0 - delays.hi AND i.due_date < w.d1 - delays.lo
          AND (i.due_date + coalesce(c.collection_delay_days, w.delay))::date >= w.d0
          AND (i.due_date + coalesce(c.collection_delay_days, w.delay))::date < w.d1
    ), win_pay AS (
        SELECT p.invoice_id FROM {s}.payments p, w
        WHERE p.registered_at >= w.t0 AND p.registered_at < w.t1
    ), win_act AS (
        SELECT a.invoice_id, a.creditor_id FROM {s}.case_actions a, w
        WHERE a.requested_at >= w.t0 AND a.requested_at < w.t1
    ), refs AS (
        SELECT invoice_id FROM win_pay UNION SELECT invoice_id FROM win_act
    )
    """
    # an invoice row is in the eligible branch when its own row meets the rule (a duplicate
    # id's other row is not), and in the reference branch otherwise: each row once
    row_eligible = f"""EXISTS (
        SELECT 1 FROM {s}.creditors c, w
        WHERE c.creditor_id = i.creditor_id
          AND (i.due_date + coalesce(c.collection_delay_days, w.delay))::date >= w.d0
          AND (i.due_date + coalesce(c.collection_delay_days, w.delay))::date < w.d1)
        AND {eligibility_rule}"""
    fetched_invoices = f"""(
        SELECT customer_id, creditor_id FROM elig
        UNION
        SELECT i.customer_id, i.creditor_id FROM {s}.invoices i
        WHERE i.invoice_id IN (SELECT invoice_id FROM refs))"""
    paid_since = ("EXISTS (SELECT 1 FROM elig e WHERE e.invoice_id = p.invoice_id AND "
                  f"p.registered_at >= (e.collection_day::timestamp AT TIME ZONE {t}))")
    return {
        "invoices": f"""{prefix}
            SELECT i.* FROM {s}.invoices i, w, delays
            WHERE i.due_date >= w.d0 - delays.hi AND i.due_date < w.d1 - delays.lo
              AND {row_eligible}
            UNION ALL
            SELECT i.* FROM {s}.invoices i
            WHERE i.invoice_id IN (SELECT invoice_id FROM refs)
              AND NOT coalesce({row_eligible}, false)""",
        "invoice_lines": f"""{prefix}
            SELECT l.* FROM {s}.invoice_lines l
            WHERE l.invoice_id IN (SELECT invoice_id FROM elig)""",
        "reminders": f"""{prefix}
            SELECT r.* FROM {s}.reminders r
            WHERE r.invoice_id IN (SELECT invoice_id FROM elig)""",
        "payments": f"""{prefix}
            SELECT p.* FROM {s}.payments p, w
            WHERE p.registered_at >= w.t0 AND p.registered_at < w.t1
            UNION ALL
            SELECT p.* FROM {s}.payments p, w
            WHERE p.invoice_id IN (SELECT invoice_id FROM elig) AND {paid_since}
              AND NOT coalesce(p.registered_at >= w.t0 AND p.registered_at < w.t1, false)""",
        "case_actions": f"""{prefix}
            SELECT a.* FROM {s}.case_actions a, w
            WHERE a.requested_at >= w.t0 AND a.requested_at < w.t1""",
        "customers": f"""{prefix}
            SELECT c.* FROM {s}.customers c
            WHERE c.customer_id IN (SELECT customer_id FROM {fetched_invoices} f)""",
        "creditors": f"""{prefix}
            SELECT c.* FROM {s}.creditors c
            WHERE c.creditor_id IN (SELECT creditor_id FROM {fetched_invoices} f
                                    UNION SELECT creditor_id FROM win_act)""",
    }


def fetch_window(
    con: Connection, schema: str, eligibility_rule: str, start: date, end: date,
    default_delay_days: int,
) -> dict[str, pa.Table]:
    """The window's rows of every source table, as Arrow, read in one repeatable-read
    snapshot so the tables agree with each other. Numeric columns come as exact text."""
    queries = window_queries(schema, eligibility_rule)
    tables: dict[str, pa.Table] = {}
    cur = con.cursor()
    try:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for table, sql in queries.items():
            try:
                cur.execute(sql, (start, end, int(default_delay_days)))
                tables[table] = _plain(cur.fetch_arrow_table())
            except Exception as exc:  # the driver's errors: say which table, not the SQL
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise WarehouseQueryError(
                    f"reading the window's {table} from the warehouse schema {schema} "
                    f"failed: {first}") from None
    finally:
        cur.close()
        con.rollback()
    return tables


def _plain(table: pa.Table) -> pa.Table:
    """PostgreSQL ``numeric`` arrives as an opaque extension type over text: keep the text
    (exact), and say in the field metadata which DECIMAL the column was declared as."""
    columns, fields = [], []
    for field, column in zip(table.schema, table.columns, strict=True):
        if isinstance(field.type, pa.ExtensionType) or hasattr(field.type, "storage_type"):
            storage = field.type.storage_type
            column = pa.chunked_array([c.storage for c in column.chunks], storage)
            field = pa.field(field.name, storage, field.nullable, field.metadata)
        columns.append(column)
        fields.append(field)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def numeric_type(
    field: pa.Field, observed: tuple[int | None, int | None] | None = None
) -> str | None:
    """The DuckDB DECIMAL a ``numeric`` column is read as, or None for other columns.

    ``numeric(p, s)`` keeps its own precision and scale (``typmod`` is ``(p << 16 | s) + 4``);
    an unconstrained ``numeric`` gets the most integer digits and decimals the window's rows
    have (``observed``), so every row arrives exact and the quarantine still sees a third
    decimal or an amount beyond DECIMAL(18,2).
    """
    meta = field.metadata or {}
    if meta.get(b"POSTGRESQL:type") != b"numeric":
        return None
    typmod = int(meta.get(b"POSTGRESQL:typmod", b"-1"))
    if typmod >= 4:
        precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
        if precision <= 38:
            return f"DECIMAL({precision}, {scale})"
    digits, decimals = observed or (None, None)
    digits, decimals = max(digits or 1, 1), max(decimals or 2, 2)
    return f"DECIMAL(38, {min(decimals, 38 - min(digits, 36))})"
