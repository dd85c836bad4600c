"""The SQL checks against their references: python-stdnum, email_validator, validate_object.

The submission lets a row skip the Python validation only when the SQL proves it valid, so
the property that matters is soundness: whatever the SQL accepts, the Python rules accept
too. The check-digit macros are also held *equal* to python-stdnum on plain digit strings,
so the fast path is not just sound but used.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.no import fodselsnummer, kontonr, orgnr

from amili import jsonio
from amili.contract import DEFAULT_CONTRACT
from amili.examples import example_invoice
from amili.models import Payment, PaymentType
from amili.pipeline import sql_checks
from amili.validation import is_plain_email, kid_mod11_check_digit, payload_problems

# Each example is one query over a batch of values; the expressions are large, so examples
# are kept few and each carries many values.
checks = settings(deadline=None, max_examples=40,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as connection:
        sql_checks.install_macros(connection)
        yield connection


def sql_values(con: duckdb.DuckDBPyConnection, expression: str, values: Sequence[str]) -> list:
    """``expression`` (over ``v``) for every value, in one query."""
    rows = con.execute(
        f"SELECT i, {expression} FROM (SELECT unnest($v) AS v, generate_subscripts($v, 1) AS i) "
        "ORDER BY i", {"v": list(values)},
    ).fetchall()
    return [bool(ok) for _, ok in rows]


DIGITS = st.text(st.sampled_from("0123456789"), min_size=1, max_size=27)
NOISE = st.text(st.sampled_from("0123456789 -.:x\u0661"), max_size=14)  # separators, Arabic 1


def with_check(body: str, digit: str | None) -> str:
    return body + (digit if digit is not None else "0")


def with_check_digits(body: str) -> str:
    """A fødselsnummer's nine first digits with its two check digits (stdnum's)."""
    body += fodselsnummer.calc_check_digit1(body)[-1]
    return body + fodselsnummer.calc_check_digit2(body)[-1]


@st.composite
def fodselsnumre(draw: st.DrawFn) -> str:
    """Well-formed numbers (real birth dates, D- and H-numbers, every century rule) with
    correct check digits, so the SQL's "valid" branch is exercised, not only refusals."""
    born = draw(st.dates(date(1855, 1, 1), date.today() + timedelta(days=30)))
    day, month = born.day + draw(st.sampled_from([0, 40])), born.month + draw(
        st.sampled_from([0, 0, 40]))
    century = born.year // 100
    individual = {18: draw(st.integers(500, 749)), 19: draw(st.integers(0, 499)),
                  20: draw(st.integers(500, 999))}[century]
    return with_check_digits(f"{day:02d}{month:02d}{born.year % 100:02d}{individual:03d}")


def with_orgnr_check(body: str) -> str | None:
    """An organisation number's eight first digits with its check digit (None: it would be
    10, no valid number has this body)."""
    total = sum(w * int(d) for w, d in zip((3, 2, 7, 6, 5, 4, 3, 2), body, strict=True))
    check = (11 - total % 11) % 11
    return None if check == 10 else body + str(check)


def with_wrong_check(number: str) -> str:
    """The number with its last (check) digit changed: no longer valid."""
    return number[:-1] + str((int(number[-1]) + 1) % 10)


ORGNUMRE = (st.from_regex(r"[0-9]{8}", fullmatch=True).map(with_orgnr_check)
            .filter(lambda number: number is not None))


@checks
@given(values=st.lists(DIGITS | NOISE | st.from_regex(r"[0-9]{9}", fullmatch=True), max_size=40))
@example(values=["974760673", "123456785", "123456789", "", " 974760673"])
def test_orgnr_macro_equals_stdnum(con: duckdb.DuckDBPyConnection, values: list[str]) -> None:
    got = sql_values(con, "coalesce(amili_orgnr_ok(v), false)", values)
    for value, ok in zip(values, got, strict=True):
        if value.isascii() and value.isdigit():
            assert ok == orgnr.is_valid(value), value
        else:
            assert not ok or orgnr.is_valid(value), value  # sound: never more than stdnum


