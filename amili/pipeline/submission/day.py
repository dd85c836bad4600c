"""One partition day, phase after phase, on one :class:`DayState`.

Phase 1 re-posts the in-doubt batches of earlier runs (:mod:`.reposts`); phase 2 streams the
day's rows and sends what is new (:mod:`.batching`); both post through :mod:`.posting`. Then
the quarantine and changes-after-hand-over buffers are written (:mod:`.changes`) and the
day's accounting settled (:mod:`.answers`).
"""

from __future__ import annotations

import time
from contextlib import closing
from datetime import date

import duckdb

from amili.pipeline.submission.answers import _settle_day
from amili.pipeline.submission.batching import _new_batches, _next_chunk_number
from amili.pipeline.submission.changes import _settle_changes, _start_changes
from amili.pipeline.submission.posting import _send
from amili.pipeline.submission.quarantine import _flush_quarantine, _start_quarantine
from amili.pipeline.submission.reposts import _reposts, _supersede_in_doubt
from amili.pipeline.submission.state import DayState, _Options
from amili.pipeline.submission.summary import DaySummary


def _submit_day(con: duckdb.DuckDBPyConnection, day: date, opts: _Options,
                rows_cursor: duckdb.DuckDBPyConnection) -> DaySummary:
    """Submit one partition day, its phases in order; all DuckDB work happens in the calling
    thread."""
    started = time.perf_counter()
    st = DayState.start(con, day, opts, rows_cursor)
    _start_quarantine(st)
    _start_changes(st)
    if st.opts.force_resend:
        reposted: list[str] = []
        _supersede_in_doubt(st, "a forced re-send of the day replaced it")
    else:
        # closed here, while the connection is open: if a POST's answer raises, the
        # exception's traceback keeps the generator alive until after submit_window has
        # closed the connection, and its `finally` then prints "Exception ignored ...
        # Connection already closed"
        with closing(_reposts(st)) as batches:
            reposted = _send(st, batches)
    st.number = _next_chunk_number(st)
    if st.summary.refused is None:
        with closing(_new_batches(st, reposted)) as batches:  # see _reposts above
            _send(st, batches)
    _flush_quarantine(st)
    _settle_changes(st)
    _settle_day(st)
    st.summary.seconds = time.perf_counter() - started
    return st.summary
