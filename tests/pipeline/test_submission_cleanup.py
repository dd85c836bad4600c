"""A submission that raises leaves nothing to be cleaned up after its connection is closed.

The symptom this guards against: after a submission failed with an exception, Python printed
``Exception ignored in: <generator object _Day._new_batches ...> ... Connection already
closed!``. The exception's traceback kept the row-streaming generator alive until after
``submit_window`` had closed its DuckDB connection, and the generator's ``finally`` then ran
against the closed connection. The warning goes to stderr at garbage collection, so the
submission runs in a child process and its stderr is read whole.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.pipeline.test_submission import DAY, NEXT, Inputs, valid_invoices

ROOT = Path(__file__).resolve().parents[2]


class _NotJson(BaseHTTPRequestHandler):
    """Answers every POST with HTTP 200 and a body that is not JSON (a wrong base URL, say):
    the client cannot parse it and the submission raises, which no sandbox answer makes it
    do (refused connections and 4xx/5xx answers become failed batches, not exceptions)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"<html>not the Amili API</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def not_json_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotJson)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _submit_in_child(db: Path, base_url: str) -> subprocess.CompletedProcess[str]:
    run = textwrap.dedent(f"""
        from datetime import date
        from pydantic import SecretStr
        from amili.client import AmiliClient
        from amili.pipeline.submission import submit_window
        from amili.settings import ClientSettings, load
        settings = load(ClientSettings, base_url={base_url!r}, token=SecretStr("t"),
                        sender_id="test-sender", max_retries=0)
        with AmiliClient(settings) as client:
            submit_window({str(db)!r}, client, date.fromisoformat({DAY.isoformat()!r}),
                          date.fromisoformat({NEXT.isoformat()!r}), max_objects=5,
                          max_bytes=1_000_000)
    """)
    return subprocess.run([sys.executable, "-c", run], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_a_submission_that_raises_prints_no_ignored_exception(
    tmp_path: Path, not_json_server: str
) -> None:
    inputs = Inputs(tmp_path / "pipeline.duckdb")
    inputs.creditor()
    inputs.invoices(valid_invoices(30))

    first = _submit_in_child(inputs.path, not_json_server)
    # the second run finds the first one's batches in doubt and re-posts them (_reposts)
    second = _submit_in_child(inputs.path, not_json_server)

    for done in (first, second):
        assert done.returncode == 1, done.stderr
        assert "JSONDecodeError" in done.stderr  # it did fail, and for the expected reason
        assert "Exception ignored" not in done.stderr, done.stderr
        assert "Connection already closed" not in done.stderr, done.stderr
    # the batches stay in doubt, for the next run to re-post as they were
    assert set(inputs.states().values()) == {"prepared"}
