"""The daily sign-off report: one static HTML file per day, read from the snapshot only.

It is the archived record of what was sent to Amili on a day and what came back: headline
totals, the balance check's verdict, per-creditor reconciliation, charts drawn as inline SVG,
the reasons for rejections and quarantine with every rejected object, unanswered batches,
held payments, and what Amili holds (read back). No script and nothing fetched: the file
opens the same in ten years.
A re-run of a day writes a new report and keeps the earlier one under ``archive/``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

import duckdb

from amili.reporting import queries as q
from amili.reporting.display import format_amount, format_cell, format_count, format_timestamp
from amili.reporting.svg import Series, bar_chart, line_chart
from amili.settings import ReportingSettings, load

__all__ = ["WrittenReport", "render_signoff_report", "run_url", "write_signoff_report"]

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
svg { display: block; margin: 0.5em 0 1em; }
table.signoff th { width: 14em; }
table.signoff td { min-width: 28em; height: 2.2em; }
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
    """Rows as an HTML table; amounts, days and moments formatted here (Oslo time), numbers
    right-aligned (a column is numeric when named in ``numeric`` or holding numbers)."""
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    numeric = set(numeric) | {
        c for c in rows[0] if any(isinstance(r[c], (int, Decimal))
                                  and not isinstance(r[c], bool) for r in rows)}
    head = "".join(f"<th>{escape(str(c))}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{escape(format_cell(v))}</td>' if c in numeric
            else f"<td>{escape(format_cell(v))}</td>" for c, v in row.items()) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _headline_table(con: duckdb.DuckDBPyConnection, filters: q.Filters) -> str:
    """One row per bucket, a count and an amount column per kind and currency present
    (never a total across currencies), with ``data-figure="kind.CUR.bucket_count"`` ids."""
    columns = [(kind, row) for kind in q.MONEY_KINDS
               for row in q.headline(con, filters, kind=kind)]
    if not columns:
        return '<p class="muted" data-figure="no-totals">no invoices or payments</p>'
    head = "".join(f'<th colspan="2" data-currency="{escape(row["currency"])}">'
                   f'{escape(kind)}s in {escape(row["currency"])}</th>'
                   for kind, row in columns)
    sub = "<th>count</th><th>amount</th>" * len(columns)
    lines = []
    for b in q.buckets(con):
        cells = "".join(
            f'<td class="n" data-figure="{kind}.{escape(row["currency"])}.{b}_count">'
            f'{format_count(row[f"{b}_count"])}</td>'
            f'<td class="n" data-figure="{kind}.{escape(row["currency"])}.{b}_amount">'
            f'{escape(format_amount(row[f"{b}_amount"]))}</td>'
            for kind, row in columns)
        lines.append(f"<tr><th>{escape(b.replace('_', ' '))}</th>{cells}</tr>")
    return (f"<table><thead><tr><th>bucket</th>{head}</tr><tr><th></th>{sub}</tr></thead>"
            f"<tbody>{''.join(lines)}</tbody></table>")


def _charts(con: duckdb.DuckDBPyConnection, day: date) -> list[str]:
    """Per currency of the day's invoices sent (an unknown code that was only quarantined
    gets its totals, not charts of answers): amounts per creditor and over 30 days; then
    the rejection rate (a count). Each titled, with axis titles and its currency."""
    one_day = q.Filters(day, day)
    month = q.Filters(day - timedelta(days=29), day)
    charts = []
    for currency in q.currencies(con, one_day, kinds=("invoice",), sent_only=True):
        per_creditor = q.creditor_amounts(con, one_day, currency=currency)
        charts.append(bar_chart(
            f"Invoices accepted and rejected per creditor on {day}, in {currency}",
            [f"{r['creditor']} {r['creditor_name'] or ''}".strip()[:24] for r in per_creditor],
            [Series("accepted", [r["accepted_amount"] for r in per_creditor]),
             Series("rejected", [r["rejected_amount"] for r in per_creditor])],
            x_label="creditor", y_label=f"amount ({currency})"))
        trend = q.daily_trend(con, month, currency=currency)
        charts.append(bar_chart(
            f"Invoice amounts accepted and rejected per day, last 30 days, in {currency}",
            [r["day"].strftime("%m-%d") for r in trend],
            [Series("accepted", [r["accepted_amount"] for r in trend]),
             Series("rejected", [r["rejected_amount"] for r in trend])],
            x_label="day (mm-dd)", y_label=f"amount ({currency})"))
    trend = q.daily_trend(con, month)
    charts.append(line_chart(
        "Rejection rate of objects sent per day, last 30 days (all currencies: a count)",
        [r["day"].strftime("%m-%d") for r in trend],
        [Series("rejection rate", [r["rejection_rate"] for r in trend], "#c62828")],
        unit="%", x_label="day (mm-dd)", y_label="% of objects sent"))
    return charts


_SIGNOFF_BLOCK = """
<h2>Sign-off</h2>
<p class="muted">To be filled in by the reviewer, on screen or on paper: the figures above are
reviewed and the balance verdict accepted (or the exceptions noted).</p>
<table class="signoff" data-signoff="">
<tr><th>Reviewed by (name)</th><td data-signoff-field="reviewed_by"></td></tr>
<tr><th>When (date, time)</th><td data-signoff-field="reviewed_at"></td></tr>
<tr><th>Signature</th><td data-signoff-field="signature"></td></tr>
<tr><th>Exceptions and comments</th><td data-signoff-field="comments"></td></tr>
</table>
"""


def with_amili_section(con: duckdb.DuckDBPyConnection, day: date) -> str:
    """The "with Amili" section: what Amili holds now (open cases by age), what it settled in
    the month of ``day``, and the divergences from what we handed over, per currency; or a
    line saying that nothing was read back yet (a pipeline before its first read-back)."""
    head = '<h2 id="with-amili">With Amili</h2>'
    read_at = q.amili_read_at(con)
    if read_at is None:
        return (head + '<p class="muted" data-with-amili="none">Nothing was read back from '
                "Amili yet: no cases or settlements in the snapshot.</p>")
    month = day.replace(day=1)
    settled = [{k: r[k] for k in ("currency", "settlements", "settled_amount",
                                  "collected_amount")}
               for r in q.amili_monthly(con) if r["month"] == month]
    totals = q.divergence_totals(con)
    count = sum(r["invoices"] for r in totals)
    return "".join([
        head,
        f'<p class="muted" data-with-amili="read">Cases as Amili held them when last read, '
        f"{escape(format_timestamp(read_at))}; age is days from the case's registration to "
        "that read.</p>",
        "<h3>Open cases and remaining amounts by age, per currency</h3>",
        _table(q.open_cases_by_age(con), empty="no open cases"),
        f"<h3>Settled (paid out) and collected in {month:%Y-%m}, per currency</h3>",
        _table(settled, empty="nothing settled or collected this month"),
        f'<h3>Divergences from what we handed over: <span data-figure="divergences">{count}'
        "</span></h3>",
        _table(totals, empty="none: every case matches what we handed over"),
    ])


def render_signoff_report(con: duckdb.DuckDBPyConnection, day: date, *,
                          run_url: str | None = None) -> str:
    """The report of one day as a complete HTML document; ``run_url`` links back to the
    Dagster run that wrote it."""
    one_day = q.Filters(day, day)
    figures = q.balance_summary(con, one_day)
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
    run = (f'Written by Dagster run <a data-run-link="" href="{escape(run_url)}">'
           f"{escape(run_url.rstrip('/').rsplit('/', 1)[-1])}</a>. " if run_url else
           "Written outside a Dagster run. ")
    problems = q.problem_objects(con, one_day, MAX_LISTED_OBJECTS)
    sections = [
        f"<h1>Amili sign-off report {day.isoformat()}</h1>",
        f'<p class="muted">{run}From the reporting snapshot published '
        f'{escape(format_timestamp(info.get("published_at")))};'
        f" written {escape(format_timestamp(datetime.now(UTC)))} (Oslo time). Amounts are "
        "exact (DECIMAL), each in its own currency: currencies are never added together. "
        "The buckets are explained in docs/glossary.md.</p>",
        verdict,
        "<h2>Totals of the day, per currency</h2>",
        _headline_table(con, one_day),
        f'<p>Objects sent: <span data-figure="sent_objects">{figures["sent_objects"]}</span>,'
        f' rejected: <span data-figure="rejected_objects">{figures["rejected_objects"]}</span>'
        f' (<span data-figure="rejection_rate">'
        f'{str(figures["rejection_rate"]).replace(".", ",")}</span> %).</p>',
        "<h2>Charts</h2>", *_charts(con, day),
        "<h2>Warehouse rows: every row the extract read, and where it ended</h2>",
        _table(q.source_rows(con, one_day), empty="no warehouse rows read"),
        "<h2>Reconciliation per creditor and kind</h2>",
        _table(q.daily_reconciliation(con, one_day), empty="no rows"),
        "<h2>Top rejection and quarantine reasons (per currency)</h2>",
        _table(q.top_reasons(con, one_day, limit=20), empty="no rejections"),
        f"<h2>Rejected, quarantined, unanswered and changed objects ({len(problems)} "
        "listed)</h2>",
        '<p class="muted">changed after hand-over: Amili took the object, then it changed in '
        "the warehouse; it was not sent again, Amili holds <i>amili_holds</i>, the "
        "difference is the warehouse's amount less that.</p>",
        _table(problems, empty="none"),
        "<h2>Batches without a definite answer</h2>",
        _table(q.unanswered_batches(con, one_day), empty="every batch was answered"),
        "<h2>Payments held back (their invoice has no Amili id yet)</h2>",
        _table(q.held_payments(con, one_day), empty="none held"),
        with_amili_section(con, day),
        _SIGNOFF_BLOCK,
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Amili sign-off {day.isoformat()}</title><style>{_STYLE}</style></head>"
            f"<body>{''.join(sections)}</body></html>\n")


def run_url(run_id: str | None, ui_url: str | None = None) -> str | None:
    """The Dagster UI's page of a run (``AMILI_DAGSTER_UI_URL``, default
    http://127.0.0.1:3000, then ``/runs/<id>``); None without a run."""
    if not run_id:
        return None
    base = ui_url or load(ReportingSettings).dagster_ui_url
    return f"{base.rstrip('/')}/runs/{run_id}"


def write_signoff_report(reporting_db: str | Path, reports_dir: str | Path, start: date,
                         end: date, *, run_id: str | None = None,
                         dagster_ui_url: str | None = None) -> list[WrittenReport]:
    """Write ``<reports_dir>/YYYY-MM-DD.html`` for each day of ``[start, end)``.

    Each file is written under a temporary name and renamed into place. An existing report
    of the day with other content is first moved to ``archive/YYYY-MM-DD.<time>.html``, so
    nothing that was signed off is ever overwritten. ``run_id`` (the Dagster run writing
    the reports) becomes a link back to that run in the Dagster UI.
    """
    link = run_url(run_id, dagster_ui_url)
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with q.connect_snapshot(reporting_db) as con:
        day = start
        while day < end:
            html = render_signoff_report(con, day, run_url=link).encode("utf-8")
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
