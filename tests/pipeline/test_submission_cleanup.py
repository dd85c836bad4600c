"""A submission that raises leaves nothing to be cleaned up after its connection is closed.

The symptom this guards against: after a submission failed with an exception, Python printed
``Exception ignored in: <generator object _Day._new_batches ...> ... Connection already
closed!``. The exception's traceback kept the row-streaming generator alive until after
``submit_window`` had closed its DuckDB connection, and the generator's ``finally`` then ran
against the closed connection. The warning goes to stderr at garbage collection, so the
submission runs in a child process and its stderr is read whole.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from tests.pipeline.test_submission import DAY, NEXT, Inputs, valid_invoices
from tests.receiver import Answer, Receiver

ROOT = Path(__file__).resolve().parents[2]


#: A refused token: the submission stops posting and raises out of ``submit_window`` (other
#: failures become failed batches, not exceptions).
REFUSED = (401, "application/json", b'{"statuscode": 2, "errors": [], "responses": []}')
ACCEPTED = (200, "application/json", b'{"statuscode": 0, "errors": [], "responses": []}')


def _script(db: Path, base_url: str) -> str:
    return textwrap.dedent(f"""
        from datetime import date
        from pydantic import SecretStr
        from amili.client import AmiliClient
        from amili.pipeline.submission import submit_window
        from amili.settings import ClientSettings, load
        settings = load(ClientSettings, base_url={base_url!r}, token=SecretStr("t"),
                        sender_id="test-sender", max_retries=0,
                        max_concurrency=1)
        with AmiliClient(settings) as client:
            submit_window({str(db)!r}, client, date.fromisoformat({DAY.isoformat()!r}),
                          date.fromisoformat({NEXT.isoformat()!r}), max_objects=5,
                          max_bytes=1_000_000)
    """)


def _submit_in_child(db: Path, base_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _script(db, base_url)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_a_submission_that_raises_prints_no_ignored_exception(tmp_path: Path) -> None:
    inputs = Inputs(tmp_path / "pipeline.duckdb")
    inputs.creditor()
    inputs.invoices(valid_invoices(30))

    with Receiver(None, lambda n, body: REFUSED) as refusing:
        first = _submit_in_child(inputs.path, refusing.url)
        # the second run finds the first one's batches not sent and re-posts them (_reposts)
        second = _submit_in_child(inputs.path, refusing.url)

    for done in (first, second):
        assert done.returncode == 1, done.stderr
        assert "SubmissionRefusedError" in done.stderr  # it failed, for the expected reason
        assert "Exception ignored" not in done.stderr, done.stderr
        assert "Connection already closed" not in done.stderr, done.stderr
    # the refused batches failed; those prepared and never posted wait for the next run
    assert set(inputs.states().values()) == {"failed", "not_sent"}


def test_a_submission_interrupted_while_posting_prints_no_ignored_exception(
    tmp_path: Path,
) -> None:
    """Ctrl-C while batches are in flight: the exception leaves ``_send`` with the day's
    generators suspended; they are closed while the connection is still open."""
    inputs = Inputs(tmp_path / "pipeline.duckdb")
    inputs.creditor()
    inputs.invoices(valid_invoices(30))
    arrived = threading.Event()

    def slowly(n: int, body: bytes) -> Answer:
        arrived.set()
        time.sleep(2)
        return ACCEPTED

    with Receiver(None, slowly) as slow:
        child = subprocess.Popen([sys.executable, "-c", _script(inputs.path, slow.url)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=ROOT)
        assert arrived.wait(60)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    assert child.returncode != 0 and "KeyboardInterrupt" in stderr, stderr
    assert "Exception ignored" not in stderr, stderr
    assert "Connection already closed" not in stderr, stderr
    # nothing was answered and written: the prepared batches wait for the next run
    assert "prepared" in set(inputs.states().values())