@checks
@given(values=st.lists(fodselsnumre() | DIGITS | NOISE, max_size=40))
@example(values=["15108695088", "15108695077", "41018036736", "01010150089"])
def test_fodselsnummer_macro_equals_stdnum(
    con: duckdb.DuckDBPyConnection, values: list[str]
) -> None:
    got = sql_values(con, "coalesce(amili_fnr_ok(v), false)", values)
    recent = date.today() - timedelta(days=2)
    for value, ok in zip(values, got, strict=True):
        if value.isascii() and value.isdigit() and fodselsnummer.is_valid(value):
            # the SQL wants the birth date two days old (time zones); otherwise equal
            born = fodselsnummer.get_birth_date(value)
            assert ok == (born <= recent), value
        else:
            assert not ok, value


def test_fodselsnummer_macro_knows_every_month_s_last_day_and_the_leap_years(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """Every month's last day and the day after, in leap and common years of each century
    rule (1900 is not leap, 2000 is), as plain, D- and H-numbers, around "two days ago": the
    birth-date arithmetic is held to stdnum on the dates where it could go wrong."""
    recent = date.today() - timedelta(days=2)
    # (year, individual number): 1854-1899, 1900-1999 (two ways), 2000-2039
    years = [(1856, 600), (1899, 500), (1900, 100), (1900, 950), (1904, 400), (1999, 949),
             (2000, 500), (2000, 950), (2004, 700), (2023, 800), (recent.year, 999)]
    values = []
    for year, individual in years:
        for month in range(1, 13):
            last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
            for day in (1, last, last + 1, 31, 32):
                for d_add, m_add in ((0, 0), (40, 0), (0, 40)):
                    values.append(with_check_digits(
                        f"{day + d_add:02d}{month + m_add:02d}{year % 100:02d}{individual:03d}"))
    values += [with_check_digits(f"{d:%d%m%y}500") for d in
               (recent - timedelta(days=1), recent, recent + timedelta(days=1))]
    got = sql_values(con, "coalesce(amili_fnr_ok(v), false)", values)
    for value, ok in zip(values, got, strict=True):
        expected = fodselsnummer.is_valid(value) and fodselsnummer.get_birth_date(value) <= recent
        assert ok == expected, value
    assert sum(got) > len(values) // 3  # most are real dates: the valid branch is exercised


@checks
@given(values=st.lists(DIGITS | NOISE, max_size=40), extra=st.lists(DIGITS, max_size=10))
def test_kid_macros_equal_luhn_and_the_mod11_rule(
    con: duckdb.DuckDBPyConnection, values: list[str], extra: list[str]
) -> None:
    # half of the extra ones get a correct check digit of each kind
    values = [*values, *(with_check(b, luhn.calc_check_digit(b)) for b in extra),
              *(with_check(b, kid_mod11_check_digit(b)) for b in extra)]
    mod10 = sql_values(con, "coalesce(amili_luhn_ok(v), false)", values)
    mod11 = sql_values(con, "coalesce(amili_kid_mod11_ok(v), false)", values)
    for value, ok10, ok11 in zip(values, mod10, mod11, strict=True):
        plain = value.isascii() and value.isdigit() and len(value) <= 30
        assert ok10 == (plain and luhn.is_valid(value)), value
        expected11 = plain and len(value) >= 2 and kid_mod11_check_digit(value[:-1]) == value[-1]
        assert ok11 == expected11, value


@checks
@given(values=st.lists(DIGITS | NOISE | st.from_regex(r"[0-9]{11}", fullmatch=True),
                       max_size=40))
@example(values=["86011117947", "00001234567", "12345678903"])
def test_kontonr_macro_is_stdnum_without_the_postgiro_form(
    con: duckdb.DuckDBPyConnection, values: list[str]
) -> None:
    got = sql_values(con, "coalesce(amili_kontonr_ok(v), false)", values)
    for value, ok in zip(values, got, strict=True):
        if value.isascii() and value.isdigit() and len(value) == 11 and value[:4] != "0000":
            assert ok == kontonr.is_valid(value), value
        else:
            assert not ok or kontonr.is_valid(value), value


def email_ok(value: str) -> bool:
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


@checks
@given(values=st.lists(st.emails() | st.text(max_size=30) | st.from_regex(
    r"[a-z0-9_+.-]{1,12}@[a-z0-9.-]{1,20}\.(no|com|test|local|xn--p1ai|a1)", fullmatch=True),
    max_size=30))
@example(values=["ola.nordmann@example.no", "a..b@x.no", "a@b-.no", "a@ab--cd.no",
                 "x@localhost", "Ola@Example.NO", "a@x.test"])
def test_email_macro_accepts_only_what_email_validator_accepts(
    con: duckdb.DuckDBPyConnection, values: list[str]
) -> None:
    got = sql_values(con, "coalesce(amili_email_ok(v), false)", values)
    for value, ok in zip(values, got, strict=True):
        assert not ok or email_ok(value), value
    assert sql_values(con, "amili_email_ok(v)", ["ola.nordmann@example.no"]) == [True]


@checks
@given(values=st.lists(st.emails() | st.text(max_size=30) | st.from_regex(
    r"[a-z0-9_+.-]{1,70}@[a-z0-9.-]{1,20}\.(no|com|test|local|onion|xn--p1ai|a1)\n?",
    fullmatch=True), max_size=30))
@example(values=["ola.nordmann@example.no", "a..b@x.no", "a@b-.no", "a@ab--cd.no", "a@x.test",
                 "a@x.test\n", "ola@example.no\n", "a" * 65 + "@x.no", "a" * 64 + "@x.no",
                 "x@localhost", "Ola@Example.NO", "a--b@x.no"])
def test_the_python_plain_e_mail_form_is_the_sql_one(
    con: duckdb.DuckDBPyConnection, values: list[str]
) -> None:
    """The validation skips email_validator for the plain form the SQL proves; the two say
    the same of every value, so the test above holds the Python form to email_validator."""
    got = sql_values(con, "coalesce(amili_email_ok(v), false)", values)
    for value, ok in zip(values, got, strict=True):
        assert is_plain_email(value) == ok, value
        assert not ok or email_ok(value), value


# --------------------------------------------------------------------------------------------
# Whole objects: SQL "proven" implies the Python validation has no problem with them
# --------------------------------------------------------------------------------------------


def base_invoice() -> dict[str, Any]:
    return jsonio.to_jsonable(example_invoice("INV-1"))


def base_payment() -> dict[str, Any]:
    return jsonio.to_jsonable(Payment(
        invoiceId="3fa85f64-5717-4562-b3fc-2c963f66afa6", type=PaymentType.DIRECT_PAYMENT,
        amount=Decimal("250.00"), currency="NOK", date="2026-11-23T00:00:00.000Z",
        uniqueSourcePaymentId="PAY-1"))


TRICKY: list[Any] = [
    None, "", " ", "x", "NOK", "XXX", "HRK", "nok", 0, 1, -1, True, "true", [], {}, [None],
    Decimal("0"), Decimal("0.001"), Decimal("-5.00"), Decimal("12345678901234567.00"),
    Decimal("1E+2"), Decimal("99.99"), "2026-10-01", "2026-02-30T00:00:00.000Z",
    "2026-10-01T00:00:00Z", "2026-09-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z",
    "1002003000", "1002003001", "0000000000", "15108695077", "15108695088", "974760673",
    "123456789", "ola@example.no", "not an address", "a@b.local", "PRIVATE", "COMPANY",
    "PERSON", "PRINCIPAL", "FEE", "INTEREST", "4008", "408", "SE", "no", "INV-1", "INV-2",
    "DIRECT_PAYMENT", "PAYMENT_REMINDER", "NOTICE", "ÆØÅ", "\u00a0", "a\"b\\c\n",
]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path into a JSON value (dict keys and list indexes)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


def mutate(value: dict[str, Any], edits: list[tuple[int, int, int]]) -> dict[str, Any]:
    """Apply edits (which path, what to do, which tricky value) to a copy."""
    value = copy.deepcopy(value)
    for which, action, tricky in edits:
        options = list(paths(value))
        if not options:
            break
        path = options[which % len(options)]
        parent = value
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if action == 0 and isinstance(parent, dict):
            del parent[last]
        elif action == 1 and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        else:
            parent[last] = copy.deepcopy(TRICKY[tricky % len(TRICKY)])
    return value


EDITS = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 4), st.integers(0, 200)),
                 max_size=3)


