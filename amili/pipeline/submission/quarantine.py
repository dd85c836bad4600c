"""Checking a row in Python and quarantining it: why it must not be sent, in words that name
the row.

**Bad input loses nothing.** A row the SQL could not prove valid (:mod:`.classify`) is
checked here with the same validation the sandbox runs (:func:`amili.validation.validate_object`)
plus what only the day can tell (a missing or repeated id, a unique field that differs from
the row's id). A row that fails is quarantined with its reason, in ``amili.quarantine`` (or,
in a dry run, ``quarantine-<day>.jsonl``): counted, kept with its payload, not sent, and
never a reason to stop the day for the other rows. The buffer is written every
``_QUARANTINE_FLUSH_ROWS`` rows and at the end of the day, so it stays small.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from amili import jsonio, reasons
from amili.models import ObjectName
from amili.pipeline import ledger
from amili.pipeline.submission.objects import _compact, _decimal
from amili.pipeline.submission.state import DayState, dry_run_file
from amili.validation import validate_object

#: The column of each input relation that identifies its row (the ledger's source_id).
_ID_COLUMN = {
    ObjectName.CREDITOR: "creditor_id",
    ObjectName.INVOICE: "invoice_id",
    ObjectName.PAYMENT: "payment_id",
    ObjectName.ACTION: "action_id",
}
#: The payload field that must equal the row's id, so Amili's deduplication (on these ids)
#: and the ledger's (on source_id) are about the same thing.
_UNIQUE_FIELD = {
    ObjectName.INVOICE: "uniqueSourceInvoiceId",
    ObjectName.PAYMENT: "uniqueSourcePaymentId",
}
#: Quarantined rows are written to the ledger (or the dry run's file) this many at a time.
_QUARANTINE_FLUSH_ROWS = 1000


def _check(
    st: DayState,
    name: ObjectName,
    source_id: str | None,
    payload: str | None,
    duplicates: dict[tuple[str, str | None], int],
) -> str | None:
    """Why this row must not be sent (the sandbox's own words), or None."""
    id_column = _ID_COLUMN[name]
    if source_id is None or not str(source_id).strip():
        return f"{name.value}: the row has no {id_column}"
    copies = duplicates.get((name.value, source_id))
    if copies:
        return (f"{name.value}: {id_column} {source_id!r} appears {copies} times on "
                f"{st.day}; every row needs its own id")
    if payload is None:
        return f"{name.value}: the row has no payload"
    try:
        raw = jsonio.loads(payload)
    except (ValueError, RecursionError) as exc:
        return f"{name.value}: the payload is not valid JSON: {exc}"
    problems = validate_object(name, None, raw, st.opts.assumptions).problems
    unique_field = _UNIQUE_FIELD.get(name)
    if unique_field and isinstance(raw, dict):
        value = raw.get(unique_field)
        if isinstance(value, str) and value != source_id:
            problems.append(
                f"{name.value}.{unique_field}: {value!r} differs from the row's "
                f"{id_column} {source_id!r}; they must be equal so answers map to the row"
            )
    if problems:
        return st.opts.assumptions.error_message_separator.join(problems)
    if not _compact(payload).startswith(b"{"):  # pragma: no cover - validated as object
        return f"{name.value}: the payload is not a JSON object"
    return None


def _start_quarantine(st: DayState) -> None:
    """Empty the day's quarantine before its rows are read again (a re-run replaces it)."""
    if st.summary.dry_run:
        assert st.opts.dry_run_dir is not None
        st.opts.dry_run_dir.mkdir(parents=True, exist_ok=True)
        _quarantine_file(st).write_text("")
    else:
        ledger.replace_quarantine_day(st.con, st.day)


def _quarantine(
    st: DayState,
    name: ObjectName,
    source_id: str | None,
    reason: str,
    payload: str | None,
    amount: int | Decimal | None,
    currency: str | None,
) -> None:
    """Count the row as quarantined and buffer it, with its reason and payload, for writing."""
    st.tallies[name.value].add("quarantined", _decimal(amount), currency)
    st.quarantine.append((name.value, source_id, reason, payload or ""))


def _quarantine_file(st: DayState) -> Path:
    """Dry run: where the day's quarantined rows go instead of the ledger."""
    assert st.opts.dry_run_dir is not None
    return dry_run_file(st.opts.dry_run_dir, "quarantine", st.day)


def _flush_quarantine(st: DayState) -> None:
    """Write the buffered rows (one statement for the lot) and empty the buffer."""
    if not st.quarantine:
        return
    if st.summary.dry_run:
        with _quarantine_file(st).open("ab") as out:
            for name, source_id, reason, payload in st.quarantine:
                code, value = reasons.classify(reason)
                out.write(jsonio.dumps({
                    "partition_date": st.day.isoformat(), "objectname": name,
                    "source_id": source_id, "reason": reason, "reason_code": code,
                    "reason_value": value, "payload": payload,
                }) + b"\n")
    else:
        ledger.insert_quarantine(st.con, st.day, st.quarantine)
    st.quarantine = []
