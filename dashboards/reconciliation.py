"""Amili reconciliation dashboard (a marimo app): ``amili dashboard`` serves it on loopback.

It reads only the published reporting snapshot (``AMILI_REPORTING_DB``, by default
``data/reporting.duckdb``), never the pipeline's own database, so it can stay open while the
daily job runs. Every query opens the snapshot read-only, with no access to any other file,
and returns exact numbers (DECIMAL amounts, per currency: never added across currencies);
they are formatted only where shown (amili/reporting/display.py), so the tables sort and
download as numbers. The glossary shown at the top is docs/glossary.md, read as the page loads.

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

    from amili.reporting import display as d
    from amili.reporting import queries as q
    from amili.reporting.svg import Series, bar_chart, line_chart
    from amili.settings import reporting_paths

    SNAPSHOT = Path(os.environ.get("AMILI_REPORTING_DB") or reporting_paths().reporting_db)
    GLOSSARY = Path(__file__).resolve().parents[1] / "docs" / "glossary.md"
    return GLOSSARY, SNAPSHOT, Series, bar_chart, d, escape, line_chart, mo, q, timedelta


@app.cell
def _(d, mo):
    reload = mo.ui.button(label="Reload the snapshot", value=0,
                          on_click=lambda n: (n or 0) + 1)
    date_style = mo.ui.radio(options=d.DATE_STYLES, value=next(iter(d.DATE_STYLES)),
                             inline=True, label="Dates")
    return date_style, reload


@app.cell
def _(SNAPSHOT, mo, q, reload, timedelta):
    _ = reload.value  # re-read the snapshot when the button is pressed
    mo.stop(not SNAPSHOT.exists(), mo.callout(mo.md(
        f"**No reporting snapshot at `{SNAPSHOT}` yet.** Run the daily job (or "
        "`amili demo`): its `reporting_snapshot` asset publishes it."), kind="warn"))
    with q.connect_snapshot(SNAPSHOT) as _con:
        info = q.snapshot_info(_con)
        creditor_ids = q.creditors(_con)
        names = q.creditor_names(_con)
        first_day, last_day = q.day_range(_con)
        stale = q.stale_days(_con)
    default_end = last_day or q.Filters.last_days().end
    default_start = max(default_end - timedelta(days=29), first_day or default_end)
    return creditor_ids, default_end, default_start, info, names, stale


@app.cell
def _(GLOSSARY, creditor_ids, d, date_style, default_end, default_start, info, mo, names,
      reload, stale):
    days = mo.ui.date_range(value=(default_start, default_end), label="Days")
    creditor = mo.ui.dropdown(
        options={"All creditors": "", **{
            f"{c} {names[c]}" if c in names else c: c for c in creditor_ids}},
        value="All creditors", label="Creditor")
    _glossary = (GLOSSARY.read_text(encoding="utf-8") if GLOSSARY.exists()
                 else f"_The glossary ({GLOSSARY}) is missing._")
    mo.vstack([
        mo.md("# Amili reconciliation"),
        mo.md("Snapshot published **"
              + d.format_timestamp(info.get("published_at"), date_style.value)
              + "** (Oslo time). Amounts are exact (DECIMAL), each in its own currency: "
              "NOK, EUR and SEK are never added together. Defaults: the 30 days up to the "
              "latest day in the snapshot, all creditors."),
        mo.hstack([days, creditor, date_style, reload], justify="start", gap=2),
        mo.accordion({"Glossary: what the buckets and terms mean": mo.md(_glossary)}),
        *([mo.callout(mo.md(
            "**Out of date:** the reconciliation of "
            + ", ".join(f"**{d.format_day(_day, date_style.value)}**" for _day in stale)
            + " was not rebuilt after its latest submission (its reconciliation step "
            "failed or has not run since), so its figures here are missing or stale. "
            "Details: `report.day_status`."), kind="warn")] if stale else []),
    ])
    return creditor, days


@app.cell
def _(creditor, date_style, days, q):
    filters = q.Filters(days.value[0], days.value[1], creditor.value or None)
    style = date_style.value
    return filters, style


@app.cell
def _(SNAPSHOT, d, escape, filters, mo, q):
    with q.connect_snapshot(SNAPSHOT) as _con:
        headlines = {kind: q.headline(_con, filters, kind=kind) for kind in q.MONEY_KINDS}
        figures = q.balance_summary(_con, filters)
        bucket_names = q.buckets(_con)

    #: the other buckets get a tile only when something is in them (the table has them all)
    ALWAYS_SHOWN = ("eligible", "sent", "accepted", "rejected")

    def _card(row: dict, name: str) -> str:
        return (
            f'<div class="amili-card" data-bucket="{escape(name)}" style="border:1px solid '
            '#ccc;border-radius:6px;padding:6px 10px;min-width:120px">'
            f'<div style="font-size:12px;color:#555">{escape(name.replace("_", " "))}</div>'
            f'<div style="font-size:20px" data-figure="{escape(name)}_count">'
            f'{d.format_count(row[f"{name}_count"])}</div>'
            f'<div style="font-variant-numeric:tabular-nums;white-space:nowrap" '
            f'data-figure="{escape(name)}_amount">'
            f'{escape(d.format_amount(row[f"{name}_amount"]))} {escape(row["currency"])}'
            "</div></div>"
        )

    def _currency(kind: str, row: dict) -> str:
        return (
            f'<div class="amili-currency" data-kind="{escape(kind)}" '
            f'data-currency="{escape(row["currency"])}"><h3 style="margin:8px 0 4px">'
            f'{escape(kind.capitalize())}s in {escape(row["currency"])}</h3>'
            '<div style="display:flex;flex-wrap:wrap;gap:8px">'
            + "".join(_card(row, b) for b in bucket_names
                      if b in ALWAYS_SHOWN or row[f"{b}_count"] or row[f"{b}_amount"])
            + "</div></div>")

    _blocks = [_currency(kind, row) for kind, found in headlines.items() for row in found]
    _verdict = (
        f'<b data-figure="unbalanced_rows">{figures["unbalanced_rows"]}</b> of '
        f'{figures["mart_rows"]} reconciliation rows do not balance'
        if figures["unbalanced_rows"] else
        f'all <span data-figure="mart_rows">{figures["mart_rows"]}</span> reconciliation '
        'rows balance (<span data-figure="unbalanced_rows">0</span> unbalanced)'
    )
    mo.vstack([
        mo.md("## Handed over, per currency\n\nEligible, sent, accepted and rejected always; "
              "any other bucket when something is in it (see the glossary)."),
        mo.Html('<div id="amili-headline">' + "".join(_blocks) + "</div>") if _blocks
        else mo.md("_No invoices or payments in this range._"),
        mo.Html(f"<p>Balance check: {_verdict}. Rejection rate of all objects sent (a "
                'count, every currency): <b data-figure="rejection_rate">'
                f'{str(figures["rejection_rate"]).replace(".", ",")}</b> % '
                f'(<span data-figure="rejected_objects">{figures["rejected_objects"]}</span> of '
                f'<span data-figure="sent_objects">{figures["sent_objects"]}</span>).</p>'),
    ])
    return


@app.cell
def _(SNAPSHOT, Series, bar_chart, filters, line_chart, mo, q, style):
    with q.connect_snapshot(SNAPSHOT) as _con:
        # a chart per currency sent (a code only ever quarantined has tiles, no answers)
        _trends = {currency: q.daily_trend(_con, filters, currency=currency)
                   for currency in q.currencies(_con, filters, ("invoice",), sent_only=True)}
        _rate = q.daily_trend(_con, filters)
    _day_label = "day" + (" (dd.mm)" if style == "norwegian" else " (mm-dd)")

    def _label(day) -> str:
        return day.strftime("%d.%m" if style == "norwegian" else "%m-%d")

    _charts = [
        mo.Html(bar_chart(
            f"Invoice amounts accepted and rejected per day, in {currency}",
            [_label(r["day"]) for r in trend],
            [Series("accepted", [r["accepted_amount"] for r in trend]),
             Series("rejected", [r["rejected_amount"] for r in trend])],
            x_label=_day_label, y_label=f"amount ({currency})"))
        for currency, trend in _trends.items()
    ]
    _charts.append(mo.Html(line_chart(
        "Rejection rate of objects sent per day", [_label(r["day"]) for r in _rate],
        [Series("rejection rate", [r["rejection_rate"] for r in _rate], "#c62828")],
        unit="%", x_label=_day_label, y_label="% of objects sent")))
    mo.vstack([mo.md("## Trends"), mo.hstack(_charts, justify="start", wrap=True)])
    return


@app.cell
def _(SNAPSHOT, d, filters, mo, q, style):
    with q.connect_snapshot(SNAPSHOT) as _con:
        daily = q.daily_reconciliation(_con, filters)
        source = q.source_rows(_con, filters)
        _by_creditor = q.source_rows_by_creditor(_con)
    mo.vstack([
        mo.md("## Per day and creditor\n\nCounts, and amounts in the row's currency; "
              "`balance_check` is the blocking check's verdict for the row."),
        mo.ui.table(daily, selection=None, page_size=20, show_column_summaries=False,
                    **d.table_options(daily, style),
                    label="Reconciliation per day, creditor and kind")
        if daily else mo.md("_No reconciliation rows in this range._"),
        mo.md("## Warehouse rows\n\nEvery row the extract read (invoices, claim lines, "
              "reminders, payments, case actions, debtors, creditors) and the bucket it ended "
              "in; amounts exactly as the warehouse has them, per currency. `unaccounted` "
              "fails the blocking check. Rows whose creditor is not known (a payment of no "
              "invoice, or of one the warehouse does not have) are listed only under all "
              "creditors."),
        mo.ui.table(source, selection=None, page_size=20, show_column_summaries=False,
                    **d.table_options(source, style),
                    label="Warehouse rows per table and bucket")
        if source else mo.md("_No warehouse rows in this range._" if _by_creditor or not
                             filters.creditor else
                             "_No warehouse rows for one creditor: this snapshot is older "
                             "and counts them for all creditors only._"),
    ])
    return daily, source


@app.cell
def _(SNAPSHOT, d, filters, mo, q, style):
    with q.connect_snapshot(SNAPSHOT) as _con:
        reasons = q.top_reasons(_con, filters, limit=50)
    reason_table = mo.ui.table(
        reasons, selection="single", show_column_summaries=False, page_size=10,
        **d.table_options(reasons, style),
        wrapped_columns=["reason"] if reasons else None,
        label="Tick a reason (the box at the start of its row) to see the objects behind it")
    search = mo.ui.text(placeholder="filter by source id, invoice id, batch id, ledgerref",
                        label="Search", full_width=True)
    mo.vstack([
        mo.md("## Top rejection and quarantine reasons\n\nOne row per reason and currency "
              "(amounts are never added across currencies). **Tick a row** (its box) to list "
              "its objects below; sorting or searching the table first is fine."),
        reason_table if reasons else mo.md("_No rejections or quarantined rows in this "
                                           "range._"),
        search,
    ])
    return reason_table, reasons, search


@app.cell
def _(SNAPSHOT, d, filters, mo, q, reason_table, search, style):
    mo.stop(not reason_table.value, mo.md("_Tick a reason above to see its invoices and "
                                          "payments._"))
    # the ticked row itself (a row selection stays right when the table is sorted)
    _chosen = reason_table.value[0]
    with q.connect_snapshot(SNAPSHOT) as _con:
        _objects = q.reason_objects(_con, filters, _chosen["kind"], _chosen["reason"],
                                    search.value, currency=_chosen["currency"] or "")
    mo.vstack([
        mo.md(f"### {len(_objects)} object(s): {_chosen['kind']}"
              + (f" in {_chosen['currency']}" if _chosen["currency"] else "")),
        mo.md(f"_{_chosen['reason']}_"),
        mo.ui.table(_objects, selection=None, show_column_summaries=False, page_size=25,
                    **d.table_options(_objects, style),
                    wrapped_columns=["message"], label="Objects behind the reason")
        if _objects else mo.md("_None match._"),
    ])
    return


@app.cell
def _(mo):
    lookup = mo.ui.text(placeholder="an invoice id or a source id, e.g. INV-CR01-000000014",
                        label="Invoice or source id", full_width=True)
    mo.vstack([
        mo.md("## One object's whole history\n\nEvery day it was eligible, what became of "
              "it (fate), every batch it went in and every answer from Amili. An invoice id "
              "also finds its payments and case actions. All days in the snapshot, whatever "
              "the range above."),
        lookup,
    ])
    return (lookup,)


@app.cell
def _(SNAPSHOT, d, lookup, mo, q, style):
    mo.stop(not lookup.value.strip(), mo.md("_Type an id and press Enter._"))
    with q.connect_snapshot(SNAPSHOT) as _con:
        _history = q.object_history(_con, lookup.value)
    _fates, _answers = _history["fates"], _history["answers"]
    mo.vstack([
        mo.md(f"### History of `{lookup.value.strip()}`: {len(_fates)} day row(s), "
              f"{len(_answers)} answer(s)"),
        mo.ui.table(_fates, selection=None, show_column_summaries=False, page_size=25,
                    **d.table_options(_fates, style), wrapped_columns=["reason"],
                    label="Per day: fate, batch, outcome")
        if _fates else mo.md("_No object with this id in the snapshot._"),
        mo.ui.table(_answers, selection=None, show_column_summaries=False, page_size=25,
                    **d.table_options(_answers, style),
                    label="Every batch and answer (times in Oslo)")
        if _answers else mo.md("_No batch has carried it (not sent)._"),
    ])
    return


@app.cell
def _(SNAPSHOT, d, filters, mo, q, style):
    with q.connect_snapshot(SNAPSHOT) as _con:
        unanswered = q.unanswered_batches(_con, filters)
        held = q.held_payments(_con, filters)
        problems = q.problem_objects(_con, filters, limit=50_000)
    mo.vstack([
        mo.md("## Batches sent but not answered"),
        mo.ui.table(unanswered, selection=None, show_column_summaries=False,
                    **d.table_options(unanswered, style))
        if unanswered else mo.md("_Every batch in this range got an answer._"),
        mo.md("## Payments held back, waiting for their invoice's Amili id"),
        mo.ui.table(held, selection=None, show_column_summaries=False,
                    **d.table_options(held, style))
        if held else mo.md("_No payment is held back in this range._"),
    ])
    return held, problems, unanswered


@app.cell
def _(SNAPSHOT, creditor, d, date_style, escape, mo, q, reload):
    # the read-back figures for all days (Amili's cases are its state now), for the creditor
    # chosen above: Amili knows it by its organisation number
    _ = reload.value
    _style = date_style.value
    with q.connect_snapshot(SNAPSHOT) as _con:
        amili_read_at = q.amili_read_at(_con)
        _orgnr = q.creditor_orgnr(_con, creditor.value or None)
        _by_age = q.open_cases_by_age(_con, _orgnr)
        _monthly = q.amili_monthly(_con, _orgnr)
        _totals = q.divergence_totals(_con, _orgnr)
        amili_divergences = q.divergences(_con, _orgnr)
    _scope = ("all creditors" if not creditor.value else
              f"creditor {escape(creditor.value)}, organisation number "
              f"{escape(_orgnr or 'unknown')} (a case missing at Amili carries no creditor: "
              "see all creditors)")

    def _figures(rows: list[dict], keys: tuple[str, ...], attr: str, row_key: str) -> str:
        """An HTML table whose cells carry data-* marks, so figures can be found by name."""
        head = "".join(f"<th>{escape(k.replace('_', ' '))}</th>" for k in keys)
        body = "".join(
            f'<tr data-{attr}="{escape(d.format_cell(r[row_key], _style))}" '
            f'data-currency="{escape(r["currency"] or "")}">'
            + "".join(
                f'<td data-figure="{escape(k)}" style="text-align:'
                + ("right" if k not in ("currency", row_key) else "left")
                + f'">{escape(d.format_cell(r[k], _style))}</td>' for k in keys)
            + "</tr>" for r in rows)
        return (f'<table class="amili-with-{attr}" style="border-collapse:collapse">'
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    amili_divergence_table = mo.ui.table(
        amili_divergences, selection="single", show_column_summaries=False, page_size=20,
        **d.table_options(amili_divergences, _style),
        label="Tick a divergence (the box at the start of its row) to see the invoice")
    if amili_read_at is None:
        _body = [mo.Html('<p data-with-amili="none"><i>Nothing was read back from Amili '
                         "yet: the snapshot has no cases or settlements (the readback job "
                         "has not run).</i></p>")]
    else:
        _body = [
            mo.Html('<p data-with-amili="read">Cases as Amili held them when last read, '
                    f"<b>{escape(d.format_timestamp(amili_read_at, _style))}</b>; age is "
                    "days from the case's registration to that read.</p>"),
            mo.md("### Open cases and remaining amounts by age, per currency"),
            mo.Html(_figures(_by_age, ("currency", "age", "cases", "remaining_amount"),
                             "age", "age")) if _by_age else mo.md("_No open cases._"),
            mo.md("### Collected and settled per month, per currency\n\nCollected: the "
                  "growth of the cases' paid amounts, in the month of the read that saw it; "
                  "settled: what Amili paid out to the creditors (remittance month)."),
            mo.Html(_figures(_monthly, ("month", "currency", "collected_amount",
                                        "settlements", "settled_amount"), "month", "month"))
            if _monthly else mo.md("_Nothing collected or settled yet._"),
            mo.md("### Divergences from what we handed over"),
            mo.Html(_figures(_totals, ("currency", "reason", "invoices",
                                       "acknowledged_amount", "case_original_amount",
                                       "amount_difference"), "reason", "reason"))
            if _totals else mo.md("_None: every case matches what we handed over._"),
            amili_divergence_table if amili_divergences else mo.md(""),
        ]
    mo.vstack([
        mo.Html('<h2 id="with-amili">With Amili</h2>'),
        mo.Html(f'<p data-with-amili-scope="{escape(_orgnr or "")}">What Amili holds and '
                f"paid out, read back after hand-over ({_scope}; all days). Amounts per "
                "currency, never added across currencies.</p>"),
        *_body,
    ])
    return amili_divergence_table, amili_divergences, amili_read_at


@app.cell
def _(SNAPSHOT, amili_divergence_table, d, date_style, mo, q):
    mo.stop(not amili_divergence_table.value,
            mo.md("_Tick a divergence above to see its invoice._"))
    _chosen = amili_divergence_table.value[0]
    _id = _chosen["invoice_id"] or _chosen["amili_invoice_id"]
    _style = date_style.value
    with q.connect_snapshot(SNAPSHOT) as _con:
        _found = q.invoice_with_amili(_con, _id)
    mo.vstack([
        mo.Html(f'<h3 data-drill-down="{_id}">Invoice {_id}: {_chosen["reason"]}</h3>'),
        mo.ui.table(_found["cases"], selection=None, show_column_summaries=False,
                    **d.table_options(_found["cases"], _style), label="What Amili holds")
        if _found["cases"] else mo.md("_Amili holds no case for it._"),
        mo.ui.table(_found["fates"], selection=None, show_column_summaries=False,
                    **d.table_options(_found["fates"], _style),
                    label="Per day: fate, batch, outcome")
        if _found["fates"] else mo.md("_No day of ours in the snapshot has it._"),
        mo.ui.table(_found["answers"], selection=None, show_column_summaries=False,
                    **d.table_options(_found["answers"], _style),
                    label="Every batch and answer (times in Oslo)")
        if _found["answers"] else mo.md("_No batch of ours in the snapshot carried it._"),
    ])
    return


@app.cell
def _(mo):
    prepare_xlsx = mo.ui.run_button(label="Prepare the Excel (XLSX) export")
    mo.vstack([
        mo.md("## Export\n\nThe tables above for the chosen days and creditor, one sheet "
              "each, amounts as numbers (each table's own *Export* button gives CSV, JSON "
              "or Parquet, also with plain numbers). Prepared on request, so a large range "
              "does not slow the page down."),
        prepare_xlsx,
    ])
    return (prepare_xlsx,)


@app.cell
def _(daily, filters, held, mo, prepare_xlsx, problems, reasons, source, unanswered):
    mo.stop(not prepare_xlsx.value)
    # imported on request: openpyxl is not needed to show the page
    from amili.reporting.export import XLSX_MIMETYPE, xlsx_bytes

    _sheets = {"reconciliation": daily, "warehouse rows": source, "reasons": reasons,
               "objects": problems, "unanswered batches": unanswered,
               "held payments": held}
    mo.download(data=xlsx_bytes(_sheets),
                filename=f"amili-reconciliation-{filters.start}-{filters.end}.xlsx",
                mimetype=XLSX_MIMETYPE, label="Download as Excel (XLSX)")
    return


@app.cell
def _(mo):
    sql = mo.ui.code_editor(
        value="SELECT objectname, currency, fate, outcome, count(*) AS objects,\n"
        "       sum(amount) AS amount\nFROM marts.rpt_object_fates\n"
        "GROUP BY ALL ORDER BY ALL",
        language="sql", label="Your query (read-only, on the snapshot)", min_height=120,
    )
    run_sql = mo.ui.run_button(label="Run query")
    mo.vstack([
        mo.md("## Ad-hoc SQL\n\nAny read-only DuckDB query over the snapshot: schemas "
              "`marts` (rpt_*; rpt_handover_status and rpt_settlements_monthly once read "
              "back), `amili` (responses, errors, quarantine, submission_ledger) and "
              "`report` (problems, held_payments, creditors, object_invoices, amili_cases, "
              "amili_collected_monthly, snapshot_info). At most 1000 rows. Sum amounts per "
              "`currency`: the tables hold NOK, EUR and SEK side by side."),
        sql, run_sql,
    ])
    return run_sql, sql


@app.cell
def _(SNAPSHOT, d, mo, q, run_sql, sql, style):
    mo.stop(not run_sql.value, mo.md("_Press **Run query**._"))
    try:
        _columns, _rows = q.run_sql(SNAPSHOT, sql.value)
    except Exception as _error:  # the analyst's SQL: show DuckDB's message, not a traceback
        _out = mo.callout(mo.md(f"**Query failed:** `{_error}`"), kind="danger")
    else:
        _out = (mo.ui.table(_rows, selection=None, show_column_summaries=False,
                            **d.table_options(_rows, style),
                            label=f"{len(_rows)} row(s)")
                if _rows else mo.md(f"_No rows_ ({', '.join(_columns) or 'no result'})."))
    mo.vstack([mo.md("### Result"), _out])
    return


if __name__ == "__main__":
    app.run()
