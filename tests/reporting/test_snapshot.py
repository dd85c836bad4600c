"""The reporting snapshot, the sign-off report and the numeric results metadata, after a real
run of the daily job against the sandbox (which rejected a share of the objects)."""

from __future__ import annotations

import base64
import csv
import io
import os
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey
from openpyxl import load_workbook

from amili.reporting import queries as q
from amili.reporting.display import (
    format_amount,
    format_count,
    format_day,
    format_mapping,
    format_timestamp,
    parse_amount,
)
from amili.reporting.export import xlsx_bytes
from amili.reporting.signoff import write_signoff_report
from amili.reporting.snapshot import SNAPSHOT_TABLES, publish_snapshot
from tests.reporting.conftest import DAY, ReportingRun

#: The first test also waits for the session's run of the daily job.
pytestmark = pytest.mark.timeout(900)


def pipeline_query(run: ReportingRun, sql: str) -> list[tuple]:
    with duckdb.connect(str(run.pipeline_db), read_only=True) as con:
        return con.execute(sql).fetchall()


def materialization(run: ReportingRun, key: list[str]) -> dict:
    return next(e.materialization.metadata for e in run.result.get_asset_materialization_events()
                if e.asset_key == AssetKey(key))


def test_the_job_publishes_every_table_of_the_snapshot(reporting_run: ReportingRun) -> None:
    metadata = materialization(reporting_run, ["reporting", "reporting_snapshot"])
    assert metadata["path"].value == str(reporting_run.reporting_db)
    assert metadata["missing_tables"].value == []
    assert not list(reporting_run.reporting_db.parent.glob(".reporting.duckdb.*"))  # no temp
    assert not reporting_run.reporting_db.with_suffix(".duckdb.wal").exists()
    with q.connect_snapshot(reporting_run.reporting_db) as con:
        for table in SNAPSHOT_TABLES:
            if table.schema == "report":
                continue
            if table.optional:  # the read-back's: copied exactly when the pipeline has it
                [(in_pipeline_db,)] = pipeline_query(reporting_run, f"""
                    SELECT count(*) > 0 FROM information_schema.tables
                    WHERE table_schema = '{table.schema}' AND table_name = '{table.name}'""")
                assert q.table_exists(con, table.qualified) == in_pipeline_db, table.qualified
                if not in_pipeline_db:
                    continue
            [(in_snapshot,)] = con.execute(f"SELECT count(*) FROM {table.qualified}").fetchall()
            [(in_pipeline,)] = pipeline_query(reporting_run,
                                              f"SELECT count(*) FROM {table.qualified}")
            assert in_snapshot == in_pipeline, table.qualified
        # the payloads with debtors' personal data stay in the pipeline database
        columns = {c for (c,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'quarantine'"
        ).fetchall()}
        assert "payload" not in columns
        assert con.execute("SELECT window_start, window_end FROM report.snapshot_info"
                           ).fetchone() == (DAY, DAY + timedelta(days=1))
        # the run rebuilt the marts after the submission: the day is current, none stale
        assert con.execute("SELECT partition_date, status FROM report.day_status"
                           ).fetchall() == [(DAY, "current")]
        assert con.execute("SELECT stale_days FROM report.snapshot_info").fetchone() == ([],)


def test_the_drill_down_table_groups_reasons_exactly_as_the_mart(
    reporting_run: ReportingRun,
) -> None:
    with q.connect_snapshot(reporting_run.reporting_db) as con:
        ours = con.execute(
            """SELECT partition_date, objectname, kind, reason, count(*),
                      coalesce(sum(amount), 0)::DECIMAL(38, 2)
               FROM report.problems GROUP BY ALL ORDER BY ALL""").fetchall()
        mart = con.execute(
            """SELECT partition_date, objectname, kind, reason, sum(object_count),
                      sum(amount)::DECIMAL(38, 2)
               FROM marts.rpt_rejection_reasons GROUP BY ALL ORDER BY ALL""").fetchall()
    assert ours == mart
    assert any("sandbox fault injection" in row[3] for row in ours)


