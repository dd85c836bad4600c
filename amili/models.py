"""Typed request and response bodies of Amili's legacy AutoCollect Batch API.

The shapes follow the documented example of ``POST /webapi/api/Batch`` (see
``../shared/seed-amili-legacy-batch-post.txt``). JSON field names are exactly the API's, which
mixes lower case (``batchid``, ``idnumber``, ``firstname``) and camelCase (``invoiceNumber``,
``uniqueSourceInvoiceId``): the Python attribute names are the same strings, so a reader can
match them with the documentation one to one.

Which fields are *required* is not documented. The choices here are assumptions (listed in
:mod:`amili.contract`), and the sandbox validates against these same models, so the
client and the sandbox can never disagree about them.

Money is ``Decimal`` from end to end and is written to JSON as an exact number
(see :func:`amili.jsonio.dumps`), never through ``float``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
)

# --------------------------------------------------------------------------------------------
# Scalar types
# --------------------------------------------------------------------------------------------


def _coerce_datetime(value: Any) -> Any:
    """Accept a plain date (``2024-01-31``) where the API documents a date-time.

    The newer Amili API examples mix both forms, so a date becomes midnight UTC.
    """
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(0, 0), tzinfo=UTC)
    if isinstance(value, str) and len(value) == 10:
        return datetime.combine(date.fromisoformat(value), time(0, 0), tzinfo=UTC)
    return value


def _to_utc(value: datetime) -> datetime:
    """Naive date-times are taken as UTC (the documented examples all end in ``Z``)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_utc_millis(value: datetime) -> str:
    """``2019-08-24T14:15:22.123Z``: ISO-8601, UTC, milliseconds, like the documented example."""
    value = _to_utc(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


UtcDateTime = Annotated[
    datetime,
    BeforeValidator(_coerce_datetime),
    AfterValidator(_to_utc),
    PlainSerializer(format_utc_millis, return_type=str, when_used="json"),
]
"""A date-time that is always UTC and serializes as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""

IsoDate = Annotated[
    date,
    PlainSerializer(lambda d: d.isoformat(), return_type=str, when_used="json"),
]
"""A calendar date, serialized ``YYYY-MM-DD``."""


def _reject_float(value: Any) -> Any:
    """Floats cannot hold øre exactly; turn them into Decimal through their shortest repr."""
    if isinstance(value, bool):
        raise ValueError("an amount must be a number, not a boolean")
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("amount must not be negative")
    return value


Amount = Annotated[
    Decimal,
    # The constraints come first so pydantic-core checks them natively on the decimal; after
    # a BeforeValidator they would run as pydantic's Python validators, several times slower.
    Field(max_digits=18, decimal_places=2, allow_inf_nan=False),
    BeforeValidator(_reject_float),
    AfterValidator(_non_negative),
]
"""A non-negative amount with at most two decimals (øre) and 18 digits, like DECIMAL(18,2)."""


# --------------------------------------------------------------------------------------------
# Enumerations. Only the values seen in Amili's documentation are certain; values marked
# "assumed" are our guesses (amili-api-reference.md §3.9). Add a member here to extend a set.
# --------------------------------------------------------------------------------------------


class InvoiceType(StrEnum):
    PAYMENT_REMINDER = "PAYMENT_REMINDER"  # documented (legacy POST example)
    NOTICE = "NOTICE"  # documented (new API examples)
    COLLECTION_NOTICE = "COLLECTION_NOTICE"  # documented (webhook examples)


class DebtorType(StrEnum):
    PRIVATE = "PRIVATE"  # documented
    COMPANY = "COMPANY"  # assumed: a company debtor surely exists, its name is not documented


class ClaimType(StrEnum):
    PRINCIPAL = "PRINCIPAL"  # documented
    FEE = "FEE"  # assumed: legacy cases carry fee sums
    INTEREST = "INTEREST"  # assumed: legacy cases carry interest sums


class PaymentType(StrEnum):
    DIRECT_PAYMENT = "DIRECT_PAYMENT"  # documented; the only value seen


class ObjectName(StrEnum):
    """The ``objectname`` of an answer: the name of the body's array (a sandbox assumption)."""

    CREDITOR = "creditor"
    INVOICE = "invoice"
    PAYMENT = "payment"
    ACTION = "action"


# --------------------------------------------------------------------------------------------
# Request body
# --------------------------------------------------------------------------------------------


class ApiModel(BaseModel):
    """Base: unknown fields are kept (the API may have more than is documented)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, use_enum_values=False)


class Contact(ApiModel):
    fullname: str | None = None
    workphone: str | None = None
    email: str | None = None
    isinvoicequery: bool | None = None
    isremittancereport: bool | None = None
    isorderconfirmation: bool | None = None
    iscollectionlist: bool | None = None
    isweb: bool | None = None


class Creditor(ApiModel):
    idnumber: str = Field(min_length=1, description="Creditor's organisation number (assumed)")
    parentidnumber: str | None = None
    onlydebtcollection: bool | None = None
    vattype: int | None = None
    fullname: str = Field(min_length=1)
    street: str | None = None
    city: str | None = None
    zipcode: str | None = None
    countrycode: str | None = Field(default=None, min_length=2, max_length=2)
    emailinvoice: str | None = None
    bankaccountno: str | None = None
    swift: str | None = None
    iban: str | None = None
    message: str | None = None
    contact: Contact | None = None
    contact2: Contact | None = None
    password: str | None = Field(default=None, repr=False)
    erpsettingid: str | None = None
    sourceid: int | None = None
    erpclientid: str | None = None
    vismanetcompanyid: str | None = None
    reminderflow: int | None = None
    debtcollectiontransfer: int | None = None
    invoicearchive: int | None = None
    hasforeigndebtors: bool | None = None
    hasforeigncurrency: bool | None = None
    disabled: bool | None = None


class Email(ApiModel):
    value: str = Field(min_length=3)


class PhoneNumber(ApiModel):
    countryCode: str | None = None
    originalValue: str | None = None
    value: str | None = None


class Address(ApiModel):
    street: str | None = None
    city: str | None = None
    zipCode: str | None = None
    countryCode: str | None = None


class Debtor(ApiModel):
    type: DebtorType
    firstname: str | None = None
    lastname: str | None = None
    name: str | None = None
    customerNumber: str | None = None
    identificationNumber: str | None = Field(default=None, repr=False)
    organizationNumber: str | None = None
    dateOfBirth: IsoDate | None = None
    emails: list[Email] = Field(default_factory=list)
    phoneNumbers: list[PhoneNumber] = Field(default_factory=list)
    addresses: list[Address] = Field(default_factory=list)


class Claim(ApiModel):
    type: ClaimType
    remainingAmount: Amount
    description: str | None = None


class Invoice(ApiModel):
    type: InvoiceType
    invoiceNumber: str = Field(min_length=1)
    vat: bool | None = None
    fees: bool | None = None
    originalInvoiceAmount: Amount
    currency: str = Field(min_length=1, description="ISO 4217 code; the sandbox checks it")
    invoiceDate: UtcDateTime
    dueDate: UtcDateTime
    collectionNoticeDate: UtcDateTime | None = None
    ocrReferenceNumber: str | None = None
    uniqueSourceInvoiceId: str = Field(min_length=1)
    description: str | None = None
    debtors: list[Debtor] = Field(min_length=1)
    claims: list[Claim] = Field(min_length=1)


class Payment(ApiModel):
    invoiceId: str = Field(min_length=1, description="Amili's id of the invoice (a UUID)")
    type: PaymentType
    amount: Amount
    currency: str = Field(min_length=1, description="ISO 4217 code; the sandbox checks it")
    date: UtcDateTime
    description: str | None = None
    uniqueSourcePaymentId: str = Field(min_length=1)


class Action(ApiModel):
    creditorid: str = Field(min_length=1)
    ledgerref: str = Field(min_length=1)
    actiontype: int
    duedate: UtcDateTime | None = None
    subject: str | None = None
    conversationid: str | None = None
    message: str | None = None


class BatchRequest(ApiModel):
    """The whole body of ``POST /webapi/api/Batch``: one batch of four object arrays."""

    batchid: str = Field(min_length=1, max_length=100)
    offline: bool = False
    creditor: list[Creditor] = Field(default_factory=list)
    invoice: list[Invoice] = Field(default_factory=list)
    payment: list[Payment] = Field(default_factory=list)
    action: list[Action] = Field(default_factory=list)

    def object_count(self) -> int:
        return len(self.creditor) + len(self.invoice) + len(self.payment) + len(self.action)


#: Model of each object array of a batch, by ``objectname``.
OBJECT_MODELS: dict[ObjectName, type[ApiModel]] = {
    ObjectName.CREDITOR: Creditor,
    ObjectName.INVOICE: Invoice,
    ObjectName.PAYMENT: Payment,
    ObjectName.ACTION: Action,
}

# --------------------------------------------------------------------------------------------
# Response body
# --------------------------------------------------------------------------------------------


class ObjectError(ApiModel):
    """One rejected object (or, with ``objectname`` "batch", the whole batch)."""

    objectname: str
    objectindex: int
    message: str


class ObjectResponse(ApiModel):
    """One object the receiver took; ``ledgerref`` is Amili's id for it (an assumption)."""

    objectname: str
    objectindex: int
    ledgerref: str | None = None
    status_statuscode: str | None = None


class BatchResponse(ApiModel):
    statuscode: int
    errors: list[ObjectError] = Field(default_factory=list)
    responses: list[ObjectResponse] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------
# GET /webapi/api/Batch answer (reference §2.4, §3.7, §3.8). Three documented revisions differ:
# the older "case" style (S3, S4: lower-case sums, one invoice per case), the newest (S5:
# camelCase, a case holding ``invoices[]``) and the settlement shapes (legacy lower case, and
# the new API's camelCase). Each revision is a model; a discriminator picks one per object by
# its keys, unknown fields are kept (``model_extra``), and every sum is an exact Decimal.
# --------------------------------------------------------------------------------------------


Money = Annotated[
    Decimal,
    Field(allow_inf_nan=False),
    BeforeValidator(_reject_float),
]
"""An amount Amili reports back: exact Decimal, negative allowed (a credit may be signed)."""


def _extra(model: BaseModel, *names: str) -> Any:
    """The first of ``names`` present among a model's unknown fields (else None)."""
    extra = model.model_extra or {}
    for name in names:
        if extra.get(name) is not None:
            return extra[name]
    return None


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


class CreditorInfo(ApiModel):
    idnumber: str
    parentidnumber: str | None = None
    onlydebtcollection: bool | None = None
    vattype: int | None = None
    fullname: str | None = None
    street: str | None = None
    city: str | None = None
    zipcode: str | None = None
    countrycode: str | None = None
    bankaccountno: str | None = None
    contact: Contact | None = None
    casehandler: Contact | None = None
    sourceid: int | None = None
    reminderflow: int | None = None
    debtcollectiontransfer: int | None = None
    invoicearchive: int | None = None
    hasforeigndebtors: bool | None = None
    hasforeigncurrency: bool | None = None
    disabled: bool | None = None
    lastsettlementid: int | None = None


class PaymentDetails(ApiModel):
    paymentValue: Money | None = None
    currency: str | None = None
    kid: str | None = None
    bankAccount: str | None = None
    dueDate: UtcDateTime | None = None


class CaseHistory(ApiModel):
    type: int
    loggedat: UtcDateTime
    message: str | None = None
    subject: str | None = None
    conversationid: str | None = None
    attachmentid: str | None = None


@dataclass(frozen=True, slots=True)
class CaseLine:
    """One case and one of its invoices, flat: what ``amili.cases`` stores per row.

    The same shape whichever revision Amili answered in; a field that revision lacks is None.
    """

    casenumber: str | None
    case_id: str | None
    ledgerref: str | None
    """Amili's id of the invoice (the ``ledgerref`` its POST answer gave)."""
    unique_source_invoice_id: str | None
    invoice_number: str | None
    creditor_id: str | None
    status: str | None
    sub_status: str | None
    currency: str | None
    original_amount: Decimal | None
    paid_amount: Decimal | None
    credited_amount: Decimal | None
    remaining_amount: Decimal | None
    registered_at: datetime | None
    closed_at: datetime | None


class Case(ApiModel):
    """A case in the older revision (S3, S4): one invoice per case, sums in lower case.

    Credited amounts, a sub-status, our source id and the creditor are not documented in this
    revision; when an answer carries them anyway (``creditedsum``, ``substatus``,
    ``uniqueSourceInvoiceId``, ``creditorid``, as the sandbox does) :meth:`lines` uses them.
    """

    customerref: str | None = None
    customername: str | None = None
    ledgerref: str
    referencenumber: str | None = None
    casenumber: str | None = None
    currencycode: str | None = None
    regdate: UtcDateTime | None = None
    closuredate: UtcDateTime | None = None
    billdate: UtcDateTime | None = None
    duedate: UtcDateTime | None = None
    isdebtcollection: bool | None = None
    originalsum: Money | None = None
    paidsum: Money | None = None
    remainingsum: Money | None = None
    originalprincipal: Money | None = None
    paidprincipal: Money | None = None
    remainingprincipal: Money | None = None
    originalfee: Money | None = None
    paidfee: Money | None = None
    remainingfee: Money | None = None
    originalinterest: Money | None = None
    paidinterest: Money | None = None
    remaininginterest: Money | None = None
    service_description: str | None = None
    status_statuscode: str | None = None
    reminders: int | None = None
    debtcollectionlist: int | None = None
    history: list[CaseHistory] = Field(default_factory=list)
    paymentDetails: PaymentDetails | None = None

    def lines(self) -> list[CaseLine]:
        return [CaseLine(
            casenumber=self.casenumber,
            case_id=None,
            ledgerref=self.ledgerref,
            unique_source_invoice_id=_extra(self, "uniqueSourceInvoiceId"),
            invoice_number=self.referencenumber,
            creditor_id=_extra(self, "creditorid"),
            status=self.status_statuscode,
            sub_status=_extra(self, "substatus", "subStatus"),
            currency=self.currencycode,
            original_amount=self.originalsum,
            paid_amount=self.paidsum,
            credited_amount=_decimal(_extra(self, "creditedsum")),
            remaining_amount=self.remainingsum,
            registered_at=self.regdate,
            closed_at=self.closuredate,
        )]


def _currency_code(value: Any) -> str | None:
    """The newest revision shows ``currency`` as an object: take its code, whatever it is
    called; a plain string is kept."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("code", "isoCode", "currencyCode", "name"):
            if isinstance(value.get(key), str):
                return value[key]
    return str(value)


class CaseInvoice(ApiModel):
    """An invoice of a newest-revision case (S5)."""

    invoiceId: str | None = None
    invoiceNumber: str | None = None
    caseId: str | None = None
    invoiceDate: UtcDateTime | None = None
    dueDate: UtcDateTime | None = None
    batchId: str | None = None
    registeredAt: UtcDateTime | None = None
    originalAmount: Money | None = None
    remainingAmount: Money | None = None
    remainingPrincipal: Money | None = None
    uniqueSourceInvoiceId: str | None = None
    paidAmount: Money | None = None
    creditedAmount: Money | None = None
    currency: Any = None


class CaseDebtor(ApiModel):
    debtorId: str | None = None
    type: str | None = None
    debtorNumber: str | int | None = None
    customerNumber: str | None = None
    firstName: str | None = None
    lastName: str | None = None
    fullName: str | None = None


class CurrentCase(ApiModel):
    """A case in the newest revision (S5): camelCase, one case holding several invoices."""

    caseId: str | None = None
    caseNumber: int | str | None = None
    organizationId: str | None = None
    creditorId: str | None = None
    creditorNumber: str | int | None = None
    status: str | None = None
    subStatus: str | None = None
    type: str | None = None
    description: str | None = None
    registeredAt: UtcDateTime | None = None
    closedAt: UtcDateTime | None = None
    caseToken: str | None = None
    invoices: list[CaseInvoice] = Field(default_factory=list)
    debtors: list[CaseDebtor] = Field(default_factory=list)

    def lines(self) -> list[CaseLine]:
        number = None if self.caseNumber is None else str(self.caseNumber)
        creditor = None if self.creditorNumber is None else str(self.creditorNumber)
        invoices = self.invoices or [CaseInvoice()]
        return [CaseLine(
            casenumber=number,
            case_id=self.caseId,
            ledgerref=invoice.invoiceId,
            unique_source_invoice_id=invoice.uniqueSourceInvoiceId,
            invoice_number=invoice.invoiceNumber,
            creditor_id=creditor,
            status=self.status,
            sub_status=self.subStatus,
            currency=_currency_code(invoice.currency),
            original_amount=invoice.originalAmount,
            paid_amount=invoice.paidAmount,
            credited_amount=invoice.creditedAmount,
            remaining_amount=invoice.remainingAmount,
            registered_at=invoice.registeredAt or self.registeredAt,
            closed_at=self.closedAt,
        ) for invoice in invoices]


def _case_revision(value: Any) -> str:
    if isinstance(value, CurrentCase) or (
        isinstance(value, dict) and ("caseId" in value or "invoices" in value)
    ):
        return "current"
    return "legacy"


AnyCase = Annotated[
    Annotated[Case, Tag("legacy")] | Annotated[CurrentCase, Tag("current")],
    Discriminator(_case_revision),
]
"""A case of either revision, told apart by its keys (``caseId``/``invoices``: newest)."""


@dataclass(frozen=True, slots=True)
class SettlementLine:
    """One settlement (a remittance to the creditor), flat: what ``amili.settlements`` stores."""

    settlement_id: int | None
    creditor_id: str | None
    ledgerref: str | None
    casenumber: str | None
    customerref: str | None
    referencenumber: str | None
    amount: Decimal | None
    currency: str | None
    remittance_date: date | None
    source: BaseModel | None = field(default=None, compare=False, repr=False)
    """The settlement as parsed, unknown fields included (to store it as Amili sent it)."""


def _int_id(value: Any) -> int | None:
    """A settlement id as the integer cursor ``lastsettlementid`` compares (None if not one)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


class Settlement(ApiModel):
    """A settlement in the legacy lower-case revision (S4; the id and sums are assumed)."""

    settlementid: int | None = None
    creditorid: str | None = None
    customerref: str | None = None
    ledgerref: str | None = None
    referencenumber: str | None = None
    casenumber: str | None = None
    amount: Money | None = None
    currency: str | None = None
    remittancedate: IsoDate | None = None

    def line(self) -> SettlementLine:
        return SettlementLine(
            settlement_id=self.settlementid, creditor_id=self.creditorid,
            ledgerref=self.ledgerref, casenumber=self.casenumber, customerref=self.customerref,
            referencenumber=self.referencenumber, amount=self.amount, currency=self.currency,
            remittance_date=self.remittancedate, source=self,
        )


class CurrentSettlement(ApiModel):
    """A settlement in the camelCase revision (S3 mid/newest, the new API's §3.8; the
    ``SETTLEMENT_CREATED`` webhook names ``settlementId`` and ``settlementDate``)."""

    settlementId: int | str | None = None
    settlementDate: IsoDate | None = None
    caseNumber: int | str | None = None
    collectionType: str | None = None
    currency: Any = None
    customerReference: str | None = None
    exchangeRate: Money | None = None
    invoiceId: str | None = None
    invoiceNumber: str | None = None
    creditorId: str | None = None
    amount: Money | None = None

    def line(self) -> SettlementLine:
        return SettlementLine(
            settlement_id=_int_id(self.settlementId), creditor_id=self.creditorId,
            ledgerref=self.invoiceId,
            casenumber=None if self.caseNumber is None else str(self.caseNumber),
            customerref=self.customerReference, referencenumber=self.invoiceNumber,
            amount=self.amount if self.amount is not None else _decimal(
                _extra(self, "settledAmount", "paidAmount")),
            currency=_currency_code(self.currency), remittance_date=self.settlementDate,
            source=self,
        )


def _settlement_revision(value: Any) -> str:
    if isinstance(value, CurrentSettlement) or (
        isinstance(value, dict) and ("settlementId" in value or "caseNumber" in value
                                     or "collectionType" in value)
    ):
        return "current"
    return "legacy"


AnySettlement = Annotated[
    Annotated[Settlement, Tag("legacy")] | Annotated[CurrentSettlement, Tag("current")],
    Discriminator(_settlement_revision),
]


class BatchQueryResponse(ApiModel):
    """Answer of ``GET /webapi/api/Batch``: creditors, cases and settlements."""

    batchid: str | None = None
    offline: bool | None = None
    creditor: list[CreditorInfo] = Field(default_factory=list)
    case: list[AnyCase] = Field(default_factory=list)
    settlement: list[AnySettlement] = Field(default_factory=list)

    def case_lines(self) -> list[CaseLine]:
        """Every case as one line per case and invoice, whichever revision it came in."""
        return [line for case in self.case for line in case.lines()]

    def settlement_lines(self) -> list[SettlementLine]:
        return [settlement.line() for settlement in self.settlement]

    def last_settlement_id(self, creditorid: str) -> int | None:
        """The creditor's ``lastsettlementid`` as the answer reports it (None: not given)."""
        for creditor in self.creditor:
            if creditor.idnumber == creditorid:
                return creditor.lastsettlementid
        return None
