"""Amili reconciliation dashboard (a marimo app): ``amili dashboard`` serves it on loopback.

It reads only the published reporting snapshot (``AMILI_REPORTING_DB``, by default
``data/reporting.duckdb``), never the pipeline's own database, so it can stay open while the
daily job runs. Every query opens the snapshot read-only, with no access to any other file,
and every amount is summed and formatted in SQL as DECIMAL (see amili/reporting/queries.py).

Analysts who want their own notebook: ``cp dashboards/reconciliation.py my.py`` and
``uv run marimo edit my.py``; the "Ad-hoc SQL" box below works in the app itself.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full", app_title="Amili reconciliation")


@app.cell
def _():
    import os
    from datetime import timedelta
    from html import escape
    from pathlib import Path

    import marimo as mo

    from amili.reporting import queries as q
    from amili.reporting.svg import Series, bar_chart, line_chart
    from amili.settings import reporting_paths

    SNAPSHOT = Path(os.environ.get("AMILI_REPORTING_DB") or reporting_paths().reporting_db)
    return Series, SNAPSHOT, bar_chart, escape, line_chart, mo, q, timedelta


@app.cell
def _(mo):
    reload = mo.ui.button(label="Reload the snapshot", value=0,
                          on_click=lambda n: (n or 0) + 1)
    return (reload,)


@app.cell
def _(SNAPSHOT, mo, q, reload, timedelta):
    _ = reload.value  # re-read the snapshot when the button is pressed
    mo.stop(not SNAPSHOT.exists(), mo.callout(mo.md(
        f"**No reporting snapshot at `{SNAPSHOT}` yet.** Run the daily job (or "
        "`amili demo`): its `reporting_snapshot` asset publishes it."), kind="warn"))
    with q.connect_snapshot(SNAPSHOT) as _con:
        info = q.snapshot_info(_con)
        creditor_ids = q.creditors(_con)
        first_day, last_day = q.day_range(_con)
        stale = q.stale_days(_con)
    default_end = last_day or q.Filters.last_days().end
    default_start = max(default_end - timedelta(days=29), first_day or default_end)
    return creditor_ids, default_end, default_start, info, stale


@app.cell
def _(creditor_ids, default_end, default_start, info, mo, reload, stale):
    days = mo.ui.date_range(value=(default_start, default_end), label="Days")
    creditor = mo.ui.dropdown(options=["All creditors", *creditor_ids],
                              value="All creditors", label="Creditor")
    mo.vstack([
        mo.md("# Amili reconciliation"),
        mo.md(f"Snapshot published **{info.get('published_at', '?')}**. Amounts are exact "
              "NOK (DECIMAL, summed in SQL). Defaults: the 30 days up to the latest day in "
              "the snapshot, all creditors."),
        mo.hstack([days, creditor, reload], justify="start", gap=2),
        *([mo.callout(mo.md(
            "**Out of date:** the reconciliation of "
            + ", ".join(f"**{d}**" for d in stale)
            + " was not rebuilt after its latest submission (its reconciliation step "
            "failed or has not run since), so its figures here are missing or stale. "
            "Details: `report.day_status`."), kind="warn")] if stale else []),
    ])
    return creditor, days


@app.cell
def _(creditor, days, q):
    filters = q.Filters(days.value[0], days.value[1],
                        None if creditor.value == "All creditors" else creditor.value)
    return (filters,)


@app.cell
def _(SNAPSHOT, escape, filters, mo, q):
    with q.connect_snapshot(SNAPSHOT) as _con:
        figures = q.headline(_con, filters)
        bucket_names = q.buckets(_con)

    def _card(name: str) -> str:
        return (
            f'<div class="amili-card" data-bucket="{escape(name)}" style="border:1px solid '
            '#ccc;border-radius:6px;padding:6px 10px;min-width:120px">'
            f'<div style="font-size:12px;color:#555">{escape(name.replace("_", " "))}</div>'
            f'<div style="font-size:20px" data-figure="{escape(name)}_count">'
            f'{figures[f"{name}_count"]}</div>'
            f'<div style="font-variant-numeric:tabular-nums" data-figure="{escape(name)}_amount">'
            f'kr {figures[f"{name}_amount"]}</div></div>'
        )

    _verdict = (
        f'<b data-figure="unbalanced_rows">{figures["unbalanced_rows"]}</b> of '
        f'{figures["mart_rows"]} reconciliation rows do not balance'
        if figures["unbalanced_rows"] else
        f'all <span data-figure="mart_rows">{figures["mart_rows"]}</span> reconciliation '
        'rows balance (<span data-figure="unbalanced_rows">0</span> unbalanced)'
    )
    mo.vstack([
        mo.md("## Invoices handed over (NOK)"),
        mo.Html('<div id="amili-headline" style="display:flex;flex-wrap:wrap;gap:8px">'
                + "".join(_card(b) for b in bucket_names) + "</div>"),
        mo.Html(f"<p>Balance check: {_verdict}. Rejection rate of all objects sent: "
                f'<b data-figure="rejection_rate">{figures["rejection_rate"]}</b> % '
                f'(<span data-figure="rejected_objects">{figures["rejected_objects"]}</span> of '
                f'<span data-figure="sent_objects">{figures["sent_objects"]}</span>).</p>'),
    ])
    return


@app.cell
def _(SNAPSHOT, Series, bar_chart, filters, line_chart, mo, q):
    with q.connect_snapshot(SNAPSHOT) as _con:
        _trend = q.daily_trend(_con, filters)
    _labels = [r["day"].strftime("%m-%d") for r in _trend]
    mo.vstack([
        mo.md("## Trends"),
        mo.hstack([
            mo.Html(bar_chart(
                "Invoice amounts accepted and rejected per day (NOK)", _labels,
                [Series("accepted", [r["accepted_amount"] for r in _trend]),
                 Series("rejected", [r["rejected_amount"] for r in _trend])])),
            mo.Html(line_chart(
                "Rejection rate of objects sent per day", _labels,
                [Series("rejection rate", [r["rejection_rate"] for r in _trend], "#c62828")],
                unit="%")),
        ], justify="start", wrap=True),
    ])
    return


@app.cell
def _(SNAPSHOT, filters, mo, q):
    with q.connect_snapshot(SNAPSHOT) as _con:
        _daily = q.daily_reconciliation(_con, filters)
    mo.vstack([
        mo.md("## Per day and creditor\n\nCounts, and amounts in the row's currency; "
              "`balance_check` is the blocking check's verdict for the row."),
        mo.ui.table(_daily, selection=None, page_size=20, show_column_summaries=False,
                    label="Reconciliation per day, creditor and kind")
        if _daily else mo.md("_No reconciliation rows in this range._"),
    ])
    return


@app.cell
def _(SNAPSHOT, filters, mo, q):
    with q.connect_snapshot(SNAPSHOT) as _con:
        _source = q.source_rows(_con, filters)
    mo.vstack([
        mo.md("## Warehouse rows\n\nEvery row the extract read (invoices, claim lines, "
              "reminders, payments, case actions, debtors, creditors) and the bucket it ended "
              "in; amounts exactly as the warehouse has them. `unaccounted` fails the "
              "blocking check."),
        mo.ui.table(_source, selection=None, page_size=20, show_column_summaries=False,
                    label="Warehouse rows per table and bucket")
        if _source else mo.md("_No warehouse rows in this range (or the creditor filter is "
                              "set: warehouse rows are counted for all creditors)._"),
    ])
    return


@app.cell
def _(SNAPSHOT, filters, mo, q):
    with q.connect_snapshot(SNAPSHOT) as _con:
        reasons = q.top_reasons(_con, filters)
    reason = mo.ui.dropdown(
        options={f"{r['kind']}: {r['reason']} ({r['objects']})": f"{r['kind']}\t{r['reason']}"
                 for r in reasons},
        label="Show the objects behind a reason", full_width=True,
    )
    search = mo.ui.text(placeholder="filter by source id, invoice id, batch id, ledgerref",
                        label="Search", full_width=True)
    mo.vstack([
        mo.md("## Top rejection and quarantine reasons"),
        mo.ui.table(reasons, selection=None, show_column_summaries=False, page_size=10)
        if reasons else mo.md("_No rejections or quarantined rows in this range._"),
        reason, search,
    ])
    return reason, search


@app.cell
def _(SNAPSHOT, filters, mo, q, reason, search):
    mo.stop(not reason.value, mo.md("_Choose a reason above to see its invoices and "
                                    "payments._"))
    _kind, _reason = reason.value.split("\t", 1)
    with q.connect_snapshot(SNAPSHOT) as _con:
        _objects = q.reason_objects(_con, filters, _kind, _reason, search.value)
    mo.vstack([
        mo.md(f"### {len(_objects)} object(s): {_kind}"),
        mo.ui.table(_objects, selection=None, show_column_summaries=False, page_size=25,
                    wrapped_columns=["message"], label="Objects behind the reason")
        if _objects else mo.md("_None match._"),
    ])
    return


@app.cell
def _(SNAPSHOT, filters, mo, q):
    with q.connect_snapshot(SNAPSHOT) as _con:
        _unanswered = q.unanswered_batches(_con, filters)
        _held = q.held_payments(_con, filters)
    mo.vstack([
        mo.md("## Batches sent but not answered"),
        mo.ui.table(_unanswered, selection=None, show_column_summaries=False)
        if _unanswered else mo.md("_Every batch in this range got an answer._"),
        mo.md("## Payments held back, waiting for their invoice's Amili id"),
        mo.ui.table(_held, selection=None, show_column_summaries=False)
        if _held else mo.md("_No payment is held back in this range._"),
    ])
    return


@app.cell
def _(mo):
    sql = mo.ui.code_editor(
        value="SELECT objectname, fate, outcome, count(*) AS objects, sum(amount) AS amount\n"
        "FROM marts.rpt_object_fates\nGROUP BY ALL ORDER BY ALL",
        language="sql", label="Your query (read-only, on the snapshot)", min_height=120,
    )
    run_sql = mo.ui.run_button(label="Run query")
    mo.vstack([
        mo.md("## Ad-hoc SQL\n\nAny read-only DuckDB query over the snapshot: schemas "
              "`marts` (rpt_*), `amili` (responses, errors, quarantine, submission_ledger) "
              "and `report` (problems, held_payments, snapshot_info). At most 1000 rows."),
        sql, run_sql,
    ])
    return run_sql, sql


@app.cell
def _(SNAPSHOT, mo, q, run_sql, sql):
    mo.stop(not run_sql.value, mo.md("_Press **Run query**._"))
    try:
        _columns, _rows = q.run_sql(SNAPSHOT, sql.value)
    except Exception as _error:  # the analyst's SQL: show DuckDB's message, not a traceback
        _out = mo.callout(mo.md(f"**Query failed:** `{_error}`"), kind="danger")
    else:
        _out = (mo.ui.table(_rows, selection=None, show_column_summaries=False,
                            label=f"{len(_rows)} row(s)")
                if _rows else mo.md(f"_No rows_ ({', '.join(_columns) or 'no result'})."))
    mo.vstack([mo.md("### Result"), _out])
    return


if __name__ == "__main__":
    app.run()
