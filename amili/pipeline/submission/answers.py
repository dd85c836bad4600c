"""Recording what became of each sent object, and the day's final accounting.

**Nothing is lost.** Every row of a day the phases read ends in exactly one bucket of its
:class:`ObjectTally` (quarantined, held, skipped as unchanged, changed after hand-over, or
sent; :mod:`.batching`
sorts each row into one), and every sent row in exactly one of accepted, duplicate, rejected,
unconfirmed, failed or not sent (here). Both sums are closed when the day is settled
(:func:`_settle_seen`, :func:`_settle_accepted`), so a row cannot fall between buckets.

**An answer is believed only when it says so** (:func:`_record_answer`): an object is accepted
when the answer names it, or when the answer's statuscode says the whole batch was taken; an
answer that does not account for an object leaves it unconfirmed, and the next run sends it
again. Answers are written to the ledger a group at a time (:func:`_flush_answers`), touching
only the day's rows; an answer that names no object costs nothing per object, since the
accepted are counted as the rest at the end.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from amili.client import AmiliAPIError, AmiliAuthError, AmiliError, BatchOutcome, PostResult
from amili.models import ObjectName
from amili.pipeline import ledger
from amili.pipeline.ledger import BatchState, ObjectOutcome
from amili.pipeline.submission.objects import _NAMES, _VALUES, _Batch, _CreditorFate, _Key
from amili.pipeline.submission.state import DayState
from amili.pipeline.submission.summary import _NOT_ACCEPTED, BatchFailure

log = logging.getLogger("amili.pipeline.submission")

#: Failed batches kept in :attr:`DaySummary.failures` (all are in the ledger).
_MAX_ERRORS_KEPT = 20


def _record(st: DayState, outcome: BatchOutcome[_Batch]) -> None:
    """One batch's outcome: its answer, or why it has none."""
    batch = outcome.item
    if outcome.error is not None or outcome.result is None:
        _record_failure(st, batch, outcome.error)
        return
    _record_answer(st, batch, outcome.result)


def _record_failure(st: DayState, batch: _Batch, error: AmiliError | None) -> None:
    """The POST raised (or got no answer): the batch is ``failed``, in doubt for the next run
    where the error leaves its fate unknown; a refused token stops the posting."""
    if isinstance(error, AmiliAuthError):
        st.summary.refused = st.summary.refused or error
        st.summary.refusals += 1
    status = error.status_code if isinstance(error, AmiliAPIError) else None
    body = error.body if isinstance(error, AmiliAPIError) else None
    text = str(error) if error is not None else "no answer"
    ledger.record_failure(
        st.con, batchid=batch.batchid, http_status=status,
        attempts=getattr(error, "attempts", 1), error=text, response_body=body,
    )
    st.summary.batches[BatchState.FAILED.value] += 1
    if len(st.summary.failures) < _MAX_ERRORS_KEPT:
        st.summary.failures.append(BatchFailure(batch.batchid, status, text))
    log.warning("batch %s of %s failed: %s", batch.batchid, st.day, text)
    _count_all(st, batch, "failed")


def _record_answer(st: DayState, batch: _Batch, result: PostResult) -> None:
    """Each object's outcome, believed only where the answer says it.

    An object named in ``errors`` is rejected, one named in ``responses`` accepted
    (DUPLICATE included). One the answer does not name is accepted only under
    ``statuscode`` 0, which the assumptions define as "every object accepted"; a
    batch-level error (``objectname`` ``batch``) rejects it; otherwise it is
    ``unconfirmed``. So ``statuscode`` 2 with empty lists leaves the whole batch
    unconfirmed, and the next run sends its objects again.
    """
    answer = result.response
    body = result.raw_body.decode("utf-8", "replace")
    all_taken = answer.statuscode == st.opts.assumptions.statuscode_ok
    if not answer.errors and not answer.responses:
        # nothing named: the statuscode speaks for the whole batch, or nothing does
        state_, outcome_ = ((BatchState.ACCEPTED, "accepted") if all_taken
                            else (BatchState.UNCONFIRMED, "unconfirmed"))
        if not all_taken:
            log.warning("batch %s of %s: answered statuscode %s naming no object; its "
                        "%d objects are unconfirmed and will be sent again",
                        batch.batchid, st.day, answer.statuscode,
                        batch.chunk.object_count())
        st.answers.add(batch.batchid, state_, result.http_status,
                       answer.statuscode, result.attempts, body, None)
        st.summary.batches[state_.value] += 1
        _count_all(st, batch, outcome_)
        return
    errors: dict[tuple[str, int], str] = {}
    whole_batch: list[str] = []
    for e in answer.errors:
        if e.objectname in _VALUES:
            key = (e.objectname, e.objectindex)
            errors[key] = f"{errors[key]}; {e.message}" if key in errors else e.message
        else:
            whole_batch.append(e.message)
    responses = {(r.objectname, r.objectindex): r for r in answer.responses}
    results = ledger.ObjectResults([], [], [], [], [], [])
    rejected = accepted = unconfirmed = 0
    for value, keys in zip(_VALUES, batch.keys(), strict=True):
        for index, k in enumerate(keys):
            lookup = (value, index)
            message = errors.get(lookup)
            if message is None and whole_batch:
                message = "; ".join(whole_batch)
            response = responses.get(lookup)
            status = response.status_statuscode if response is not None else None
            if message is not None:
                outcome, state = ObjectOutcome.REJECTED, "rejected"
                rejected += 1
            elif response is not None or all_taken:
                outcome = ObjectOutcome.ACCEPTED
                state = "duplicates" if status == "DUPLICATE" else "accepted"
                accepted += 1
            else:
                outcome, state = ObjectOutcome.UNCONFIRMED, "unconfirmed"
                unconfirmed += 1
            results.objectnames.append(value)
            results.objectindexes.append(index)
            results.outcomes.append(outcome.value)
            results.statuses.append(status)
            results.ledgerrefs.append(response.ledgerref if response is not None else None)
            results.messages.append(message)
            if value == _VALUES[0]:
                _creditor_outcome(st, k.source_id, state)
            elif state != "accepted":  # (the accepted are the rest, _settle_accepted)
                st.amounts.add(state, _VALUES.index(value), k.currency, k.amount)
    if unconfirmed:
        state_ = BatchState.UNCONFIRMED
        log.warning("batch %s of %s: the answer (statuscode %s) does not account for %d "
                    "of its objects; they are unconfirmed and will be sent again",
                    batch.batchid, st.day, answer.statuscode, unconfirmed)
    elif not rejected:
        state_ = BatchState.ACCEPTED
    elif not accepted:
        state_ = BatchState.REJECTED
    else:
        state_ = BatchState.PARTIALLY_REJECTED
    st.answers.add(batch.batchid, state_, result.http_status, answer.statuscode,
                   result.attempts, body, results)
    st.summary.batches[state_.value] += 1


