"""Per-object validation of Batch API objects, shared by the sandbox and the pipeline.

The sandbox uses it to answer a posted batch; the submission pipeline uses the very same
functions to quarantine a row *before* sending it, so the two can never disagree and a
quarantine reason reads exactly like the answer the sandbox (our stand-in for Amili) would give.
Nothing here imports a web framework or holds state.

Each object of the four arrays is checked on its own, so one bad invoice does not sink the
batch. The *shape* (required fields, types, enums, negative or malformed amounts) comes from
validating the object's dict with its pydantic model in :data:`amili.models.OBJECT_MODELS`, the
same models the client builds bodies with. Norwegian domain rules (organisation numbers,
national identity numbers, account numbers, KID check digits, postcodes, ...) are checked on
top with python-stdnum; the list is in :mod:`amili.contract`.

Every message starts with the object and the field, e.g.
``invoice[3].dueDate: Field required`` (or ``invoice.dueDate: ...`` for an object checked
outside a batch), so a client can map it back to a source row.
The checks here need no stored state; references to earlier objects (a payment's invoiceId,
an action's ledgerref) and duplicates are decided by :mod:`amili.sandbox.processor`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, validate_email
from pydantic import TypeAdapter, ValidationError
from stdnum import bic, iban, luhn
from stdnum.no import fodselsnummer, kontonr, orgnr

from amili import jsonio
from amili.contract import DEFAULT_CONTRACT, ApiContract
from amili.models import OBJECT_MODELS, ApiModel, ObjectName, UtcDateTime

_DATETIME = TypeAdapter(UtcDateTime)

#: Raw paths (within one object) of the money fields that must be JSON numbers.
_AMOUNT_PATHS: dict[ObjectName, tuple[tuple[str, ...], ...]] = {
    ObjectName.INVOICE: (("originalInvoiceAmount",), ("claims", "*", "remainingAmount")),
    ObjectName.PAYMENT: (("amount",),),
}


@dataclass(slots=True)
class ObjectCheck:
    """The verdict on one object: its model when it passed, else the problems found."""

    objectname: ObjectName
    objectindex: int | None
    raw: Any
    model: ApiModel | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def reject(self, message: str) -> None:
        """Add a problem found later (stateful checks, injected faults)."""
        self.problems.append(message)
        self.model = None

    def message(self, separator: str = "; ") -> str:
        return separator.join(self.problems)


# --------------------------------------------------------------------------------------------
# KID (ocrReferenceNumber) check digits
# --------------------------------------------------------------------------------------------


def kid_mod10_check_digit(digits: str) -> str:
    """The MOD10 (Luhn) check digit to append to ``digits``: ``1234`` → ``4``."""
    return luhn.calc_check_digit(digits)


def kid_mod11_check_digit(digits: str) -> str | None:
    """The MOD11 check digit to append, or None when the remainder makes it 10 (no valid KID).

    Weights 2, 3, 4, 5, 6, 7 repeating from the right; check = 11 - (sum mod 11), 11 → 0.
    python-stdnum has no module for the KID variant, hence this small function.
    """
    total = sum(int(d) * (2 + i % 6) for i, d in enumerate(reversed(digits)))
    check = 11 - total % 11
    if check == 11:
        return "0"
    if check == 10:
        return None
    return str(check)


def kid_problem(kid: str, assumptions: ApiContract = DEFAULT_CONTRACT) -> str | None:
    """Why ``kid`` is not an acceptable KID, or None when it is."""
    if not kid.isascii() or not kid.isdigit():
        return "must contain digits only"
    low, high = assumptions.kid_min_length, assumptions.kid_max_length
    if not low <= len(kid) <= high:
        return f"must be {low} to {high} digits long, not {len(kid)}"
    body, check = kid[:-1], kid[-1]
    methods = assumptions.kid_check_methods
    if "MOD10" in methods and kid_mod10_check_digit(body) == check:
        return None
    if "MOD11" in methods and kid_mod11_check_digit(body) == check:
        return None
    return f"check digit is not valid {' or '.join(methods)}"


def is_valid_kid(kid: str, assumptions: ApiContract = DEFAULT_CONTRACT) -> bool:
    """Whether ``kid`` is digits only, of allowed length, with a MOD10 or MOD11 check digit."""
    return kid_problem(kid, assumptions) is None


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def format_loc(loc: tuple[int | str, ...]) -> str:
    """``("debtors", 0, "type")`` → ``.debtors[0].type``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _present(value: Any) -> bool:
    """An optional string field counts as given when it is a non-blank string."""
    return isinstance(value, str) and value.strip() != ""


