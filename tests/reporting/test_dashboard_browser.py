"""The dashboard and the sign-off report in a real headless browser (Debian's Chromium).

The dashboard is served by ``marimo run`` exactly as ``amili dashboard`` serves it, over the
snapshot of one real run of the daily job against the sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from amili.reporting import queries as q
from amili.reporting.dashboard import DashboardServer
from tests.reporting.browser import Recorder
from tests.reporting.conftest import DAY, ReportingRun

LOAD_TIMEOUT_MS = 90_000  # the first kernel start imports DuckDB and the app on a busy box


#: The first test also waits for the session's run of the daily job.
pytestmark = pytest.mark.timeout(900)

@pytest.fixture(scope="module")
def dashboard(reporting_run: ReportingRun) -> Iterator[DashboardServer]:
    with DashboardServer(reporting_run.reporting_db) as server:
        yield server


@pytest.fixture
def page(reporting_run: ReportingRun, chromium: Any, dashboard: DashboardServer
         ) -> Iterator[tuple[Any, Recorder]]:
    """A fresh page on the dashboard, loaded up to its headline figures (the job runs
    before the browser starts: Dagster and Playwright's event loop stay apart)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    recorder = Recorder()
    page = recorder.attach(context.new_page())
    page.goto(dashboard.url)
    page.locator('[data-figure="eligible_count"]').wait_for(timeout=LOAD_TIMEOUT_MS)
    try:
        yield page, recorder
    finally:
        context.close()


def snapshot_sql(run: ReportingRun, sql: str) -> list[tuple]:
    with q.connect_snapshot(run.reporting_db) as con:
        return con.execute(sql).fetchall()


def test_the_page_loads_with_no_console_error_and_nothing_from_outside_loopback(
    page: tuple[Any, Recorder],
) -> None:
    browser_page, recorder = page
    browser_page.get_by_role("heading", name="Trends").wait_for()
    browser_page.wait_for_load_state("networkidle")
    assert recorder.console_errors == []
    assert recorder.requests, "the recorder saw no request at all"
    assert recorder.outside_loopback == []
    assert browser_page.locator("svg[aria-label^='Invoice amounts']").count() == 1


def test_headline_figures_equal_the_same_sql_on_the_snapshot(
    page: tuple[Any, Recorder], reporting_run: ReportingRun
) -> None:
    browser_page, _ = page
    # The default range (30 days up to the latest day) covers the whole run, all creditors.
    [expected] = snapshot_sql(reporting_run, """
        SELECT sum(eligible_count), sum(eligible_amount), sum(sent_count), sum(sent_amount),
               sum(accepted_count), sum(accepted_amount), sum(rejected_count),
               sum(rejected_amount), sum(quarantined_count), sum(quarantined_amount)
        FROM marts.rpt_reconciliation_daily
        WHERE objectname = 'invoice' AND currency = 'NOK'""")

    def figure(name: str) -> str:
        return browser_page.locator(f'[data-figure="{name}"]').first.inner_text()

    shown = []
    for bucket in ("eligible", "sent", "accepted", "rejected", "quarantined"):
        shown.append(int(figure(f"{bucket}_count")))
        shown.append(q.parse_nok(figure(f"{bucket}_amount")))
    assert tuple(shown) == expected
    assert all(isinstance(v, Decimal) for v in shown[1::2])
    assert expected[7] > 0  # there is something rejected to look at
    assert figure("unbalanced_rows") == "0"


def test_a_rejected_invoice_of_a_sandbox_rejected_batch_is_found_through_the_drill_down(
    page: tuple[Any, Recorder], reporting_run: ReportingRun
) -> None:
    browser_page, recorder = page
    [(invoice, batchid, message, state)] = snapshot_sql(reporting_run, """
        SELECT f.source_id, f.batchid, f.error_message, l.state
        FROM marts.rpt_object_fates AS f JOIN amili.submission_ledger AS l USING (batchid)
        WHERE f.objectname = 'invoice' AND f.outcome = 'rejected'
          AND f.error_message LIKE '%sandbox fault injection%'
        ORDER BY f.source_id DESC LIMIT 1""")
    assert state in ("partially_rejected", "rejected")

    reasons = browser_page.locator(
        "select", has=browser_page.locator("option", has_text="sandbox fault injection"))
    reasons.select_option(label=reasons.locator(
        "option", has_text="sandbox fault injection").first.inner_text())
    browser_page.get_by_role("heading", name="object(s): rejected by Amili").wait_for()
    search = browser_page.get_by_placeholder("filter by source id")
    search.fill(invoice)
    search.press("Enter")
    browser_page.get_by_role("heading", name="1 object(s): rejected by Amili").wait_for()
    row = browser_page.get_by_role("row").filter(has_text=invoice)
    row.wait_for()
    assert batchid in row.inner_text()
    assert message in row.inner_text()
    assert recorder.console_errors == []


def test_ad_hoc_sql_answers_a_query(page: tuple[Any, Recorder],
                                    reporting_run: ReportingRun) -> None:
    browser_page, recorder = page
    [(answered,)] = snapshot_sql(
        reporting_run, "SELECT count(*) FROM amili.responses WHERE outcome = 'accepted'")
    editor = browser_page.locator(".cm-content").last
    editor.click()
    browser_page.keyboard.press("Control+A")
    # one input event, as a paste: typed key by key, each keystroke re-renders marimo's
    # editor, and on a loaded machine its React tree once gave up ("Maximum update depth
    # exceeded", React error #185, seen in CI) although the query ran
    browser_page.keyboard.insert_text(
        "SELECT count(*) AS accepted_objects FROM amili.responses WHERE outcome = 'accepted'")
    browser_page.get_by_role("button", name="Run query").click()
    result = browser_page.get_by_role("row").filter(has_text=str(answered))
    browser_page.get_by_role("columnheader", name="accepted_objects").wait_for()
    assert result.count() >= 1
    assert recorder.console_errors == []


def test_the_signoff_report_opens_in_the_browser_with_the_days_totals(
    chromium: Any, reporting_run: ReportingRun
) -> None:
    report = reporting_run.reports_dir / f"{DAY.isoformat()}.html"
    context = chromium.new_context()
    recorder = Recorder()
    page = recorder.attach(context.new_page())
    try:
        page.goto(report.as_uri())
        page.get_by_role("heading", name=f"Amili sign-off report {DAY.isoformat()}").wait_for()
        [expected] = snapshot_sql(reporting_run, f"""
            SELECT sum(sent_count), sum(sent_amount), sum(accepted_amount),
                   sum(rejected_amount), sum(quarantined_amount)
            FROM marts.rpt_reconciliation_daily
            WHERE partition_date = '{DAY}' AND objectname = 'invoice' AND currency = 'NOK'""")

        def figure(name: str) -> str:
            return page.locator(f'[data-figure="invoice.{name}"]').inner_text()

        assert (int(figure("sent_count")), *(q.parse_nok(figure(f"{b}_amount")) for b in (
            "sent", "accepted", "rejected", "quarantined"))) == expected
        assert page.locator("[data-verdict='balances']").is_visible()
        assert page.locator("svg").count() == 3
        assert recorder.console_errors == []
        assert all(url.startswith("file:") for url in recorder.requests)
    finally:
        context.close()
