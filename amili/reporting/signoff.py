"""The daily sign-off report: one static HTML file per day, read from the snapshot only.

It is the archived record of what was sent to Amili on a day and what came back: headline
totals, the balance check's verdict, per-creditor reconciliation, charts drawn as inline SVG,
the reasons for rejections and quarantine with every rejected object, unanswered batches
and held payments. No script and nothing fetched: the file opens the same in ten years.
A re-run of a day writes a new report and keeps the earlier one under ``archive/``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import duckdb

from amili.reporting import queries as q
from amili.reporting.svg import Series, bar_chart, line_chart

__all__ = ["WrittenReport", "render_signoff_report", "write_signoff_report"]

#: Objects listed in full per report; the rest is counted (the snapshot has them all).
MAX_LISTED_OBJECTS = 2000
_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
td.n { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.ok { background: #e8f5e9; padding: 0.5em 1em; border-left: 6px solid #2f7d32; }
.bad { background: #ffebee; padding: 0.5em 1em; border-left: 6px solid #c62828; }
.muted { color: #666; font-size: 12px; }
"""


@dataclass(frozen=True)
class WrittenReport:
    """A report on disk: its day, path, content hash and where the previous one went."""

    day: date
    path: Path
    sha256: str
    archived: Path | None = None


def _table(rows: list[dict[str, Any]], numeric: Iterable[str] = (), empty: str = "none"
           ) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    numeric = set(numeric)
    head = "".join(f"<th>{escape(str(c))}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{escape(_text(v))}</td>' if c in numeric
            else f"<td>{escape(_text(v))}</td>" for c, v in row.items()) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _headline_table(con: duckdb.DuckDBPyConnection, filters: q.Filters) -> str:
    """Counts and NOK amounts per bucket, invoices and payments, with data-figure ids."""
    lines = []
    names = q.buckets(con)
    for kind in q.MONEY_KINDS:
        figures = q.headline(con, filters, kind=kind)
        cells = "".join(
            f'<td class="n" data-figure="{kind}.{b}_count">{figures[f"{b}_count"]}</td>'
            f'<td class="n" data-figure="{kind}.{b}_amount">{figures[f"{b}_amount"]}</td>'
            for b in names)
        lines.append(f"<tr><th>{kind}s (NOK)</th>{cells}</tr>")
    head = "".join(f'<th colspan="2">{escape(b.replace("_", " "))}</th>' for b in names)
    sub = "<th>count</th><th>amount</th>" * len(names)
    return (f"<table><thead><tr><th></th>{head}</tr><tr><th></th>{sub}</tr></thead>"
            f"<tbody>{''.join(lines)}</tbody></table>")


