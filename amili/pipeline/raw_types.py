"""The raw tables follow the warehouse's column types, widening and never narrowing.

A raw table is created with the types of the first extract's source. The warehouse can later
hand over a wider type: a migration to ``numeric(18, 4)``, a switch of source (a DuckDB file
to PostgreSQL), or a PostgreSQL ``numeric`` without a scale, whose DECIMAL follows the
decimals the day's rows have (:func:`amili.pipeline.postgres_source.numeric_type`). An insert
into the narrower column would round a third decimal away without a word (DuckDB casts
DECIMAL(38, 3) to DECIMAL(38, 2) by rounding), so the quarantine of amounts with more than two
decimals would never see it, or fail the whole day on a value too large for the old type.
Before each insert the extract therefore widens every raw column to hold both what it has and
what the source brings, and adds a column the warehouse has gained.

DuckDB's own rule for combining two types does not serve for money: DECIMAL(38, 2) with
DECIMAL(38, 3) gives DECIMAL(38, 2). Decimals are combined here instead: the most decimals of
the two, and the most integer digits that fit beside them in 38.
"""

from __future__ import annotations

import re

import duckdb

__all__ = ["follow_source_columns", "quoted_name", "widest_type"]

_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
#: The integer types as decimals of as many digits (an exact number may be widened to a
#: DECIMAL; DuckDB itself does the same).
_INTEGER_DIGITS = {"TINYINT": 3, "SMALLINT": 5, "INTEGER": 10, "BIGINT": 19, "HUGEINT": 38,
                   "UTINYINT": 3, "USMALLINT": 5, "UINTEGER": 10, "UBIGINT": 20,
                   "UHUGEINT": 38}
_MAX_PRECISION = 38


def _as_decimal(type_name: str) -> tuple[int, int] | None:
    """``(precision, scale)`` of a DECIMAL or an integer type; None for other types."""
    if match := _DECIMAL.fullmatch(type_name.strip().upper()):
        return int(match[1]), int(match[2])
    digits = _INTEGER_DIGITS.get(type_name.strip().upper())
    return (digits, 0) if digits is not None else None


def widest_type(con: duckdb.DuckDBPyConnection, held: str, incoming: str) -> str:
    """The type a raw column needs to hold both its ``held`` values and ``incoming`` ones
    exactly: for two exact numbers of which one is a DECIMAL, the most decimals and the most
    integer digits that fit beside them; otherwise DuckDB's own combination of the two."""
    if held == incoming:
        return held
    held_decimal, incoming_decimal = _as_decimal(held), _as_decimal(incoming)
    if held_decimal and incoming_decimal and "DECIMAL" in (held + incoming).upper():
        scale = max(held_decimal[1], incoming_decimal[1])
        digits = max(held_decimal[0] - held_decimal[1], incoming_decimal[0] - incoming_decimal[1])
        # the decimals win over integer digits: a value too large to fit fails loudly, a
        # decimal cut off would be silent
        return f"DECIMAL({min(digits + scale, _MAX_PRECISION)},{scale})"
    (combined,) = con.execute(
        f"SELECT typeof(x) FROM (SELECT NULL::{held} AS x UNION ALL SELECT NULL::{incoming})"
        " LIMIT 1").fetchone() or (held,)
    return str(combined)


def _column_types(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    return {name: type_name for name, type_name, *_ in con.execute(
        f"DESCRIBE SELECT * FROM {relation} LIMIT 0").fetchall()}


def quoted_name(name: str) -> str:
    """A column name as a DuckDB identifier, whatever the warehouse put in it."""
    return '"' + name.replace('"', '""') + '"'


def follow_source_columns(con: duckdb.DuckDBPyConnection, raw_table: str,
                          source: str) -> list[str]:
    """Widen ``raw_table``'s columns to hold what ``source`` brings, and add the columns
    it has gained; returns what changed (``"amount DECIMAL(18,2) -> DECIMAL(18,3)"``), for
    the extract's log."""
    held, incoming = _column_types(con, raw_table), _column_types(con, source)
    changes = []
    for name, type_name in incoming.items():
        if name not in held:
            con.execute(f"ALTER TABLE {raw_table} ADD COLUMN {quoted_name(name)} {type_name}")
            changes.append(f"{name} added as {type_name}")
            continue
        wider = widest_type(con, held[name], type_name)
        if wider != held[name]:
            con.execute(f"ALTER TABLE {raw_table} ALTER {quoted_name(name)} TYPE {wider}")
            changes.append(f"{name} {held[name]} -> {wider}")
    return changes