def proven(con: duckdb.DuckDBPyConnection, kind: str, rows: list[tuple[str, str]],
           fast_path: bool = True) -> list:
    source = ("SELECT unnest($p) AS p, unnest($s) AS s, generate_subscripts($p, 1) AS i")
    query = sql_checks.proven_query(kind, source, "p", "s", fast_path=fast_path)
    result = con.execute(
        f"SELECT i, ok FROM ({query}) ORDER BY i",
        {"p": [p for p, _ in rows], "s": [s for _, s in rows]},
    ).fetchall()
    return [bool(ok) for _, ok in result]


@checks
@given(edits=st.lists(EDITS, min_size=1, max_size=40))
def test_an_invoice_the_sql_proves_valid_is_valid_for_the_python_rules(
    con: duckdb.DuckDBPyConnection, edits: list[list[tuple[int, int, int]]]
) -> None:
    base = base_invoice()
    rows = [(jsonio.dumps(mutate(base, e)).decode(), "INV-1") for e in edits]
    for (payload, source_id), ok in zip(rows, proven(con, "invoice", rows), strict=True):
        if ok:
            assert payload_problems("invoice", payload) == [], payload
            assert json.loads(payload)["uniqueSourceInvoiceId"] == source_id


@checks
@given(edits=st.lists(EDITS, min_size=1, max_size=40))
def test_a_payment_the_sql_proves_valid_is_valid_for_the_python_rules(
    con: duckdb.DuckDBPyConnection, edits: list[list[tuple[int, int, int]]]
) -> None:
    base = base_payment()
    rows = [(jsonio.dumps(mutate(base, e)).decode(), "PAY-1") for e in edits]
    for (payload, source_id), ok in zip(rows, proven(con, "payment", rows), strict=True):
        if ok:
            assert payload_problems("payment", payload) == [], payload
            assert json.loads(payload)["uniqueSourcePaymentId"] == source_id


