"""One real pipeline run (sandbox over loopback, a share of objects rejected), and a browser.

The daily job runs once per session for the tests that ask for ``reporting_run``; they then
read its snapshot, its sign-off report and the pipeline database it left behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from amili.sandbox.server import SandboxServer
from amili.settings import reporting_paths
from amili.warehouse import generate_demo_warehouse

DAY = date(2026, 11, 24)
#: Share of each batch's valid objects the sandbox rejects (its fault injection).
REJECT_SHARE = 0.08


@dataclass(frozen=True)
class ReportingRun:
    """Where one run of the daily job left its files, and its Dagster result."""

    folder: Path
    pipeline_db: Path
    reporting_db: Path
    reports_dir: Path
    env: dict[str, str]
    result: Any


def pipeline_environment(folder: Path, sandbox: SandboxServer) -> dict[str, str]:
    """The AMILI_* variables of a run into ``folder`` against ``sandbox``."""
    return {
        "AMILI_WAREHOUSE": str(folder / "warehouse.duckdb"),
        "AMILI_PIPELINE_DB": str(folder / "pipeline.duckdb"),
        "AMILI_BASE_URL": sandbox.base_url,
        "AMILI_TOKEN": sandbox.issue_token(),
        "AMILI_SENDER_ID": "reporting-test",
        "AMILI_BACKOFF_INITIAL_SECONDS": "0.01",
    }


def run_daily_job(partition: date) -> Any:
    from orchestration.definitions import defs

    return defs.resolve_job_def("amili_daily").execute_in_process(
        partition_key=partition.isoformat(), raise_on_error=False)


def make_reporting_run(folder: Path, sandbox: SandboxServer, *,
                       prepare: Callable[[Path], object] | None = None) -> ReportingRun:
    """Demo warehouse (changed by ``prepare`` if given, to add dirt), a reject_share fault,
    one partition through the whole job."""
    generate_demo_warehouse(folder / "warehouse.duckdb", days=4, invoices_per_day=25,
                            end_date=DAY, seed=29)
    if prepare is not None:
        prepare(folder / "warehouse.duckdb")
    httpx.post(f"{sandbox.base_url}/sandbox/reset").raise_for_status()
    httpx.post(f"{sandbox.base_url}/sandbox/faults", json={"faults": [
        {"kind": "reject_share", "share": REJECT_SHARE, "times": None}]}).raise_for_status()
    env = pipeline_environment(folder, sandbox)
    os.environ.update(env)
    try:
        result = run_daily_job(DAY)
    finally:
        httpx.delete(f"{sandbox.base_url}/sandbox/faults").raise_for_status()
    paths = reporting_paths(env["AMILI_PIPELINE_DB"])
    return ReportingRun(folder, Path(env["AMILI_PIPELINE_DB"]), paths.reporting_db,
                        paths.reports_dir, env, result)


def successful_reporting_run(folder: Path, sandbox: SandboxServer, *,
                             prepare: Callable[[Path], object] | None = None) -> ReportingRun:
    """:func:`make_reporting_run`, the environment restored right after it; the job must
    pass (its blocking checks included)."""
    saved = dict(os.environ)
    try:
        run = make_reporting_run(folder, sandbox, prepare=prepare)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert run.result.success, "the daily job failed"
    return run


@pytest.fixture(scope="session")
def reporting_run(
    tmp_path_factory: pytest.TempPathFactory, sandbox_server: SandboxServer
) -> ReportingRun:
    """Tests that run the job again set ``run.env`` themselves (with monkeypatch)."""
    return successful_reporting_run(tmp_path_factory.mktemp("reporting"), sandbox_server)


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (``playwright install`` cannot work here).

    Package-scoped, not session-scoped: Playwright's sync API keeps an asyncio event loop
    running in the main thread until it stops, and any later test that calls asyncio.run()
    (tests/sandbox) would fail with "cannot be called from a running event loop".
    """
    from tests.reporting.browser import launch_chromium

    playwright, browser = launch_chromium()
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()
