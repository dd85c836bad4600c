"""Results: Amili's answers as tables analysts can query, one row per object and per error.

The ledger (``amili.submission_ledger`` and ``amili.ledger_objects``) is the submission's
working memory; these tables are its published outcome for a window of days, rebuilt from
the ledger on every run (delete the window, insert it again), so they are always exactly
what the ledger says:

* ``amili.responses``: every object of every batch that got an answer (or is still waiting
  for one), with its source id, Amili's ``ledgerref`` and status;
* ``amili.errors``: every rejection, object-level (with the source id it maps back to) or
  batch-level (a batch that failed as a whole: HTTP error, retries exhausted).

It also records Amili's ids of acknowledged invoices (``amili.acknowledged_invoices``),
which later payments and actions need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb

from amili import reasons
from amili.pipeline.duckdb_io import connect_writer
from amili.pipeline.ledger import ResultsSummary, ensure_schema, record_results

DDL = (
    """CREATE TABLE IF NOT EXISTS amili.responses (
        partition_date DATE NOT NULL,
        batchid VARCHAR NOT NULL,
        batch_state VARCHAR NOT NULL,
        objectname VARCHAR NOT NULL,
        objectindex INTEGER NOT NULL,
        source_id VARCHAR NOT NULL,
        ledgerref VARCHAR,              -- Amili's id of the object
        status_statuscode VARCHAR,      -- CREATED | UPDATED | DUPLICATE, as answered
        outcome VARCHAR NOT NULL,       -- accepted | rejected | unconfirmed (answered, not
                                        -- accounted for) | outstanding (no answer yet)
        answered_at TIMESTAMPTZ
    )""",
    """CREATE TABLE IF NOT EXISTS amili.errors (
        partition_date DATE NOT NULL,
        batchid VARCHAR NOT NULL,
        level VARCHAR NOT NULL,         -- object | batch
        objectname VARCHAR,             -- NULL for a batch-level error
        objectindex INTEGER,
        source_id VARCHAR,
        http_status INTEGER,
        message VARCHAR NOT NULL,
        answered_at TIMESTAMPTZ,
        error_code VARCHAR              -- the message's reason code (amili.reasons)
    )""",
    # a table written before reason codes gets the column (the next publish fills it)
    "ALTER TABLE amili.errors ADD COLUMN IF NOT EXISTS error_code VARCHAR",
)

#: Batches that were replaced by others; their objects are reported through the new batches.
_LIVE_BATCHES = "l.state <> 'superseded'"


@dataclass(frozen=True)
class ResultsTally:
    """What the window's results hold, for metadata and the demo's summary."""

    start: date
    end: date
    objects_by_outcome: dict[str, int]
    batch_errors: int
    quarantined: int
    amounts_by_outcome: dict[str, Decimal]
    top_reasons: list[tuple[str, int]] = field(default_factory=list)
    acknowledged: ResultsSummary | None = None

    @property
    def sent(self) -> int:
        return sum(self.objects_by_outcome.values())

    @property
    def rejection_rate(self) -> float:
        return self.objects_by_outcome.get("rejected", 0) / self.sent if self.sent else 0.0


def publish_results(pipeline_db: str | Path, start: date, end: date) -> ResultsTally:
    """Rebuild ``amili.responses`` and ``amili.errors`` for ``[start, end)`` from the ledger."""
    window = {"start": start, "end": end}
    with connect_writer(pipeline_db) as con:
        ensure_schema(con)
        for statement in DDL:
            con.execute(statement)
        acknowledged = record_results(con, start, end)
        con.execute("BEGIN TRANSACTION")
        try:
            for table in ("responses", "errors"):
                con.execute(
                    f"DELETE FROM amili.{table} WHERE partition_date >= $start "
                    "AND partition_date < $end", window,
                )
            con.execute(
                f"""INSERT INTO amili.responses
                SELECT o.partition_date, o.batchid, l.state, o.objectname, o.objectindex,
                       o.source_id, o.ledgerref, o.status_statuscode,
                       coalesce(o.outcome, 'outstanding'), l.answered_at
                FROM amili.ledger_objects o JOIN amili.submission_ledger l USING (batchid)
                WHERE {_LIVE_BATCHES}
                  AND o.partition_date >= $start AND o.partition_date < $end""",
                window,
            )
            con.execute(
                f"""INSERT INTO amili.errors (partition_date, batchid, level, objectname,
                    objectindex, source_id, http_status, message, answered_at, error_code)
                SELECT o.partition_date, o.batchid, 'object', o.objectname, o.objectindex,
                       o.source_id, l.http_status, o.error_message, l.answered_at,
                       o.error_code
                FROM amili.ledger_objects o JOIN amili.submission_ledger l USING (batchid)
                WHERE {_LIVE_BATCHES} AND o.outcome = 'rejected'
                  AND o.partition_date >= $start AND o.partition_date < $end
                UNION ALL
                SELECT l.partition_date, l.batchid, 'batch', NULL, NULL, NULL, l.http_status,
                       l.error, l.answered_at, {reasons.code_sql("l.error")}
                FROM amili.submission_ledger l
                WHERE {_LIVE_BATCHES} AND l.error IS NOT NULL
                  AND l.partition_date >= $start AND l.partition_date < $end""",
                window,
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return _tally(con, start, end, acknowledged)


def _tally(
    con: duckdb.DuckDBPyConnection, start: date, end: date, acknowledged: ResultsSummary
) -> ResultsTally:
    window = {"start": start, "end": end}
    by_outcome = dict(con.execute(
        """SELECT outcome, count(*) FROM amili.responses
        WHERE partition_date >= $start AND partition_date < $end GROUP BY outcome""", window,
    ).fetchall())
    batch_errors = con.execute(
        """SELECT count(*) FROM amili.errors WHERE level = 'batch'
        AND partition_date >= $start AND partition_date < $end""", window,
    ).fetchone()[0]
    quarantined = con.execute(
        """SELECT count(*) FROM amili.quarantine
        WHERE partition_date >= $start AND partition_date < $end""", window,
    ).fetchone()[0]
    # invoice amounts by outcome, read exactly (DECIMAL) from the batch table when it exists
    amounts: dict[str, Decimal] = {}
    has_batch = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'batch' "
        "AND table_name = 'batch_invoices'"
    ).fetchone()[0]
    if has_batch:
        amounts = dict(con.execute(
            """SELECT r.outcome, sum(i.originalInvoiceAmount)
            FROM amili.responses r JOIN batch.batch_invoices i
              ON i.partition_date = r.partition_date AND i.invoice_id = r.source_id
            WHERE r.objectname = 'invoice'
              AND r.partition_date >= $start AND r.partition_date < $end
            GROUP BY r.outcome""", window,
        ).fetchall())
    top = top_reasons(con, start, end)
    return ResultsTally(start, end, by_outcome, batch_errors, quarantined, amounts,
                        top.get(None, []), acknowledged)


def top_reasons(
    con: duckdb.DuckDBPyConnection, start: date, end: date, *, per_day: bool = False,
    limit: int = 10,
) -> dict[date | None, list[tuple[str, int]]]:
    """The ``limit`` most frequent rejection reasons of ``amili.errors`` in ``[start, end)``,
    over the window (key None) or ``per_day`` (key: the day), most frequent first.

    One grouping for every figure that shows them (the results' tally, each partition's
    metadata): by reason code, a known code labelled "code: message"; a message no code
    knows (``other``) as it reads, its quoted values masked so that rows differing only in
    a value group together and no value reaches the metadata.
    """
    day = "partition_date" if per_day else "NULL::DATE"
    found: dict[date | None, list[tuple[str, int]]] = {}
    for key, code, text, n in con.execute(
            f"""SELECT {day} AS day, coalesce(error_code, '{reasons.OTHER}') AS code,
                       CASE WHEN coalesce(error_code, '{reasons.OTHER}') = '{reasons.OTHER}'
                            THEN regexp_replace(message, '''[^'']*''', '…', 'g') END AS text,
                       count(*) AS n
                FROM amili.errors WHERE partition_date >= $start AND partition_date < $end
                GROUP BY day, code, text
                QUALIFY row_number() OVER (PARTITION BY day ORDER BY n DESC, code, text)
                        <= {int(limit)}
                ORDER BY day, n DESC, code, text""",
            {"start": start, "end": end}).fetchall():
        label = (f"{code}: {reasons.MESSAGES[code]}" if code in reasons.MESSAGES
                 else text or code)
        found.setdefault(key, []).append((label, n))
    return found
