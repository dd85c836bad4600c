"""The demo warehouse: deterministic, valid where it should be, broken exactly where it says.

python-stdnum (and email-validator) are the references the generated identifiers are held
against; the generator computes its check digits itself, in SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.no import fodselsnummer, kontonr, orgnr

from amili.warehouse import (
    DEFECT_KINDS,
    TABLES,
    default_end_date,
    export_parquet,
    generate_demo_warehouse,
)
from amili.warehouse import demo_data as nd
from amili.warehouse.demo import CUSTOMER_DEFECTS, OSLO, SCHEMA

END = date(2025, 11, 24)
DAYS = 6
PER_DAY = 160
BAD_SHARE = 0.1
SEED = 7
ARGS = {
    "days": DAYS,
    "invoices_per_day": PER_DAY,
    "bad_share": BAD_SHARE,
    "seed": SEED,
    "end_date": END,
}


def mod11_kid_is_valid(kid: str) -> bool:
    """Reference MOD11 KID check, written independently of the generator."""
    if not kid.isdigit() or len(kid) < 2:
        return False
    body, check = kid[:-1], int(kid[-1])
    weights = [2, 3, 4, 5, 6, 7]
    total = sum(int(d) * weights[i % 6] for i, d in enumerate(reversed(body)))
    remainder = 11 - total % 11
    if remainder == 11:
        remainder = 0
    return remainder != 10 and remainder == check


def is_valid(module: object, value: str | None) -> bool:
    return value is not None and module.is_valid(value)  # type: ignore[attr-defined]


def email_ok(value: str | None) -> bool:
    if value is None:
        return False
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def table_digest(con: duckdb.DuckDBPyConnection, source: str) -> tuple[int, str]:
    """Row count and an order-independent fingerprint of every value of ``source``."""
    row = con.execute(
        f"SELECT count(*), md5(coalesce(string_agg(t::VARCHAR, '|' ORDER BY t::VARCHAR), ''))"
        f" FROM {source} t"
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def digests(path: Path) -> dict[str, tuple[int, str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: table_digest(con, t) for t in TABLES}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wh") / "nested" / "warehouse.duckdb"
    summary = generate_demo_warehouse(path, **ARGS)  # type: ignore[arg-type]
    assert summary.path == path
    return path


@pytest.fixture
def con(warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        yield connection


def defects_of(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT invoice_id, defect FROM demo_defects").fetchall())


def clean_customer_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Customers not attached to a customer-level defect."""
    rows = con.execute(
        """SELECT customer_id FROM customers EXCEPT
           SELECT i.customer_id FROM invoices i JOIN demo_defects d USING (invoice_id)
           WHERE list_contains($kinds, d.defect)""", {"kinds": sorted(CUSTOMER_DEFECTS)}
    ).fetchall()
    return {r[0] for r in rows}


# --------------------------------------------------------------------------------------------
# Determinism and files
# --------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_tables_and_other_seed_differs(
    warehouse: Path, tmp_path: Path
) -> None:
    again = generate_demo_warehouse(tmp_path / "again.duckdb", **ARGS)  # type: ignore[arg-type]
    other = generate_demo_warehouse(
        tmp_path / "other.duckdb", **{**ARGS, "seed": SEED + 1}  # type: ignore[arg-type]
    )
    first = digests(warehouse)
    assert digests(again.path) == first
    different = digests(other.path)
    for table in ("customers", "invoices", "invoice_lines", "payments", "demo_defects"):
        assert different[table] != first[table], table


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "w.duckdb"
    generate_demo_warehouse(target, days=1, invoices_per_day=20, end_date=END, seed=1)
    generate_demo_warehouse(target, days=2, invoices_per_day=20, end_date=END, seed=1)
    assert sorted(p.name for p in target.parent.iterdir()) == ["w.duckdb"]
    with duckdb.connect(str(target), read_only=True) as con:
        days = con.execute("SELECT count(DISTINCT due_date) FROM invoices"
                           " WHERE status = 'OPEN' AND NOT disputed").fetchone()
    assert days is not None and days[0] >= 2