def render_signoff_report(con: duckdb.DuckDBPyConnection, day: date) -> str:
    """The report of one day as a complete HTML document."""
    one_day = q.Filters(day, day)
    figures = q.headline(con, one_day)
    info = q.snapshot_info(con)
    unbalanced = figures["unbalanced_rows"]
    if figures["mart_rows"] == 0:
        verdict = '<p class="bad" data-verdict="empty">No reconciliation rows for this day: ' \
                  "nothing was eligible, or the day has not run.</p>"
    elif unbalanced:
        verdict = (f'<p class="bad" data-verdict="unbalanced"><b>Does not balance:</b> '
                   f"{unbalanced} of {figures['mart_rows']} rows. Do not sign off.</p>")
    else:
        verdict = (f'<p class="ok" data-verdict="balances"><b>Every krone is accounted '
                   f"for:</b> all {figures['mart_rows']} rows balance.</p>")

    per_creditor = q.creditor_amounts(con, one_day)
    creditor_chart = bar_chart(
        f"Invoices accepted and rejected per creditor on {day} (NOK)",
        [r["creditor"] for r in per_creditor],
        [Series("accepted", [r["accepted_amount"] for r in per_creditor]),
         Series("rejected", [r["rejected_amount"] for r in per_creditor])],
    )
    trend = q.daily_trend(con, q.Filters(day - timedelta(days=29), day))
    labels = [r["day"].strftime("%m-%d") for r in trend]
    trend_chart = bar_chart(
        "Invoice amounts per day, last 30 days (NOK)", labels,
        [Series("accepted", [r["accepted_amount"] for r in trend]),
         Series("rejected", [r["rejected_amount"] for r in trend])],
    )
    rate_chart = line_chart(
        "Rejection rate of objects sent, last 30 days", labels,
        [Series("rejection rate", [r["rejection_rate"] for r in trend], "#c62828")], unit="%",
    )
    reasons = q.top_reasons(con, one_day, limit=20)
    problems = q.rows(con, f"""
        SELECT objectname AS kind, source_id, invoice_id, creditor_id AS creditor, batchid,
               ledgerref, CASE WHEN amount IS NULL THEN '' ELSE {q.nok_sql('amount')} END
                   AS amount, coalesce(currency, '') AS currency, {q.held_columns_sql(con)},
               kind AS problem, message
        FROM report.problems WHERE partition_date = $day
        ORDER BY kind, objectname, source_id LIMIT {MAX_LISTED_OBJECTS}""", {"day": day})
    amount_columns = [*q.buckets(con), *(f"{b}_amount" for b in q.buckets(con))]
    sections = [
        f"<h1>Amili sign-off report {day.isoformat()}</h1>",
        '<p class="muted">From the reporting snapshot published '
        f'{escape(str(info.get("published_at", "?")))};'
        f" written {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}. Amounts are exact "
        "(DECIMAL), in NOK unless a currency is shown.</p>",
        verdict,
        "<h2>Totals of the day</h2>",
        _headline_table(con, one_day),
        f'<p>Objects sent: <span data-figure="sent_objects">{figures["sent_objects"]}</span>,'
        f' rejected: <span data-figure="rejected_objects">{figures["rejected_objects"]}</span>'
        f' (<span data-figure="rejection_rate">{figures["rejection_rate"]}</span> %).</p>',
        "<h2>Charts</h2>", creditor_chart, trend_chart, rate_chart,
        "<h2>Warehouse rows: every row the extract read, and where it ended</h2>",
        _table(q.source_rows(con, one_day), numeric=("rows", "amount"),
               empty="no warehouse rows read"),
        "<h2>Reconciliation per creditor and kind</h2>",
        _table(q.daily_reconciliation(con, one_day), numeric=amount_columns,
               empty="no rows"),
        "<h2>Top rejection and quarantine reasons</h2>",
        _table(reasons, numeric=("objects", "amount_nok"), empty="no rejections"),
        f"<h2>Rejected, quarantined, unanswered and changed objects ({len(problems)} "
        "listed)</h2>",
        '<p class="muted">changed after hand-over: Amili took the object, then it changed in '
        "the warehouse; it was not sent again, Amili holds <i>amili_holds</i>, the "
        "difference is the warehouse's amount less that.</p>",
        _table(problems, numeric=("amount", "amili_holds", "difference"), empty="none"),
        "<h2>Batches without a definite answer</h2>",
        _table(q.unanswered_batches(con, one_day), empty="every batch was answered"),
        "<h2>Payments held back (their invoice has no Amili id yet)</h2>",
        _table(q.held_payments(con, one_day), numeric=("amount",), empty="none held"),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Amili sign-off {day.isoformat()}</title><style>{_STYLE}</style></head>"
            f"<body>{''.join(sections)}</body></html>\n")


def write_signoff_report(reporting_db: str | Path, reports_dir: str | Path, start: date,
                         end: date) -> list[WrittenReport]:
    """Write ``<reports_dir>/YYYY-MM-DD.html`` for each day of ``[start, end)``.

    Each file is written under a temporary name and renamed into place. An existing report
    of the day with other content is first moved to ``archive/YYYY-MM-DD.<time>.html``, so
    nothing that was signed off is ever overwritten.
    """
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with q.connect_snapshot(reporting_db) as con:
        day = start
        while day < end:
            html = render_signoff_report(con, day).encode("utf-8")
            written.append(_publish(reports_dir, day, html))
            day += timedelta(days=1)
    return written


def _publish(reports_dir: Path, day: date, html: bytes) -> WrittenReport:
    path = reports_dir / f"{day.isoformat()}.html"
    digest = hashlib.sha256(html).hexdigest()
    archived = None
    if path.exists():
        if hashlib.sha256(path.read_bytes()).hexdigest() == digest:
            return WrittenReport(day, path, digest)
        stamp = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y%m%dT%H%M%S%f")
        archived = reports_dir / "archive" / f"{day.isoformat()}.{stamp}.html"
        archived.parent.mkdir(exist_ok=True)
        os.replace(path, archived)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(html)
    os.replace(temp, path)
    return WrittenReport(day, path, digest, archived)
