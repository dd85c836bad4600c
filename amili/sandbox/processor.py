"""The sandbox's behaviour, without HTTP: process a posted batch, answer a query.

Kept apart from :mod:`amili.sandbox.app` so the rules (replay, duplicates, references between
objects, status codes) read top to bottom in one place and run the same whatever serves them.
Every choice where Amili's documentation is silent comes from
:class:`~amili.contract.ApiContract`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from amili import jsonio
from amili.contract import ApiContract
from amili.models import (
    Action,
    BatchQueryResponse,
    Case,
    CaseDebtor,
    CaseInvoice,
    Creditor,
    CreditorInfo,
    CurrentCase,
    CurrentSettlement,
    Invoice,
    ObjectName,
    Payment,
    PaymentDetails,
    Settlement,
    format_utc_millis,
)
from amili.sandbox.faults import REJECT_MESSAGE, FaultRule, fault_key, fault_rejects
from amili.sandbox.lifecycle import (
    SUBSTATUS_CREDITED,
    SUBSTATUS_PAID,
    SUBSTATUS_PARTIALLY_PAID,
    SUBSTATUS_WRITTEN_OFF,
    FateRule,
    LifecycleRules,
    SandboxClock,
    case_fate,
    fate_amount,
    parse_utc,
)
from amili.sandbox.store import InvoiceRow, Store
from amili.sandbox.validation import (
    ObjectCheck,
    batch_problems,
    object_arrays,
    validate_array,
)

_CENT = Decimal("0.01")


@dataclass(slots=True)
class Outcome:
    """An HTTP answer: status, exact JSON bytes, extra headers, and what happened."""

    status: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False


def now_utc() -> str:
    """The current time as the API writes date-times (milliseconds, ``Z``)."""
    return format_utc_millis(datetime.now(UTC))


def envelope(
    statuscode: int,
    errors: list[dict[str, Any]] | None = None,
    responses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The documented legacy answer object, keys in the documented order."""
    return {"statuscode": statuscode, "errors": errors or [], "responses": responses or []}


def batch_error(assumptions: ApiContract, status: int, *messages: str) -> Outcome:
    """A refusal of the whole batch, in the legacy envelope (objectname "batch", index 0)."""
    errors = [
        {"objectname": assumptions.batch_objectname, "objectindex": 0, "message": m}
        for m in messages
    ]
    body = envelope(assumptions.statuscode_failed, errors)
    return Outcome(status, jsonio.dumps(body))


def body_fingerprint(body: Any) -> str:
    """SHA-256 of the body's JSON content, independent of key order and whitespace."""
    canonical = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT)


def _debtor_name(invoice: Invoice) -> tuple[str | None, str | None]:
    """(name, customerNumber) of the invoice's first debtor, as a case shows them."""
    debtor = invoice.debtors[0]
    name = debtor.name
    if not name and (debtor.firstname or debtor.lastname):
        name = " ".join(p for p in (debtor.firstname, debtor.lastname) if p)
    return name, debtor.customerNumber


def _newest_case(case: Case, row: InvoiceRow, number: int) -> CurrentCase:
    """The same case in the newest documented revision (S5): camelCase, ``invoices[]``,
    ``currency`` an object; ids derived from the invoice's, so they are stable."""
    extra = case.model_extra or {}
    case_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"amili-sandbox-case:{row.ledgerref}"))
    return CurrentCase(
        caseId=case_id, caseNumber=number, creditorNumber=row.creditor_id,
        status=case.status_statuscode, subStatus=extra.get("substatus"),
        type=row.invoice_type, registeredAt=case.regdate, closedAt=case.closuredate,
        invoices=[CaseInvoice(
            invoiceId=row.ledgerref, invoiceNumber=row.invoice_number, caseId=case_id,
            invoiceDate=case.billdate, dueDate=case.duedate, registeredAt=case.regdate,
            originalAmount=case.originalsum, remainingAmount=case.remainingsum,
            remainingPrincipal=case.remainingsum,
            uniqueSourceInvoiceId=row.unique_source_invoice_id, paidAmount=case.paidsum,
            creditedAmount=extra.get("creditedsum"), currency={"code": row.currency},
        )],
        debtors=[CaseDebtor(type="PRIVATE", customerNumber=row.customer_number,
                            fullName=row.debtor_name)],
    )


