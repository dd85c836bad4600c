"""Opening the pipeline's DuckDB file: one writer at a time, short-lived connections.

DuckDB lets one process write a file; Dagster runs steps in separate processes and dbt is a
subprocess. Writers therefore open the file just for their work and, if another process
still holds it, retry for a bounded time before failing with a message that names the lock
and its holder.

Every step waits the same way and fails with the same message, whether it is Python
(:func:`connect_writer`) or dbt (:func:`wait_for_writer_lock` before dbt starts, and
:func:`locked_error_from` to recognise DuckDB's lock error in dbt's failure). The wait is
logged every :data:`LOG_EVERY_SECONDS`, so a step that waits for a dashboard or a shell to
let go says so instead of looking hung.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

#: Default bound of the wait for another process to let go of the file.
LOCK_WAIT_SECONDS = 120.0
#: Overrides :data:`LOCK_WAIT_SECONDS` for every writer of a process (tests set it short).
LOCK_WAIT_ENV = "AMILI_LOCK_WAIT_SECONDS"
#: How often a waiting writer says that it is still waiting.
LOG_EVERY_SECONDS = 5.0

logger = logging.getLogger(__name__)

#: DuckDB's text: `Could not set lock on file "<path>": Conflicting lock is held in
#: <program> (PID <n>)[ by user <u>]. See also ...` (duckdb 2.0).
_LOCK_ERROR = re.compile(r'Could not set lock on file "(?P<path>[^"]*)"')
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


class DatabaseLockedError(RuntimeError):
    """Another process held the pipeline database for longer than a writer may wait."""

    def __init__(self, path: str | Path, waited_seconds: float, duckdb_error: str) -> None:
        self.path = Path(path)
        self.waited_seconds = waited_seconds
        self.holder = lock_holder(duckdb_error)
        self.pid = lock_holder_pid(duckdb_error)
        super().__init__(
            f"the pipeline database {self.path} stayed locked by {self.holder} for "
            f"{waited_seconds:.0f} s (DuckDB allows one process to open a file for writing; "
            "is a dashboard or a shell holding it open? Analysts read the reporting "
            f"snapshot instead). DuckDB said: {duckdb_error}"
        )


def lock_holder(duckdb_error: str) -> str:
    """``<program> (PID n)`` of the process holding the lock, as DuckDB names it."""
    match = _HOLDER.search(duckdb_error)
    if match is None:
        return "another process"
    return f"{match['program']} (PID {match['pid']})"


def lock_holder_pid(duckdb_error: str) -> int | None:
    match = _HOLDER.search(duckdb_error)
    return int(match["pid"]) if match else None


def is_lock_error(error: BaseException | str) -> bool:
    """True for DuckDB's "Could not set lock on file" (and nothing else, e.g. a full disk)."""
    return _LOCK_ERROR.search(str(error)) is not None


def lock_error_in(text: str) -> str | None:
    """The first line of ``text`` (dbt's error output, say) that is DuckDB's lock error."""
    for line in text.splitlines():
        if is_lock_error(line):
            return line.strip()
    return None


def locked_error_from(
    error: BaseException, path: str | Path, waited_seconds: float
) -> DatabaseLockedError | None:
    """The shared error for a failure whose text (dbt's, say) carries DuckDB's lock error."""
    line = lock_error_in(str(error))
    return None if line is None else DatabaseLockedError(path, waited_seconds, line)


def lock_wait_seconds() -> float:
    """The wait bound: ``AMILI_LOCK_WAIT_SECONDS`` if set, else :data:`LOCK_WAIT_SECONDS`."""
    value = os.environ.get(LOCK_WAIT_ENV, "").strip()
    if not value:
        return LOCK_WAIT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{LOCK_WAIT_ENV} must be a number of seconds, got {value!r}") from None
    if seconds < 0:
        raise ValueError(f"{LOCK_WAIT_ENV} must not be negative, got {value!r}")
    return seconds


def dbt_connect_attempts(wait_seconds: float) -> int:
    """dbt-duckdb's ``connect_attempts`` that wait about as long as ``wait_seconds``.

    dbt-duckdb sleeps ``2**attempt`` seconds after each failed attempt (1, 2, 4, ...), so n
    attempts wait ``2**n - 1`` seconds: the smallest n that covers the wait.
    """
    return max(1, math.ceil(math.log2(wait_seconds + 1)))


@contextmanager
def connect_writer(
    path: str | Path,
    *,
    wait_seconds: float | None = None,
    log: logging.Logger | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection, closed on exit; waits for another process to let go.

    Retries with backoff (0.1 s doubling to 2 s) for ``wait_seconds`` (default
    :func:`lock_wait_seconds`), logging to ``log`` (a step's ``context.log``; default this
    module's logger) every :data:`LOG_EVERY_SECONDS` whom it waits for, then raises
    :class:`DatabaseLockedError`. Errors other than the lock are raised at once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wait = lock_wait_seconds() if wait_seconds is None else wait_seconds
    log = log or logger
    started = time.monotonic()
    next_log = started
    delay = 0.1
    while True:
        try:
            con = duckdb.connect(str(path))
            break
        except duckdb.IOException as exc:
            if not is_lock_error(exc):
                raise
            now = time.monotonic()
            if now - started >= wait:
                raise DatabaseLockedError(path, wait, str(exc)) from exc
            if now >= next_log:
                log.warning("waiting for the lock on %s held by %s (%.0f s of at most %.0f s)",
                            path, lock_holder(str(exc)), now - started, wait)
                next_log = now + LOG_EVERY_SECONDS
            time.sleep(min(delay, max(0.0, started + wait - now)))
            delay = min(delay * 2, 2.0)
    if time.monotonic() - started >= LOG_EVERY_SECONDS / 2:
        log.info("got the lock on %s after %.0f s", path, time.monotonic() - started)
    try:
        yield con
    finally:
        con.close()


def wait_for_writer_lock(
    path: str | Path, *, wait_seconds: float | None = None, log: logging.Logger | None = None
) -> None:
    """Wait until the file can be opened for writing, then let go of it at once.

    For a writer that is not this process (dbt): it starts only once nobody holds the file,
    and a lock held for the whole wait fails the step here with :class:`DatabaseLockedError`
    rather than as dbt's raw error minutes later.
    """
    with connect_writer(path, wait_seconds=wait_seconds, log=log):
        pass