def _record_not_sent(st: DayState) -> None:
    """The batches prepared but never posted, once posting stopped: ``not_sent``."""
    refused = st.summary.refused
    reason = (f"not sent: Amili refused the token (HTTP {refused.status_code}) before "
              f"this batch was posted" if refused is not None
              else "not sent: posting stopped before this batch was posted")
    ledger.record_not_sent(st.con, list(st.unposted), reason)
    for batch in st.unposted.values():
        st.summary.not_sent.append(batch.batchid)
        st.summary.batches[BatchState.NOT_SENT.value] += 1
        _count_all(st, batch, "not_sent")
    st.unposted.clear()


def _flush_answers(st: DayState) -> None:
    """Write the buffered answers to the ledger in one statement and start a new buffer."""
    ledger.record_answers(st.con, st.day, st.answers)
    st.answers = ledger.AnswerBuffer()


def _count_all(st: DayState, batch: _Batch, state: str) -> None:
    """Every object of the batch had the same fate (``accepted`` is counted for the other
    objects when the day is settled, see :func:`_settle_accepted`)."""
    keys = batch.keys()
    for key in keys[0]:
        _creditor_outcome(st, key.source_id, state)
    if state != "accepted":
        _count_objects(st, keys, state)


def _creditor_outcome(st: DayState, source_id: str, state: str) -> None:
    """Note one outcome of a creditor row (it heads many bodies; :func:`_settle_creditors`
    picks the one that counts)."""
    fate = st.creditors.setdefault(source_id, _CreditorFate())
    fate.included = True
    fate.outcomes.add("accepted" if state == "duplicates" else state)


def _count_sent(st: DayState, batch: _Batch) -> None:
    """Mark the batch's creditors as sent; a re-posted batch's other objects are counted
    here too (the day's new rows are counted one by one as they stream by)."""
    keys = batch.keys()
    for key in keys[0]:
        st.creditors.setdefault(key.source_id, _CreditorFate()).included = True
    if batch.reposted:
        _count_objects(st, keys, "sent")


def _count_objects(st: DayState, keys: tuple[tuple[_Key, ...], ...], state: str) -> None:
    """Count every invoice, payment and action among ``keys`` in ``state``."""
    for kind in range(1, len(_NAMES)):
        for key in keys[kind]:
            st.amounts.add(state, kind, key.currency, key.amount)


def _settle_day(st: DayState) -> None:
    """Close the day's accounting once nothing more is sent: creditors counted once, the
    running sums folded into the tallies, the accepted and the seen as the rest."""
    _settle_creditors(st)
    st.amounts.add_to(st.tally_list)
    if not st.summary.dry_run and st.summary.refused is None:
        _settle_accepted(st)
    _settle_seen(st)


def _settle_creditors(st: DayState) -> None:
    """Count each creditor row once, whatever number of bodies it went in."""
    tally = st.tallies[ObjectName.CREDITOR.value]
    for fate in st.creditors.values():
        if not fate.included:
            tally.add("skipped_unchanged")
            continue
        tally.add("sent")
        if st.summary.dry_run:
            continue
        for state in ("failed", "not_sent", "rejected", "unconfirmed", "accepted"):
            if state in fate.outcomes:
                tally.add(state)
                break


def _settle_accepted(st: DayState) -> None:
    """Invoices, payments and actions: every sent row was answered (or its batch failed,
    or was never posted), so those accepted are the rest once the other outcomes are
    counted (the common answer, "all taken", then costs nothing per row)."""
    for tally in st.tally_list[1:]:
        tally.accepted = tally.sent - sum(getattr(tally, state) for state in _NOT_ACCEPTED)
        for currency, sent in tally.amounts.get("sent", {}).items():
            accepted = sent - sum(tally.amount(state, currency) for state in _NOT_ACCEPTED)
            if accepted:
                tally.amounts.setdefault("accepted", {})[currency] = accepted


def _settle_seen(st: DayState) -> None:
    """Invoices, payments and actions: every row seen is in exactly one bucket, so
    ``seen`` is their sum (counted once here instead of once per row)."""
    for value in _VALUES[1:]:
        tally = st.tallies[value]
        tally.seen = (tally.quarantined + tally.held + tally.skipped_unchanged
                      + tally.changed_after_handover + tally.sent)
        seen: dict[str, Decimal] = {}
        for state in ("quarantined", "held", "skipped_unchanged", "changed_after_handover",
                      "sent"):
            for currency, amount in tally.amounts.get(state, {}).items():
                seen[currency] = seen.get(currency, Decimal(0)) + amount
        if seen:
            tally.amounts["seen"] = seen
