"""Submit a window of days to Amili's Batch API: validate, quarantine, chunk, ledger, POST.

This is the Dagster-free core of the submission stage; an asset calls :func:`submit_window`
and turns its :class:`SubmissionSummary` into metadata. Each day is submitted on its own, in
order (:func:`_submit_days`), by phases that share one :class:`~.state.DayState`:

=================  ==========================================================================
module             what it does (and the guarantee it states)
=================  ==========================================================================
``__init__``       :func:`submit_window`: the connection, DuckDB's limits, the days in order;
                   a refused token stops the window
``day``            one day: the phases below in order (:func:`~.day._submit_day`)
``state``          the window's options and the day's shared state
``classify``       the SQL that reads the day's rows and decides each row's status
                   (per-row work where it is vectorized)
``reposts``        phase 1: re-post the in-doubt batches of earlier runs byte for byte
``batching``       phase 2: stream the rows per creditor, cut new bodies; the hot loop
                   (bounded memory; a creditor heads each of its bodies)
``quarantine``     check a row in Python, quarantine it with its reason (bad input loses
                   nothing)
``changes``        an object Amili took whose payload changed since: counted and recorded,
                   not sent again (never sent twice)
``posting``        the ledger as an outbox, the POSTs (nothing is sent twice)
``answers``        what became of each sent object, the day's accounting (nothing is lost;
                   an answer is believed only when it says so)
``objects``        what rides between phases: object keys, batches, amounts in øre
``summary``        the result types and errors
``gc_tuning``      the cycle collector while days stream
=================  ==========================================================================
"""

from __future__ import annotations

import logging
import re
from datetime import date, timedelta
from pathlib import Path

import duckdb

from amili.client import AmiliClient
from amili.contract import DEFAULT_CONTRACT, MAX_BATCH_OBJECTS, MAX_BODY_BYTES, ApiContract
from amili.pipeline import ledger, sql_checks
from amili.pipeline.duckdb_io import connect_writer
from amili.pipeline.ledger import BatchState
from amili.pipeline.submission.batching import _FETCH_ROWS
from amili.pipeline.submission.classify import Relations, TypedObjects
from amili.pipeline.submission.day import _submit_day
from amili.pipeline.submission.gc_tuning import _collector_for_streaming
from amili.pipeline.submission.state import _Options, dry_run_file
from amili.pipeline.submission.summary import (
    STATES,
    BatchFailure,
    DaySummary,
    ObjectTally,
    SubmissionError,
    SubmissionRefusedError,
    SubmissionSummary,
)
from amili.settings import PipelineSettings, is_memory_size, load

log = logging.getLogger("amili.pipeline.submission")

__all__ = [
    "STATES",
    "BatchFailure",
    "DaySummary",
    "ObjectTally",
    "Relations",
    "SubmissionError",
    "SubmissionMemoryError",
    "SubmissionRefusedError",
    "SubmissionSummary",
    "TypedObjects",
    "dry_run_file",
    "submit_window",
]


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def submit_window(
    pipeline_db: str | Path,
    client: AmiliClient | None,
    start: date,
    end: date,
    *,
    dry_run_dir: Path | None = None,
    force_resend: bool = False,
    max_objects: int | None = None,
    max_bytes: int | None = None,
    max_concurrency: int | None = None,
    relations: Relations | None = None,
    assumptions: ApiContract = DEFAULT_CONTRACT,
    fetch_rows: int = _FETCH_ROWS,
    lock_wait_seconds: float | None = None,
    duckdb_memory_limit: str | None = None,
) -> SubmissionSummary:
    """Submit every partition day of ``[start, end)`` on its own, in order.

    ``client`` may be None only for a dry run. ``max_objects``/``max_bytes`` bound each body
    (default: the client's settings). With ``dry_run_dir`` the bodies are written to
    ``<dir>/<batchid>.json`` and quarantined rows to ``<dir>/quarantine-<day>.jsonl``; nothing
    is posted and nothing in the database changes (beyond creating the ``amili`` tables if
    they are missing). ``force_resend`` sends every row again, in new batches, even those
    already acknowledged, and supersedes the day's in-doubt batches. ``duckdb_memory_limit``
    bounds DuckDB's memory on this connection (None: ``AMILI_DUCKDB_MEMORY_LIMIT``, default
    256MB; an empty string: DuckDB's own default, most of the RAM).
    ``lock_wait_seconds`` bounds the wait for another process to let go of the file (None:
    ``AMILI_LOCK_WAIT_SECONDS`` or two minutes, as every writer).

    Partial failures do not raise; call :meth:`SubmissionSummary.raise_for_failures`.
    """
    if end < start:
        raise ValueError(f"the window [{start}, {end}) ends before it starts")
    if dry_run_dir is None and client is None:
        raise ValueError("a client is needed unless dry_run_dir is given")
    settings = client.settings if client is not None else None
    objects = max_objects or (settings.max_batch_objects if settings else MAX_BATCH_OBJECTS)
    size = max_bytes or (settings.max_batch_bytes if settings else MAX_BODY_BYTES)
    if objects < 2:
        raise ValueError("max_objects must be at least 2 (a creditor heads every body)")
    opts = _Options(
        client=client,
        dry_run_dir=Path(dry_run_dir) if dry_run_dir is not None else None,
        force_resend=force_resend,
        max_objects=objects,
        max_bytes=size,
        max_concurrency=max_concurrency,
        relations=relations or Relations(),
        assumptions=assumptions,
        fetch_rows=fetch_rows,
    )
    if duckdb_memory_limit is None:
        duckdb_memory_limit = load(PipelineSettings).duckdb_memory_limit
    if duckdb_memory_limit and not is_memory_size(duckdb_memory_limit):
        raise ValueError(f"duckdb_memory_limit {duckdb_memory_limit!r} is not like 256MB")
    summary = SubmissionSummary()
    with connect_writer(pipeline_db, wait_seconds=lock_wait_seconds) as con:
        if duckdb_memory_limit:
            # DuckDB sorts the day by creditor; bounded, it spills to disk instead of holding
            # a million payloads in memory (the process's RSS stays flat with the day's size)
            con.execute(f"SET memory_limit = '{duckdb_memory_limit}'")
            # ... and the day's rows must stay the probe side of the joins with the ledger:
            # on a day whose ledger is larger than DuckDB's estimate of the day, the optimizer
            # would otherwise build its hash table from the day's payloads (seen at 1M rows)
            con.execute("SET disabled_optimizers = 'join_order,build_side_probe_side'")
        ledger.ensure_schema(con)
        ledger.defer_checkpoints(con)
        opts.typed = opts.relations.typed_objects(con)
        rows_cursor = con.cursor()
        sql_checks.install_macros(rows_cursor)  # temporary macros are the cursor's own
        try:
            with _collector_for_streaming():
                _submit_days(con, rows_cursor, opts, start, end, summary)
        except duckdb.Error as exc:
            if not _out_of_memory(exc):
                raise
            day = start + timedelta(days=len(summary.days))
            raise SubmissionMemoryError(_memory_message(duckdb_memory_limit, day, exc),
                                        summary) from exc
        finally:
            rows_cursor.close()
    return summary


