"""The "with Amili" view's snapshot and queries on real read-back data.

One shared run (module-scoped): invoices of two creditors handed over to the real sandbox over
loopback, some paid directly, an earlier post of A-0003 with another amount (Amili keeps it:
a divergence), a case for an invoice we never sent, an acknowledgement Amili never issued a
case for; the sandbox's clock moved 40 days on; cases and settlements read back; a real
``dbt build`` of the read-back marts through Dagster; then the snapshot is published. The
queries are compared with SQL on the pipeline's own tables and marts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from amili.client import AmiliClient
from amili.examples import example_creditor, example_invoice
from amili.models import BatchRequest
from amili.pipeline.readback import read_cases
from amili.reporting import queries as q
from amili.reporting.snapshot import publish_snapshot
from amili.sandbox.server import SandboxServer
from amili.sandbox.settings import SandboxSettings
from amili.settings import load
from tests.pipeline.test_readback import (
    RELATION,
    RULES,
    client_for,
    hand_over,
    materialize_readback,
)

pytestmark = pytest.mark.timeout(600)

#: The amount of the earlier post of A-0003 that Amili keeps.
OTHER = Decimal("999.99")


@dataclass(frozen=True)
class WithAmili:
    """The pipeline database after read-back and its published snapshot."""

    pipeline_db: Path
    reporting_db: Path


def build_with_amili(folder: Path) -> WithAmili:
    """Hand over, read back, build the read-back marts, publish (see the module's doc)."""
    def earlier_posts(client: AmiliClient) -> None:
        answer = client.post_batch(BatchRequest(
            batchid="elsewhere", creditor=[example_creditor()],
            invoice=[example_invoice("A-0003", amount=OTHER), example_invoice("NOT-OURS")]))
        assert answer.response.statuscode == 0, answer.response.errors

    with SandboxServer(load(SandboxSettings, port=0, lifecycle=RULES)) as sandbox:
        inputs = hand_over(folder, sandbox, earlier_posts)
        inputs.sql("INSERT INTO amili.acknowledged_invoices VALUES ('LOST-1', 'never-issued', "
                   "TIMESTAMPTZ '2026-11-20 10:00:00+00')")
        with client_for(sandbox) as client:  # a first read, then a later one: two months
            read_cases(inputs.path, client, creditors_relation=RELATION)
        assert materialize_readback(inputs.path, sandbox, folder).success
    reporting_db = folder / "reporting.duckdb"
    summary = publish_snapshot(inputs.path, reporting_db)
    for table in ("marts.rpt_handover_status", "marts.rpt_settlements_monthly",
                  "report.amili_cases", "report.amili_collected_monthly"):
        assert summary.row_counts[table] > 0, table
    return WithAmili(inputs.path, reporting_db)


@pytest.fixture(scope="module")
def with_amili(tmp_path_factory: pytest.TempPathFactory) -> WithAmili:
    return build_with_amili(tmp_path_factory.mktemp("with_amili"))


def pipeline_sql(run: WithAmili, sql: str) -> list[tuple]:
    with duckdb.connect(str(run.pipeline_db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_open_cases_by_age_match_the_cases_amili_holds(with_amili: WithAmili) -> None:
    with q.connect_snapshot(with_amili.reporting_db) as con:
        got = q.open_cases_by_age(con)
        assert q.amili_read_at(con) is not None
    expected = pipeline_sql(with_amili, """
        SELECT currency,
               CASE WHEN d <= 30 THEN '0-30' WHEN d <= 60 THEN '31-60'
                    WHEN d <= 90 THEN '61-90' ELSE '90+' END,
               count(*), sum(remaining_amount)
        FROM (SELECT *, date_diff('day', registered_at, read_at) AS d FROM amili.cases)
        WHERE status <> 'CLOSED' GROUP BY ALL""")
    assert sorted((r["currency"], r["age"], r["cases"], r["remaining_amount"]) for r in got
                  ) == sorted(expected)
    assert expected and all(isinstance(r["remaining_amount"], Decimal) for r in got)


def test_collected_and_settled_per_month_match_the_read_back_tables(
    with_amili: WithAmili,
) -> None:
    with q.connect_snapshot(with_amili.reporting_db) as con:
        got = {(r["month"], r["currency"]): r for r in q.amili_monthly(con)}
    settled = pipeline_sql(with_amili, """
        SELECT date_trunc('month', remittance_date)::DATE, currency, count(*), sum(amount)
        FROM amili.settlements GROUP BY ALL""")
    assert settled
    for month, currency, count, amount in settled:
        assert (got[(month, currency)]["settlements"], got[(month, currency)]["settled_amount"]
                ) == (count, amount)
    # every case's paid amount is collected exactly once, over the months
    paid = dict(pipeline_sql(with_amili,
                             "SELECT currency, sum(paid_amount) FROM amili.cases GROUP BY 1"))
    collected: dict[str, Decimal] = {}
    for (_, currency), row in got.items():
        collected[currency] = collected.get(currency, Decimal(0)) + row["collected_amount"]
    assert collected == paid and all(v > 0 for v in paid.values())


def test_the_with_amili_figures_for_one_creditor_are_its_own(with_amili: WithAmili) -> None:
    """Filtered by organisation number, each query gives that creditor's share: the SQL on
    the pipeline's tables filtered alike, and the creditors' shares add up to all."""
    orgnrs = [r[0] for r in pipeline_sql(
        with_amili, "SELECT DISTINCT creditor_idnumber FROM amili.cases ORDER BY 1")]
    assert len(orgnrs) == 2
    with q.connect_snapshot(with_amili.reporting_db) as con:
        everyone = {
            "cases": sum(r["cases"] for r in q.open_cases_by_age(con)),
            "settled": sum(r["settled_amount"] for r in q.amili_monthly(con)),
            "divergences": len([r for r in q.divergences(con) if r["creditor_orgnr"]]),
        }
        shares = {orgnr: {
            "cases": sum(r["cases"] for r in q.open_cases_by_age(con, orgnr)),
            "settled": sum(r["settled_amount"] for r in q.amili_monthly(con, orgnr)),
            "divergences": len(q.divergences(con, orgnr)),
            "divergence_totals": sum(r["invoices"] for r in q.divergence_totals(con, orgnr)),
            "listed_orgnrs": {r["creditor_orgnr"] for r in q.divergences(con, orgnr)},
        } for orgnr in orgnrs}
    for orgnr, share in shares.items():
        open_cases, settled = pipeline_sql(with_amili, f"""
            SELECT (SELECT count(*) FROM amili.cases WHERE status <> 'CLOSED'
                    AND creditor_idnumber = '{orgnr}'),
                   (SELECT coalesce(sum(amount), 0) FROM amili.settlements
                    WHERE creditor_idnumber = '{orgnr}')""")[0]
        assert (share["cases"], share["settled"]) == (open_cases, settled), orgnr
        assert share["divergences"] == share["divergence_totals"]
        assert share["listed_orgnrs"] <= {orgnr}
    for key in everyone:
        assert sum(share[key] for share in shares.values()) == everyone[key], key
    assert everyone["cases"] > 0 and everyone["settled"] > 0 and everyone["divergences"] > 0


def test_the_divergence_list_and_its_drill_down(with_amili: WithAmili) -> None:
    with q.connect_snapshot(with_amili.reporting_db) as con:
        listed = q.divergences(con)
        totals = q.divergence_totals(con)
        drill = q.invoice_with_amili(con, "A-0003")
    expected = pipeline_sql(with_amili, """
        SELECT unique_source_invoice_id, divergence_reason, amount_difference
        FROM marts.rpt_handover_status WHERE diverges""")
    assert sorted((r["invoice_id"] or "", r["reason"], r["amount_difference"]) for r in listed
                  ) == sorted((i or "", reason, d) for i, reason, d in expected)
    assert {r["reason"] for r in listed} == {
        "amount differs", "case missing", "case for an invoice we never sent"}
    by_currency = pipeline_sql(with_amili, """
        SELECT coalesce(case_currency, acknowledged_currency), count(*),
               sum(amount_difference)
        FROM marts.rpt_handover_status WHERE diverges GROUP BY 1""")
    per_currency: dict[str | None, tuple[int, Decimal | None]] = {}
    for r in totals:
        count, diff = per_currency.get(r["currency"], (0, None))
        add = r["amount_difference"]
        per_currency[r["currency"]] = (count + r["invoices"], diff if add is None
                                       else (diff or Decimal(0)) + add)
    assert per_currency == {c: (n, d) for c, n, d in by_currency}
    # the drill-down: what we sent and Amili answered, and the case Amili holds
    assert [c["original_amount"] for c in drill["cases"]] == [OTHER]
    assert [c["invoice_id"] for c in drill["cases"]] == ["A-0003"]


def test_a_pipeline_without_read_back_still_publishes(tmp_path: Path) -> None:
    pipeline_db = tmp_path / "pipeline.duckdb"
    duckdb.connect(str(pipeline_db)).close()
    summary = publish_snapshot(pipeline_db, tmp_path / "reporting.duckdb")
    # not "missing" (a pipeline before its first read-back is complete), simply absent
    assert not {"marts.rpt_handover_status", "report.amili_cases"} & (
        set(summary.missing) | set(summary.row_counts))
    with q.connect_snapshot(summary.path) as con:
        assert q.amili_read_at(con) is None
        assert (q.open_cases_by_age(con), q.amili_monthly(con), q.divergences(con)) == (
            [], [], [])



def html_rows(html: str, heading: str) -> list[list[str]]:
    """The body rows (cell texts) of the first table after ``heading`` in ``html``."""
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []
            self.cell: str | None = None
            self.in_body = False

        def handle_starttag(self, tag: str, attrs: list) -> None:
            if tag == "tbody":
                self.in_body = True
            elif tag == "tr" and self.in_body:
                self.rows.append([])
            elif tag == "td" and self.in_body:
                self.cell = ""

        def handle_endtag(self, tag: str) -> None:
            if tag == "td" and self.cell is not None:
                self.rows[-1].append(self.cell)
                self.cell = None
            elif tag == "tbody":
                self.in_body = False

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell += data

    after = html[html.index(heading):]
    parser = Cells()
    parser.feed(after[:after.index("</table>") + len("</table>")])
    return parser.rows


def test_the_signoff_section_shows_the_figures_of_the_marts(with_amili: WithAmili) -> None:
    from amili.reporting.display import parse_amount
    from amili.reporting.signoff import with_amili_section

    [(last,)] = pipeline_sql(with_amili, "SELECT max(remittance_date) FROM amili.settlements")
    with q.connect_snapshot(with_amili.reporting_db) as con:
        html = with_amili_section(con, last)
    shown_open = {(c, age): (int(n), parse_amount(a))
                  for c, age, n, a in html_rows(html, "Open cases")}
    assert shown_open == {(c, age): (n, a) for c, age, n, a in pipeline_sql(with_amili, """
        SELECT currency, CASE WHEN d <= 30 THEN '0-30' WHEN d <= 60 THEN '31-60'
                              WHEN d <= 90 THEN '61-90' ELSE '90+' END, count(*),
               sum(remaining_amount)
        FROM (SELECT *, date_diff('day', registered_at, read_at) AS d FROM amili.cases)
        WHERE status <> 'CLOSED' GROUP BY ALL""")}
    shown_settled = {c: (int(n), parse_amount(a)) for c, n, a, _ in html_rows(html, "Settled")}
    assert shown_settled == {c: (n, a) for c, n, a in pipeline_sql(with_amili, f"""
        SELECT currency, count(*), sum(amount) FROM amili.settlements
        WHERE date_trunc('month', remittance_date) = DATE '{last:%Y-%m-01}' GROUP BY 1""")}
    [(count,)] = pipeline_sql(with_amili,
                              "SELECT count(*) FROM marts.rpt_handover_status WHERE diverges")
    assert f'data-figure="divergences">{count}<' in html and count == 3


def test_the_signoff_section_says_when_nothing_was_read_back(tmp_path: Path) -> None:
    from amili.reporting.signoff import with_amili_section

    pipeline_db = tmp_path / "pipeline.duckdb"
    duckdb.connect(str(pipeline_db)).close()
    summary = publish_snapshot(pipeline_db, tmp_path / "reporting.duckdb")
    with q.connect_snapshot(summary.path) as con:
        assert 'data-with-amili="none"' in with_amili_section(con, date(2026, 12, 1))


def snapshot_sql(run: WithAmili, sql: str) -> list[tuple]:
    with q.connect_snapshot(run.reporting_db) as con:
        return con.execute(sql).fetchall()


def test_the_dashboard_shows_the_with_amili_view_and_drills_into_a_divergence(
    with_amili: WithAmili, chromium: Any,
) -> None:
    """The view's figures read off the page equal SQL on the snapshot, per currency; ticking
    a divergence shows the case Amili holds for that invoice."""
    from amili.reporting.dashboard import DashboardServer
    from amili.reporting.display import format_amount, parse_amount

    open_cases = snapshot_sql(with_amili, """
        SELECT currency, CASE WHEN d <= 30 THEN '0-30' WHEN d <= 60 THEN '31-60'
                              WHEN d <= 90 THEN '61-90' ELSE '90+' END, count(*),
               sum(remaining_amount)
        FROM (SELECT *, date_diff('day', registered_at, read_at) AS d
              FROM report.amili_cases WHERE status <> 'CLOSED') GROUP BY ALL""")
    settled = snapshot_sql(with_amili, """
        SELECT month, currency, sum(settlements), sum(settled_amount)
        FROM marts.rpt_settlements_monthly GROUP BY ALL""")
    collected = snapshot_sql(with_amili, """
        SELECT currency, sum(collected_amount) FROM report.amili_collected_monthly
        GROUP BY ALL""")
    diverging = snapshot_sql(with_amili, """
        SELECT coalesce(case_currency, acknowledged_currency), count(*)
        FROM marts.rpt_handover_status WHERE diverges GROUP BY ALL""")
    [(casenumber, original)] = snapshot_sql(with_amili, """
        SELECT casenumber, original_amount FROM report.amili_cases
        WHERE unique_source_invoice_id = 'A-0003'""")
    assert open_cases and settled and collected and diverging

    with DashboardServer(with_amili.reporting_db) as server:
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.goto(server.url)
            page.locator('[data-with-amili="read"]').wait_for(timeout=90_000)

            def figure(table: str, mark: str, value: str, currency: str | None,
                       name: str) -> str:
                row = (f'table.amili-with-{table} tr[data-{mark}="{value}"]'
                       + (f'[data-currency="{currency}"]' if currency is not None else
                          '[data-currency=""]'))
                return page.locator(f'{row} [data-figure="{name}"]').inner_text()

            for currency, age, cases, remaining in open_cases:
                assert int(figure("age", "age", age, currency, "cases")) == cases
                assert parse_amount(figure("age", "age", age, currency,
                                           "remaining_amount")) == remaining
            assert page.locator("table.amili-with-age tbody tr").count() == len(open_cases)
            for month, currency, count, amount in settled:
                assert int(figure("month", "month", month.isoformat(), currency,
                                  "settlements")) == count
                assert parse_amount(figure("month", "month", month.isoformat(), currency,
                                           "settled_amount")) == amount
            shown_collected: dict[str, Decimal] = {}
            for row in page.locator("table.amili-with-month tbody tr").all():
                currency = row.get_attribute("data-currency")
                shown_collected[currency] = shown_collected.get(currency, Decimal(0)) + \
                    parse_amount(row.locator('[data-figure="collected_amount"]').inner_text())
            assert shown_collected == dict(collected)
            shown_diverging: dict[str | None, int] = {}
            for row in page.locator("table.amili-with-reason tbody tr").all():
                currency = row.get_attribute("data-currency") or None
                shown_diverging[currency] = shown_diverging.get(currency, 0) + int(
                    row.locator('[data-figure="invoices"]').inner_text())
            assert shown_diverging == dict(diverging)

            # the drill-down: tick A-0003's divergence, see the case Amili holds
            row = page.get_by_role("row").filter(has_text="A-0003").filter(
                has_text="amount differs")
            row.scroll_into_view_if_needed()
            row.get_by_role("checkbox", name="Select row").click()
            page.locator('[data-drill-down="A-0003"]').wait_for(timeout=60_000)
            held = page.get_by_role("table").filter(has_text="remaining_amount").filter(
                has_text=casenumber).get_by_role("row").filter(has_text="A-0003")
            held.wait_for()
            assert format_amount(original) in held.inner_text()
            assert format_amount(OTHER) == format_amount(original)
        finally:
            context.close()
