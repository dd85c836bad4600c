"""The cheap checks of :mod:`amili.validation`, in DuckDB SQL, over a whole partition at once.

Why: validating a million invoices one by one in Python (pydantic, python-stdnum, e-mail
parsing) takes minutes; the same checks as SQL expressions run vectorized in DuckDB while the
rows stream out. The SQL is a *sound prefilter*, not a second rule book:

* :func:`clean_sql` is true only for a payload that provably passes every rule
  :func:`amili.validation.validate_object` applies (and the submission's own id checks). It
  accepts only the plain forms (compact JSON with the model's keys in the model's order, as
  dbt's ``to_json`` and the models' own dumps write them; ASCII digits without separators;
  ``YYYY-MM-DDTHH:MM:SS.mmmZ`` date-times; simple e-mail addresses) and says "not proven" for
  anything else.
* A row it does not prove clean goes through the Python validation, which decides, and words
  the quarantine reason exactly as the sandbox would. So SQL never invents a reason and never
  lets through what Python would refuse; tests hold the check-digit macros equal to
  python-stdnum and the whole expression to ``validate_object`` (tests/pipeline/test_sql_checks.py).

Creditors and actions are few per day and always take the Python path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import duckdb

from amili.contract import DEFAULT_CONTRACT, ApiContract
from amili.models import ClaimType, DebtorType, InvoiceType, PaymentType

__all__ = [
    "MACROS",
    "clean_sql",
    "derived_sql",
    "fields_sql",
    "install_macros",
    "invoice_shape",
    "payment_shape",
    "proven_query",
    "shape_sql",
    "typed_object_column",
    "typed_proven_query",
    "typed_shape_sql",
]

# --------------------------------------------------------------------------------------------
# Check digits (ASCII digits only; anything else is "not proven" and goes to Python)
# --------------------------------------------------------------------------------------------

def _digit(n: str, k: int) -> str:
    """The k-th digit from the right (0-based) of the integer expression n."""
    return f"(({n} // {10 ** k}) % 10)" if k else f"({n} % 10)"


def _quotient(n: str, k: int) -> str:
    """n // 10**k: n without its k lowest digits."""
    return f"({n} // {10 ** k})" if k else n


def _mod11_sum(n: str, weights: list[int], shift: int = 0) -> str:
    """An integer congruent modulo 11 to sum(weights[k] * digit k of n // 10**shift), for
    n < 10**(shift + len(weights)) and not negative, with one division per digit.

    Why: an expression is evaluated node by node, row by row, and a digit costs two
    divisions. With q_k = n // 10**k, digit k is q_k - 10 * q_(k+1), which is congruent to
    q_k + q_(k+1) modulo 11 (10 = -1 mod 11); so the sum is sum((w_k + w_(k-1)) * q_k)."""
    coefficients = [0] * (len(weights) + 1)
    for k, weight in enumerate(weights):
        coefficients[k] += weight
        coefficients[k + 1] += weight
    coefficients.pop()  # q just above the top digit is 0
    return " + ".join(f"{c} * {_quotient(n, k + shift)}"
                      for k, c in enumerate(coefficients) if c)


def _luhn(n: str, first: int) -> str:
    """An integer congruent modulo 10 to the Luhn sum of the 15 digits of n (not negative),
    the lowest being at position ``first`` from the right.

    With q_k = n // 10**k, digit k is congruent to q_k modulo 10, and a doubled digit's digit
    sum (2d, less 9 when d >= 5) to 2 * q_k + (n // (5 * 10**k)) % 2, the parity of
    q_k // 5 being whether d >= 5: two divisions a digit at most, not four."""
    terms = []
    for k in range(15):
        q = _quotient(n, k)
        terms.append(q if (first + k) % 2 == 0 else f"2 * {q} + ({n} // {5 * 10 ** k}) % 2")
    return " + ".join(terms)


def _kid_weights(first: int) -> list[int]:
    """MOD11 weights of 15 digits from position ``first`` (0: the check digit, weight 0)."""
    return [0 if first + k == 0 else 2 + (first + k - 1) % 6 for k in range(15)]


#: Longest KID the checks below handle in one HUGEINT (38 digits); longer ones go to Python.
_KID_DIGITS = 30

