"""The point of the snapshot: analysts can never make the daily run fail.

With the dashboard serving, a page open on it and a reader holding the snapshot open and
querying it, the daily job materializes another partition (in its own process, as in
production) and succeeds; the dashboard then shows the new snapshot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from amili.reporting import queries as q
from amili.reporting.dashboard import REPO_ROOT, DashboardServer
from amili.reporting.display import format_count
from amili.reporting.snapshot import publish_snapshot
from tests.reporting.browser import Recorder
from tests.reporting.conftest import DAY, ReportingRun, pipeline_environment

OTHER_DAY = DAY - timedelta(days=1)
#: The NOK invoices' eligible count tile (the page has one block of tiles per currency).
NOK_ELIGIBLE = '[data-kind="invoice"][data-currency="NOK"] [data-figure="eligible_count"]'


@pytest.mark.slow
@pytest.mark.timeout(1200)  # two runs of the daily job on a busy 2-core machine
def test_the_pipeline_succeeds_while_the_dashboard_is_open_and_a_query_runs(
    reporting_run: ReportingRun, chromium: Any, tmp_path: Path, sandbox_server: Any
) -> None:
    # A copy of the run's files, so this test's second run leaves the shared one alone.
    for name in ("warehouse.duckdb", "pipeline.duckdb"):
        shutil.copy(reporting_run.folder / name, tmp_path / name)
    env = pipeline_environment(tmp_path, sandbox_server)
    snapshot = tmp_path / "reporting.duckdb"
    publish_snapshot(tmp_path / "pipeline.duckdb", snapshot)

    reads, errors = [0], []
    stop = threading.Event()

    def keep_querying() -> None:
        """One connection held open on the snapshot for the whole run, querying it."""
        try:
            with q.connect_snapshot(snapshot) as con:
                while not stop.is_set():
                    con.execute("""SELECT objectname, fate, count(*), sum(amount)
                                   FROM marts.rpt_object_fates GROUP BY ALL""").fetchall()
                    reads[0] += 1
                    time.sleep(0.05)  # a reader, not a CPU hog on a shared machine
        except BaseException as exc:  # asserted below
            errors.append(exc)

    with DashboardServer(snapshot) as dashboard:
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        recorder = Recorder()
        page = recorder.attach(context.new_page())
        page.goto(dashboard.url)
        before = page.locator(NOK_ELIGIBLE)
        before.wait_for(timeout=90_000)
        eligible_before = int(before.inner_text().replace("\u00a0", ""))  # 1 234

        reader = threading.Thread(target=keep_querying)
        reader.start()
        try:
            job = subprocess.run(
                [sys.executable, "-c",
                 "import sys; from datetime import date; "
                 "from tests.reporting.conftest import run_daily_job; "
                 f"sys.exit(0 if run_daily_job(date.fromisoformat('{OTHER_DAY}')).success "
                 "else 1)"],
                env={**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT,
                capture_output=True, text=True, timeout=900,
            )
        finally:
            stop.set()
            reader.join()
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        assert errors == [] and reads[0] > 0

        # the run published a new snapshot with the other day; the open page picks it up
        with duckdb.connect(str(snapshot), read_only=True) as con:
            [(days,)] = con.execute("SELECT count(DISTINCT partition_date) FROM "
                                    "marts.rpt_reconciliation_daily").fetchall()
            [(eligible,)] = con.execute(
                """SELECT sum(eligible_count) FROM marts.rpt_reconciliation_daily
                   WHERE objectname = 'invoice' AND currency = 'NOK'""").fetchall()
        assert days == 2 and eligible > eligible_before
        page.reload()
        page.locator(NOK_ELIGIBLE).wait_for(timeout=90_000)
        page.get_by_text(format_count(eligible), exact=True).first.wait_for(timeout=30_000)
        assert (tmp_path / "reports" / f"{OTHER_DAY}.html").exists()
        assert recorder.console_errors == [] and recorder.outside_loopback == []
        context.close()