def test_a_reader_keeps_its_snapshot_while_a_new_one_is_published(
    reporting_run: ReportingRun, tmp_path: Path
) -> None:
    """The swap under an open reader: the reader finishes on the old file, nobody fails,
    and the next connection sees the new one."""
    snapshot = tmp_path / "reporting.duckdb"
    publish_snapshot(reporting_run.pipeline_db, snapshot)
    with q.connect_snapshot(snapshot) as reader:
        [(first_published,)] = reader.execute(
            "SELECT published_at FROM report.snapshot_info").fetchall()
        expected = reader.execute("SELECT count(*) FROM marts.rpt_object_fates").fetchone()[0]
        cursor = reader.execute("SELECT source_id FROM marts.rpt_object_fates")
        head = cursor.fetchmany(1)
        inode = snapshot.stat().st_ino

        publish_snapshot(reporting_run.pipeline_db, snapshot)  # while the reader is open

        assert snapshot.stat().st_ino != inode  # a new file took the name
        assert len(head) + len(cursor.fetchall()) == expected  # the reader read on, whole
        assert reader.execute("SELECT published_at FROM report.snapshot_info"
                              ).fetchone()[0] == first_published
    with q.connect_snapshot(snapshot) as fresh:
        assert fresh.execute("SELECT published_at FROM report.snapshot_info"
                             ).fetchone()[0] > first_published
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reporting.duckdb"]


def test_readers_in_other_threads_never_see_a_half_written_snapshot(
    reporting_run: ReportingRun, tmp_path: Path
) -> None:
    snapshot = tmp_path / "reporting.duckdb"
    publish_snapshot(reporting_run.pipeline_db, snapshot)
    with q.connect_snapshot(snapshot) as con:
        expected = con.execute("SELECT table_name, row_count FROM report.snapshot_tables "
                               "ORDER BY ALL").fetchall()
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                with duckdb.connect(str(snapshot), read_only=True) as con:
                    seen = con.execute("SELECT table_name, row_count FROM "
                                       "report.snapshot_tables ORDER BY ALL").fetchall()
                    assert seen == expected
            except BaseException as exc:  # reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(5):
            publish_snapshot(reporting_run.pipeline_db, snapshot)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []


def test_the_duckdb_shell_opens_the_snapshot(reporting_run: ReportingRun) -> None:
    """The plain way analysts read it: the duckdb shell (DuckDB 1.5, from duckdb-cli)."""
    shell = Path(sys.executable).parent / "duckdb"  # the project's own: duckdb-cli
    assert shell.exists(), f"no {shell}: duckdb-cli is a dependency, `uv sync` installs it"
    answer = subprocess.run(
        [str(shell), "-readonly", "-csv", "-noheader", str(reporting_run.reporting_db), "-c",
         "SELECT count(*), sum(amount) FROM report.problems"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()
    with q.connect_snapshot(reporting_run.reporting_db) as con:
        count, total = con.execute("SELECT count(*), sum(amount) FROM report.problems"
                                   ).fetchone()
    assert answer == f"{count},{total}"


def test_ad_hoc_sql_cannot_reach_the_pipeline_database_or_write(
    reporting_run: ReportingRun,
) -> None:
    names, rows = q.run_sql(reporting_run.reporting_db,
                            "SELECT count(*) AS n, sum(amount) AS total FROM report.problems")
    assert names == ["n", "total"]
    # a DECIMAL comes back as an exact Decimal: the table sorts and exports a number
    assert rows[0]["n"] > 0 and isinstance(rows[0]["total"], Decimal) and rows[0]["total"] > 0
    for sql in (f"ATTACH '{reporting_run.pipeline_db}' AS p (READ_ONLY)",
                "CREATE TABLE x AS SELECT 1",
                f"COPY (SELECT 1) TO '{reporting_run.folder / 'out.csv'}'",
                "SET enable_external_access = true"):
        with pytest.raises(duckdb.Error):
            q.run_sql(reporting_run.reporting_db, sql)


def test_amounts_are_formatted_exactly_at_display() -> None:
    for text in ("0.00", "5.07", "-1234.50", "12345678901234567.89", "999999.99", "-0.05"):
        shown = format_amount(Decimal(text))
        assert parse_amount(shown) == Decimal(text), shown
    assert format_amount(Decimal("1234567.8")) == "1\u00a0234\u00a0567,80"
    assert format_amount(Decimal("-999.5")) == "-999,50"
    assert format_amount(None) == ""


def test_counts_are_grouped_in_thousands_like_amounts() -> None:
    assert format_count(1234567) == "1\u00a0234\u00a0567"
    assert format_count(999) == "999"
    assert format_count(0) == "0"
    assert format_count(-12345) == "-12\u00a0345"
    assert format_count(None) == ""
    # the same grouping as the whole part of an amount
    assert format_amount(Decimal(1234567)).split(",")[0] == format_count(1234567)


def test_moments_are_shown_in_oslo_time_and_days_in_either_style() -> None:
    winter = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert format_timestamp(winter) == "2026-11-25 00:30:00 CET"
    assert format_timestamp(summer, "norwegian") == "01.07.2026 14:00:00 CEST"
    assert format_day(date(2026, 11, 24), "norwegian") == "24.11.2026"


def test_the_xlsx_export_writes_amounts_as_exact_numbers(tmp_path: Path) -> None:
    rows = [{"day": date(2026, 11, 24), "currency": "NOK", "amount": Decimal("12345678.91"),
             "count": 3, "at": datetime(2026, 11, 24, 23, 30, tzinfo=UTC)},
            {"day": date(2026, 11, 24), "currency": "SEK", "amount": None, "count": 0,
             "at": None}]
    path = tmp_path / "out.xlsx"
    path.write_bytes(xlsx_bytes({"totals": rows, "empty": []}))
    book = load_workbook(path)
    assert book.sheetnames == ["totals", "empty"]
    sheet = book["totals"]
    assert [c.value for c in sheet[1]] == ["day", "currency", "amount", "count", "at"]
    amount = sheet["C2"]
    assert amount.data_type == "n" and amount.number_format == "#,##0.00"
    assert Decimal(str(amount.value)) == Decimal("12345678.91")
    assert sheet["E2"].value == datetime(2026, 11, 25, 0, 30)  # Oslo wall-clock time
    assert sheet["C3"].value is None and sheet["D3"].value == 0


def test_the_snapshot_names_each_creditor_as_the_warehouse_does(
    reporting_run: ReportingRun,
) -> None:
    with duckdb.connect(str(reporting_run.folder / "warehouse.duckdb"), read_only=True) as con:
        warehouse = dict(con.execute("SELECT creditor_id, name FROM creditors").fetchall())
    with q.connect_snapshot(reporting_run.reporting_db) as con:
        assert q.creditor_names(con) == warehouse
        rows = q.daily_reconciliation(con, q.Filters(DAY, DAY))
        # the organisation number Amili knows each creditor by (the read-back's filter)
        orgnrs = {creditor: q.creditor_orgnr(con, creditor) for creditor in warehouse}
        assert q.creditor_orgnr(con, None) is None
        assert q.creditor_orgnr(con, "no-such-creditor") is None
    assert {r["creditor"]: r["creditor_name"] for r in rows} == warehouse
    with duckdb.connect(str(reporting_run.folder / "warehouse.duckdb"), read_only=True) as con:
        assert orgnrs == dict(con.execute(
            "SELECT creditor_id, organization_number FROM creditors").fetchall())


def test_reasons_are_per_currency_and_amounts_are_decimals(
    reporting_run: ReportingRun,
) -> None:
    with q.connect_snapshot(reporting_run.reporting_db) as con:
        reasons = q.top_reasons(con, q.Filters(DAY, DAY), limit=100)
        expected = con.execute(f"""
            SELECT kind, {q.REASON_KEY}, currency, count(*), sum(amount)
            FROM report.problems GROUP BY ALL""").fetchall()
    assert sorted((r["kind"], r["reason"], r["currency"], r["objects"]) for r in reasons) == \
        sorted((k, r, c, n) for k, r, c, n, _ in expected)
    with q.connect_snapshot(reporting_run.reporting_db) as con:
        behind = {(r["kind"], r["reason"], r["currency"]): q.reason_objects(
            con, q.Filters(DAY, DAY), r["kind"], r["reason"], currency=r["currency"] or "")
            for r in reasons}
    for r in reasons:
        # the drill-down of a row lists exactly that row's objects, in its currency only
        objects = behind[(r["kind"], r["reason"], r["currency"])]
        assert len(objects) == r["objects"]
        assert {o["currency"] for o in objects} == {r["currency"]}
        if r["amount"] is not None:
            assert sum(o["amount"] for o in objects) == r["amount"]
        if r["currency"] is None:
            assert r["amount"] is None  # no money without a currency
        assert r["amount"] is None or isinstance(r["amount"], Decimal)


def test_results_metadata_has_plottable_numbers(reporting_run: ReportingRun) -> None:
    metadata = materialization(reporting_run, ["amili", "responses"])
    for key in ("sent", "accepted", "rejected", "quarantined"):
        assert isinstance(metadata[key].value, int), key
    with q.connect_snapshot(reporting_run.reporting_db) as con:
        [row] = q.rows(con, """SELECT sum(sent_amount) AS sent, sum(accepted_amount) AS accepted,
                                      sum(rejected_amount) AS rejected,
                                      sum(quarantined_amount) AS quarantined
                               FROM marts.rpt_reconciliation_daily
                               WHERE objectname = 'invoice' AND currency = 'NOK'""")
    for bucket, amount in row.items():
        value = metadata[f"{bucket}_amount_nok_ore"].value
        assert isinstance(value, int) and not isinstance(value, bool)
        assert value == int(amount * 100), bucket
    assert row["rejected"] > 0  # the sandbox rejected some invoices


def test_the_signoff_report_is_written_and_a_rewrite_keeps_the_old_one(
    reporting_run: ReportingRun, tmp_path: Path
) -> None:
    metadata = materialization(reporting_run, ["reporting", "signoff_report"])
    report = Path(metadata["path"].value)
    assert report == reporting_run.reports_dir / f"{DAY.isoformat()}.html"
    html = report.read_text(encoding="utf-8")
    run_link = f"http://127.0.0.1:3000/runs/{reporting_run.result.run_id}"
    # nothing to fetch: the only address is the link back to the Dagster run
    assert "<script" not in html.lower() and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "").replace(f'href="{run_link}"', "")
    assert f'href="{run_link}"' in html
    with q.connect_snapshot(reporting_run.reporting_db) as con:
        currencies = q.currencies(con, q.Filters(DAY, DAY), kinds=("invoice",),
                                  sent_only=True)
    assert len(currencies) >= 2
    assert html.count("<svg") == 2 * len(currencies) + 1 and 'data-verdict="balances"' in html

    reports = tmp_path / "reports"
    [first] = write_signoff_report(reporting_run.reporting_db, reports, DAY, DAY + timedelta(1))
    os.utime(first.path, (0, 0))  # an earlier report of the day, with other content
    first.path.write_text(first.path.read_text() + "<!-- signed off -->", encoding="utf-8")
    [second] = write_signoff_report(reporting_run.reporting_db, reports, DAY,
                                    DAY + timedelta(1))
    assert second.archived is not None and second.archived.read_text().endswith(
        "<!-- signed off -->")
    assert second.path.read_text() != second.archived.read_text()


def test_a_day_without_rows_still_gets_a_report(reporting_run: ReportingRun,
                                                tmp_path: Path) -> None:
    [report] = write_signoff_report(reporting_run.reporting_db, tmp_path, date(2026, 1, 1),
                                    date(2026, 1, 2))
    assert 'data-verdict="empty"' in report.path.read_text()


def test_a_dashboard_tables_csv_download_carries_plain_numbers(
    reporting_run: ReportingRun,
) -> None:
    """The table as the dashboard builds it (formatted on screen), downloaded through the
    function marimo's Export menu calls: the CSV has the exact numbers, no display text."""
    import marimo as mo
    from marimo._plugins.ui._impl.table import DownloadAsArgs

    with q.connect_snapshot(reporting_run.reporting_db) as con:
        rows = q.daily_reconciliation(con, q.Filters(DAY, DAY))
    table = mo.ui.table(rows, format_mapping=format_mapping(rows))
    url = table._download_as(DownloadAsArgs(format="csv")).url
    text = base64.b64decode(url.split(",", 1)[1]).decode("utf-8")
    assert "\u00a0" not in text
    downloaded = list(csv.DictReader(io.StringIO(text)))
    assert len(downloaded) == len(rows)
    money = [(d, r) for d, r in zip(downloaded, rows, strict=True) if r["sent_amount"] is not None]
    assert money
    for line, row in money:
        for column in ("eligible_amount", "sent_amount", "rejected_amount"):
            assert Decimal(line[column]) == row[column], column


def test_the_glossary_explains_every_bucket_the_page_shows(reporting_run: ReportingRun) -> None:
    glossary = (Path(__file__).resolve().parents[2] / "docs" / "glossary.md").read_text()
    terms = {line.split("**")[1].lower() for line in glossary.splitlines()
             if line.startswith("| **")}
    with q.connect_snapshot(reporting_run.reporting_db) as con:
        shown = set(q.buckets(con)) | {"carried_in", "ledgerref"} | {
            b for (b,) in con.execute(
                "SELECT DISTINCT bucket FROM marts.rpt_source_reconciliation").fetchall()}
    missing = {b for b in shown if b.replace("_", " ").replace("handover", "hand-over")
               not in terms}
    assert missing == set(), f"docs/glossary.md does not explain {sorted(missing)}"
