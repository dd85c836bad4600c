"""The API contract: what Amili is assumed to accept and how it is assumed to answer.

Amili documents the *shape* of the legacy Batch API (see ``shared/amili-api-reference.md``
§2 and §9) but not what the numbers and words in an answer mean, how big a batch may be,
or what happens to a duplicate. The client, the validation, the pipeline and the sandbox
must agree on these, so each choice is a named constant below, marked ``ASSUMPTION``, and
collected in :class:`ApiContract`. The sandbox carries one as
:attr:`amili.sandbox.settings.SandboxSettings.assumptions`, so any of them can be changed for
the sandbox per test or by environment variable (e.g.
``AMILI_SANDBOX_ASSUMPTIONS__MAX_BATCH_OBJECTS=100``); the production path uses
:data:`DEFAULT_CONTRACT` unless it is handed another.

This is a core module, not part of the sandbox: the sandbox is a test double and nothing on
the production path imports it (``tests/test_import_rules.py`` holds that). The table in
``docs/sandbox-assumptions.md`` restates these for readers who are not reading code. This
module imports only pydantic, so the settings module may import it cheaply.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# --------------------------------------------------------------------------------------------
# The answer envelope
# --------------------------------------------------------------------------------------------

# ASSUMPTION: `statuscode` 0 = every object was accepted (or answered as a duplicate).
STATUSCODE_OK = 0
# ASSUMPTION: `statuscode` 1 = some objects were rejected, some accepted.
STATUSCODE_PARTIAL = 1
# ASSUMPTION: `statuscode` 2 = every object was rejected, or the batch as a whole was refused
# (malformed JSON, missing senderid, too large, conflicting batchid, injected HTTP fault).
STATUSCODE_FAILED = 2

# ASSUMPTION: `status_statuscode` of an object stored for the first time.
STATUS_CREATED = "CREATED"
# ASSUMPTION: `status_statuscode` of a creditor whose idnumber this sender had sent before
# (its stored details are replaced by the new ones).
STATUS_UPDATED = "UPDATED"
# ASSUMPTION: `status_statuscode` of an invoice/payment whose unique source id was already
# accepted for this sender; it carries the ORIGINAL ledgerref and nothing is stored twice.
STATUS_DUPLICATE = "DUPLICATE"

# ASSUMPTION: `objectname` is the name of the body's array ("creditor", "invoice", "payment",
# "action"), and `objectindex` the 0-based position in that array (see amili.models.ObjectName).
# An error about the whole batch uses this objectname with objectindex 0.
BATCH_OBJECTNAME = "batch"

# ASSUMPTION: a rejected object gets exactly ONE entry in `errors`; when it breaks several
# rules their messages are joined with this separator. So len(errors) + len(responses) equals
# the number of objects sent, which makes reconciliation simple.
ERROR_MESSAGE_SEPARATOR = "; "

# ASSUMPTION: `ledgerref` is Amili's id of the object: a fresh UUID (str(uuid4())) for
# invoices, payments and actions; for a creditor it is its idnumber (it has no other id).
LEDGERREF_KIND = "uuid4"

# ASSUMPTION: case numbers are sequential integers written as strings, starting after this
# value (the webhook example shows caseNumber "5000001").
CASENUMBER_START = 5_000_000

# --------------------------------------------------------------------------------------------
# Limits (Amili states none; reference §6)
# --------------------------------------------------------------------------------------------

# ASSUMPTION: at most this many objects (all four arrays together) per batch, else HTTP 413.
MAX_BATCH_OBJECTS = 5000
# ASSUMPTION: at most this many body bytes per POST (8 MB, decimal), else HTTP 413.
MAX_BODY_BYTES = 8_000_000
# ASSUMPTION: a batchid is 1..100 characters (models.BatchRequest says the same).
MAX_BATCHID_LENGTH = 100

# --------------------------------------------------------------------------------------------
# Idempotency
# --------------------------------------------------------------------------------------------

# ASSUMPTION: the same batchid posted again by the same senderid with the same body (same
# JSON content, key order and whitespace aside) gets the stored answer replayed verbatim and
# creates nothing; with a different body it gets HTTP 409 and a legacy envelope.
BATCH_REPLAY = True
# ASSUMPTION: invoices are deduplicated per senderid on uniqueSourceInvoiceId, payments on
# uniqueSourcePaymentId, across batches and inside one batch alike (see STATUS_DUPLICATE).
DEDUPLICATE_OBJECTS = True

# --------------------------------------------------------------------------------------------
# Ownership and cross references
# --------------------------------------------------------------------------------------------

# ASSUMPTION: an invoice belongs to the batch's creditor when the batch carries exactly one
# creditor object (accepted or not); otherwise to the creditor whose idnumber is the senderid.
INVOICE_CREDITOR_RULE = "single-batch-creditor-else-senderid"
# ASSUMPTION: a payment's invoiceId must be the ledgerref of an invoice Amili accepted
# for the same senderid (earlier, or earlier in the same batch: invoices are stored before
# payments), else the payment is rejected with "unknown invoice ...".
PAYMENT_NEEDS_KNOWN_INVOICE = True
# ASSUMPTION: a payment may not exceed what is still open on its invoice (the sum of its
# claims' remainingAmount less earlier payments); an overpayment is rejected.
REJECT_OVERPAYMENT = True
# ASSUMPTION: an action's ledgerref must be the ledgerref of an invoice Amili accepted
# for the same senderid.
ACTION_NEEDS_KNOWN_INVOICE = True

# --------------------------------------------------------------------------------------------
# Domain rules on top of the pydantic shapes of amili.models
# --------------------------------------------------------------------------------------------

# ASSUMPTION: the currencies accepted on invoices and payments: ISO 4217 codes of circulating
# currencies (no funds, metals or test codes; withdrawn codes such as HRK are refused).
ISO_4217_CURRENCIES: frozenset[str] = frozenset(
    [
        "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
        "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
        "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
        "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
        "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
        "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
        "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
        "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
        "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
        "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
        "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
        "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW",
        "ZWG",
    ]
)

# ASSUMPTION: these body fields are money and must be JSON numbers; a JSON string such as
# "12.50" is refused even though it would parse (pydantic's lax mode would accept it).
AMOUNT_FIELDS = ("originalInvoiceAmount", "claims[].remainingAmount", "payment.amount")

# ASSUMPTION: a KID (ocrReferenceNumber) is digits only, this many digits long, and ends in
# a valid MOD10 (Luhn) or MOD11 check digit (reference §7; which one is agreed per creditor
# with the bank, so either is accepted).
KID_MIN_LENGTH = 2
KID_MAX_LENGTH = 25
KidMethod = Literal["MOD10", "MOD11"]
KID_CHECK_METHODS: tuple[KidMethod, ...] = ("MOD10", "MOD11")

# ASSUMPTION: a Norwegian postcode (zipCode, when countryCode is NO or missing) is 4 digits.
NORWEGIAN_ZIPCODE_DIGITS = 4
# ASSUMPTION: an address without countryCode is Norwegian.
DEFAULT_ADDRESS_COUNTRY = "NO"

# ASSUMPTION: the other domain rules checked per object (messages name the field):
DOMAIN_RULES: tuple[str, ...] = (
    "creditor.idnumber is a valid Norwegian organisation number (stdnum.no.orgnr)",
    "creditor.bankaccountno, when present, is a valid Norwegian account (stdnum.no.kontonr)",
    "creditor.iban, when present, is a valid IBAN (stdnum.iban)",
    "creditor.swift, when present, is a valid BIC (stdnum.bic)",
    "creditor.emailinvoice and contact e-mails, when present, are valid addresses",
    "debtor.organizationNumber, when present, is a valid organisation number",
    "debtor.identificationNumber, when present, is a valid fødselsnummer or D-number",
    "a PRIVATE debtor has firstname and lastname, or name; a COMPANY debtor has name",
    "a COMPANY debtor has an organizationNumber and no identificationNumber; a PRIVATE "
    "debtor has no organizationNumber (its identificationNumber stays optional)",
    "each debtor has at least one address with street, zipCode and city",
    "debtor e-mails are valid addresses (syntax only, no DNS look-up)",
    "invoice.currency and payment.currency are in ISO_4217_CURRENCIES",
    "invoice.dueDate is not before invoice.invoiceDate",
    "the claims' remainingAmount sum is > 0; PRINCIPAL claims not above originalInvoiceAmount",
    "payment.amount is > 0",
)

# ASSUMPTION: POST Batch takes these Content-Types (the first is documented; ASP.NET takes the
# second too) and a request without Content-Type; any other type is answered HTTP 415.
ACCEPTED_CONTENT_TYPES: frozenset[str] = frozenset(
    {"application/json-patch+json", "application/json"}
)

# ASSUMPTION: only `Authorization: Bearer <JWT>` is accepted (HS256, exp/iss/aud checked; how
# Amili issues legacy tokens is undocumented); HTTP Basic, seen on an older revision of the
# page, is refused like a missing token: HTTP 401 with a `WWW-Authenticate: Bearer` header.
AUTH_SCHEME = "Bearer"

# ASSUMPTION: errors about the batch as a whole (malformed JSON, a body that is not an object,
# missing batchid or senderid, an array that is not an array) are HTTP 400 with statuscode 2;
# 409 (batchid reused), 413 (too large) and 415 (content type) use the same envelope.
BATCH_LEVEL_HTTP_STATUS = 400

# ASSUMPTION: the answer of GET /webapi/api/Ping (undocumented) is 200 with
# {"status": "ok", "time": "<UTC now, ISO-8601>", "senderid": "<as given>"}; it needs a bearer
# token and a senderid like the Batch endpoints (400 in the legacy envelope without), so a
# ping checks the whole of a client's configuration, not only that the server is up.
PING_STATUS = "ok"
PING_REQUIRES_SENDERID = True

# ASSUMPTION: GET /webapi/api/Batch needs senderid like POST does, and answers only that
# sender's data; a case is CLOSED when its remainingsum is 0 and is listed only with
# includeclosed=true; a settlement is a remittance of what Amili collected (never a direct
# payment), with its own increasing settlementid (docs/sandbox-assumptions.md).
GET_REQUIRES_SENDERID = True


class ApiContract(BaseModel):
    """The configurable subset of the assumptions above, with those constants as defaults.

    Kept as one frozen object so the client's limits, the validation (Python and SQL), the
    pipeline's reading of answers and the sandbox read the same values.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    statuscode_ok: int = STATUSCODE_OK
    statuscode_partial: int = STATUSCODE_PARTIAL
    statuscode_failed: int = STATUSCODE_FAILED
    status_created: str = STATUS_CREATED
    status_updated: str = STATUS_UPDATED
    status_duplicate: str = STATUS_DUPLICATE
    batch_objectname: str = BATCH_OBJECTNAME
    error_message_separator: str = ERROR_MESSAGE_SEPARATOR
    casenumber_start: int = Field(default=CASENUMBER_START, ge=0)

    max_batch_objects: int = Field(default=MAX_BATCH_OBJECTS, ge=1)
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, ge=1024)
    max_batchid_length: int = Field(default=MAX_BATCHID_LENGTH, ge=1)

    batch_replay: bool = BATCH_REPLAY
    deduplicate_objects: bool = DEDUPLICATE_OBJECTS
    payment_needs_known_invoice: bool = PAYMENT_NEEDS_KNOWN_INVOICE
    reject_overpayment: bool = REJECT_OVERPAYMENT
    action_needs_known_invoice: bool = ACTION_NEEDS_KNOWN_INVOICE

    currencies: frozenset[str] = ISO_4217_CURRENCIES
    kid_min_length: int = Field(default=KID_MIN_LENGTH, ge=1)
    kid_max_length: int = Field(default=KID_MAX_LENGTH, ge=1)
    kid_check_methods: tuple[KidMethod, ...] = KID_CHECK_METHODS
    norwegian_zipcode_digits: int = NORWEGIAN_ZIPCODE_DIGITS
    default_address_country: str = DEFAULT_ADDRESS_COUNTRY

    get_requires_senderid: bool = GET_REQUIRES_SENDERID
    ping_requires_senderid: bool = PING_REQUIRES_SENDERID


DEFAULT_CONTRACT = ApiContract()
"""The documented defaults, for code that is not handed another contract."""