class BatchProcessor:
    """Processes batches into a :class:`Store` and answers queries from it."""

    def __init__(
        self,
        store: Store,
        assumptions: ApiContract,
        clock: SandboxClock | None = None,
        lifecycle: LifecycleRules | None = None,
        case_revision: str = "older",
    ) -> None:
        self.store = store
        self.a = assumptions
        self.clock = clock or SandboxClock()
        self.lifecycle = lifecycle or LifecycleRules()
        self.case_revision = case_revision

    # ---- POST ------------------------------------------------------------------------------

    def process(
        self,
        senderid: str,
        raw: bytes,
        reject_share: FaultRule | None = None,
        still_current: Callable[[], bool] | None = None,
    ) -> Outcome:
        """Answer one ``POST /webapi/api/Batch`` body for ``senderid``.

        ``still_current`` is asked inside the storing transaction; when it says no (the
        sandbox was reset while this request waited, e.g. under a ``slow`` fault), nothing is
        stored, so a request from before a reset cannot leak into the next test.
        """
        a = self.a
        try:
            body = jsonio.loads(raw)
        except (ValueError, RecursionError) as exc:
            return batch_error(a, 400, f"the body is not valid JSON: {exc}")
        problems = batch_problems(body, a)
        if problems:
            return batch_error(a, 400, *problems)
        arrays = object_arrays(body)
        count = sum(len(items) for items in arrays.values())
        if count > a.max_batch_objects:
            return batch_error(
                a, 413, f"the batch holds {count} objects; at most {a.max_batch_objects} are "
                "accepted per batch",
            )
        batchid: str = body["batchid"]
        fingerprint = body_fingerprint(body)

        early = self._replay(senderid, batchid, fingerprint)
        if early is not None:
            return early

        checks = {name: validate_array(name, items, a) for name, items in arrays.items()}
        if reject_share is not None and reject_share.share is not None:
            self._inject_rejections(checks, reject_share)

        with self.store.transaction():
            if still_current is not None and not still_current():
                return batch_error(
                    a, 503, "the sandbox was reset while this request was in flight"
                )
            again = self._replay(senderid, batchid, fingerprint)
            if again is not None:
                return again
            return self._store_batch(senderid, batchid, fingerprint, count, arrays, checks)

    def _replay(self, senderid: str, batchid: str, fingerprint: str) -> Outcome | None:
        """The stored answer for a batch seen before, a 409 if its body changed, else None."""
        if not self.a.batch_replay:
            return None
        stored = self.store.get_batch(senderid, batchid)
        if stored is None:
            return None
        if stored.body_sha256 != fingerprint:
            self.store.bump("conflicts")
            return batch_error(
                self.a, 409, f"batchid {batchid!r} was already received from senderid "
                f"{senderid!r} with a different body; use a new batchid for new content",
            )
        self.store.bump("replays")
        return Outcome(200, stored.response_json, replayed=True)

    def _inject_rejections(
        self, checks: dict[ObjectName, list[ObjectCheck]], rule: FaultRule
    ) -> None:
        share = rule.share or 0.0
        for name, items in checks.items():
            for check in items:
                if check.ok and fault_rejects(
                    rule.seed, name.value, fault_key(name.value, check.objectindex, check.raw),
                    share,
                ):
                    check.reject(
                        f"{name.value}[{check.objectindex}]: {REJECT_MESSAGE} (share={share})"
                    )
                    self.store.bump("injected_rejections")

    def _store_batch(
        self,
        senderid: str,
        batchid: str,
        fingerprint: str,
        count: int,
        arrays: dict[ObjectName, list[Any]],
        checks: dict[ObjectName, list[ObjectCheck]],
    ) -> Outcome:
        """Create what the batch creates and build its answer; runs inside a transaction."""
        a, store = self.a, self.store
        received = self.clock.now_text()
        batch_id = store.add_batch(senderid, batchid, fingerprint, received, count)
        responses: list[dict[str, Any]] = []
        duplicates = 0

        def respond(check: ObjectCheck, ledgerref: str, status: str) -> None:
            responses.append({
                "objectname": check.objectname.value,
                "objectindex": check.objectindex,
                "ledgerref": ledgerref,
                "status_statuscode": status,
            })

        # Creditors: ledgerref is the idnumber; a known one is updated.
        seen_creditors: set[str] = set()
        for check in checks[ObjectName.CREDITOR]:
            if not check.ok:
                continue
            creditor = check.model
            assert isinstance(creditor, Creditor)
            known = creditor.idnumber in seen_creditors or store.creditor_exists(
                senderid, creditor.idnumber
            )
            store.upsert_creditor(
                senderid, creditor.idnumber, creditor.fullname,
                jsonio.dumps(check.raw).decode(), received, batch_id,
            )
            seen_creditors.add(creditor.idnumber)
            respond(check, creditor.idnumber, a.status_updated if known else a.status_created)

        # Invoices belong to the batch's only creditor, else to the sender.
        creditor_items = arrays[ObjectName.CREDITOR]
        owner = senderid
        if len(creditor_items) == 1 and isinstance(creditor_items[0], dict):
            idnumber = creditor_items[0].get("idnumber")
            if isinstance(idnumber, str) and idnumber:
                owner = idnumber

        new_invoices: dict[str, str] = {}
        invoice_rows: list[dict[str, Any]] = []
        for check in checks[ObjectName.INVOICE]:
            if not check.ok:
                continue
            invoice = check.model
            assert isinstance(invoice, Invoice)
            source_id = invoice.uniqueSourceInvoiceId
            if a.deduplicate_objects:
                original = new_invoices.get(source_id) or store.invoice_by_source_id(
                    senderid, source_id
                )
                if original is not None:
                    duplicates += 1
                    respond(check, original, a.status_duplicate)
                    continue
            ledgerref = str(uuid.uuid4())
            new_invoices[source_id] = ledgerref
            name, customer_number = _debtor_name(invoice)
            invoice_rows.append({
                "ledgerref": ledgerref,
                "senderid": senderid,
                "creditor_id": owner,
                "unique_source_invoice_id": source_id,
                "invoice_number": invoice.invoiceNumber,
                "invoice_type": invoice.type.value,
                "original_amount": format(invoice.originalInvoiceAmount, "f"),
                "claims_amount": format(
                    sum((c.remainingAmount for c in invoice.claims), Decimal(0)), "f"
                ),
                "currency": invoice.currency,
                "invoice_date": format_utc_millis(invoice.invoiceDate),
                "due_date": format_utc_millis(invoice.dueDate),
                "debtor_name": name,
                "customer_number": customer_number,
                "kid": invoice.ocrReferenceNumber,
                "received_at": received,
                "batch_id": batch_id,
                "raw_json": jsonio.dumps(check.raw).decode(),
            })
            respond(check, ledgerref, a.status_created)
        store.add_invoices(invoice_rows)

        # Payments point at an invoice ledgerref this sender got from us.
        new_payments: dict[str, str] = {}
        for check in checks[ObjectName.PAYMENT]:
            if not check.ok:
                continue
            payment = check.model
            assert isinstance(payment, Payment)
            head = f"payment[{check.objectindex}]"
            source_id = payment.uniqueSourcePaymentId
            if a.deduplicate_objects:
                original = new_payments.get(source_id) or store.payment_by_source_id(
                    senderid, source_id
                )
                if original is not None:
                    duplicates += 1
                    respond(check, original, a.status_duplicate)
                    continue
            invoice_row = store.invoice(senderid, payment.invoiceId)
            if invoice_row is None and a.payment_needs_known_invoice:
                check.reject(
                    f"{head}.invoiceId: unknown invoice {payment.invoiceId!r}: it must be the "
                    f"ledgerref of an invoice accepted earlier for senderid {senderid!r}"
                )
                continue
            if invoice_row is not None and a.reject_overpayment:
                still_open = (invoice_row.claims_amount - store.paid_amount(invoice_row.ledgerref)
                              - store.fate_amount(invoice_row.ledgerref))
                if payment.amount > still_open:
                    check.reject(
                        f"{head}.amount: {payment.amount} exceeds the open amount "
                        f"{_money(still_open)} of invoice {payment.invoiceId!r}"
                    )
                    continue
            ledgerref = str(uuid.uuid4())
            new_payments[source_id] = ledgerref
            store.add_payment({
                "ledgerref": ledgerref,
                "senderid": senderid,
                "invoice_ledgerref": payment.invoiceId,
                "unique_source_payment_id": source_id,
                "amount": format(payment.amount, "f"),
                "currency": payment.currency,
                "payment_date": format_utc_millis(payment.date),
                "received_at": received,
                "batch_id": batch_id,
                "raw_json": jsonio.dumps(check.raw).decode(),
            })
            respond(check, ledgerref, a.status_created)

        # Actions act on a case (invoice) this sender got from us.
        for check in checks[ObjectName.ACTION]:
            if not check.ok:
                continue
            action = check.model
            assert isinstance(action, Action)
            if a.action_needs_known_invoice and store.invoice(senderid, action.ledgerref) is None:
                check.reject(
                    f"action[{check.objectindex}].ledgerref: unknown invoice "
                    f"{action.ledgerref!r}: it must be the ledgerref of an invoice accepted "
                    f"earlier for senderid {senderid!r}"
                )
                continue
            ledgerref = str(uuid.uuid4())
            store.add_action({
                "ledgerref": ledgerref,
                "senderid": senderid,
                "creditorid": action.creditorid,
                "invoice_ledgerref": action.ledgerref,
                "actiontype": action.actiontype,
                "duedate": format_utc_millis(action.duedate) if action.duedate else None,
                "subject": action.subject,
                "message": action.message,
                "received_at": received,
                "batch_id": batch_id,
                "raw_json": jsonio.dumps(check.raw).decode(),
            })
            respond(check, ledgerref, a.status_created)

        errors = [
            {
                "objectname": check.objectname.value,
                "objectindex": check.objectindex,
                "message": check.message(a.error_message_separator),
            }
            for name in ObjectName
            for check in checks[name]
            if not check.ok
        ]
        if not errors:
            statuscode = a.statuscode_ok
        elif not responses:
            statuscode = a.statuscode_failed
        else:
            statuscode = a.statuscode_partial
        content = jsonio.dumps(envelope(statuscode, errors, responses))
        store.set_batch_answer(batch_id, statuscode, content)
        store.bump("duplicates", duplicates)
        store.bump("objects_rejected", len(errors))
        store.bump("objects_accepted", len(responses) - duplicates)
        return Outcome(200, content)

    # ---- case lifecycle --------------------------------------------------------------------

    def realize(self) -> int:
        """Store the fates that are due by the clock's now (see :mod:`.lifecycle`).

        Runs inside the store's transaction; a now already realized costs one lookup. Fates
        are stored in the order they happen (their time, then the case's registration), so
        settlement ids increase with remittance time. Returns how many were stored.
        """
        now = self.clock.now()
        store = self.store
        with store.transaction():
            done = store.meta("realized_until")
            if done is not None and parse_utc(done) >= now:
                return 0
            due: list[tuple[datetime, int, InvoiceRow, FateRule]] = []
            for row in store.invoices_without_fate():
                rule = case_fate(self.lifecycle, row.unique_source_invoice_id)
                if rule is None:
                    continue
                at = parse_utc(row.received_at) + timedelta(days=rule.after_days)
                if at <= now:
                    due.append((at, row.id, row, rule))
            paid = store.direct_paid() if due else {}
            due.sort(key=lambda item: (item[0], item[1]))
            for at, _, row, rule in due:
                still_open = row.claims_amount - paid.get(row.ledgerref, Decimal(0))
                if still_open <= 0:
                    continue  # paid directly before the fate: nothing left to happen
                amount = fate_amount(rule, still_open)
                when = format_utc_millis(at)
                event_id = store.add_case_event(row.ledgerref, rule.fate, amount, when)
                if rule.fate == "collected" and amount > 0:
                    store.add_settlement({
                        "senderid": row.senderid, "creditor_id": row.creditor_id,
                        "invoice_ledgerref": row.ledgerref, "event_id": event_id,
                        "amount": format(amount, "f"), "currency": row.currency,
                        "remittancedate": at.date().isoformat(),
                    })
            store.set_meta("realized_until", format_utc_millis(now))
            return len(due)

    # ---- GET -------------------------------------------------------------------------------

    def query(
        self,
        senderid: str | None,
        creditorid: str | None = None,
        customerref: str | None = None,
        ledgerref: str | None = None,
        includeclosed: bool = False,
        lastsettlementid: int = 0,
        remittancedate: date | None = None,
    ) -> bytes:
        """The ``GET /webapi/api/Batch`` answer: creditors, cases and settlements, as JSON.

        Fates due by the clock are stored first. A case is one stored invoice: direct
        payments and a collected fate are its ``paidsum``, a credited fate its ``creditedsum``
        (a sandbox extra), and it is CLOSED when nothing is left, or by a ``closed`` fate.
        Settlements come from collected fates only, at most ``settlement_page_size`` per
        answer, lowest ids first.
        """
        self.realize()
        store = self.store
        with store.transaction():  # one consistent snapshot
            invoices = store.invoices(senderid, creditorid, customerref, ledgerref)
            paid = store.paid_by_invoice(senderid)
            events = store.case_events(senderid)
            creditors = store.creditors(senderid, creditorid)
            narrowed = customerref is not None or ledgerref is not None
            settlement_rows = store.settlement_rows(
                senderid, creditorid, lastsettlementid,
                remittancedate.isoformat() if remittancedate else None,
                {row.ledgerref for row in invoices} if narrowed else None,
                self.lifecycle.settlement_page_size,
            )
            last_by_creditor = store.last_settlement_ids(senderid)

        by_ledgerref: dict[str, InvoiceRow] = {row.ledgerref: row for row in invoices}
        cases: list[Case | CurrentCase] = []
        for row in invoices:
            paid_sum, last_paid_at = paid.get(row.ledgerref, (Decimal(0), ""))
            credited = Decimal(0)
            fate = events.get(row.ledgerref)
            closed_at: str | None = None
            substatus: str | None = None
            if fate is not None:
                kind, amount, happened_at = fate
                if kind == "collected":
                    paid_sum += amount
                    last_paid_at = max(last_paid_at, happened_at)
                elif kind == "credited":
                    credited = amount
                    closed_at, substatus = happened_at, SUBSTATUS_CREDITED
                else:
                    closed_at, substatus = happened_at, SUBSTATUS_WRITTEN_OFF
            remaining = row.claims_amount - paid_sum - credited
            if closed_at is None and remaining <= 0:
                closed_at, substatus = last_paid_at, SUBSTATUS_PAID
            elif closed_at is None and paid_sum > 0:
                substatus = SUBSTATUS_PARTIALLY_PAID
            closed = closed_at is not None
            if closed and not includeclosed:
                continue
            case = Case(
                ledgerref=row.ledgerref,
                customerref=row.customer_number,
                customername=row.debtor_name,
                referencenumber=row.invoice_number,
                casenumber=str(self.a.casenumber_start + row.id),
                currencycode=row.currency,
                regdate=row.received_at,  # type: ignore[arg-type]
                closuredate=closed_at,  # type: ignore[arg-type]
                billdate=row.invoice_date,  # type: ignore[arg-type]
                duedate=row.due_date,  # type: ignore[arg-type]
                isdebtcollection=False,
                originalsum=_money(row.original_amount),
                paidsum=_money(paid_sum),
                remainingsum=_money(max(remaining, Decimal(0))),
                service_description=row.invoice_type,
                status_statuscode="CLOSED" if closed else "OPEN",
                paymentDetails=PaymentDetails(
                    paymentValue=_money(max(remaining, Decimal(0))) if not closed else
                    Decimal("0.00"),
                    currency=row.currency,
                    kid=row.kid,
                    dueDate=row.due_date,  # type: ignore[arg-type]
                ),
            )
            # Not in the documented older revision; sent as extra fields (the client keeps
            # unknown fields): credited amount, sub-status, our id and the creditor.
            extra = case.__pydantic_extra__
            assert extra is not None
            extra.update(creditedsum=_money(credited), substatus=substatus,
                         uniqueSourceInvoiceId=row.unique_source_invoice_id,
                         creditorid=row.creditor_id)
            cases.append(case if self.case_revision == "older" else _newest_case(
                case, row, self.a.casenumber_start + row.id))

        settlements: list[Settlement | CurrentSettlement] = []
        for srow in settlement_rows:
            invoice = by_ledgerref.get(srow["invoice_ledgerref"]) or store.invoice(
                senderid, srow["invoice_ledgerref"])
            if invoice is None:
                continue
            if self.case_revision == "newest":
                settlements.append(CurrentSettlement(
                    settlementId=srow["settlementid"],
                    settlementDate=date.fromisoformat(srow["remittancedate"]),
                    caseNumber=self.a.casenumber_start + invoice.id,
                    collectionType="REMINDER", currency=srow["currency"],
                    customerReference=invoice.customer_number, invoiceId=invoice.ledgerref,
                    invoiceNumber=invoice.invoice_number, creditorId=srow["creditor_id"],
                    amount=_money(Decimal(srow["amount"])),
                ))
                continue
            settlements.append(Settlement(
                settlementid=srow["settlementid"],
                creditorid=srow["creditor_id"],
                customerref=invoice.customer_number,
                ledgerref=invoice.ledgerref,
                referencenumber=invoice.invoice_number,
                casenumber=str(self.a.casenumber_start + invoice.id),
                amount=_money(Decimal(srow["amount"])),
                currency=srow["currency"],
                remittancedate=date.fromisoformat(srow["remittancedate"]),
            ))

        info_fields = set(CreditorInfo.model_fields) - {"lastsettlementid", "casehandler"}
        creditor_infos = []
        for creditor in creditors:
            raw = jsonio.loads(creditor["raw_json"])
            known = {k: v for k, v in raw.items() if k in info_fields}
            known["idnumber"] = creditor["idnumber"]
            creditor_infos.append(CreditorInfo(
                **known, lastsettlementid=last_by_creditor.get(creditor["idnumber"], 0)
            ))

        answer = BatchQueryResponse(
            batchid=None, offline=False, creditor=creditor_infos, case=cases,
            settlement=settlements,
        )
        data = jsonio.to_jsonable(answer)
        return jsonio.dumps({"batchid": None, "offline": False, **data})
