"""Serving the marimo dashboard (``dashboards/reconciliation.py``) on loopback.

``amili dashboard`` runs ``marimo run`` in a child process: marimo serves its own bundled
frontend (nothing from a CDN), the app reads only the reporting snapshot, and the port is
bound to 127.0.0.1. :class:`DashboardServer` does the same for tests and the screenshot
script, and waits until the page answers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from amili.settings import reporting_paths

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_APP = REPO_ROOT / "dashboards" / "reconciliation.py"
DEFAULT_PORT = 2718
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def marimo_command(port: int, app: Path = DASHBOARD_APP) -> list[str]:
    """``marimo run`` of the app: loopback only, no browser, no token (local use)."""
    return [sys.executable, "-m", "marimo", "run", str(app), "--host", LOOPBACK,
            "--port", str(port), "--headless", "--no-token", "--no-sandbox"]


def marimo_environment(reporting_db: str | Path | None = None) -> dict[str, str]:
    """The child's environment: which snapshot to read, no update check over the internet."""
    env = dict(os.environ)
    env["AMILI_REPORTING_DB"] = str(Path(reporting_db or reporting_paths().reporting_db)
                                    .resolve())
    env["MARIMO_SKIP_UPDATE_CHECK"] = "1"  # marimo asks its website for new versions
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH"))
                                        if p)
    return env


def serve(port: int = DEFAULT_PORT, reporting_db: str | Path | None = None) -> int:
    """Serve until Ctrl-C (the ``amili dashboard`` command); returns marimo's exit code."""
    env = marimo_environment(reporting_db)
    print(f"Amili dashboard on http://{LOOPBACK}:{port} (snapshot {env['AMILI_REPORTING_DB']});"
          " Ctrl-C stops it.", flush=True)
    process = subprocess.Popen(marimo_command(port), env=env)
    # A service manager stops us with SIGTERM: pass it on, so marimo does not outlive us.
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: process.terminate())
    try:
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:  # Ctrl-C reached marimo too; wait for it to stop
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:
            process.kill()


class DashboardServer:
    """``with DashboardServer(snapshot) as server: server.url`` (a free port, then stopped)."""

    def __init__(self, reporting_db: str | Path, port: int | None = None,
                 start_timeout: float = 60.0) -> None:
        self.reporting_db = Path(reporting_db)
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> DashboardServer:
        # marimo's log goes to a file: a pipe nobody reads would stall it once full
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            marimo_command(self.port), env=marimo_environment(self.reporting_db),
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._log.seek(0)
                raise RuntimeError(f"marimo exited with {self._process.returncode}: "
                                   f"{self._log.read().decode(errors='replace')[-3000:]}")
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.__exit__(None, None, None)
        raise TimeoutError(f"the dashboard did not answer on {self.url}")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()
