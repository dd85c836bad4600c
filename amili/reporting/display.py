"""Turning exact values into text, only where they are shown.

The queries return numbers (Decimal, int), dates and timestamps, so exports and sorting see
numbers; the dashboard and the sign-off report call these functions as they draw a cell.
Amounts are written as Norwegian finance writes them (``12 345 678,90``, a non-breaking
space between thousands), dates in ISO (``2026-11-24``) or Norwegian (``24.11.2026``) form,
and timestamps in Europe/Oslo time, whatever the server's time zone.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

__all__ = [
    "DATE_STYLES",
    "OSLO",
    "format_amount",
    "format_cell",
    "format_count",
    "format_day",
    "format_mapping",
    "format_timestamp",
    "parse_amount",
    "table_options",
]

NBSP = "\u00a0"
OSLO = ZoneInfo("Europe/Oslo")
DateStyle = Literal["iso", "norwegian"]
#: The choices the dashboard offers, label -> style.
DATE_STYLES: dict[str, DateStyle] = {"ISO (2026-11-24)": "iso",
                                     "Norwegian (24.11.2026)": "norwegian"}


def _grouped(digits: str) -> str:
    """``1234567`` as ``1 234 567`` (a non-breaking space between thousands)."""
    groups = []
    while digits:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    return NBSP.join(groups) or "0"


def format_count(value: int | None) -> str:
    """``12345`` as ``12 345``: counts grouped like amounts, so the two read alike on a
    tile; empty for none."""
    if value is None:
        return ""
    return f"{'-' if value < 0 else ''}{_grouped(str(abs(int(value))))}"


def format_amount(value: Decimal | int | None) -> str:
    """``-1234567.8`` as ``-1 234 567,80``; empty for no amount. Exact: no float on the way,
    and an amount finer than the øre (Amili's read-back may carry one) keeps its decimals."""
    if value is None:
        return ""
    amount = Decimal(value)
    ore = Decimal("0.01")
    amount = amount.quantize(ore) if amount == amount.quantize(ore) else amount.normalize()
    sign = "-" if amount < 0 else ""
    whole, _, ore = f"{abs(amount):f}".partition(".")
    return f"{sign}{_grouped(whole)},{ore or '00'}"


def parse_amount(text: str) -> Decimal:
    """The inverse of :func:`format_amount` (also reads ``kr``/currency-free text)."""
    cleaned = "".join(ch for ch in text if ch.isdigit() or ch in "-,.")
    return Decimal(cleaned.replace(",", "."))


def format_day(value: date | None, style: DateStyle = "iso") -> str:
    if value is None:
        return ""
    return value.strftime("%d.%m.%Y") if style == "norwegian" else value.isoformat()


def format_timestamp(value: datetime | None, style: DateStyle = "iso") -> str:
    """A moment in Oslo time, with its zone (CET or CEST); a naive value is taken as UTC,
    which is what DuckDB's ``now()`` stores."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo("UTC"))
    local = value.astimezone(OSLO)
    return f"{format_day(local.date(), style)} {local:%H:%M:%S %Z}"


def format_cell(value: Any, style: DateStyle = "iso") -> str:
    """Any value of a query row as text: amounts, days, moments, yes/no."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format_amount(value)
    if isinstance(value, datetime):
        return format_timestamp(value, style)
    if isinstance(value, date):
        return format_day(value, style)
    return str(value)


def format_mapping(rows: list[dict[str, Any]], style: DateStyle = "iso"
                   ) -> dict[str, Any]:
    """marimo's ``format_mapping`` for a table of query rows: amounts, days and moments are
    shown formatted while the table keeps (sorts and downloads) the values themselves."""
    if not rows:
        return {}
    mapping: dict[str, Any] = {}
    for column in rows[0]:
        sample = next((r[column] for r in rows if r[column] is not None), None)
        if isinstance(sample, (Decimal, date, bool)):  # datetime is a date
            mapping[column] = lambda value, _style=style: format_cell(value, _style)
    return mapping


def table_options(rows: list[dict[str, Any]], style: DateStyle = "iso") -> dict[str, Any]:
    """Keyword arguments for ``mo.ui.table``: the :func:`format_mapping`, and amounts and
    counts right-aligned as figures are (the formatted text would otherwise sit left)."""
    if not rows:
        return {}
    numeric = {c: "right" for c in rows[0]
               if any(isinstance(r[c], (int, Decimal)) and not isinstance(r[c], bool)
                      for r in rows)}
    return {"format_mapping": format_mapping(rows, style), "text_justify_columns": numeric}
