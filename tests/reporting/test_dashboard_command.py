"""``amili dashboard`` serves the marimo app on loopback, bound to the port it is given."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from amili.reporting.dashboard import REPO_ROOT, free_port


def test_amili_dashboard_serves_the_app_on_the_given_loopback_port(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "amili.cli", "dashboard", "--port", str(port),
         "--snapshot", str(tmp_path / "reporting.duckdb")],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        page = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert page is not None and page.status_code == 200
        assert "marimo" in page.text
        # the frontend's scripts and styles are served by marimo itself, from this port
        assert "cdn.jsdelivr" not in page.text and "unpkg.com" not in page.text
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert f"http://127.0.0.1:{port}" in output