def test_no_generator_objects_left_in_the_file(con: duckdb.DuckDBPyConnection) -> None:
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    ).fetchall()}
    assert tables == set(TABLES)
    macros = con.execute(
        "SELECT count(*) FROM duckdb_functions() WHERE database_name = current_database()"
        " AND NOT internal"
    ).fetchone()
    assert macros == (0,)


def test_summary(warehouse: Path, tmp_path: Path) -> None:
    summary = generate_demo_warehouse(tmp_path / "s.duckdb", **ARGS)  # type: ignore[arg-type]
    assert summary.first_collection_day == END - timedelta(days=DAYS - 1)
    assert summary.last_collection_day == END
    assert summary.eligible_invoices == DAYS * PER_DAY
    assert list(summary.defects) == list(DEFECT_KINDS)
    assert sum(summary.defects.values()) == round(BAD_SHARE * DAYS * PER_DAY)
    with duckdb.connect(str(summary.path), read_only=True) as con:
        for table, count in summary.row_counts.items():
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (count,)
    text = str(summary)
    assert str(summary.path) in text and "invoices" in text and "invalid_kid" in text


@pytest.mark.parametrize(
    "kwargs",
    [{"days": 0}, {"invoices_per_day": 0}, {"bad_share": 1.5}, {"creditors": 0},
     {"overdue_days": -1}, {"action_share": -0.1}],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        generate_demo_warehouse(tmp_path / "x.duckdb", **kwargs)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_default_end_date_is_yesterday_in_oslo() -> None:
    assert default_end_date() == datetime.now(OSLO).date() - timedelta(days=1)


def test_export_parquet_round_trips(warehouse: Path, tmp_path: Path) -> None:
    files = export_parquet(warehouse, tmp_path / "parquet")
    assert sorted(f.name for f in files) == sorted(f"{t}.parquet" for t in TABLES)
    assert sorted(p.name for p in (tmp_path / "parquet").iterdir()) == sorted(
        f.name for f in files
    )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for f in files:
            table = f.stem
            source = f"read_parquet('{f}')"
            assert table_digest(con, source) == table_digest(con, table), table
            assert (
                con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
                == con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()
            )


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


def test_schema_types_and_comments(con: duckdb.DuckDBPyConnection) -> None:
    for table, (_, columns) in SCHEMA.items():
        actual = con.execute(
            "SELECT column_name, data_type, comment FROM duckdb_columns()"
            " WHERE table_name = ? AND database_name = current_database()"
            " ORDER BY column_index",
            [table],
        ).fetchall()
        expected_types = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}
        assert [(n, t) for n, t, _ in actual] == [
            (n, expected_types.get(t, t)) for n, t, _ in columns
        ], table
        assert all(c for _, _, c in actual), table
    money = con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns()"
        " WHERE database_name = current_database() AND (column_name LIKE '%amount%')"
    ).fetchall()
    assert {(t, c) for t, c, _ in money} == {
        ("invoices", "amount"), ("invoices", "remaining_amount"), ("invoice_lines", "amount"),
        ("reminders", "fee_amount"), ("payments", "amount"),
    }
    assert {d for _, _, d in money} == {"DECIMAL(18,2)"}
    doubles = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database()"
        " AND data_type IN ('DOUBLE', 'FLOAT')"
    ).fetchone()
    assert doubles == (0,)