def _try_amount(value: Any) -> Decimal | None:
    """The amount as Decimal when it is a finite JSON number, else None (the shape reports)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal) and value.is_finite():
        return value
    return None


def _try_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _try_datetime_text(value)
    try:
        return _DATETIME.validate_python(value)
    except (ValidationError, ValueError):
        return None


# A day's invoices share a handful of dates; a datetime is immutable, so caching is safe.
@lru_cache(maxsize=4096)
def _try_datetime_text(value: str) -> datetime | None:
    try:
        return _DATETIME.validate_python(value)
    except (ValidationError, ValueError):
        return None


def _email_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return None  # the pydantic shape check reports the type
    return _email_problem_cached(value)


#: An e-mail address simple enough that email_validator surely accepts it: the form the SQL
#: prefilter proves (``amili_email_ok`` in :mod:`amili.pipeline.sql_checks`; tests hold the
#: two equal and both to email_validator). Lower-case dot-atom, a real-looking domain without
#: "--", not a special-use name.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_+-]{1,64}(?:\.[a-z0-9_+-]{1,64}){0,8}@"
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.){1,8}[a-z]{2,24}")
_SPECIAL_USE_DOMAIN = re.compile(r"\.(?:arpa|invalid|local|localhost|onion|test)\Z")


def is_plain_email(value: str) -> bool:
    """``value`` is an address of the plain form email_validator surely accepts (a check of
    about a microsecond, where email_validator takes some 60 µs an address)."""
    if len(value) > 254 or _PLAIN_EMAIL.fullmatch(value) is None:
        return False
    at = value.index("@")
    return at <= 64 and "--" not in value[at:] and _SPECIAL_USE_DOMAIN.search(value) is None


# Debtors, e-mails and identifiers repeat across the invoices of a batch, and their checks are
# pure functions of the text, so they are cached (bounded) to keep large batches quick.
@lru_cache(maxsize=65_536)
def _email_problem_cached(value: str) -> str | None:
    if is_plain_email(value):  # (the rows Python checks are mostly unique: no cache hit)
        return None
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return f"{value!r} is not a valid e-mail address ({exc})"
    return None


@lru_cache(maxsize=65_536)
def _is_valid_orgnr(value: str) -> bool:
    return bool(orgnr.is_valid(value))


@lru_cache(maxsize=65_536)
def _is_valid_fodselsnummer(value: str) -> bool:
    return bool(fodselsnummer.is_valid(value))


def _string_amounts(raw: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> list[tuple]:
    """(loc, value) of money fields given as JSON strings, which lax pydantic would accept."""
    found: list[tuple] = []

    def walk(node: Any, path: tuple[str, ...], loc: tuple) -> None:
        if not path:
            if isinstance(node, str):
                found.append((loc, node))
            return
        head, rest = path[0], path[1:]
        if head == "*":
            if isinstance(node, list):
                for i, item in enumerate(node):
                    walk(item, rest, (*loc, i))
        elif isinstance(node, dict) and head in node:
            walk(node[head], rest, (*loc, head))

    for path in paths:
        walk(raw, path, ())
    return found


#: A text longer than this is not repeated in a message (a too-long text says its length).
_MAX_QUOTED = 100


def _with_input(error: Any) -> str:
    """pydantic's message with the offending value after it, ``(-1671.00)``, when that is a
    plain number or a short text: the reason then names the value (its own column in the
    ledger, :mod:`amili.reasons`). A missing field, a nested object or a long text gets the
    message alone."""
    value = error.get("input")
    if error["type"] == "missing" or isinstance(value, bool) or not isinstance(
            value, str | int | float | Decimal) or (
            isinstance(value, str) and len(value) > _MAX_QUOTED):
        return str(error["msg"])
    return f"{error['msg']} ({value!r})" if isinstance(value, str) else f"{error['msg']} ({value})"


Problems = list[tuple[str, str]]
"""(path within the object, message) pairs."""


# --------------------------------------------------------------------------------------------
# Domain rules per object type (on the raw dict, so they run even where the shape failed)
# --------------------------------------------------------------------------------------------


def _identifier_problems(
    raw: dict[str, Any], prefix: str, checks: tuple[tuple[str, Callable[[str], bool], str], ...]
) -> Problems:
    problems: Problems = []
    for name, is_valid, what in checks:
        value = raw.get(name)
        if _present(value) and not is_valid(value):
            problems.append((f"{prefix}.{name}", f"{value!r} is not a valid {what}"))
    return problems


def _creditor_rules(raw: dict[str, Any], assumptions: ApiContract) -> Problems:
    problems = _identifier_problems(
        raw,
        "",
        (
            ("idnumber", _is_valid_orgnr, "Norwegian organisation number (organisasjonsnummer)"),
            ("bankaccountno", kontonr.is_valid, "Norwegian bank account number (kontonummer)"),
            ("iban", iban.is_valid, "IBAN"),
            ("swift", bic.is_valid, "BIC/SWIFT code"),
        ),
    )
    if _present(raw.get("emailinvoice")) and (msg := _email_problem(raw["emailinvoice"])):
        problems.append((".emailinvoice", msg))
    for contact_field in ("contact", "contact2"):
        contact = raw.get(contact_field)
        email = contact.get("email") if isinstance(contact, dict) else None
        if _present(email) and (msg := _email_problem(email)):
            problems.append((f".{contact_field}.email", msg))
    return problems


def _identity_kind_problems(debtor: dict[str, Any], prefix: str) -> Problems:
    """The identity number is of the debtor's kind (ASSUMPTION, docs/sandbox-assumptions.md).

    A COMPANY debtor carries a valid organisation number and no personal number; a PRIVATE
    debtor carries no organisation number (its personal number stays optional: nothing
    documents it as required). Whether a number present is valid is checked on its own, by
    :func:`_identifier_problems`; an organisation number in a PRIVATE debtor's
    ``identificationNumber`` is simply not a valid fødselsnummer (9 digits, not 11).
    """
    kind = debtor.get("type")
    problems: Problems = []
    if kind == "COMPANY":
        if _present(debtor.get("identificationNumber")):
            problems.append((f"{prefix}.identificationNumber", "a COMPANY debtor carries an "
                             "organisation number, not a personal number"))
        if not _present(debtor.get("organizationNumber")):
            problems.append((f"{prefix}.organizationNumber", "a COMPANY debtor needs an "
                             "organisation number (organisasjonsnummer)"))
    elif kind == "PRIVATE" and _present(debtor.get("organizationNumber")):
        problems.append((f"{prefix}.organizationNumber", "a PRIVATE debtor carries no "
                         "organisation number (a company is a COMPANY debtor)"))
    return problems


def _debtor_rules(debtor: dict[str, Any], prefix: str, assumptions: ApiContract) -> Problems:
    problems: Problems = []
    kind = debtor.get("type")
    if kind == "PRIVATE":
        has_names = _present(debtor.get("firstname")) and _present(debtor.get("lastname"))
        if not has_names and not _present(debtor.get("name")):
            problems.append((prefix, "a PRIVATE debtor needs firstname and lastname, or name"))
    elif kind == "COMPANY" and not _present(debtor.get("name")):
        problems.append((f"{prefix}.name", "a COMPANY debtor needs name"))
    problems += _identifier_problems(
        debtor,
        prefix,
        (
            ("organizationNumber", _is_valid_orgnr, "Norwegian organisation number "
             "(organisasjonsnummer)"),
            ("identificationNumber", _is_valid_fodselsnummer, "Norwegian national identity "
             "number (fødselsnummer)"),
        ),
    )
    problems += _identity_kind_problems(debtor, prefix)
    emails = debtor.get("emails")
    if isinstance(emails, list):
        for k, email in enumerate(emails):
            if isinstance(email, dict) and (msg := _email_problem(email.get("value"))):
                problems.append((f"{prefix}.emails[{k}].value", msg))
    addresses = debtor.get("addresses")
    addresses = addresses if isinstance(addresses, list) else []
    complete = [
        a for a in addresses
        if isinstance(a, dict) and all(_present(a.get(k)) for k in ("street", "zipCode", "city"))
    ]
    if not complete:
        problems.append(
            (f"{prefix}.addresses", "at least one address with street, zipCode and city is "
             "required")
        )
    digits = assumptions.norwegian_zipcode_digits
    for k, address in enumerate(addresses):
        if not isinstance(address, dict) or not _present(address.get("zipCode")):
            continue
        country = address.get("countryCode")
        if _present(country):
            country = str(country).strip().upper()
        else:
            country = assumptions.default_address_country
        zipcode = str(address["zipCode"]).strip()
        if country == "NO" and not (len(zipcode) == digits and zipcode.isdigit()):
            problems.append(
                (f"{prefix}.addresses[{k}].zipCode",
                 f"{address['zipCode']!r} is not a Norwegian postcode ({digits} digits)")
            )
    return problems


def _currency_problem(raw: dict[str, Any], assumptions: ApiContract) -> Problems:
    currency = raw.get("currency")
    if isinstance(currency, str) and currency and currency not in assumptions.currencies:
        return [(".currency", f"{currency!r} is not a known ISO 4217 currency code")]
    return []


def _invoice_rules(raw: dict[str, Any], assumptions: ApiContract) -> Problems:
    problems = _currency_problem(raw, assumptions)
    kid = raw.get("ocrReferenceNumber")
    if _present(kid) and (why := kid_problem(kid, assumptions)):
        problems.append((".ocrReferenceNumber", f"{kid!r} is not a valid KID: {why}"))
    invoice_date = _try_datetime(raw.get("invoiceDate"))
    due_date = _try_datetime(raw.get("dueDate"))
    if invoice_date and due_date and due_date < invoice_date:
        problems.append(
            (".dueDate", f"{raw['dueDate']} is before invoiceDate {raw['invoiceDate']}")
        )
    claims = raw.get("claims")
    if isinstance(claims, list) and claims:
        amounts = [_try_amount(c.get("remainingAmount")) if isinstance(c, dict) else None
                   for c in claims]
        if all(a is not None for a in amounts):
            total = sum(amounts, Decimal(0))  # type: ignore[arg-type]
            # ASSUMPTION: fees and interest come on top of the invoice, so only the
            # principal claims are held against originalInvoiceAmount.
            principal = sum(
                (a for a, c in zip(amounts, claims, strict=True)
                 if isinstance(c, dict) and c.get("type") == "PRINCIPAL"),
                Decimal(0),
            )
            original = _try_amount(raw.get("originalInvoiceAmount"))
            if total <= 0:
                problems.append(
                    (".claims", f"the sum of remainingAmount ({total}) must be greater than 0")
                )
            elif original is not None and principal > original:
                problems.append(
                    (".claims", f"the PRINCIPAL claims' remainingAmount ({principal}) exceeds "
                     f"originalInvoiceAmount ({original})")
                )
    debtors = raw.get("debtors")
    if isinstance(debtors, list):
        for j, debtor in enumerate(debtors):
            if isinstance(debtor, dict):
                problems += _debtor_rules(debtor, f".debtors[{j}]", assumptions)
    return problems


def _payment_rules(raw: dict[str, Any], assumptions: ApiContract) -> Problems:
    problems = _currency_problem(raw, assumptions)
    amount = _try_amount(raw.get("amount"))
    if amount is not None and amount == 0:
        problems.append((".amount", "must be greater than 0"))
    return problems


def _action_rules(raw: dict[str, Any], assumptions: ApiContract) -> Problems:
    return []


_RULES: dict[ObjectName, Callable[[dict[str, Any], ApiContract], Problems]] = {
    ObjectName.CREDITOR: _creditor_rules,
    ObjectName.INVOICE: _invoice_rules,
    ObjectName.PAYMENT: _payment_rules,
    ObjectName.ACTION: _action_rules,
}


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def validate_object(
    objectname: ObjectName,
    index: int | None,
    raw: Any,
    assumptions: ApiContract = DEFAULT_CONTRACT,
) -> ObjectCheck:
    """Check one object of the ``objectname`` array: shape with pydantic, then domain rules.

    ``index`` is its position in the batch's array; None for an object checked on its own
    (before it has a place in a batch), whose messages then start ``invoice.`` instead of
    ``invoice[3].``.
    """
    check = ObjectCheck(objectname, index, raw)
    head = objectname.value if index is None else f"{objectname.value}[{index}]"
    problems: Problems = []

    string_amounts = (
        _string_amounts(raw, _AMOUNT_PATHS.get(objectname, ())) if isinstance(raw, dict) else []
    )
    for loc, value in string_amounts:
        problems.append((format_loc(loc), f"must be a JSON number, not a string ({value!r})"))
    string_amount_locs = {loc for loc, _ in string_amounts}

    model: ApiModel | None = None
    try:
        model = OBJECT_MODELS[objectname].model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            if loc in string_amount_locs:
                continue
            problems.append((format_loc(loc), _with_input(error)))

    if isinstance(raw, dict):
        problems += _RULES[objectname](raw, assumptions)

    seen: set[tuple[str, str]] = set()
    for path, message in problems:
        if (path, message) not in seen:
            seen.add((path, message))
            check.problems.append(f"{head}{path}: {message}")
    if not check.problems:
        check.model = model
    return check


def validate_array(
    objectname: ObjectName, items: list[Any], assumptions: ApiContract = DEFAULT_CONTRACT
) -> list[ObjectCheck]:
    """Check every object of one array, each on its own."""
    return [validate_object(objectname, i, raw, assumptions) for i, raw in enumerate(items)]



def payload_problems(
    objectname: ObjectName | str,
    payload: bytes | str,
    assumptions: ApiContract = DEFAULT_CONTRACT,
) -> list[str]:
    """Why one object's JSON text would be rejected, as the sandbox words it; [] when valid.

    The text is parsed like the sandbox parses a body (:func:`amili.jsonio.loads`: numbers with
    a fraction stay exact Decimals), so amounts are judged the same way.
    """
    name = ObjectName(objectname)
    try:
        raw = jsonio.loads(payload)
    except (ValueError, RecursionError) as exc:
        return [f"{name.value}: the payload is not valid JSON: {exc}"]
    return validate_object(name, None, raw, assumptions).problems
