"""Changes after hand-over: an object Amili took whose payload has changed in the warehouse
since is not sent again; it is counted and recorded as such.

**Never sent twice, never believed changed.** Amili keeps the first payload of an invoice or
payment id and answers any later one ``DUPLICATE`` (``docs/sandbox-assumptions.md``,
Duplicates), so posting a changed invoice again would change nothing at Amili while the
ledger would call the new amount accepted; an action would be created a second time. So a row
whose payload differs from the one Amili took first that day (status ``_CHANGED``, decided
in SQL by :mod:`.classify`) is counted ``changed_after_handover``, with its amount as the
warehouse says it now, and recorded in ``amili.changes_after_handover`` with what Amili holds
(the hash, amount and currency it took; :func:`amili.pipeline.ledger.settle_changes`).

The Batch API documents no way to hand such a change over (no update of an invoice, one
payment ``type``, ``DIRECT_PAYMENT``; the newer Collection API's corrections are not part of
it and their sign is undocumented), so the change is flagged, not sent: someone settles it
with Amili. A creditor is not such a row: Amili updates a known creditor (``UPDATED``).

Like the quarantine, the day's rows are replaced on every run of the day, written a buffer at
a time (in a dry run to ``changes-after-handover-<day>.jsonl`` instead).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from amili import jsonio
from amili.pipeline import ledger
from amili.pipeline.submission.objects import _VALUES, _decimal
from amili.pipeline.submission.state import DayState, dry_run_file

#: Changed rows are written this many at a time (and at the end of the day).
_CHANGES_FLUSH_ROWS = 1000


def _start_changes(st: DayState) -> None:
    """Empty the day's changes before its rows are read again (a re-run replaces them)."""
    if st.summary.dry_run:
        _changes_file(st).unlink(missing_ok=True)  # written only if there are any
    else:
        ledger.replace_changes_day(st.con, st.day)


def _changed(st: DayState, kind: int, source_id: str, payload: bytes, payload_hash: str,
             amount: int | Decimal | None, currency: str | None) -> None:
    """Count one changed row (at its current amount) and buffer it for writing."""
    value = _decimal(amount)
    st.amounts.add("changed_after_handover", kind, currency, amount)
    st.changed_rows += 1
    st.changes.append((_VALUES[kind], source_id, payload_hash, payload.decode(),
                       None if value is None else str(value), currency))
    if len(st.changes) >= _CHANGES_FLUSH_ROWS:
        _flush_changes(st)


def _changes_file(st: DayState) -> Path:
    """Dry run: where the day's changes after hand-over go instead of the ledger."""
    assert st.opts.dry_run_dir is not None
    return dry_run_file(st.opts.dry_run_dir, "changes-after-handover", st.day)


def _flush_changes(st: DayState) -> None:
    """Write the buffered rows (one statement for the lot) and empty the buffer."""
    if not st.changes:
        return
    if st.summary.dry_run:
        with _changes_file(st).open("ab") as out:
            for name, source_id, payload_hash, payload, amount, currency in st.changes:
                out.write(jsonio.dumps({
                    "partition_date": st.day.isoformat(), "objectname": name,
                    "source_id": source_id, "payload_hash": payload_hash, "amount": amount,
                    "currency": currency, "payload": payload,
                }) + b"\n")
    else:
        ledger.insert_changes(st.con, st.day, st.changes)
    st.changes = []


def _settle_changes(st: DayState) -> None:
    """The last buffer written, and what Amili holds of each changed object added."""
    _flush_changes(st)
    if not st.summary.dry_run and st.changed_rows:
        ledger.settle_changes(st.con, st.day)