def with_key_after(obj: dict[str, Any], after: str, key: str, value: Any) -> dict[str, Any]:
    """A copy of ``obj`` with ``key`` inserted right after ``after`` (the model's key order,
    which the shape regex wants)."""
    result: dict[str, Any] = {}
    for k, v in obj.items():
        result[k] = v
        if k == after:
            result[key] = value
    return result


def debtor_edits(edits: list[list[tuple[int, int, int]]]) -> list[tuple[str, str]]:
    """Invoices whose debtors (a person's or a company's) got the edits, as (payload, id)."""
    base = base_invoice()
    # each carries the other kind's number as null, so an edit can give it one (a valid
    # personal number to the company, a valid organisation number to the person: TRICKY)
    company = {"type": "COMPANY", "name": "Fjord AS", "identificationNumber": None,
               "organizationNumber": "974760673", "emails": [],
               "addresses": [{"street": "Kaigata 1", "city": "Bergen", "zipCode": "5003"}]}
    person = with_key_after(base["debtors"][0], "identificationNumber",
                            "organizationNumber", None)
    rows = []
    for k, e in enumerate(edits):
        invoice = copy.deepcopy(base)
        debtors = {"debtors": [person if k % 2 else company]}
        invoice["debtors"] = mutate(debtors, e).get("debtors")  # (None: the edit dropped it)
        rows.append((jsonio.dumps(invoice).decode(), "INV-1"))
    return rows


def assert_fast_path_agrees(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str]]) -> None:
    """The one-debtor fast path and the per-debtor lists give the same verdict on every row,
    as JSON and as typed objects."""
    assert proven(con, "invoice", rows) == proven(con, "invoice", rows, fast_path=False)
    source = f"""SELECT i, s, TRY_CAST(p::JSON AS {sql_checks.OBJECT_TYPES['invoice']}) AS o
                 FROM (SELECT unnest($p) AS p, unnest($s) AS s,
                              generate_subscripts($p, 1) AS i)"""
    verdicts = [
        con.execute(
            f"""SELECT list(ok ORDER BY i) FROM ({sql_checks.typed_proven_query(
                    'invoice', source, 'o', 's', fast_path=fast)})""",
            {"p": [p for p, _ in rows], "s": [s for _, s in rows]},
        ).fetchone()
        for fast in (True, False)
    ]
    assert verdicts[0] == verdicts[1]


