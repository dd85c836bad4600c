"""Tables in the Dagster UI's metadata, from rows of the project's own types.

``MetadataValue.table`` takes only str, int, float, bool and None as values; amounts are
``Decimal`` and days are ``date``, so they become text here (exact, never a float).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

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


#: The hundredth of each currency, by its name (øre, cent); others are "minor" units.
_MINOR_UNITS = {"NOK": "ore", "SEK": "ore", "DKK": "ore", "EUR": "cent", "USD": "cent",
                "GBP": "pence"}


def amount_key(bucket: str, currency: str) -> str:
    """The metadata key of an amount in hundredths of one currency, e.g.
    ``accepted_amount_nok_ore`` or ``accepted_amount_eur_cent``: one key per currency, so
    the UI plots each currency by itself and never adds NOK to EUR."""
    unit = _MINOR_UNITS.get(currency, "minor")
    code = "".join(ch for ch in currency.lower() if ch.isalnum()) or "unknown"
    return f"{bucket}_amount_{code}_{unit}"


def to_hundredths(amount: Decimal) -> int:
    """An amount as an exact integer of hundredths (øre, cent): Dagster plots numbers, and a
    float is not money. Refuses fractions of a hundredth rather than round them."""
    hundredths = amount * 100
    if hundredths != hundredths.to_integral_value():
        raise ValueError(f"{amount} is not a whole number of hundredths")
    return int(hundredths)


def amounts_table(amounts: Mapping[str, Mapping[str, Decimal]], buckets: Sequence[str]
                  ) -> TableMetadataValue:
    """One row per currency, one exact decimal column per bucket (text: never a float)."""
    return metadata_table(
        [("currency", "string"), *((bucket, "decimal") for bucket in buckets)],
        [{"currency": currency, **by_bucket} for currency, by_bucket in sorted(amounts.items())],
    )
