"""Tables in the Dagster UI's metadata, from rows of the project's own types.

``MetadataValue.table`` takes only str, int, float, bool and None as values; amounts are
``Decimal`` and days are ``date``, so they become text here (exact, never a float).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from dagster import MetadataValue, TableColumn, TableMetadataValue, TableRecord, TableSchema

Cell = str | int | float | bool | None


def _cell(value: object) -> Cell:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # Decimal, date, UUID: their exact text


def metadata_table(
    columns: Sequence[tuple[str, str]], rows: Iterable[Mapping[str, object]]
) -> TableMetadataValue:
    """A table of ``rows`` with the given ``(name, type)`` columns, in that order."""
    names = [name for name, _ in columns]
    return MetadataValue.table(
        records=[TableRecord({name: _cell(row.get(name)) for name in names}) for row in rows],
        schema=TableSchema(columns=[TableColumn(name, type) for name, type in columns]),
    )