def test_the_one_debtor_fast_path_agrees_on_every_single_edit_of_a_debtor(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """An invoice with one debtor (at most one e-mail, one address) is checked by plain
    expressions; every other shape by lambdas over the lists. Every edit of one place in a
    debtor (dropped, repeated, or any tricky value) gets the same verdict both ways."""
    edits = [[(which, action, tricky)] for which in range(20) for action in (0, 1)
             for tricky in (0,)]
    edits += [[(which, 2, tricky)] for which in range(20) for tricky in range(len(TRICKY))]
    rows = debtor_edits([e for e in edits for _ in (0, 1)])  # each on both debtors
    assert len({p for p, _ in rows}) > 1000
    assert_fast_path_agrees(con, rows)


@checks
@given(edits=st.lists(EDITS, min_size=1, max_size=40))
def test_the_one_debtor_fast_path_agrees_on_combined_edits(
    con: duckdb.DuckDBPyConnection, edits: list[list[tuple[int, int, int]]]
) -> None:
    assert_fast_path_agrees(con, debtor_edits(edits))


ABSENT: Any = object()
"""A key left out of the object (not null)."""

#: Identity numbers of either kind, valid or not, and the forms of "none".
IDENTITIES = st.one_of(
    st.just(ABSENT), st.none(), st.sampled_from(["", " ", "\u00a0"]),
    fodselsnumre(), fodselsnumre().map(with_wrong_check),
    ORGNUMRE, ORGNUMRE.map(with_wrong_check), DIGITS, NOISE,
)


@st.composite
def typed_debtors(draw: st.DrawFn) -> dict[str, Any]:
    """A debtor of either type with either kind of number (or none) in either field; names
    for a person, a company or both; otherwise valid. Keys in the model's order."""
    debtor: dict[str, Any] = {"type": draw(st.sampled_from(["PRIVATE", "COMPANY"]))}
    names = draw(st.sampled_from(["person", "company", "both"]))
    if names != "company":
        debtor.update(firstname="Kari", lastname="Nordmann")
    if names != "person":
        debtor["name"] = "Fjord AS"
    for key in ("identificationNumber", "organizationNumber"):
        value = draw(IDENTITIES)
        if value is not ABSENT:
            debtor[key] = value
    debtor.update(emails=[], phoneNumbers=[],  # (lists, not null: so the typed path proves)
                  addresses=[{"street": "Kaigata 1", "city": "Bergen", "zipCode": "5003"}])
    return debtor


def with_debtors(debtors: list[dict[str, Any]]) -> tuple[str, str]:
    invoice = base_invoice()
    invoice["debtors"] = debtors
    return jsonio.dumps(invoice).decode(), "INV-1"


def plain_identities(debtors: list[dict[str, Any]]) -> bool:
    """Every identity number is null, '' or ASCII digits, and none is a personal number of
    someone born less than two days ago: the forms where the SQL must decide as Python does."""
    recent = date.today() - timedelta(days=2)
    for debtor in debtors:
        for key in ("identificationNumber", "organizationNumber"):
            value = debtor.get(key)
            if value is None or value == "":
                continue
            if not (value.isascii() and value.isdigit()):
                return False
            if (key == "identificationNumber" and fodselsnummer.is_valid(value)
                    and fodselsnummer.get_birth_date(value) > recent):
                return False
    return True


@checks
@given(invoices=st.lists(st.lists(typed_debtors(), min_size=1, max_size=2),
                         min_size=1, max_size=40))
def test_identity_numbers_of_either_kind_on_debtors_of_either_type(
    con: duckdb.DuckDBPyConnection, invoices: list[list[dict[str, Any]]]
) -> None:
    """Sound: what the SQL proves, Python accepts (a company with a personal number, a
    person with an organisation number are not proven). And not lazy: in the plain forms
    the SQL proves every invoice Python accepts, so the type rule keeps the fast path."""
    rows = [with_debtors(debtors) for debtors in invoices]
    verdicts = proven(con, "invoice", rows)
    for (payload, _), ok, debtors in zip(rows, verdicts, invoices, strict=True):
        accepted = payload_problems("invoice", payload) == []
        if ok:
            assert accepted, payload
        elif plain_identities(debtors):
            assert not accepted, payload
    assert_fast_path_agrees(con, rows)
    for payload, typed_shape, regex_shape, ok in typed_verdicts(con, "invoice", rows):
        assert typed_shape == regex_shape, payload
        if ok:
            assert payload_problems("invoice", payload) == [], payload


FNR, ORGNR = "15108695088", "974760673"


def test_the_identity_number_must_be_of_the_debtor_s_kind(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """Every type with every kind of number in either field (or none): Python accepts a
    COMPANY with an organisation number and no personal number, a PRIVATE debtor with no
    organisation number (a personal number optional), and the SQL proves exactly those,
    on both paths and typed."""
    nothing = (ABSENT, None, "")
    cases, expected = [], []
    for kind in ("PRIVATE", "COMPANY"):
        for fnr in (*nothing, FNR, ORGNR):
            for org in (*nothing, ORGNR, FNR):
                debtor = {"type": kind, "firstname": "Kari", "lastname": "Nordmann",
                          "name": "Fjord AS"}
                for key, value in (("identificationNumber", fnr), ("organizationNumber", org)):
                    if value is not ABSENT:
                        debtor[key] = value
                debtor.update(emails=[], phoneNumbers=[], addresses=[
                    {"street": "Kaigata 1", "city": "Bergen", "zipCode": "5003"}])
                cases.append(with_debtors([debtor]))
                if kind == "COMPANY":
                    expected.append(fnr in nothing and org == ORGNR)
                else:
                    expected.append(org in nothing and fnr in (*nothing, FNR))
    # COMPANY: no fnr in 3 ways, with ORGNR; PRIVATE: no org in 3 ways, times 4 fnr values
    assert sum(expected) == 3 + 3 * 4
    assert [payload_problems("invoice", p) == [] for p, _ in cases] == expected
    assert proven(con, "invoice", cases) == expected
    assert proven(con, "invoice", cases, fast_path=False) == expected
    typed = typed_verdicts(con, "invoice", cases)
    assert len(typed) == len(cases) and [ok for *_, ok in typed] == expected
    # a second debtor of the wrong kind sinks the invoice on the list path too
    good, bad = (json.loads(cases[expected.index(True)][0])["debtors"][0],
                 json.loads(cases[expected.index(False)][0])["debtors"][0])
    two = [with_debtors([good, good]), with_debtors([good, bad])]
    assert proven(con, "invoice", two) == [True, False]


def test_an_identity_number_of_the_wrong_kind_is_refused_in_the_sandbox_s_words() -> None:
    company = {"type": "COMPANY", "name": "Fjord AS", "identificationNumber": FNR,
               "addresses": [{"street": "Kaigata 1", "city": "Bergen", "zipCode": "5003"}]}
    person = {**company, "type": "PRIVATE", "identificationNumber": ORGNR}
    assert payload_problems("invoice", with_debtors([company])[0]) == [
        "invoice.debtors[0].identificationNumber: a COMPANY debtor carries an organisation "
        "number, not a personal number",
        "invoice.debtors[0].organizationNumber: a COMPANY debtor needs an organisation number "
        "(organisasjonsnummer)",
    ]
    assert payload_problems("invoice", with_debtors([person])[0]) == [
        f"invoice.debtors[0].identificationNumber: '{ORGNR}' is not a valid Norwegian national "
        "identity number (fødselsnummer)",
    ]
    person = {**person, "identificationNumber": None, "organizationNumber": ORGNR}
    assert payload_problems("invoice", with_debtors([person])[0]) == [
        "invoice.debtors[0].organizationNumber: a PRIVATE debtor carries no organisation "
        "number (a company is a COMPANY debtor)",
    ]


def test_the_plain_forms_are_proven_so_the_fast_path_is_used(
    con: duckdb.DuckDBPyConnection,
) -> None:
    invoice = base_invoice()
    company = copy.deepcopy(invoice)
    company["debtors"][0] = {"type": "COMPANY", "name": "Fjord AS",
                             "organizationNumber": "974760673",
                             "addresses": [{"street": "Kaigata 1", "city": "Bergen",
                                            "zipCode": "5003"}]}
    abroad = copy.deepcopy(invoice)
    abroad["debtors"][0]["addresses"][0].update(zipCode="SW1A 1AA", countryCode="GB")
    # all the keys dbt writes, nulls included, in the model's order
    full = {"type": "NOTICE", "invoiceNumber": "1", "vat": None, "fees": True,
            **{k: v for k, v in invoice.items() if k not in ("type", "invoiceNumber")},
            "collectionNoticeDate": None}
    full = {k: full[k] for k in ("type", "invoiceNumber", "vat", "fees", "originalInvoiceAmount",
                                 "currency", "invoiceDate", "dueDate", "collectionNoticeDate",
                                 "ocrReferenceNumber", "uniqueSourceInvoiceId", "description",
                                 "debtors", "claims")}
    rows = [(jsonio.dumps(v).decode(), "INV-1") for v in (invoice, company, abroad, full)]
    assert proven(con, "invoice", rows) == [True, True, True, True]
    assert all(payload_problems("invoice", p) == [] for p, _ in rows)
    payment = (jsonio.dumps(base_payment()).decode(), "PAY-1")
    assert proven(con, "payment", [payment]) == [True]
    # and what it must leave to Python: a wrong id, a bad KID, a bad national id, a string amount
    bad = [
        (rows[0][0], "INV-2"),
        (rows[0][0].replace("1002003000", "1002003001"), "INV-1"),
        (rows[0][0].replace("15108695088", "15108695077"), "INV-1"),
        (rows[0][0].replace('"originalInvoiceAmount":1250.00',
                            '"originalInvoiceAmount":"1250.00"'), "INV-1"),
        # date-times DuckDB's TIMESTAMP cast takes (year 0 as 1 BC, 24:00 as the next day)
        # and Python refuses
        (rows[0][0].replace("2026-10-01T00:00:00.000Z", "0000-10-01T00:00:00.000Z"), "INV-1"),
        (rows[0][0].replace("2026-10-15T00:00:00.000Z", "2026-10-15T24:00:00.000Z"), "INV-1"),
    ]
    assert all(payload_problems("invoice", p) for p, _ in bad[1:])
    assert proven(con, "invoice", bad) == [False] * len(bad)


def test_every_currency_and_only_those_is_proven_as_python_accepts_it(
    con: duckdb.DuckDBPyConnection,
) -> None:
    currencies = sorted(DEFAULT_CONTRACT.currencies)
    others = ["nok", "NOKK", "NO", "", " NOK", "NOK ", "N.K", "NOK|SEK", "AED|AFN", "(NOK)",
              "N'K", "\\d{3}", "ÅÆØ", None]
    for kind, base in (("invoice", base_invoice()), ("payment", base_payment())):
        source_id = base["uniqueSourceInvoiceId" if kind == "invoice" else "uniqueSourcePaymentId"]
        payloads = [jsonio.dumps({**base, "currency": c}).decode() for c in currencies + others]
        verdicts = proven(con, kind, [(p, source_id) for p in payloads])
        assert verdicts[:len(currencies)] == [True] * len(currencies), kind
        assert verdicts[len(currencies):] == [False] * len(others), kind
        assert all(payload_problems(kind, p) for p in payloads[len(currencies):]), kind


# --------------------------------------------------------------------------------------------
# Typed objects: the STRUCT dbt serializes, checked without its JSON
# --------------------------------------------------------------------------------------------


def typed_verdicts(
    con: duckdb.DuckDBPyConnection, kind: str, rows: list[tuple[str, str]]
) -> list[tuple[str, bool, bool, bool]]:
    """Each payload as a typed object (rows whose JSON does not fit the type are left out):
    (to_json of the object, typed shape, the regex shape of that JSON, typed proven)."""
    source = f"""SELECT i, s, TRY_CAST(p::JSON AS {sql_checks.OBJECT_TYPES[kind]}) AS o
                 FROM (SELECT unnest($p) AS p, unnest($s) AS s,
                              generate_subscripts($p, 1) AS i)"""
    result = con.execute(
        f"""SELECT i, to_json(o)::VARCHAR, {sql_checks.typed_shape_sql(kind, 'o')},
                   {sql_checks.shape_sql(kind, 'to_json(o)::VARCHAR')}, ok
            FROM ({sql_checks.typed_proven_query(kind, source, 'o', 's')})
            WHERE o IS NOT NULL ORDER BY i""",
        {"p": [p for p, _ in rows], "s": [s for _, s in rows]},
    ).fetchall()
    return [(payload, bool(typed), bool(regex), bool(ok))
            for _, payload, typed, regex, ok in result]


@checks
@given(edits=st.lists(EDITS, min_size=1, max_size=40))
@pytest.mark.parametrize("kind", ["invoice", "payment"])
def test_a_typed_object_the_sql_proves_valid_serializes_to_a_valid_payload(
    con: duckdb.DuckDBPyConnection, kind: str, edits: list[list[tuple[int, int, int]]]
) -> None:
    base, source_id = (base_invoice(), "INV-1") if kind == "invoice" else (base_payment(),
                                                                             "PAY-1")
    rows = [(jsonio.dumps(mutate(base, e)).decode(), source_id) for e in edits]
    for payload, typed_shape, regex_shape, ok in typed_verdicts(con, kind, rows):
        # the typed shape says what the regex says of the JSON to_json writes ...
        assert typed_shape == regex_shape, payload
        # ... and what the typed checks prove, the Python rules accept (what is sent is
        # exactly to_json of the object: the batch_*_json views define payload so)
        if ok:
            assert payload_problems(kind, payload) == [], payload


def test_a_typed_list_with_a_null_element_is_not_of_the_shape(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """to_json writes a NULL element as null, which no model takes: the typed shape says so
    for every list of the invoice, as the regex does of the JSON."""
    base = base_invoice()
    debtor = base["debtors"][0]
    phone = {"countryCode": "+47", "originalValue": "+4790000000", "value": "90000000"}
    variants = {
        "phone": {"phoneNumbers": [None]},
        "second phone": {"phoneNumbers": [phone, None]},
        "address": {"addresses": [*debtor["addresses"], None]},
        "e-mail": {"emails": [None]},
        "phones as null": {"phoneNumbers": None},
    }
    rows = []
    for edit in variants.values():
        invoice = copy.deepcopy(base)
        invoice["debtors"][0].update(edit)
        rows.append((jsonio.dumps(invoice).decode(), "INV-1"))
    with_phone = copy.deepcopy(base)
    with_phone["debtors"][0]["phoneNumbers"] = [phone, phone]
    claims = copy.deepcopy(base)
    claims["claims"].append(None)
    rows += [(jsonio.dumps(claims).decode(), "INV-1"), (jsonio.dumps(with_phone).decode(), "INV-1")]
    verdicts = typed_verdicts(con, "invoice", rows)
    assert len(verdicts) == len(rows)
    for payload, typed_shape, regex_shape, ok in verdicts[:-1]:
        assert (typed_shape, regex_shape, ok) == (False, False, False), payload
    assert verdicts[-1][1:] == (True, True, True)  # two phones, none NULL: of the shape


def test_each_defect_of_the_claims_is_left_to_python_on_both_paths(
    con: duckdb.DuckDBPyConnection,
) -> None:
    base = base_invoice()
    principal = base["claims"][0]
    fee = {"type": "FEE", "remainingAmount": Decimal("35.00")}
    defects = {
        "unknown type": [fee, {**principal, "type": "PENALTY"}],
        "lower-case type": [{**principal, "type": "principal"}],
        "no type": [fee, {**principal, "type": None}],
        "no amount": [{**principal, "remainingAmount": None}, fee],
        "negative amount": [{**principal, "remainingAmount": Decimal("-1.00")}],
        "amounts summing to zero": [{**principal, "remainingAmount": Decimal("0.00")}],
        "principal above the invoice": [{**principal, "remainingAmount": Decimal("1250.01")}],
    }
    good = [fee, principal, {"type": "INTEREST", "remainingAmount": Decimal("0.00")}]
    payloads = [jsonio.dumps({**base, "claims": claims}).decode()
                for claims in [*defects.values(), good]]
    assert all(payload_problems("invoice", p) for p in payloads[:-1])
    assert payload_problems("invoice", payloads[-1]) == []
    rows = [(p, "INV-1") for p in payloads]
    expected = [False] * len(defects) + [True]
    assert proven(con, "invoice", rows) == expected
    assert proven(con, "invoice", rows, fast_path=False) == expected
    typed = typed_verdicts(con, "invoice", rows)
    assert len(typed) == len(rows) and [ok for *_, ok in typed] == expected


def test_the_dbt_views_hand_over_objects_of_the_pinned_types(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """A change to the views' STRUCTs must be a change here too, or the typed path is off."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "batch"
    for kind in ("invoice", "payment"):
        sql = (root / f"batch_{kind}s_json.sql").read_text()
        assert f"to_json({kind}_object) as payload" in sql
        con.execute(f"CREATE OR REPLACE TEMP TABLE typed_{kind} AS "
                    f"SELECT NULL::{sql_checks.OBJECT_TYPES[kind]} AS {kind}_object")
        assert sql_checks.typed_object_column(con, f"typed_{kind}", kind) == f"{kind}_object"
        con.execute(f"CREATE OR REPLACE TEMP TABLE untyped_{kind} AS "
                    f"SELECT NULL::JSON AS {kind}_object")
        assert sql_checks.typed_object_column(con, f"untyped_{kind}", kind) is None