MACROS: tuple[str, ...] = (
    # Check digits as integer arithmetic on the number (vectorized, no per-digit lambdas).
    # Luhn (MOD10) over the whole string: stdnum.luhn.is_valid on ASCII digits
    # (KIDs are up to 25 digits, too long for BIGINT: lo and hi are the lower and upper 15
    # digits of the number padded to 30, see amili_kid_lo / amili_kid_hi)
    "CREATE OR REPLACE TEMP MACRO amili_kid_lo(s) AS (TRY_CAST(right(s, 15) AS BIGINT))",
    """CREATE OR REPLACE TEMP MACRO amili_kid_hi(s) AS (
        CASE WHEN length(s) > 15 THEN TRY_CAST(left(s, length(s) - 15) AS BIGINT) ELSE 0 END)""",
    # (most KIDs have at most 15 digits: their upper half is 0, and its terms are skipped)
    f"""CREATE OR REPLACE TEMP MACRO amili_luhn_n(lo, hi) AS (
        ({_luhn("lo", 0)} + CASE WHEN hi = 0 THEN 0 ELSE {_luhn("hi", 15)} END) % 10 = 0)""",
    f"""CREATE OR REPLACE TEMP MACRO amili_luhn_ok(s) AS (
        regexp_full_match(s, '[0-9]{{1,{_KID_DIGITS}}}')
        AND amili_luhn_n(amili_kid_lo(s), amili_kid_hi(s)))""",
    # KID MOD11 (amili.validation.kid_mod11_check_digit): weights 2..7 from the right of the
    # body; check 11 - sum % 11, 11 -> 0, 10 -> no valid KID
    f"""CREATE OR REPLACE TEMP MACRO amili_kid_mod11_n(lo, hi) AS (
        (11 - ({_mod11_sum("lo", _kid_weights(0))} + CASE WHEN hi = 0 THEN 0
               ELSE {_mod11_sum("hi", _kid_weights(15))} END) % 11) % 11 = lo % 10)""",
    f"""CREATE OR REPLACE TEMP MACRO amili_kid_mod11_ok(s) AS (
        regexp_full_match(s, '[0-9]{{2,{_KID_DIGITS}}}')
        AND amili_kid_mod11_n(amili_kid_lo(s), amili_kid_hi(s)))""",
    # organisasjonsnummer: 9 digits, weights 3 2 7 6 5 4 3 2 1 (from the left), sum % 11 = 0
    f"""CREATE OR REPLACE TEMP MACRO amili_orgnr_n(n) AS (
        ({_mod11_sum("n", [1, 2, 3, 4, 5, 6, 7, 2, 3])}) % 11 = 0)""",
    """CREATE OR REPLACE TEMP MACRO amili_orgnr_ok(s) AS (
        regexp_full_match(s, '[0-9]{9}') AND amili_orgnr_n(TRY_CAST(s AS BIGINT)))""",
    # fødselsnummer: 11 digits, two MOD11 check digits, a real birth date in the past
    # (D- and H-numbers included, FH-numbers refused, century from the individual number),
    # exactly as stdnum.no.fodselsnummer.is_valid; the birth date must be two days old so the
    # time zone of "today" cannot matter. Arithmetic, no CASE and no date functions: a macro's
    # arguments are expanded at every use, and the birth date's parts are used several times.
    # The century rules give years 1854-2039, in which only 1900 is a year divisible by 4
    # and not leap: so the leap year is told from yy (two digits) and ind.
    """CREATE OR REPLACE TEMP MACRO amili_fnr_century_ok(yy, ind) AS (
        ind < 500 OR (ind < 750 AND yy >= 54) OR yy < 40 OR ind >= 900)""",
    """CREATE OR REPLACE TEMP MACRO amili_fnr_year(yy, ind) AS (
        1900 + yy + 100 * (ind >= 500 AND yy < 40)::INT
            - 100 * (ind >= 500 AND ind < 750 AND yy >= 54)::INT)""",
    """CREATE OR REPLACE TEMP MACRO amili_month_days(m, leap) AS (
        30 + (m + (m >= 8)::INT) % 2 - (m = 2)::INT * (2 - leap::INT))""",
    """CREATE OR REPLACE TEMP MACRO amili_fnr_date_ok(d, m, yy, ind) AS (
        m BETWEEN 1 AND 12 AND d >= 1
        AND d <= amili_month_days(m, yy % 4 = 0 AND (yy <> 0 OR ind >= 500))
        AND amili_fnr_year(yy, ind) * 10000 + m * 100 + d
            <= year(current_date - 2) * 10000 + month(current_date - 2) * 100
               + day(current_date - 2))""",
    """CREATE OR REPLACE TEMP MACRO amili_fnr_birth_ok(dd, mm, yy, ind) AS (
        dd < 80 AND amili_fnr_century_ok(yy, ind)
        AND amili_fnr_date_ok(dd - 40 * (dd > 40)::INT, mm - 40 * (mm > 40)::INT, yy, ind))""",
    f"""CREATE OR REPLACE TEMP MACRO amili_fnr_n(n) AS (
        (11 - ({_mod11_sum("n", [2, 5, 4, 9, 8, 1, 6, 7, 3], shift=2)}) % 11) % 11
            = {_digit("n", 1)}
        AND (11 - ({_mod11_sum("n", [2, 3, 4, 5, 6, 7, 2, 3, 4, 5], shift=1)}) % 11) % 11
            = n % 10
        AND amili_fnr_birth_ok(n // 1000000000, (n // 10000000) % 100,
                               (n // 100000) % 100, (n // 100) % 1000))""",
    """CREATE OR REPLACE TEMP MACRO amili_fnr_ok(s) AS (
        regexp_full_match(s, '[0-9]{11}') AND amili_fnr_n(TRY_CAST(s AS BIGINT)))""",
    # kontonummer (11 digits, MOD11 weights 5 4 3 2 7 6 5 4 3 2 on the first ten, check
    # 11 - sum % 11 with 11 -> 0 and 10 invalid); stdnum also takes a leading "0000" + Luhn,
    # which is left to Python
    f"""CREATE OR REPLACE TEMP MACRO amili_kontonr_n(n) AS (
        (11 - ({_mod11_sum("n", [2, 3, 4, 5, 6, 7, 2, 3, 4, 5], shift=1)}) % 11) % 11
            = n % 10)""",
    """CREATE OR REPLACE TEMP MACRO amili_kontonr_ok(s) AS (
        regexp_full_match(s, '[0-9]{11}') AND NOT starts_with(s, '0000')
        AND amili_kontonr_n(TRY_CAST(s AS BIGINT)))""",
    # an e-mail address simple enough that email_validator surely accepts it (lower-case
    # dot-atom, a real-looking domain, not a special-use name); others are left to Python
    r"""CREATE OR REPLACE TEMP MACRO amili_email_ok(s) AS (
        length(s) <= 254 AND regexp_full_match(s,
            '[a-z0-9_+-]{1,64}(\.[a-z0-9_+-]{1,64}){0,8}@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.){1,8}[a-z]{2,24}')
        AND strpos(s, '@') <= 65
        AND NOT contains(substr(s, strpos(s, '@')), '--')
        AND NOT regexp_matches(s, '\.(arpa|invalid|local|localhost|onion|test)$'))""",
)


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create the check macros as temporary macros of this connection."""
    for statement in MACROS:
        con.execute(statement)


# --------------------------------------------------------------------------------------------
# Shapes: a regular expression of the compact JSON the models accept in their own key order
# --------------------------------------------------------------------------------------------

_STR = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_STR1 = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})+"'
#: a non-negative amount with at most 16 integer digits and 2 decimals (DECIMAL(18,2))
_AMOUNT = r"(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,2})?"
_BOOL = "(?:true|false)"
_NULL = "null"


def _opt(pattern: str) -> str:
    return f"(?:{pattern}|{_NULL})"


def _seq(fields: list[tuple[str, str, bool]], lead: bool) -> str:
    """Keys in this order, the optional ones possibly absent, commas only between them."""
    if not fields:
        return ""
    (name, pattern, required), rest = fields[0], fields[1:]
    item = f'"{name}":{pattern}'
    if lead:
        return (f",{item}" if required else f"(?:,{item})?") + _seq(rest, True)
    if required:
        return item + _seq(rest, True)
    return f"(?:{item}{_seq(rest, True)}|{_seq(rest, False)})"


def _object(fields: list[tuple[str, str, bool]]) -> str:
    return r"\{" + _seq(fields, False) + r"\}"


def _array(pattern: str, at_least_one: bool = False) -> str:
    if at_least_one:
        return rf"\[{pattern}(?:,{pattern})*\]"
    return rf"\[(?:{pattern}(?:,{pattern})*)?\]"


def _optional_strings(*names: str) -> list[tuple[str, str, bool]]:
    return [(name, _opt(_STR), False) for name in names]


_EMAIL = _object([("value", _STR, True)])
_PHONE = _object(_optional_strings("countryCode", "originalValue", "value"))
_ADDRESS = _object(_optional_strings("street", "city", "zipCode", "countryCode"))
_DEBTOR = _object([
    ("type", _STR, True),
    *_optional_strings("firstname", "lastname", "name", "customerNumber",
                       "identificationNumber", "organizationNumber", "dateOfBirth"),
    ("emails", _array(_EMAIL), False),
    ("phoneNumbers", _array(_PHONE), False),
    ("addresses", _array(_ADDRESS), False),
])
_CLAIM = _object([("type", _STR, True), ("remainingAmount", _AMOUNT, True),
                  ("description", _opt(_STR), False)])


def invoice_shape() -> str:
    """The compact invoice objects whose JSON types all fit :class:`amili.models.Invoice`."""
    return "^" + _object([
        ("type", _STR, True), ("invoiceNumber", _STR1, True),
        ("vat", _opt(_BOOL), False), ("fees", _opt(_BOOL), False),
        ("originalInvoiceAmount", _AMOUNT, True), ("currency", _STR1, True),
        ("invoiceDate", _STR, True), ("dueDate", _STR, True),
        ("collectionNoticeDate", _opt(_STR), False), ("ocrReferenceNumber", _opt(_STR), False),
        ("uniqueSourceInvoiceId", _STR1, True), ("description", _opt(_STR), False),
        ("debtors", _array(_DEBTOR, True), True), ("claims", _array(_CLAIM, True), True),
    ]) + "$"


def payment_shape() -> str:
    """The compact payment objects whose JSON types all fit :class:`amili.models.Payment`."""
    return "^" + _object([
        ("invoiceId", _STR1, True), ("type", _STR, True), ("amount", _AMOUNT, True),
        ("currency", _STR1, True), ("date", _STR, True), ("description", _opt(_STR), False),
        ("uniqueSourcePaymentId", _STR1, True),
    ]) + "$"


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------

_INVOICE_FIELDS = """{
    "type": "VARCHAR", "originalInvoiceAmount": "DECIMAL(18,2)", "currency": "VARCHAR",
    "invoiceDate": "VARCHAR", "dueDate": "VARCHAR", "collectionNoticeDate": "VARCHAR",
    "ocrReferenceNumber": "VARCHAR", "uniqueSourceInvoiceId": "VARCHAR",
    "debtors": [{"type": "VARCHAR", "firstname": "VARCHAR", "lastname": "VARCHAR",
                 "name": "VARCHAR", "identificationNumber": "VARCHAR",
                 "organizationNumber": "VARCHAR", "dateOfBirth": "VARCHAR",
                 "emails": [{"value": "VARCHAR"}],
                 "addresses": [{"street": "VARCHAR", "city": "VARCHAR", "zipCode": "VARCHAR",
                                "countryCode": "VARCHAR"}]}],
    "claims": [{"type": "VARCHAR", "remainingAmount": "DECIMAL(18,2)"}]
}"""
_PAYMENT_FIELDS = """{
    "type": "VARCHAR", "amount": "DECIMAL(18,2)", "currency": "VARCHAR", "date": "VARCHAR",
    "uniqueSourcePaymentId": "VARCHAR"
}"""
#: the canonical date-time form, its month, day, hour, minute and second in range (a year
#: before 1000 is left to Python); the date cast then proves the day exists in its month
_DATETIME = (r"[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
             r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z")


def _in(values: Iterable[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in sorted(str(v) for v in values)) + ")"


def _one_of(expr: str, values: Iterable[str]) -> str:
    """``expr IN values`` for a long list of values (the currencies: 157), as one regex.

    Why: DuckDB evaluates ``x IN (a, b, ...)`` in a projection as one comparison per value,
    for every row; RE2 matches the alternation with one pass over the string, several times
    faster (``docs/performance.md``). NULL gives NULL, as IN does.
    """
    alternatives = "|".join(re.escape(str(v)) for v in sorted(values))
    return f"regexp_full_match({expr}, '(?:{alternatives.replace(chr(39), chr(39) * 2)})')"


def _datetime_ok(expr: str) -> str:
    return (f"(regexp_full_match({expr}, '{_DATETIME}') "
            f"AND TRY_CAST(left({expr}, 10) AS DATE) IS NOT NULL)")


def _blank_or(expr: str, check: str) -> str:
    """Python checks an identifier only when it is a non-blank string; '' or NULL is skipped.

    Anything else that looks blank (spaces) is left unproven, so Python decides."""
    return f"({expr} IS NULL OR {expr} = '' OR {check})"


def _present(expr: str) -> str:
    """Surely non-blank for Python's ``str.strip``: it starts with a visible ASCII character
    (cheap, the usual case) or has a letter or a digit somewhere."""
    return (f"CASE WHEN ascii({expr}) BETWEEN 33 AND 126 THEN true "
            f"ELSE coalesce(regexp_matches({expr}, '[[:alnum:]]'), false) END")


def _kid_ok(expr: str, derived: str, a: ApiContract) -> str:
    methods = []
    if a.kid_max_length > _KID_DIGITS:
        return "false"
    lo, hi = f"{derived}.kid_lo", f"{derived}.kid_hi"
    if "MOD10" in a.kid_check_methods:
        methods.append(f"amili_luhn_n({lo}, {hi})")
    if "MOD11" in a.kid_check_methods:
        methods.append(f"amili_kid_mod11_n({lo}, {hi})")
    if not methods:
        return "false"
    # (a CASE, not OR: in a projection DuckDB evaluates every side of an OR on every row)
    either = methods[0] if len(methods) == 1 else (
        f"CASE WHEN {methods[0]} THEN true ELSE {methods[1]} END")
    return (f"(regexp_full_match({expr}, '[0-9]{{{a.kid_min_length},{a.kid_max_length}}}') "
            f"AND {either})")


def _debtor_ids_ok(n: str, kind: str) -> str:
    """A debtor's identifiers (``n``: one element of :func:`derived_sql`'s debtors) are valid
    and of the debtor's kind (``kind``: its type): a COMPANY has an organisation number and
    no personal number, a PRIVATE debtor no organisation number.

    "No number" is proven only for NULL or ''; a blank of spaces, which Python also takes as
    absent, is left unproven (as :func:`_blank_or` does). A COMPANY's organisation number
    not '' and blank-or-valid is a valid one (nine digits)."""
    absent = f"coalesce({n}.{{0}}, '') = ''"
    return f"""(
        CASE WHEN {kind} = 'COMPANY'
             THEN {absent.format('fnr_s')} AND NOT {absent.format('org_s')}
             ELSE {absent.format('org_s')} END
        AND {_blank_or(n + '.org_s', f"regexp_full_match({n}.org_s, '[0-9]{{9}}') "
                                     f"AND amili_orgnr_n({n}.org)")}
        AND {_blank_or(n + '.fnr_s', f"regexp_full_match({n}.fnr_s, '[0-9]{{11}}') "
                                     f"AND amili_fnr_n({n}.fnr)")})"""


def _email_ok(value: str) -> str:
    """One e-mail address ``value`` passes (a NULL element or value does not)."""
    return f"coalesce(length({value}) >= 3 AND amili_email_ok({value}), false)"


def _address_complete(x: str) -> str:
    """The address ``x`` has a street, a zip code and a city."""
    return f"({_present(x + '.street')} AND {_present(x + '.zipCode')} AND {_present(x + '.city')})"


def _zipcode_ok(x: str, a: ApiContract) -> str:
    """The address ``x`` is not NULL, and its country code and (Norwegian) zip code are valid."""
    country = f"coalesce(nullif({x}.countryCode, ''), '{a.default_address_country}')"
    return (
        f"coalesce({x} IS NOT NULL AND ({x}.countryCode IS NULL OR {x}.countryCode = '' "
        f"OR regexp_full_match({x}.countryCode, '[A-Z]{{2}}')) AND "
        f"({x}.zipCode IS NULL OR {x}.zipCode = '' OR {country} <> 'NO' "
        f"OR regexp_full_match({x}.zipCode, '[0-9]{{{a.norwegian_zipcode_digits}}}')), false)"
    )


def _debtor_ok(d: str, a: ApiContract, single: str | None = None) -> str:
    """One debtor ``d`` passes the debtor rules (its identifiers: :func:`_debtor_ids_ok`).

    ``single`` names :func:`derived_sql`'s columns for a debtor with at most one e-mail and
    exactly one address (``email``, ``address``): its checks are then plain expressions.
    Without it the debtor's lists are checked element by element with lambdas, which cost
    several times as much (DuckDB does not share repeated subexpressions inside a lambda).
    """
    names = (f"(({_present(d + '.firstname')} AND {_present(d + '.lastname')}) "
             f"OR {_present(d + '.name')})")
    if single is None:
        emails_ok = (f"coalesce(list_bool_and(list_transform({d}.emails, "
                     f"lambda x: {_email_ok('x.value')})), true)")
        address_complete = (f"len(list_filter({d}.addresses, "
                            f"lambda x: {_address_complete('x')})) > 0")
        zipcodes_ok = (f"coalesce(list_bool_and(list_transform({d}.addresses, "
                       f"lambda x: {_zipcode_ok('x', a)})), true)")
    else:
        emails_ok = f"(coalesce(len({d}.emails), 0) = 0 OR {_email_ok(single + '.email')})"
        address_complete = _address_complete(single + ".address")
        zipcodes_ok = _zipcode_ok(single + ".address", a)
    return f"""({d} IS NOT NULL AND {d}.type IN {_in(DebtorType)}
        AND (({d}.type = 'PRIVATE' AND {names})
             OR ({d}.type = 'COMPANY' AND {_present(d + '.name')}))
        AND ({d}.dateOfBirth IS NULL OR TRY_CAST({d}.dateOfBirth AS DATE) IS NOT NULL
             AND regexp_full_match({d}.dateOfBirth::VARCHAR, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}'))
        AND {emails_ok}
        AND {address_complete}
        AND {zipcodes_ok})"""


def fields_sql(kind: str, payload: str) -> str:
    """The payload parsed once into the values the checks read (``json_transform``)."""
    spec = {"invoice": _INVOICE_FIELDS, "payment": _PAYMENT_FIELDS}[kind]
    return f"json_transform({payload}, '{spec}')"


def shape_sql(kind: str, payload: str) -> str:
    """True when the payload's JSON has the model's shape (:func:`invoice_shape`)."""
    shape = {"invoice": invoice_shape, "payment": payment_shape}[kind]()
    return f"regexp_full_match({payload}, '{shape.replace(chr(39), chr(39) * 2)}')"


# --------------------------------------------------------------------------------------------
# Typed objects: the STRUCT dbt serializes, checked without parsing its JSON
# --------------------------------------------------------------------------------------------

#: The STRUCT types of ``batch_invoices_json.invoice_object`` and
#: ``batch_payments_json.payment_object``, whose ``to_json`` is the row's payload. For a value
#: of exactly this type, to_json writes the model's keys in this order as compact JSON, every
#: string escaped, every DECIMAL(18,2) a plain number: so the shape regex reduces to the
#: NULL, emptiness and sign conditions of :func:`typed_shape_sql`, and the value checks read
#: the fields directly (parsing a million payloads again was most of the checks' time).
#: A relation whose column has another type is checked on its JSON instead.
OBJECT_TYPES: dict[str, str] = {
    "invoice": (
        'STRUCT("type" VARCHAR, invoiceNumber VARCHAR, vat BOOLEAN, fees BOOLEAN, '
        "originalInvoiceAmount DECIMAL(18,2), currency VARCHAR, invoiceDate VARCHAR, "
        "dueDate VARCHAR, collectionNoticeDate VARCHAR, ocrReferenceNumber VARCHAR, "
        "uniqueSourceInvoiceId VARCHAR, description VARCHAR, "
        'debtors STRUCT("type" VARCHAR, firstname VARCHAR, lastname VARCHAR, "name" VARCHAR, '
        "customerNumber VARCHAR, identificationNumber VARCHAR, organizationNumber VARCHAR, "
        'dateOfBirth DATE, emails STRUCT("value" VARCHAR)[], '
        'phoneNumbers STRUCT(countryCode VARCHAR, originalValue VARCHAR, "value" VARCHAR)[], '
        "addresses STRUCT(street VARCHAR, city VARCHAR, zipCode VARCHAR, "
        'countryCode VARCHAR)[])[], claims STRUCT("type" VARCHAR, '
        "remainingAmount DECIMAL(18,2), description VARCHAR)[])"
    ),
    "payment": (
        'STRUCT(invoiceId VARCHAR, "type" VARCHAR, amount DECIMAL(18,2), currency VARCHAR, '
        '"date" VARCHAR, description VARCHAR, uniqueSourcePaymentId VARCHAR)'
    ),
}


def typed_object_column(con: duckdb.DuckDBPyConnection, relation: str, kind: str) -> str | None:
    """``{kind}_object`` if ``relation`` has that column, of exactly :data:`OBJECT_TYPES`'s
    type (the submission then checks it, see :func:`typed_shape_sql`); else None."""
    column = f"{kind}_object"
    described = {row[0]: row[1] for row in con.execute(f"DESCRIBE {relation}").fetchall()}
    if column not in described:
        return None
    (pinned,) = con.execute(f"SELECT typeof(NULL::{OBJECT_TYPES[kind]})").fetchone() or ("",)
    return column if described[column] == pinned else None


def _all(items: str, var: str, predicate: str, at_least_one: bool = False) -> str:
    """Every element ``var`` of the list ``items`` is non-NULL and satisfies ``predicate``,
    and the list itself is not NULL (to_json would write null where an array must be)."""
    every = (f"list_bool_and(list_transform({items}, lambda {var}: "
             f"coalesce({var} IS NOT NULL AND {predicate}, false)))")
    if at_least_one:
        return f"coalesce(len({items}) > 0 AND {every}, false)"
    return f"({items} IS NOT NULL AND coalesce({every}, true))"


def _no_nulls(items: str) -> str:
    """The list ``items`` is not NULL and holds no NULL element (``_all`` with no predicate,
    without a lambda: ``list_count`` counts the elements that are not NULL)."""
    return f"({items} IS NOT NULL AND list_count({items}) = len({items}))"


def typed_shape_sql(kind: str, obj: str) -> str:
    """True when ``to_json(obj)`` has the model's shape, for ``obj`` of type
    ``OBJECT_TYPES[kind]``: what :func:`shape_sql` would say of it, without writing the JSON.

    The conditions are those the regex adds to the type: required keys not null, the
    non-empty strings not empty, amounts not negative, arrays not null and without null
    elements (tests/pipeline/test_sql_checks.py holds it to :func:`shape_sql`).
    """
    o = obj
    if kind == "payment":
        return f"""coalesce({o} IS NOT NULL AND {o}.invoiceId <> '' AND {o}.type IS NOT NULL
            AND {o}.amount >= 0 AND {o}.currency <> '' AND {o}.date IS NOT NULL
            AND {o}.uniqueSourcePaymentId <> '', false)"""
    if kind != "invoice":
        raise ValueError(f"no typed checks for {kind!r}")
    debtor = (f"d.type IS NOT NULL AND {_all('d.emails', 'e', 'e.value IS NOT NULL')} "
              f"AND {_no_nulls('d.phoneNumbers')} AND {_no_nulls('d.addresses')}")
    claim = "c.type IS NOT NULL AND c.remainingAmount >= 0"
    return f"""coalesce({o} IS NOT NULL AND {o}.type IS NOT NULL AND {o}.invoiceNumber <> ''
        AND {o}.originalInvoiceAmount >= 0 AND {o}.currency <> ''
        AND {o}.invoiceDate IS NOT NULL AND {o}.dueDate IS NOT NULL
        AND {o}.uniqueSourceInvoiceId <> ''
        AND {_all(o + '.debtors', 'd', debtor, at_least_one=True)}
        AND {_all(o + '.claims', 'c', claim, at_least_one=True)}, false)"""


def typed_proven_query(kind: str, source: str, obj: str, source_id: str,
                       assumptions: ApiContract = DEFAULT_CONTRACT,
                       fast_path: bool = True) -> str:
    """:func:`proven_query` for a typed ``obj`` column (:func:`typed_shape_sql`)."""
    return _proven(kind, source, source_id,
                   f"CASE WHEN {typed_shape_sql(kind, obj)} THEN {obj} END", assumptions,
                   fast_path)


def _simple_debtors(fields: str) -> str:
    """The invoice has one debtor, with at most one e-mail and exactly one address: the usual
    shape, checked by plain expressions over :func:`derived_sql`'s columns."""
    d = f"{fields}.debtors[1]"
    return (f"coalesce(len({fields}.debtors) = 1 AND {d} IS NOT NULL "
            f"AND coalesce(len({d}.emails), 0) <= 1 AND len({d}.addresses) = 1, false)")


def derived_sql(kind: str, fields: str, fast_path: bool = True) -> str:
    """Numbers the check digits need, cast once, and the usual debtor's values taken out of
    their lists (a second column after :func:`fields_sql`).

    Why a column of its own: DuckDB expands a macro's arguments at every use, so a check
    written over ``TRY_CAST(x AS BIGINT)`` would repeat that cast per digit and make the plan
    (and its planning time) many times larger; over a column it is a reference. For the same
    reason the one debtor of a :func:`_simple_debtors` invoice is taken out of its list here
    (``debtor``, ``email``, ``address`` and its numbers ``fnr``/``org``, read only where
    ``simple``), and only the other invoices get the per-debtor list ``debtors``.
    ``fast_path=False`` sends every invoice the list way (the tests hold both ways to the
    same verdicts). ``claim_amounts`` is each claim's amount where its type is known (else
    NULL): one pass over the claims that :func:`clean_sql` reads twice (every claim typed
    and with an amount, their sum positive), where each check was a lambda of its own.
    """
    if kind != "invoice":
        return "NULL"
    simple = _simple_debtors(fields) if fast_path else "false"
    d = f"{fields}.debtors[1]"
    return f"""struct_pack(
        claim_amounts := list_transform({fields}.claims, lambda c:
            CASE WHEN c.type IN {_in(ClaimType)} THEN c.remainingAmount END),
        kid_lo := amili_kid_lo({fields}.ocrReferenceNumber),
        kid_hi := amili_kid_hi({fields}.ocrReferenceNumber),
        simple := {simple},
        debtor := {d}, email := {d}.emails[1].value, address := {d}.addresses[1],
        fnr_s := {d}.identificationNumber,
        fnr := TRY_CAST({d}.identificationNumber AS BIGINT),
        org_s := {d}.organizationNumber,
        org := TRY_CAST({d}.organizationNumber AS BIGINT),
        debtors := CASE WHEN NOT {simple} THEN list_transform({fields}.debtors, lambda d:
            struct_pack(
                kind := d.type,
                fnr_s := d.identificationNumber, fnr := TRY_CAST(d.identificationNumber AS BIGINT),
                org_s := d.organizationNumber, org := TRY_CAST(d.organizationNumber AS BIGINT)))
            END)"""


def proven_query(kind: str, source: str, payload: str, source_id: str,
                 assumptions: ApiContract = DEFAULT_CONTRACT,
                 fast_path: bool = True) -> str:
    """``SELECT *, ok FROM source``: the checks of one kind staged as the submission runs
    them (shape, then one parse, then the derived numbers, then the values); ``fast_path``:
    see :func:`derived_sql`."""
    return _proven(
        kind, source, source_id,
        f"CASE WHEN {shape_sql(kind, payload)} THEN {fields_sql(kind, payload)} END",
        assumptions, fast_path)


def _proven(kind: str, source: str, source_id: str, fields: str,
            assumptions: ApiContract, fast_path: bool = True) -> str:
    """``SELECT *, ok FROM source``, ``fields`` being the row's checked values or NULL."""
    return f"""
        SELECT * EXCLUDE (f, g), {clean_sql(kind, source_id, "f", "g", assumptions)} AS ok
        FROM (SELECT *, {derived_sql(kind, "f", fast_path)} AS g FROM (
            SELECT *, {fields} AS f FROM ({source})))"""


def clean_sql(kind: str, source_id: str, fields: str, derived: str,
              assumptions: ApiContract = DEFAULT_CONTRACT) -> str:
    """A boolean SQL expression: a row of proven shape surely passes validation.

    ``kind`` is ``invoice`` or ``payment``; ``source_id``, ``fields`` and ``derived`` are the
    row's id and the columns of :func:`fields_sql` (of a payload that passed
    :func:`shape_sql`) and :func:`derived_sql`. Needs :func:`install_macros`.
    """
    a = assumptions
    j = fields
    id_ok = f"coalesce(regexp_matches({source_id}, '[[:alnum:]]'), false)"
    if kind == "invoice":
        value_ok = f"""coalesce(
            {j}.type IN {_in(InvoiceType)} AND {_one_of(j + '.currency', a.currencies)}
            AND {j}.uniqueSourceInvoiceId = {source_id}
            AND {_datetime_ok(j + '.invoiceDate')} AND {_datetime_ok(j + '.dueDate')}
            AND ({j}.collectionNoticeDate IS NULL
                 OR {_datetime_ok(j + '.collectionNoticeDate')})
            AND {j}.dueDate >= {j}.invoiceDate
            AND {_blank_or(j + '.ocrReferenceNumber',
                           _kid_ok(j + '.ocrReferenceNumber', derived, a))}
            AND list_count({derived}.claim_amounts) = len({j}.claims)
            AND list_sum({derived}.claim_amounts) > 0
            AND coalesce(list_sum(list_transform({j}.claims, lambda c:
                    CASE WHEN c.type = 'PRINCIPAL' THEN c.remainingAmount ELSE 0 END)), 0)
                <= {j}.originalInvoiceAmount
            AND CASE WHEN {derived}.simple
                THEN {_debtor_ok(derived + '.debtor', a, single=derived)}
                     AND {_debtor_ids_ok(derived, derived + '.debtor.type')}
                ELSE list_bool_and(list_transform({j}.debtors, lambda d: {_debtor_ok('d', a)}))
                     AND list_bool_and(list_transform({derived}.debtors,
                                                      lambda n: {_debtor_ids_ok('n', 'n.kind')}))
                END,
            false)"""
    elif kind == "payment":
        value_ok = f"""coalesce(
            {j}.type IN {_in(PaymentType)} AND {_one_of(j + '.currency', a.currencies)}
            AND {j}.uniqueSourcePaymentId = {source_id} AND {j}.amount > 0
            AND {_datetime_ok(j + '.date')}, false)"""
    else:
        raise ValueError(f"no SQL checks for {kind!r}")
    # a CASE evaluates its condition as a filter (conjuncts on the rows still in question),
    # which is cheaper than a projected AND
    return f"CASE WHEN {id_ok} AND {value_ok} THEN true ELSE false END"