class SubmissionMemoryError(SubmissionError):
    """DuckDB reached ``AMILI_DUCKDB_MEMORY_LIMIT`` during a day; ``summary`` holds the days
    before it. What the day had prepared stays in the ledger for the next run, as after a
    crash."""

    def __init__(self, message: str, summary: SubmissionSummary) -> None:
        super().__init__(message)
        self.summary = summary


_DUCKDB_OUT_OF_MEMORY = re.compile(
    r"Out of Memory Error|(failed to|could not) (allocate|pin) (data|block) of size")


def _out_of_memory(exc: duckdb.Error) -> bool:
    """DuckDB's memory limit was hit (also when it surfaces as a failed COMMIT)."""
    return isinstance(exc, duckdb.OutOfMemoryException) or bool(
        _DUCKDB_OUT_OF_MEMORY.search(str(exc)))


def _memory_message(limit: str | None, day: date, exc: duckdb.Error) -> str:
    said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    bound = limit or "DuckDB's default"
    return (
        f"DuckDB ran out of memory while submitting {day}: its limit is {bound} "
        f"(AMILI_DUCKDB_MEMORY_LIMIT). The day's rows stream, so the limit does not grow with "
        f"the day; what must fit is DuckDB's work on one vector of 2048 rows, and serializing "
        f"wide rows to JSON takes about 12 times their JSON size (2.7 kB invoices: about "
        f"80MB). Raise AMILI_DUCKDB_MEMORY_LIMIT and re-run the partition: batches already "
        f"prepared stay in the ledger and nothing is sent twice. DuckDB said: {said}"
    )


def _refusal_message(summary: SubmissionSummary, next_day: date, end: date) -> str:
    """What a refused token stopped: the setting to fix, what was answered, what was not."""
    day = summary.days[-1]
    refused = day.refused
    assert refused is not None
    answered = {state: n for state, n in sorted(day.batches.items())
                if state not in (BatchState.FAILED.value, BatchState.NOT_SENT.value)}
    earlier = [d.day.isoformat() for d in summary.days[:-1]]
    later = f"; days {next_day} to {end - timedelta(days=1)} were not started" if (
        next_day < end) else ""
    return (
        f"Amili refused the token (HTTP {refused.status_code}) on {day.day}: check AMILI_TOKEN "
        f"(a JWT bearer token for sender AMILI_SENDER_ID); nothing more was posted with it. "
        f"{'Days ' + ', '.join(earlier) + ' were submitted before. ' if earlier else ''}"
        f"On {day.day}: answered before the refusal: {answered or 'no batch'}; "
        f"refused: {day.refusals} batch(es) (failed, HTTP {refused.status_code}); not sent: "
        f"{len(day.not_sent)} prepared batch(es) (state not_sent, re-posted as they are by "
        f"the next run) and the day's rows not yet cut into batches{later}. "
        f"Re-run the partition once the token is fixed: only what Amili did not acknowledge "
        f"is sent."
    )


def _submit_days(
    con: duckdb.DuckDBPyConnection,
    rows_cursor: duckdb.DuckDBPyConnection,
    opts: _Options,
    start: date,
    end: date,
    summary: SubmissionSummary,
) -> None:
    """Each day of ``[start, end)`` on its own, in order, into ``summary``."""
    day = start
    while day < end:
        result = _submit_day(con, day, opts, rows_cursor)
        summary.days.append(result)
        if result.refused is not None:
            raise SubmissionRefusedError(_refusal_message(summary, day + timedelta(days=1), end),
                                         summary)
        total = result.total()
        log.info(
            "%s%s: %d rows seen, %d sent, %d skipped unchanged, %d changed after hand-over "
            "(not sent), %d quarantined, %d held; batches %s (%.1f s)",
            day, " (dry run)" if opts.dry_run_dir else "", total.seen, total.sent,
            total.skipped_unchanged, total.changed_after_handover, total.quarantined,
            total.held,
            dict(result.batches), result.seconds,
        )
        day += timedelta(days=1)
