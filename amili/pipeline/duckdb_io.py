"""Opening the pipeline's DuckDB file: one writer at a time, short-lived connections.

DuckDB lets one process write a file; Dagster runs steps in separate processes and dbt is a
subprocess. Writers therefore open the file just for their work and, if another process
still holds it, retry for a bounded time before failing with a message that names the lock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

LOCK_WAIT_SECONDS = 120.0


@contextmanager
def connect_writer(
    path: str | Path, *, wait_seconds: float = LOCK_WAIT_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection, closed on exit; waits for another writer to let go."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    delay = 0.1
    while True:
        try:
            con = duckdb.connect(str(path))
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"the pipeline database {path} stayed locked by another process for "
                    f"{wait_seconds:.0f} s (DuckDB allows one writer per file; is a "
                    f"dashboard or shell holding it open?): {exc}"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    try:
        yield con
    finally:
        con.close()
