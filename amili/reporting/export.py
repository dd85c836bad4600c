"""Tables as an Excel workbook (XLSX) whose amounts are numbers, not text.

marimo's own table download offers CSV, JSON and Parquet only; finance works in Excel, and
a CSV opened there turns ``1 234,50`` or a leading-zero id into something else. Here each
table becomes a sheet; Decimal amounts are written as exact numeric cells with a two-decimal
format, days as dates, and moments as Oslo wall-clock times (Excel has no time zones).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from amili.reporting.display import OSLO

__all__ = ["XLSX_MIMETYPE", "xlsx_bytes"]

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_INVALID_SHEET_CHARS = str.maketrans({c: " " for c in "[]:*?/\\"})


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(OSLO).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, (list, tuple, dict, set)):
        return str(value)
    return value


def xlsx_bytes(sheets: Mapping[str, Sequence[Mapping[str, Any]]]) -> bytes:
    """One sheet per named table (its column names as the header row); empty tables get
    a header-less sheet saying so, so the workbook always has every sheet asked for."""
    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name.translate(_INVALID_SHEET_CHARS)[:31] or "sheet")
        if not rows:
            sheet.append(["(no rows)"])
            continue
        columns = list(rows[0])
        sheet.append(columns)
        for row in rows:
            sheet.append([_cell(row.get(c)) for c in columns])
        for index, column in enumerate(columns, start=1):
            values = [row.get(column) for row in rows]
            letter = get_column_letter(index)
            if any(isinstance(v, Decimal) for v in values):
                for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                    cell.number_format = "#,##0.00"
            elif any(isinstance(v, datetime) for v in values):
                for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                    cell.number_format = "yyyy-mm-dd hh:mm:ss"
            width = max([len(str(column)), *(len(str(v)) for v in values if v is not None)])
            sheet.column_dimensions[letter].width = min(60, width + 2)
        sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
