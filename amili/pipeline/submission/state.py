"""The options of a window and the state one day's phases share.

The phases are functions of a :class:`DayState` (one module each, see the package
docstring): a plain record, so what a phase reads and changes is visible in its signature and
its ``st.`` lines, and no phase holds state of its own between calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from amili.chunking import BatchIdFactory, batch_id_with_prefix
from amili.client import AmiliClient
from amili.contract import ApiContract
from amili.pipeline import ledger
from amili.pipeline.submission.classify import Relations, TypedObjects
from amili.pipeline.submission.objects import _VALUES, _Amounts, _Batch, _CreditorFate
from amili.pipeline.submission.summary import DaySummary, ObjectTally


def dry_run_file(folder: Path, what: str, day: date) -> Path:
    """Where a dry run writes the day's ``quarantine`` or ``changes-after-handover`` rows,
    which a real run writes to the ledger instead."""
    return folder / f"{what}-{day.isoformat()}.jsonl"


@dataclass
class _Options:
    """What :func:`submit_window` was asked to do, the same for every day of the window."""

    client: AmiliClient | None
    dry_run_dir: Path | None
    force_resend: bool
    max_objects: int
    max_bytes: int
    max_concurrency: int | None
    relations: Relations
    assumptions: ApiContract
    fetch_rows: int
    typed: TypedObjects = field(default_factory=TypedObjects)


@dataclass
class DayState:
    """One partition day as its phases go: the connections, the summary being filled, and the
    buffers that are written a group at a time. All DuckDB work happens in the calling thread.
    """

    con: duckdb.DuckDBPyConnection
    rows_cursor: duckdb.DuckDBPyConnection
    """Streams the day's rows (its own connection, with the check macros installed)."""
    day: date
    opts: _Options
    summary: DaySummary
    tallies: dict[str, ObjectTally]
    """``summary.objects``: per object kind."""
    tally_list: list[ObjectTally]
    """The same, indexed by kind (a row's position in the body's arrays)."""
    day_sql: str
    """The day's rows of the four relations (:meth:`Relations.day_sql`)."""
    params: dict[str, Any]
    batch_id: BatchIdFactory
    """Makes a new batch's id from its chunk number and content hash."""
    number: int = 0
    """The next new batch's chunk number."""
    creditors: dict[str, _CreditorFate] = field(default_factory=dict)
    quarantine: list[tuple[str, str | None, str, str]] = field(default_factory=list)
    """Quarantined rows not yet written (objectname, source_id, reason, payload)."""
    changes: list[tuple[str, str, str, str, str | None, str | None]] = field(
        default_factory=list)
    """Changed rows not yet written (objectname, source_id, payload_hash, payload, amount,
    currency); see :mod:`.changes`."""
    changed_rows: int = 0
    """Rows of the day found changed after hand-over."""
    answers: ledger.AnswerBuffer = field(default_factory=ledger.AnswerBuffer)
    """Answers not yet written to the ledger."""
    amounts: _Amounts = field(default_factory=_Amounts)
    unposted: dict[str, _Batch] = field(default_factory=dict)
    """Batches written as prepared and not yet handed to the POST."""

    @classmethod
    def start(cls, con: duckdb.DuckDBPyConnection, day: date, opts: _Options,
              rows_cursor: duckdb.DuckDBPyConnection) -> DayState:
        """The state of ``day`` before its first phase."""
        summary = DaySummary(day, dry_run=opts.dry_run_dir is not None)
        return cls(
            con=con,
            rows_cursor=rows_cursor,
            day=day,
            opts=opts,
            summary=summary,
            tallies=summary.objects,
            tally_list=[summary.objects[value] for value in _VALUES],
            day_sql=opts.relations.day_sql(opts.typed),
            params={"day": day},
            batch_id=batch_id_with_prefix(f"{day:%Y%m%d}"),
        )