def test_ids_are_unique(con: duckdb.DuckDBPyConnection) -> None:
    for table, key in [
        ("creditors", "creditor_id"), ("customers", "customer_id"), ("invoices", "invoice_id"),
        ("payments", "payment_id"), ("invoice_lines", "invoice_id, line_no"),
        ("reminders", "invoice_id, reminder_no"), ("demo_defects", "invoice_id"),
        ("case_actions", "action_id"),
    ]:
        dupes = con.execute(
            f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()
        assert dupes == (0,), table
    people = con.execute(
        "SELECT count(*), count(DISTINCT national_id) FROM customers WHERE national_id IS NOT NULL"
    ).fetchone()
    assert people is not None and people[0] == people[1]
    companies = con.execute(
        "SELECT count(*), count(DISTINCT organization_number) FROM customers"
        " WHERE organization_number IS NOT NULL"
    ).fetchone()
    assert companies is not None and companies[0] == companies[1]


def test_foreign_keys_resolve(con: duckdb.DuckDBPyConnection) -> None:
    for child, parent, key in [
        ("customers", "creditors", "creditor_id"), ("invoices", "creditors", "creditor_id"),
        ("invoices", "customers", "customer_id"), ("invoice_lines", "invoices", "invoice_id"),
        ("reminders", "invoices", "invoice_id"), ("payments", "invoices", "invoice_id"),
        ("demo_defects", "invoices", "invoice_id"), ("case_actions", "invoices", "invoice_id"),
        ("case_actions", "creditors", "creditor_id"),
    ]:
        orphans = con.execute(
            f"SELECT count(*) FROM {child} c ANTI JOIN {parent} p USING ({key})"
        ).fetchone()
        assert orphans == (0,), (child, parent)
    cross = con.execute(
        "SELECT count(*) FROM invoices i JOIN customers c USING (customer_id)"
        " WHERE i.creditor_id <> c.creditor_id"
    ).fetchone()
    assert cross == (0,)
    cross = con.execute(
        "SELECT count(*) FROM case_actions a JOIN invoices i USING (invoice_id)"
        " WHERE a.creditor_id <> i.creditor_id"
    ).fetchone()
    assert cross == (0,)


# --------------------------------------------------------------------------------------------
# Valid identifiers on every good row (python-stdnum is the reference)
# --------------------------------------------------------------------------------------------


def test_creditors_are_valid(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        "SELECT organization_number, bank_account, iban, swift, email_invoice, contact_email,"
        " contact_phone, zip_code, kid_algorithm, collection_delay_days FROM creditors"
    ).fetchall()
    assert len(rows) == 3
    for org, account, iban, swift, mail, contact, phone, zip_code, _alg, delay in rows:
        assert orgnr.is_valid(org)
        assert kontonr.is_valid(account) and len(account) == 11
        assert std_iban.is_valid(iban) and iban == nd.iban_from_kontonr(account)
        assert re.fullmatch(r"[A-Z]{4}NO[A-Z0-9]{2}([A-Z0-9]{3})?", swift)
        assert email_ok(mail) and email_ok(contact)
        assert re.fullmatch(r"\+47\d{8}", phone) and re.fullmatch(r"\d{4}", zip_code)
        assert delay == 14
    assert {r[8] for r in rows} == {"MOD10", "MOD11"}


def test_good_customers_are_valid(con: duckdb.DuckDBPyConnection) -> None:
    clean = clean_customer_ids(con)
    rows = con.execute(
        "SELECT customer_id, customer_type, first_name, last_name, company_name, national_id,"
        " organization_number, date_of_birth, street, zip_code, city, country_code, email, phone"
        " FROM customers"
    ).fetchall()
    persons = companies = 0
    for (cid, kind, first, last, company, nid, org, born, street, zip_code, city, country,
         email, phone) in rows:
        if cid not in clean:
            continue
        if kind == "PERSON":
            persons += 1
            assert first and last and company is None and org is None
            assert fodselsnummer.is_valid(nid), nid
            assert fodselsnummer.get_birth_date(nid) == born
            assert fodselsnummer.get_gender(nid) in ("M", "F")
        else:
            assert kind == "COMPANY"
            companies += 1
            assert company and first is None and nid is None and born is None
            assert orgnr.is_valid(org), org
        assert street and city and country == "NO"
        assert re.fullmatch(r"\d{4}", zip_code)
        assert email_ok(email), email
        assert re.fullmatch(r"\+47\d{8}", phone)
    assert persons > companies > 0


def test_good_kids_are_valid_for_their_creditor(con: duckdb.DuckDBPyConnection) -> None:
    bad = defects_of(con)
    rows = con.execute(
        "SELECT i.invoice_id, i.kid, c.kid_algorithm FROM invoices i JOIN creditors c"
        " USING (creditor_id)"
    ).fetchall()
    seen = set()
    for invoice_id, kid, alg in rows:
        if bad.get(invoice_id) == "invalid_kid":
            continue
        seen.add(alg)
        assert kid.isdigit() and len(kid) <= 25
        if alg == "MOD10":
            assert luhn.is_valid(kid), kid
        else:
            assert mod11_kid_is_valid(kid), kid
    assert seen == {"MOD10", "MOD11"}


def test_payment_kids_match_their_invoice(con: duckdb.DuckDBPyConnection) -> None:
    mismatched = con.execute(
        "SELECT count(*) FROM payments p JOIN invoices i USING (invoice_id)"
        " WHERE p.kid IS DISTINCT FROM CASE WHEN p.method = 'CARD' THEN NULL ELSE i.kid END"
    ).fetchone()
    assert mismatched == (0,)


def test_names_are_norwegian(con: duckdb.DuckDBPyConnection) -> None:
    text = " ".join(
        str(v) for row in con.execute(
            "SELECT first_name, last_name, company_name, street, city FROM customers"
        ).fetchall() for v in row if v
    )
    for letter in "æøåÆØÅ":
        if letter.islower():
            assert letter in text.lower(), letter
    assert "Ø" in text or "Å" in text


# --------------------------------------------------------------------------------------------
# Sizing, eligibility and money
# --------------------------------------------------------------------------------------------


def test_eligible_invoices_per_day(con: duckdb.DuckDBPyConnection) -> None:
    per_day = dict(con.execute(
        """SELECT i.due_date + c.collection_delay_days AS day, count(*)
           FROM invoices i JOIN creditors c USING (creditor_id)
           WHERE i.status = 'OPEN' AND i.remaining_amount > 0 AND NOT i.disputed
             AND i.due_date + c.collection_delay_days <= ?
           GROUP BY day""", [END]
    ).fetchall())
    assert per_day == {END - timedelta(days=d): PER_DAY for d in range(DAYS)}


def test_the_eligibility_rule_has_something_to_exclude(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        """SELECT
             count(*) FILTER (WHERE status = 'PAID'),
             count(*) FILTER (WHERE status = 'CREDITED'),
             count(*) FILTER (WHERE status = 'DISPUTED'),
             count(*) FILTER (WHERE status = 'OPEN' AND disputed),
             count(*) FILTER (WHERE status = 'OPEN' AND NOT disputed
                              AND i.due_date + c.collection_delay_days > ?),
             count(*) FILTER (WHERE i.handed_over_to_collection_at IS NOT NULL),
             count(*) FILTER (WHERE invoice_date > ?)
           FROM invoices i JOIN creditors c USING (creditor_id)""", [END, END]
    ).fetchone()
    assert rows is not None
    paid, credited, disputed, open_disputed, not_yet, handed, future = rows
    assert min(paid, credited, disputed, open_disputed, not_yet) > 0
    assert handed == 0 and future == 0
    assert (paid + credited + disputed + open_disputed + not_yet) < 0.25 * DAYS * PER_DAY


def test_principal_lines_sum_to_amount_and_balances_add_up(
    con: duckdb.DuckDBPyConnection,
) -> None:
    wrong = con.execute(
        """WITH l AS (SELECT invoice_id,
                        sum(amount) FILTER (WHERE line_type = 'PRINCIPAL') AS principal,
                        sum(amount) FILTER (WHERE line_type <> 'PRINCIPAL') AS extra
                      FROM invoice_lines GROUP BY invoice_id),
              p AS (SELECT invoice_id, sum(amount) AS paid FROM payments GROUP BY invoice_id)
           SELECT
             count(*) FILTER (WHERE l.principal IS DISTINCT FROM i.amount),
             count(*) FILTER (WHERE i.status = 'OPEN' AND NOT i.disputed
                              AND i.amount > 0 AND i.remaining_amount
                                  <> i.amount + coalesce(l.extra, 0) - coalesce(p.paid, 0)),
             count(*) FILTER (WHERE i.status = 'PAID' AND p.paid IS DISTINCT FROM i.amount),
             count(*) FILTER (WHERE i.status IN ('PAID', 'CREDITED') AND i.remaining_amount <> 0),
             count(*) FILTER (WHERE i.status = 'OPEN' AND i.remaining_amount <= 0)
           FROM invoices i JOIN l USING (invoice_id) LEFT JOIN p USING (invoice_id)"""
    ).fetchone()
    assert wrong == (0, 0, 0, 0, 0)


def test_reminders_and_fee_lines_agree(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        """SELECT
             count(*) FILTER (WHERE r.sent_date <= i.due_date
                              OR r.sent_date >= i.due_date + c.collection_delay_days),
             count(*) FILTER (WHERE r.fee_amount NOT IN (0, 35)),
             count(*) FILTER (WHERE (r.fee_amount = 35) <> (i.currency = 'NOK')
                              AND i.currency IN ('NOK', 'SEK', 'EUR')),
             count(*)
           FROM reminders r JOIN invoices i USING (invoice_id)
           JOIN creditors c USING (creditor_id)"""
    ).fetchone()
    assert rows is not None and rows[:3] == (0, 0, 0) and rows[3] > 0
    fees = con.execute(
        """SELECT (SELECT sum(fee_amount) FROM reminders),
                  (SELECT sum(amount) FROM invoice_lines WHERE line_type = 'FEE'),
                  (SELECT count(*) FROM invoice_lines WHERE line_type = 'INTEREST')"""
    ).fetchone()
    assert fees is not None and fees[0] == fees[1] > 0 and fees[2] > 0


def test_payments_cover_the_interesting_cases(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        """SELECT
             count(*) FILTER (WHERE p.payment_date > i.due_date + c.collection_delay_days),
             count(*) FILTER (WHERE p.payment_date <= i.due_date AND i.status = 'PAID'),
             count(*) FILTER (WHERE p.amount < i.amount),
             count(*) FILTER (WHERE p.payment_date > ? OR p.payment_date < i.invoice_date),
             count(*) FILTER (WHERE p.amount <= 0),
             count(*) FILTER (WHERE (p.registered_at AT TIME ZONE 'Europe/Oslo')::DATE
                              <> p.payment_date),
             count(DISTINCT p.method), count(DISTINCT p.currency)
           FROM payments p JOIN invoices i USING (invoice_id)
           JOIN creditors c USING (creditor_id)""", [END]
    ).fetchone()
    assert rows is not None
    after_handover, never_overdue, partial, out_of_range, not_positive, tz, methods, cur = rows
    assert after_handover > 0 and never_overdue > 0 and partial > 0
    assert out_of_range == 0 and not_positive == 0 and tz == 0
    assert methods == 3 and cur >= 2


def test_timestamps_follow_the_dates(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        """SELECT
             (SELECT count(*) FROM invoices i JOIN customers c USING (customer_id)
              WHERE c.created_at::DATE > i.invoice_date),
             (SELECT count(*) FROM invoices WHERE updated_at::DATE < invoice_date),
             (SELECT count(*) FROM invoices i JOIN payments p USING (invoice_id)
              WHERE i.updated_at < p.registered_at),
             (SELECT count(*) FROM creditors r JOIN customers c USING (creditor_id)
              WHERE c.created_at < r.created_at)"""
    ).fetchone()
    assert rows == (0, 0, 0, 0)


# --------------------------------------------------------------------------------------------
# Deliberate defects
# --------------------------------------------------------------------------------------------


def test_each_defect_kind_has_its_share(con: duckdb.DuckDBPyConnection) -> None:
    counts = dict(con.execute("SELECT defect, count(*) FROM demo_defects GROUP BY 1").fetchall())
    total = round(BAD_SHARE * DAYS * PER_DAY)
    assert sum(counts.values()) == total
    assert set(counts) == set(DEFECT_KINDS)
    for kind in DEFECT_KINDS:
        assert abs(counts[kind] - total / len(DEFECT_KINDS)) <= 1, kind
    # Defects sit on eligible invoices only: they must reach the pipeline's validation.
    not_eligible = con.execute(
        """SELECT count(*) FROM demo_defects d JOIN invoices i USING (invoice_id)
           JOIN creditors c USING (creditor_id)
           WHERE NOT (i.status = 'OPEN' AND i.remaining_amount > 0 AND NOT i.disputed
                      AND i.due_date + c.collection_delay_days <= ?)""", [END]
    ).fetchone()
    assert not_eligible == (0,)


def test_each_defect_is_really_defective(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        """SELECT d.defect, i.invoice_id, i.amount, i.currency, i.kid, i.invoice_number,
                  i.creditor_id, c.national_id, c.organization_number, c.street, c.zip_code,
                  c.city, c.email, c.customer_type
           FROM demo_defects d JOIN invoices i USING (invoice_id)
           JOIN customers c USING (customer_id)"""
    ).fetchall()
    numbers = con.execute(
        "SELECT creditor_id, invoice_number, count(*) FROM invoices GROUP BY ALL"
    ).fetchall()
    per_number = {(c, n): k for c, n, k in numbers}
    principal_signs = dict(con.execute(
        "SELECT invoice_id, bool_and(amount < 0) FROM invoice_lines"
        " WHERE line_type = 'PRINCIPAL' GROUP BY 1"
    ).fetchall())
    for (defect, invoice_id, amount, currency, kid, number, creditor, nid, org, street,
         zip_code, city, email, ctype) in rows:
        if defect == "invalid_national_id":
            assert ctype == "PERSON" and not fodselsnummer.is_valid(nid)
        elif defect == "invalid_organization_number":
            assert ctype == "COMPANY" and not orgnr.is_valid(org)
        elif defect == "missing_address":
            assert street is None and zip_code is None and city is None
        elif defect == "negative_amount":
            assert amount < 0 and principal_signs[invoice_id]
        elif defect == "unknown_currency":
            assert currency in nd.UNKNOWN_CURRENCIES and currency != "XXX"
        elif defect == "duplicate_invoice_number":
            assert per_number[(creditor, number)] == 2
        elif defect == "invalid_kid":
            assert not luhn.is_valid(kid) and not mod11_kid_is_valid(kid)
        elif defect == "identity_of_wrong_kind":
            # a company identified by a valid personal number: only the kind is wrong
            assert ctype == "COMPANY" and fodselsnummer.is_valid(nid) and org is None
        else:
            assert defect == "invalid_email" and not email_ok(email), email
    good_rows_with_duplicate_numbers = sum(
        k - 1 for k in per_number.values() if k > 1
    )
    assert good_rows_with_duplicate_numbers == sum(r[0] == "duplicate_invoice_number"
                                                   for r in rows)


def test_defective_customers_serve_only_their_invoice(con: duckdb.DuckDBPyConnection) -> None:
    shared = con.execute(
        """SELECT count(*) FROM demo_defects d JOIN invoices i USING (invoice_id)
           WHERE list_contains($kinds, d.defect)
             AND (SELECT count(*) FROM invoices j WHERE j.customer_id = i.customer_id) > 1""",
        {"kinds": sorted(CUSTOMER_DEFECTS)},
    ).fetchone()
    assert shared == (0,)


# --------------------------------------------------------------------------------------------
# Case actions
# --------------------------------------------------------------------------------------------


def test_case_actions_follow_handed_over_cases(con: duckdb.DuckDBPyConnection) -> None:
    """Requests come a few days after an invoice's collection day, about a clean eligible one."""
    rows = con.execute(
        """SELECT a.action_id, a.invoice_id, a.action_type, a.due_date, a.subject, a.message,
                  a.conversation_id,
                  timezone('Europe/Oslo', a.requested_at)::DATE AS day,
                  hour(timezone('Europe/Oslo', a.requested_at)) AS hour,
                  i.due_date + c.collection_delay_days AS collection_day,
                  i.status, i.remaining_amount, i.disputed, d.defect
           FROM case_actions a JOIN invoices i USING (invoice_id)
           JOIN creditors c ON c.creditor_id = i.creditor_id
           LEFT JOIN demo_defects d USING (invoice_id)
           ORDER BY a.action_id"""
    ).fetchall()
    eligible = DAYS * PER_DAY
    firsts = [r for r in rows if r[0].endswith("-1")]
    assert len(firsts) == round(0.02 * eligible)  # the default action_share
    kinds = {r[2] for r in rows}
    assert {"PAUSE", "WITHDRAW", "MESSAGE"} <= kinds <= {"PAUSE", "RESUME", "WITHDRAW", "MESSAGE"}
    by_invoice: dict[str, list[tuple]] = {}
    for (action_id, invoice_id, kind, due, subject, message, conversation, day, hour,
         collection_day, status, remaining, disputed, defect) in rows:
        by_invoice.setdefault(invoice_id, []).append((action_id, kind, day))
        # a case at Amili: eligible, clean, handed over on an earlier day
        assert status == "OPEN" and remaining > 0 and not disputed and defect is None
        assert collection_day < day <= END and 8 <= hour < 17
        assert subject and message and conversation == "CNV-" + invoice_id[4:]
        assert (due is not None) == (kind == "PAUSE")
        if kind == "PAUSE":
            assert due > day and due.strftime("%d.%m.%Y") in message
        if kind == "RESUME":
            assert action_id.endswith("-2")
        else:
            assert action_id.endswith("-1") and day - collection_day <= timedelta(days=5)
    for actions in by_invoice.values():
        if len(actions) == 2:  # a RESUME follows its PAUSE
            (_, first, day1), (_, second, day2) = actions
            assert (first, second) == ("PAUSE", "RESUME") and day1 < day2
        else:
            assert len(actions) == 1 and actions[0][1] != "RESUME"


def test_action_share_sets_the_number_of_requests(tmp_path: Path) -> None:
    none = generate_demo_warehouse(
        tmp_path / "a.duckdb", **{**ARGS, "action_share": 0.0}  # type: ignore[arg-type]
    )
    many = generate_demo_warehouse(
        tmp_path / "b.duckdb", **{**ARGS, "action_share": 0.1}  # type: ignore[arg-type]
    )
    assert none.row_counts["case_actions"] == 0
    with duckdb.connect(str(many.path), read_only=True) as con:
        firsts = con.execute(
            "SELECT count(*) FROM case_actions WHERE action_type <> 'RESUME'"
        ).fetchone()
    assert firsts == (round(0.1 * DAYS * PER_DAY),)
    # the other tables do not move when only the share of actions changes
    before, after = digests(none.path), digests(many.path)
    for table in TABLES:
        if table != "case_actions":
            assert before[table] == after[table], table


def test_no_defects_when_bad_share_is_zero(tmp_path: Path) -> None:
    summary = generate_demo_warehouse(
        tmp_path / "clean.duckdb", days=2, invoices_per_day=50, bad_share=0.0, end_date=END
    )
    assert summary.row_counts["demo_defects"] == 0 and sum(summary.defects.values()) == 0


# --------------------------------------------------------------------------------------------
# The Python check digits (used for creditors) against python-stdnum
# --------------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"\A[0-9]{8}\Z"))
def test_orgnr_check_digit(base: str) -> None:
    check = nd.orgnr_check_digit(base)
    valid = [d for d in "0123456789" if orgnr.is_valid(base + d)]
    assert valid == ([] if check is None else [str(check)])


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"\A[1-9][0-9]{9}\Z"))
def test_kontonr_check_digit_and_iban(base: str) -> None:
    check = nd.kontonr_check_digit(base)
    valid = [d for d in "0123456789" if kontonr.is_valid(base + d)]
    assert valid == ([] if check is None else [str(check)])
    if check is not None:
        assert std_iban.is_valid(nd.iban_from_kontonr(base + str(check)))


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"\A[0-9]{1,24}\Z"))
def test_kid_check_digits(base: str) -> None:
    assert luhn.is_valid(base + str(nd.luhn_check_digit(base)))
    check = nd.mod11_kid_check_digit(base)
    valid = [d for d in "0123456789" if mod11_kid_is_valid(base + d)]
    assert valid == ([] if check is None else [str(check)])


def test_documented_test_vectors() -> None:
    assert nd.luhn_check_digit("1234") == 4 and nd.mod11_kid_check_digit("1234") == 3
    assert nd.luhn_check_digit("2345678") == 3 and nd.mod11_kid_check_digit("2345678") == 8
    assert nd.orgnr_check_digit("12345678") == 5
    assert nd.kontonr_check_digit("1234567890") == 3
    assert nd.ascii_fold("Bjørn Åsheim Sæther") == "bjornaasheimsaether"


def test_money_is_exact(con: duckdb.DuckDBPyConnection) -> None:
    value = con.execute("SELECT sum(amount) FROM invoice_lines").fetchone()
    assert value is not None and isinstance(value[0], Decimal)
    assert value[0] == value[0].quantize(Decimal("0.01"))
