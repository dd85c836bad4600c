"""Demo warehouse: a DuckDB file shaped like the receivables tables of a Norwegian ERP.

It is the embedded default source of the pipeline, so the demo, the tests and the benchmarks
have realistic input without access to a real accounts-receivable system: creditors, their
customers (debtors), invoices with claim lines, reminders and payments, the creditor's case
handlers' requests about invoices already handed over (``case_actions``: pause, resume,
withdraw, message), plus a few deliberately broken rows (listed in ``demo_defects``) that the
pipeline must quarantine rather than send.

How it is built, and why:

* **In DuckDB SQL, not in Python loops.** Neither numpy nor pyarrow is installed and the
  benchmarks want a million invoices a day, so each table is one ``CREATE TABLE AS SELECT``
  over ``range()``. Python only draws the handful of creditors and the per-stream keys.
* **Deterministic.** Every random choice is ``lowbias32(row id XOR key)``, a fixed integer hash
  written in SQL arithmetic (no ``random()``, no ``hash()`` whose algorithm may change between
  DuckDB versions), with one 32-bit key per stream derived from the seed. Amounts are integer
  øre until the final cast, dates are integer offsets, timestamps are local Oslo times cast
  with an explicit time zone. Same arguments give identical table contents.
* **Valid by construction.** Check digits (organisation number, fødselsnummer, KID MOD10 and
  MOD11, account number, IBAN) are computed, never looked up; a base whose MOD11 check would be
  10 is replaced by another base, as banks and the registries do.

The eligibility rule the data is sized for (the pipeline owns the real rule)::

    status = 'OPEN' AND remaining_amount > 0 AND NOT disputed
    AND due_date + collection_delay_days = <collection day>

``invoices_per_day`` invoices meet it on each of the ``days`` collection days, defective ones
included; other invoices of the same due dates are paid, paid late, disputed or credited, and
some open ones are not yet due for collection, so the rule has something to exclude.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from amili.warehouse import demo_data as nd

OSLO = ZoneInfo("Europe/Oslo")

#: The deliberate defects, in the order they are dealt out (round robin over a random order).
DEFECT_KINDS: tuple[str, ...] = (
    "invalid_national_id",
    "invalid_organization_number",
    "missing_address",
    "negative_amount",
    "unknown_currency",
    "duplicate_invoice_number",
    "invalid_kid",
    "invalid_email",
    # a COMPANY customer identified by a (valid) personal number, without organisation number
    "identity_of_wrong_kind",
)
#: Defects that live on the debtor; such an invoice gets a customer of its own, so the defect
#: cannot leak into other invoices of a shared customer.
CUSTOMER_DEFECTS: frozenset[str] = frozenset(
    {"invalid_national_id", "invalid_organization_number", "missing_address", "invalid_email",
     "identity_of_wrong_kind"}
)

#: Tables written, in dependency order.
TABLES: tuple[str, ...] = (
    "creditors",
    "customers",
    "invoices",
    "invoice_lines",
    "reminders",
    "payments",
    "case_actions",
    "demo_defects",
)

#: The rule the demo is sized for, as a SQL condition over ``invoices i JOIN creditors c``.
ELIGIBLE_CONDITION = (
    "i.status = 'OPEN' AND i.remaining_amount > 0 AND NOT i.disputed"
    " AND i.due_date + c.collection_delay_days = {day}"
)

REMINDER_FEE_ORE = 3500  # NOK 35, the purregebyr of a written reminder
INTEREST_PERMILLE_PA = 125  # forsinkelsesrente 12.5 % a year
OTHER_SHARE = 0.15  # non-eligible invoices per collection day, relative to invoices_per_day
CUSTOMERS_PER_INVOICE = 0.35  # customer pool size per creditor, relative to its invoices
PERSON_PERCENT = 75
ACTION_DAYS_AFTER = 5  # a case action is requested 1..5 days after the collection day
#: Kinds of case action a handed-over invoice gets first, with cumulative percents. A RESUME
#: only ever follows a PAUSE of the same invoice (half of the pauses that have room for it).
ACTION_KINDS = (("WITHDRAW", 30), ("PAUSE", 70), ("MESSAGE", 100))

_M32 = 4294967296
_FEE_SQL = f"CASE WHEN currency = 'NOK' THEN {REMINDER_FEE_ORE} ELSE 0 END"
_OTHER_KINDS = (  # (kind, cumulative percent among the non-eligible invoices)
    ("PAID_ON_TIME", 40),
    ("PAID_LATE", 55),
    ("DISPUTED", 70),
    ("CREDITED", 80),
    ("NOT_YET_DUE", 100),
)


# --------------------------------------------------------------------------------------------
# Schema: (column, type, comment). One place, so the DDL, the comments and the docs agree.
# --------------------------------------------------------------------------------------------

MONEY = "DECIMAL(18,2)"

SCHEMA: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "creditors": (
        "Companies whose receivables are handed to Amili (the ERP's legal entities).",
        [
            ("creditor_id", "VARCHAR", "Source id of the creditor"),
            ("organization_number", "VARCHAR", "Organisasjonsnummer, 9 digits, MOD11"),
            ("name", "VARCHAR", "Registered name"),
            ("street", "VARCHAR", "Street address"),
            ("zip_code", "VARCHAR", "Postcode, 4 digits"),
            ("city", "VARCHAR", "Postal town"),
            ("country_code", "VARCHAR", "ISO 3166-1 alpha-2"),
            ("bank_account", "VARCHAR", "Kontonummer, 11 digits, MOD11"),
            ("iban", "VARCHAR", "IBAN of bank_account"),
            ("swift", "VARCHAR", "BIC of the account's bank"),
            ("email_invoice", "VARCHAR", "Address that receives invoice copies"),
            ("contact_name", "VARCHAR", "Contact person"),
            ("contact_phone", "VARCHAR", "Contact phone, E.164"),
            ("contact_email", "VARCHAR", "Contact e-mail"),
            ("only_debt_collection", "BOOLEAN", "Amili does collection only, no reminders"),
            ("reminder_flow", "INTEGER",
             "Reminders the creditor sends before hand-over (0-2), NOK 35 each"),
            ("kid_algorithm", "VARCHAR", "Check digit of the creditor's KIDs: MOD10 or MOD11"),
            ("collection_delay_days", "INTEGER",
             "Days past due_date after which an unpaid invoice goes to collection"),
            ("created_at", "TIMESTAMPTZ", "Row created in the ERP"),
        ],
    ),
    "customers": (
        "Debtors: the creditors' customers, persons or companies.",
        [
            ("customer_id", "VARCHAR", "Source id of the customer"),
            ("creditor_id", "VARCHAR", "Creditor the customer belongs to"),
            ("customer_number", "VARCHAR", "Customer number in the creditor's ledger"),
            ("customer_type", "VARCHAR", "PERSON or COMPANY"),
            ("first_name", "VARCHAR", "Persons only"),
            ("last_name", "VARCHAR", "Persons only"),
            ("company_name", "VARCHAR", "Companies only"),
            ("national_id", "VARCHAR", "Fødselsnummer or D-nummer, 11 digits (persons)"),
            ("organization_number", "VARCHAR", "Organisasjonsnummer (companies)"),
            ("date_of_birth", "DATE", "Persons; agrees with national_id"),
            ("street", "VARCHAR", "Street address"),
            ("zip_code", "VARCHAR", "Postcode, 4 digits"),
            ("city", "VARCHAR", "Postal town"),
            ("country_code", "VARCHAR", "ISO 3166-1 alpha-2"),
            ("email", "VARCHAR", "E-mail address"),
            ("phone", "VARCHAR", "Phone, E.164 (+47 and 8 digits)"),
            ("created_at", "TIMESTAMPTZ", "Row created in the ERP"),
        ],
    ),
    "invoices": (
        "Customer invoices (accounts receivable), current state.",
        [
            ("invoice_id", "VARCHAR", "Stable unique source id (uniqueSourceInvoiceId)"),
            ("creditor_id", "VARCHAR", "Issuing creditor"),
            ("customer_id", "VARCHAR", "Debtor"),
            ("invoice_number", "VARCHAR", "Invoice number printed on the invoice"),
            ("invoice_date", "DATE", "Issue date"),
            ("due_date", "DATE", "Due date"),
            ("amount", MONEY, "Original amount: the sum of the PRINCIPAL lines"),
            ("currency", "VARCHAR", "ISO 4217 code"),
            ("kid", "VARCHAR", "KID (OCR reference), MOD10 or MOD11 per creditor"),
            ("status", "VARCHAR", "OPEN, PAID, DISPUTED or CREDITED"),
            ("remaining_amount", MONEY,
             "Open balance today: principal + fees + interest - payments"),
            ("disputed", "BOOLEAN", "The debtor disputes the claim"),
            ("description", "VARCHAR", "Invoice text"),
            ("handed_over_to_collection_at", "TIMESTAMPTZ",
             "When the ERP handed it to collection; NULL: the pipeline decides"),
            ("updated_at", "TIMESTAMPTZ", "Last change of the row"),
        ],
    ),
    "invoice_lines": (
        "Claim lines of an invoice: what the debtor owes, by kind.",
        [
            ("invoice_id", "VARCHAR", "Invoice"),
            ("line_no", "INTEGER", "1-based line number within the invoice"),
            ("line_type", "VARCHAR", "PRINCIPAL, FEE (reminder fee) or INTEREST"),
            ("amount", MONEY, "Line amount"),
            ("description", "VARCHAR", "Line text"),
        ],
    ),
    "reminders": (
        "Payment reminders (purringer) sent before hand-over to collection.",
        [
            ("invoice_id", "VARCHAR", "Invoice"),
            ("reminder_no", "INTEGER", "1 for the first reminder"),
            ("sent_date", "DATE", "Date sent"),
            ("fee_amount", MONEY, "Reminder fee charged (NOK 35; 0 for foreign currency)"),
        ],
    ),
    "payments": (
        "Incoming payments matched to invoices.",
        [
            ("payment_id", "VARCHAR", "Stable unique source id (uniqueSourcePaymentId)"),
            ("invoice_id", "VARCHAR", "Invoice paid"),
            ("payment_date", "DATE", "Value date"),
            ("registered_at", "TIMESTAMPTZ", "When the ERP booked it"),
            ("amount", MONEY, "Amount paid"),
            ("currency", "VARCHAR", "ISO 4217 code"),
            ("method", "VARCHAR", "BANK, CARD or VIPPS"),
            ("kid", "VARCHAR", "KID the payer gave (NULL for card payments)"),
        ],
    ),
    "case_actions": (
        "Requests of the creditor's case handlers about invoices already handed over to"
        " collection: pause, resume, withdraw, or a message to the case.",
        [
            ("action_id", "VARCHAR", "Stable unique source id of the request"),
            ("invoice_id", "VARCHAR", "Invoice (case) the request is about"),
            ("creditor_id", "VARCHAR", "Creditor of the invoice"),
            ("action_type", "VARCHAR", "PAUSE, RESUME, WITHDRAW or MESSAGE"),
            ("requested_at", "TIMESTAMPTZ", "When the case handler registered the request"),
            ("due_date", "DATE", "PAUSE: the day the pause lasts until; NULL otherwise"),
            ("subject", "VARCHAR", "Subject line"),
            ("message", "VARCHAR", "Free text to the collection agency (why, what to do)"),
            ("conversation_id", "VARCHAR", "Thread of the invoice's requests, one per invoice"),
        ],
    ),
    "demo_defects": (
        "Demo only: invoices that carry one deliberate defect each, for tests and humans.",
        [
            ("invoice_id", "VARCHAR", "Defective invoice"),
            ("defect", "VARCHAR", "Kind of defect"),
            ("detail", "VARCHAR", "Which column is wrong and how"),
        ],
    ),
}


@dataclass(frozen=True)
class DemoWarehouseSummary:
    """What :func:`generate_demo_warehouse` wrote; ``str()`` is what the CLI prints."""

    path: Path
    row_counts: dict[str, int]
    first_collection_day: date
    last_collection_day: date
    defects: dict[str, int]
    eligible_invoices: int
    seed: int
    seconds: float = field(default=0.0, compare=False)

    def render(self) -> str:
        """Human-readable, a few lines."""
        lines = [
            f"Demo warehouse written to {self.path} in {self.seconds:.1f} s (seed {self.seed})",
            f"  collection days: {self.first_collection_day} .. {self.last_collection_day}",
            f"  eligible invoices: {self.eligible_invoices:,}",
            "  rows: " + ", ".join(f"{t} {n:,}" for t, n in self.row_counts.items()),
        ]
        total = sum(self.defects.values())
        detail = ", ".join(f"{k} {n}" for k, n in self.defects.items() if n)
        lines.append(f"  deliberate defects: {total:,}" + (f" ({detail})" if detail else ""))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


# --------------------------------------------------------------------------------------------
# SQL helpers
# --------------------------------------------------------------------------------------------


def _lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _list_lit(values: Iterable[str | int]) -> str:
    """A DuckDB list literal, indexed 1-based in SQL."""
    return "[" + ", ".join(_lit(v) if isinstance(v, str) else str(v) for v in values) + "]"


def _pick(values: Sequence[str | int], r: str) -> str:
    """SQL choosing one of ``values`` by the non-negative integer expression ``r``."""
    return f"{_list_lit(values)}[({r}) % {len(values)} + 1]"


def _stream_key(seed: int, name: str) -> int:
    """32-bit key of one random stream; independent of the other streams and of their order."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:4], "big")


def _with_random(source: str, id_col: str, streams: Sequence[str], seed: int) -> str:
    """``source`` plus a column ``r_<stream>`` (uniform 0..2^32-1, BIGINT) per stream.

    The hash is lowbias32 (Chris Wellons) of ``id XOR key``, in three projection stages so no
    sub-expression is evaluated twice.
    """
    keys = {s: _stream_key(seed, s) for s in streams}
    x = {s: f"xor({id_col}::UBIGINT, {keys[s]}::UBIGINT)" for s in streams}
    s1 = ", ".join(
        f"(xor({x[s]}, {x[s]} >> 16) * 2146121005) % {_M32} AS _a_{s}" for s in streams
    )
    s2 = ", ".join(f"(xor(_a_{s}, _a_{s} >> 15) * 2221713035) % {_M32} AS _b_{s}" for s in streams)
    s3 = ", ".join(f"xor(_b_{s}, _b_{s} >> 16)::BIGINT AS r_{s}" for s in streams)
    a_cols = ", ".join(f"_a_{s}" for s in streams)
    b_cols = ", ".join(f"_b_{s}" for s in streams)
    return (
        f"SELECT * EXCLUDE ({b_cols}), {s3} FROM ("
        f"SELECT * EXCLUDE ({a_cols}), {s2} FROM ("
        f"SELECT *, {s1} FROM ({source})))"
    )


def _digit_sum(expr: str, weights_from_right: Sequence[int], ndigits: int) -> str:
    """SQL: sum of the digits of integer ``expr`` times weights (cycled) from the right."""
    terms = []
    for k in range(ndigits):
        w = weights_from_right[k % len(weights_from_right)]
        terms.append(f"{w} * (({expr} // {10**k}) % 10)")
    return "(" + " + ".join(terms) + ")"


def _luhn_sum(expr: str, ndigits: int) -> str:
    """SQL: Luhn sum of integer ``expr`` whose check digit is still to be appended."""
    terms = []
    for k in range(ndigits):
        d = f"(({expr} // {10**k}) % 10)"
        terms.append(f"(2 * {d} - 9 * ({d} >= 5)::INT)" if k % 2 == 0 else d)
    return "(" + " + ".join(terms) + ")"


_MACROS = """
CREATE OR REPLACE TEMP MACRO _m1(x) AS (xor(x, x >> 16) * 2146121005) % 4294967296;
CREATE OR REPLACE TEMP MACRO _m2(x) AS (xor(x, x >> 15) * 2221713035) % 4294967296;
CREATE OR REPLACE TEMP MACRO _mix(x) AS xor(_m2(_m1(x)), _m2(_m1(x)) >> 16);
CREATE OR REPLACE TEMP MACRO _fnr_k1(dd, mm, yy, ind) AS
    (11 - (3 * (dd // 10) + 7 * (dd % 10) + 6 * (mm // 10) + 1 * (mm % 10)
           + 8 * (yy // 10) + 9 * (yy % 10) + 4 * (ind // 100) + 5 * ((ind // 10) % 10)
           + 2 * (ind % 10)) % 11) % 11;
CREATE OR REPLACE TEMP MACRO _fnr_k2(dd, mm, yy, ind, k1) AS
    (11 - (5 * (dd // 10) + 4 * (dd % 10) + 3 * (mm // 10) + 2 * (mm % 10)
           + 7 * (yy // 10) + 6 * (yy % 10) + 5 * (ind // 100) + 4 * ((ind // 10) % 10)
           + 3 * (ind % 10) + 2 * k1) % 11) % 11;
CREATE OR REPLACE TEMP MACRO _fold(s) AS
    replace(replace(replace(replace(lower(s), 'æ', 'ae'), 'ø', 'o'), 'å', 'aa'), ' ', '');
CREATE OR REPLACE TEMP MACRO _at(d, secs) AS
    (d::TIMESTAMP + to_seconds(secs::BIGINT))::TIMESTAMPTZ;
CREATE OR REPLACE TEMP MACRO _money(ore) AS (ore * 0.01)::DECIMAL(18,2);
"""


# --------------------------------------------------------------------------------------------
# Creditors (a handful of rows: plain Python with random.Random(seed))
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Creditor:
    no: int
    row: dict[str, object]
    weight: float
    label: str
    lines: tuple[str, str, str]
    kid_algorithm: str
    kid_length: int
    number_start: int  # MOD10: first invoice number; MOD11: first block (number // 10)


def _valid_orgnr(rng: random.Random) -> str:
    while True:
        base = "9" + "".join(rng.choice("0123456789") for _ in range(7))
        check = nd.orgnr_check_digit(base)
        if check is not None:
            return base + str(check)


def _valid_kontonr(rng: random.Random, bank: str) -> str:
    while True:
        base = bank + "".join(rng.choice("0123456789") for _ in range(6))
        check = nd.kontonr_check_digit(base)
        if check is not None:
            return base + str(check)


def _creditors(
    rng: random.Random, count: int, delay: int, first_day: date, max_invoices: int
) -> list[_Creditor]:
    width = max(2, len(str(count)))
    # Invoice numbers stay below 10**7 + 10/9 of all invoices; the KID holds them plus one digit.
    number_digits = len(str(10**7 + math.ceil(max_invoices * 10 / 9) + 20))
    first_alg = rng.choice(("MOD10", "MOD11"))
    creditors: list[_Creditor] = []
    for i in range(count):
        name, label, lines = nd.CREDITOR_TEMPLATES[i % len(nd.CREDITOR_TEMPLATES)]
        if i >= len(nd.CREDITOR_TEMPLATES):
            name = name.replace(" AS", f" {i // len(nd.CREDITOR_TEMPLATES) + 1} AS")
        slug = nd.ascii_fold(name.removesuffix(" AS").split()[0])
        city, lo, hi, _ = rng.choice(nd.POSTCODES)
        bank, swift = rng.choice(nd.BANKS)
        account = _valid_kontonr(rng, bank)
        contact_first = rng.choice(nd.FIRST_NAMES_FEMALE + nd.FIRST_NAMES_MALE)
        contact_last = rng.choice(nd.LAST_NAMES)
        if i < 2:
            alg = first_alg if i == 0 else ("MOD11" if first_alg == "MOD10" else "MOD10")
        else:
            alg = rng.choice(("MOD10", "MOD11"))
        only_collection = rng.random() < 0.3
        created = datetime.combine(
            first_day - timedelta(days=4000 + rng.randrange(3000)),
            datetime.min.time(),
            tzinfo=OSLO,
        ).replace(hour=9 + rng.randrange(8), minute=rng.randrange(60))
        row: dict[str, object] = {
            "creditor_id": f"CR{i + 1:0{width}d}",
            "organization_number": _valid_orgnr(rng),
            "name": name,
            "street": f"{rng.choice(nd.STREETS)} {rng.randrange(1, 80)}",
            "zip_code": f"{rng.randint(lo, hi):04d}",
            "city": city,
            "country_code": "NO",
            "bank_account": account,
            "iban": nd.iban_from_kontonr(account),
            "swift": swift,
            "email_invoice": f"faktura@{slug}.no",
            "contact_name": f"{contact_first} {contact_last}",
            "contact_phone": f"+47{rng.choice('49')}{rng.randrange(10**7):07d}",
            "contact_email": f"{nd.ascii_fold(contact_first)}.{nd.ascii_fold(contact_last)}"
            f"@{slug}.no",
            "only_debt_collection": only_collection,
            "reminder_flow": rng.choice((1, 2, 2)) if only_collection else rng.choice((0, 1, 2)),
            "kid_algorithm": alg,
            "collection_delay_days": delay,
            "created_at": created,
        }
        creditors.append(
            _Creditor(
                no=i,
                row=row,
                weight=rng.uniform(1.0, 3.0),
                label=label,
                lines=lines,
                kid_algorithm=alg,
                kid_length=max(rng.choice((10, 12, 15)), number_digits + 1),
                number_start=(
                    rng.randrange(1_000_000, 5_000_000)
                    if alg == "MOD10"
                    else rng.randrange(100_000, 500_000)
                ),
            )
        )
    return creditors


def _load_creditors(con: duckdb.DuckDBPyConnection, creditors: list[_Creditor]) -> int:
    """``creditors`` (final) and ``_cred`` (generator settings); returns the bucket count."""
    cols = [c for c, _, _ in SCHEMA["creditors"][1]]
    con.executemany(
        f"INSERT INTO creditors VALUES ({', '.join('?' for _ in cols)})",
        [[c.row[k] for k in cols] for c in creditors],
    )
    con.execute(
        """CREATE TEMP TABLE _cred (creditor_no INT, creditor_id VARCHAR, delay INT, flow INT,
           kid_alg VARCHAR, kid_len INT, num_start BIGINT, label VARCHAR, line1 VARCHAR,
           line2 VARCHAR, line3 VARCHAR)"""
    )
    con.executemany(
        "INSERT INTO _cred VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [c.no, c.row["creditor_id"], c.row["collection_delay_days"], c.row["reminder_flow"],
             c.kid_algorithm, c.kid_length, c.number_start, c.label, *c.lines]
            for c in creditors
        ],
    )
    # Weighted creditor choice: a bucket table hit by r % buckets (a cheap hash join).
    buckets = max(1024, 4 * len(creditors))
    total = sum(c.weight for c in creditors)
    bounds, acc = [], 0.0
    for c in creditors:
        acc += c.weight
        bounds.append(round(acc / total * buckets))
    rows, start = [], 0
    for c, end in zip(creditors, bounds, strict=True):
        end = max(end, start + 1)
        rows.extend((b, c.no) for b in range(start, min(end, buckets)))
        start = end
    rows.extend((b, creditors[-1].no) for b in range(start, buckets))
    con.execute(
        "CREATE TEMP TABLE _cred_bucket AS SELECT generate_subscripts(l, 1) - 1 AS bucket,"
        f" unnest(l)::INT AS creditor_no FROM (SELECT {_list_lit([no for _, no in rows])} AS l)"
    )
    return buckets


# --------------------------------------------------------------------------------------------
# Invoices, customers and the rest, in SQL
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Params:
    days: int
    per_day_eligible: int
    per_day_other: int
    seed: int
    first_day: date
    end_date: date
    delay: int
    defects_total: int
    actions_share: float = 0.0

    @property
    def per_day(self) -> int:
        return self.per_day_eligible + self.per_day_other

    @property
    def total(self) -> int:
        return self.days * self.per_day


def _d(value: date) -> str:
    return f"DATE '{value.isoformat()}'"


def _build_spine(con: duckdb.DuckDBPyConnection, p: _Params, buckets: int) -> None:
    """One row per invoice: collection day, kind, creditor, defect and all random draws."""
    streams = ["cred", "kind", "terms", "amt", "amt2", "cur", "lines", "split", "misc", "pay",
               "pay2", "post", "post2", "int", "cust", "def"]
    kind_case = " ".join(
        f"WHEN r_kind % 100 < {cut} THEN '{kind}'" for kind, cut in _OTHER_KINDS
    )
    if p.delay < 2:  # no day between due date and hand-over to be paid late on
        kind_case = kind_case.replace("'PAID_LATE'", "'PAID_ON_TIME'")
    source = f"SELECT range AS g FROM range({p.total})"
    con.execute(
        f"""
        CREATE TEMP TABLE _spine0 AS
        SELECT s.*, s.g // {p.per_day} AS day_idx, s.g % {p.per_day} AS j,
               CASE WHEN s.g % {p.per_day} < {p.per_day_eligible} THEN 'ELIGIBLE'
                    {kind_case} END AS kind,
               b.creditor_no
        FROM ({_with_random(source, "g", streams, p.seed)}) s
        JOIN _cred_bucket b ON b.bucket = s.r_cred % {buckets}
        """
    )
    kinds = _list_lit(DEFECT_KINDS)
    con.execute(
        f"""
        CREATE TEMP TABLE _defect AS
        SELECT g, rank - 1 AS defect_rank, {kinds}[(rank - 1) % {len(DEFECT_KINDS)} + 1] AS defect
        FROM (SELECT g, row_number() OVER (ORDER BY r_def, g) AS rank
              FROM _spine0 WHERE kind = 'ELIGIBLE')
        WHERE rank <= {p.defects_total}
        """
    )


def _build_customers(con: duckdb.DuckDBPyConnection, p: _Params) -> None:
    """Customer pool per creditor, a dedicated customer per customer-level defect, identities."""
    cust_defects = ", ".join(_lit(k) for k in sorted(CUSTOMER_DEFECTS))
    con.execute(
        f"""
        CREATE TEMP TABLE _pool AS
        SELECT creditor_no, greatest(5, ceil(count(*) * {CUSTOMERS_PER_INVOICE}))::BIGINT AS pool
        FROM _spine0 GROUP BY creditor_no;
        CREATE TEMP TABLE _dedicated AS
        SELECT s.g, s.creditor_no, d.defect,
               row_number() OVER (PARTITION BY s.creditor_no ORDER BY s.g) - 1 AS k
        FROM _spine0 s JOIN _defect d USING (g) WHERE d.defect IN ({cust_defects});
        CREATE TEMP TABLE _cust_base AS
        SELECT row_number() OVER (ORDER BY creditor_no, cust_seq) - 1 AS cidx, *
        FROM (
            SELECT creditor_no, unnest(range(pool)) AS cust_seq, NULL::VARCHAR AS defect
            FROM _pool
            UNION ALL
            SELECT d.creditor_no, p.pool + d.k, d.defect
            FROM _dedicated d JOIN _pool p USING (creditor_no)
        );
        """
    )
    post = [(city, lo, hi) for city, lo, hi, w in nd.POSTCODES for _ in range(w)]
    cities = _list_lit([c for c, _, _ in post])
    los = _list_lit([lo for _, lo, _ in post])
    spans = _list_lit([hi - lo + 1 for _, lo, hi in post])
    anchor = p.first_day - timedelta(days=p.delay + 31)
    streams = ["type", "first", "last", "street", "zip", "email", "phone", "birth", "company",
               "created", "bad"]
    ind_key = _stream_key(p.seed, "ind")
    # who gets a fødselsnummer: the persons, and the company of the wrong-kind identity
    # defect (which gets no organisation number instead)
    has_fnr = "(customer_type = 'PERSON' OR defect = 'identity_of_wrong_kind')"
    con.execute(
        f"""
        CREATE TEMP TABLE _cust1 AS
        SELECT *,
            CASE WHEN defect = 'invalid_national_id' THEN 'PERSON'
                 WHEN defect IN ('invalid_organization_number', 'identity_of_wrong_kind')
                 THEN 'COMPANY'
                 WHEN r_type % 100 < {PERSON_PERCENT} THEN 'PERSON' ELSE 'COMPANY'
            END AS customer_type,
            r_first % 2 AS male,
            {_d(p.end_date)} - (6575 + r_birth % 25550)::INT AS birth,
            (r_birth // 25550) % 50 = 0 AS d_number,
            0 AS attempt,
            r_zip % {len(post)} + 1 AS post_i
        FROM ({_with_random("SELECT * FROM _cust_base", "cidx", streams, p.seed)});
        CREATE TEMP TABLE _cust AS
        SELECT *,
            (CASE WHEN year(birth) >= 2000 THEN 500 ELSE 0 END)
              + (_mix(xor(cidx::UBIGINT, {ind_key}::UBIGINT)) % 250)::BIGINT * 2 + male AS ind,
            day(birth) + CASE WHEN d_number THEN 40 ELSE 0 END AS dd,
            month(birth) AS mm, year(birth) % 100 AS yy,
            NULL::BIGINT AS k1, NULL::BIGINT AS k2, NULL::VARCHAR AS national_id,
            {has_fnr} AS dirty
        FROM _cust1;
        """
    )
    # Fødselsnummer: a base with a check digit of 10, or a number already taken, gets another
    # individual number; a few rounds settle it (about 1 in 6 bases is invalid).
    for _ in range(100):
        con.execute(
            """
            UPDATE _cust SET k1 = _fnr_k1(dd, mm, yy, ind) WHERE dirty;
            UPDATE _cust SET k2 = _fnr_k2(dd, mm, yy, ind, k1) WHERE dirty AND k1 < 10;
            UPDATE _cust SET dirty = false,
                national_id = lpad(dd::VARCHAR, 2, '0') || lpad(mm::VARCHAR, 2, '0')
                    || lpad(yy::VARCHAR, 2, '0') || lpad(ind::VARCHAR, 3, '0') || k1 || k2
            WHERE dirty AND k1 < 10 AND k2 < 10;
            """
        )
        retry = con.execute(
            f"""
            UPDATE _cust SET dirty = true, attempt = attempt + 1,
                ind = (CASE WHEN year(birth) >= 2000 THEN 500 ELSE 0 END)
                    + (_mix(xor(cidx::UBIGINT,
                                (xor({ind_key}, ((attempt + 1) * 2654435761) % 4294967296))
                                ::UBIGINT)) % 250)::BIGINT * 2 + male
            WHERE {has_fnr} AND (dirty OR cidx IN (
                SELECT cidx FROM _cust WHERE {has_fnr} AND NOT dirty
                QUALIFY row_number() OVER (PARTITION BY national_id ORDER BY cidx) > 1))
            """
        ).fetchone()
        if retry is None or retry[0] == 0:
            break
    else:  # pragma: no cover - would take an astronomically unlucky seed
        raise RuntimeError("could not find unique valid national ids")

    orgnr_a, orgnr_b = 3_137_917, _stream_key(p.seed, "orgnr") % 10**7
    n8 = f"(90000000 + (cidx * {orgnr_a} + {orgnr_b}) % 10000000)"
    s8 = _digit_sum(n8, (2, 3, 4, 5, 6, 7, 2, 3), 8)
    con.execute(
        f"""
        CREATE TEMP TABLE _cust_org AS
        SELECT cidx, n8 || ((11 - s8 % 11) % 11) AS orgnr FROM (
            SELECT cidx,
                CASE WHEN {s8} % 11 = 1 THEN {n8} - 10000000 ELSE {n8} END AS n8,
                CASE WHEN {s8} % 11 = 1 THEN {s8} - 3 ELSE {s8} END AS s8
            FROM _cust WHERE customer_type = 'COMPANY'
                AND defect IS DISTINCT FROM 'identity_of_wrong_kind')
        """
    )
    first = (
        f"CASE WHEN male = 1 THEN {_pick(nd.FIRST_NAMES_MALE, 'r_first // 2')}"
        f" ELSE {_pick(nd.FIRST_NAMES_FEMALE, 'r_first // 2')} END"
    )
    last = _pick(nd.LAST_NAMES, "r_last")
    word_a = _pick(nd.COMPANY_WORDS_A, "r_company")
    word_b = _pick(nd.COMPANY_WORDS_B, "r_company // 64")
    street = (
        f"{_pick(nd.STREETS, 'r_street')} || ' ' || (1 + (r_street // 64) % 120)"
        f" || CASE WHEN (r_street // 8192) % 10 = 0 THEN 'B' ELSE '' END"
    )
    domain = _pick(nd.EMAIL_DOMAINS, "r_email // 4")
    # Four ways to break an address: no @, two @, no dot in the domain, spaces.
    bad_email = (
        "CASE r_bad % 4 WHEN 0 THEN replace(c.email, '@', '')"
        " WHEN 1 THEN replace(c.email, '@', '@@')"
        " WHEN 2 THEN regexp_replace(c.email, '\\.([a-z]+)$', '\\1')"
        " ELSE replace(c.email, '.', ' ') END"
    )
    con.execute(
        f"""
        CREATE TEMP TABLE _cust_final AS
        SELECT c.*, {bad_email} AS bad_email FROM (
        SELECT cidx, creditor_no, cust_seq, defect, customer_type, r_bad, birth,
            national_id, o.orgnr,
            CASE WHEN customer_type = 'PERSON' THEN {first} END AS first_name,
            CASE WHEN customer_type = 'PERSON' THEN {last} END AS last_name,
            CASE WHEN customer_type = 'COMPANY'
                 THEN {word_a} || ' ' || {word_b} || ' AS' END AS company_name,
            {street} AS street,
            lpad(({los}[post_i] + (r_zip // 1024) % {spans}[post_i])::VARCHAR, 4, '0')
                AS zip_code,
            {cities}[post_i] AS city,
            CASE WHEN customer_type = 'PERSON'
                 THEN _fold({first}) || '.' || _fold({last})
                      || CASE WHEN r_email % 4 = 0 THEN ((r_email // 16) % 90 + 10)::VARCHAR
                              ELSE '' END
                      || '@' || {domain}
                 ELSE {_pick(["faktura", "post", "regnskap"], "r_email")} || '@'
                      || _fold({word_a} || {word_b}) || '.no'
            END AS email,
            '+47' || CASE WHEN customer_type = 'PERSON' THEN {_pick(["4", "9"], "r_phone")}
                          ELSE {_pick(["2", "3", "5", "6", "7", "9"], "r_phone")} END
                  || lpad(((r_phone // 8) % 10000000)::VARCHAR, 7, '0') AS phone,
            _at({_d(anchor)} - (r_created % 3650)::INT, 32400 + (r_created // 4096) % 28800)
                AS created_at
        FROM _cust LEFT JOIN _cust_org o USING (cidx)) c;
        DROP TABLE _cust1; DROP TABLE _cust; DROP TABLE _cust_org; DROP TABLE _cust_base;
        """
    )


def _build_invoices(con: duckdb.DuckDBPyConnection, p: _Params) -> None:
    """``_inv``: one row per invoice with every final column and the plan of its payments."""
    terms = _pick([10, 14, 14, 14, 15, 20, 30], "r_terms")
    amount = (
        "CASE WHEN r_amt % 100 < 35 THEN 10000 + r_amt2 % 40000"
        " WHEN r_amt % 100 < 70 THEN 50000 + r_amt2 % 150000"
        " WHEN r_amt % 100 < 92 THEN 200000 + r_amt2 % 800000"
        " ELSE 1000000 + r_amt2 % 4000000 END"
    )
    con.execute(
        f"""
        CREATE TEMP TABLE _inv1 AS
        SELECT s.g, s.day_idx, s.kind, s.creditor_no, c.creditor_id, c.delay, c.flow,
            c.kid_alg, c.kid_len, c.num_start, c.label, c.line1, c.line2, c.line3,
            d.defect, d.defect_rank, s.r_lines, s.r_split, s.r_misc, s.r_pay, s.r_pay2,
            s.r_post, s.r_post2, s.r_int, s.r_def,
            CASE WHEN s.kind = 'NOT_YET_DUE' THEN {_d(p.end_date)} + (1 + s.r_misc % 20)::INT
                 ELSE {_d(p.first_day)} + s.day_idx::INT END AS collection_day,
            collection_day - c.delay AS due_date,
            {terms} AS terms,
            CASE WHEN s.kind = 'NOT_YET_DUE' THEN least(due_date - terms, {_d(p.end_date)})
                 ELSE due_date - terms END AS invoice_date,
            CASE WHEN (s.r_amt // 128) % 2 = 0 THEN ({amount}) // 100 * 100 ELSE {amount} END
                AS principal,
            CASE WHEN s.r_cur % 1000 < 15 THEN 'SEK' WHEN s.r_cur % 1000 < 25 THEN 'EUR'
                 ELSE 'NOK' END AS currency,
            CASE WHEN dd.g IS NOT NULL THEN pl.pool + dd.k ELSE s.r_cust % pl.pool END
                AS cust_seq
        FROM _spine0 s
        JOIN _cred c USING (creditor_no)
        JOIN _pool pl USING (creditor_no)
        LEFT JOIN _defect d USING (g)
        LEFT JOIN _dedicated dd USING (g)
        """
    )
    # Invoice numbers in date order per creditor. MOD11 creditors never issue a number whose
    # check digit would be 10: in each block of ten numbers at most one is such; it is skipped.
    block = "(num_start + seq // 9)"
    s_block = _digit_sum(block, (3, 4, 5, 6, 7, 2), 10)
    num11 = (
        f"{block} * 10 + CASE WHEN bad_digit <= 9 AND seq % 9 >= bad_digit"
        f" THEN seq % 9 + 1 ELSE seq % 9 END"
    )
    con.execute(
        f"""
        CREATE TEMP TABLE _num AS
        SELECT g, creditor_no, kind, defect, seq,
            CASE WHEN kid_alg = 'MOD10' THEN num_start + seq ELSE {num11} END AS num,
            'INV-' || creditor_id || '-' || lpad((seq + 1)::VARCHAR, 9, '0') AS invoice_id
        FROM (SELECT *, ((1 - {s_block} % 11 + 11) * 6) % 11 AS bad_digit
              FROM (SELECT g, creditor_no, creditor_id, kind, defect, kid_alg, num_start,
                           row_number() OVER (PARTITION BY creditor_no
                                              ORDER BY invoice_date, g) - 1 AS seq
                    FROM _inv1));
        -- duplicate_invoice_number: copy the number of another invoice of the same creditor,
        -- preferably one that is not eligible itself (so only the defective row is new).
        -- The creditor's duplicates take consecutive places in that order from a random
        -- start, so no two copy the same number (a number is then shared by exactly two).
        CREATE TEMP TABLE _dup_pool AS
        SELECT creditor_no, num, invoice_id,
               row_number() OVER (PARTITION BY creditor_no ORDER BY kind = 'ELIGIBLE', g) AS prank,
               sum((kind <> 'ELIGIBLE')::INT) OVER (PARTITION BY creditor_no) AS n_other,
               count(*) OVER (PARTITION BY creditor_no) AS n_pool
        FROM _num WHERE defect IS NULL;
        CREATE TEMP TABLE _dup AS
        SELECT i.g, t.num AS dup_num, t.invoice_id AS dup_of
        FROM (SELECT g, creditor_no,
                     min(r_def) OVER (PARTITION BY creditor_no) AS start,
                     row_number() OVER (PARTITION BY creditor_no ORDER BY r_def, g) - 1 AS k,
                     count(*) OVER (PARTITION BY creditor_no) AS n_dup
              FROM _inv1 WHERE defect = 'duplicate_invoice_number') i
        JOIN (SELECT DISTINCT creditor_no, n_other, n_pool FROM _dup_pool) n USING (creditor_no)
        JOIN _dup_pool t ON t.creditor_no = i.creditor_no
             AND t.prank = 1 + (i.start + i.k)
                 % CASE WHEN n.n_other >= i.n_dup THEN n.n_other ELSE n.n_pool END;
        """
    )
    luhn = _luhn_sum("num", 11)
    mod11 = _digit_sum("num", (2, 3, 4, 5, 6, 7), 11)
    fee = _FEE_SQL
    # Payments, reminders and interest, decided per invoice (amounts in øre).
    plan = f"""
        CASE WHEN kid_alg = 'MOD10' THEN check10 ELSE check11 END AS kid_check,
        lpad(num::VARCHAR, kid_len - 1, '0') AS kid_base,
        CASE WHEN kind = 'ELIGIBLE' AND delay >= flow + 1 THEN flow ELSE 0 END AS n_rem,
        {fee} AS fee,
        n_rem * fee AS fees,
        CASE WHEN kind = 'ELIGIBLE' AND currency = 'NOK' AND r_int % 100 < 30
             THEN (principal * {INTEREST_PERMILLE_PA} * delay + 182500) // 365000
             ELSE 0 END AS interest,
        kind = 'ELIGIBLE' AND defect IS DISTINCT FROM 'negative_amount'
            AND r_pay % 100 < 8 AS has_pre,
        CASE WHEN NOT has_pre THEN NULL
             WHEN delay >= 2 THEN due_date + (1 + (r_pay // 100) % (delay - 1))::INT
             ELSE invoice_date + (1 + (r_pay // 100) % terms)::INT END AS pre_date,
        CASE WHEN has_pre THEN principal * (10 + r_pay2 % 41) // 100 ELSE 0 END AS pre,
        kind = 'ELIGIBLE' AND defect IS DISTINCT FROM 'negative_amount'
            AND collection_day < {_d(p.end_date)} AND r_post % 100 < 25 AS has_post,
        CASE WHEN has_post THEN collection_day
             + (1 + (r_post // 100) % ({_d(p.end_date)} - collection_day))::INT END AS post_date,
        CASE WHEN has_post
             THEN greatest(1, (principal + fees + interest - pre) * (10 + r_post2 % 71) // 100)
             ELSE 0 END AS post,
        kind = 'PAID_ON_TIME' AND r_pay % 100 < 15 AS paid_split,
        CASE WHEN kind = 'PAID_LATE' THEN due_date + (1 + (r_pay // 100) % (delay - 1))::INT
             WHEN kind = 'PAID_ON_TIME' THEN invoice_date + (1 + (r_pay // 100) % terms)::INT
        END AS paid_date,
        CASE WHEN paid_split THEN principal * (30 + r_pay2 % 41) // 100 ELSE principal END
            AS paid_first
    """
    months = _list_lit(list(nd.MONTHS_NO))
    cur_bad = _pick(nd.UNKNOWN_CURRENCIES, "defect_rank // 8")
    # A wrong KID check digit that is neither the MOD10 nor the MOD11 one of the base.
    wrong = [f"(kid_check + {k}) % 10" for k in (1, 2, 3)]
    bad_check = (
        f"CASE WHEN {wrong[0]} NOT IN (check10, check11) THEN {wrong[0]}"
        f" WHEN {wrong[1]} NOT IN (check10, check11) THEN {wrong[1]} ELSE {wrong[2]} END"
    )
    status = (
        "CASE kind WHEN 'ELIGIBLE' THEN 'OPEN' WHEN 'PAID_ON_TIME' THEN 'PAID'"
        " WHEN 'PAID_LATE' THEN 'PAID' WHEN 'CREDITED' THEN 'CREDITED'"
        " WHEN 'DISPUTED' THEN CASE WHEN r_misc % 2 = 0 THEN 'DISPUTED' ELSE 'OPEN' END"
        " ELSE 'OPEN' END"
    )
    remaining = (
        "CASE WHEN kind = 'ELIGIBLE' THEN principal + fees + interest - pre - post"
        " WHEN kind IN ('DISPUTED', 'NOT_YET_DUE') THEN principal ELSE 0 END"
    )
    last_event = (
        "CASE kind WHEN 'ELIGIBLE' THEN greatest(invoice_date,"
        "   CASE WHEN n_rem > 0 THEN due_date + ((n_rem * delay + flow) // (flow + 1))::INT END,"
        "   pre_date, post_date)"
        " WHEN 'PAID_ON_TIME' THEN CASE WHEN paid_split THEN due_date ELSE paid_date END"
        " WHEN 'PAID_LATE' THEN paid_date"
        " WHEN 'CREDITED' THEN invoice_date + (1 + r_misc % terms)::INT"
        " WHEN 'DISPUTED' THEN due_date + (r_misc % greatest(delay, 1))::INT"
        " ELSE invoice_date END"
    )
    con.execute(
        f"""
        CREATE TEMP TABLE _inv AS
        SELECT g, creditor_no, seq, invoice_id, customer_id, creditor_id, kind, defect, dup_num,
            dup_of, kid_alg, invoice_date, due_date, delay, flow, principal, currency, n_rem, fee,
            interest, has_pre, pre_date, pre, has_post, post_date, post, paid_split, paid_date,
            paid_first, r_lines, r_split, line1, line2, line3,
            CASE WHEN defect = 'duplicate_invoice_number' THEN dup_num ELSE num END::VARCHAR
                AS out_number,
            CASE WHEN defect = 'negative_amount' THEN -principal ELSE principal END AS out_amount,
            CASE WHEN defect = 'unknown_currency' THEN {cur_bad} ELSE currency END AS out_currency,
            kid_base || CASE WHEN defect = 'invalid_kid' THEN {bad_check} ELSE kid_check END
                AS out_kid,
            {status} AS out_status,
            {remaining} AS out_remaining,
            label || ' ' || {months}[month(invoice_date)] || ' ' || year(invoice_date)
                AS out_description,
            _at({last_event}, 82800 + r_misc % 1800) AS out_updated_at
        FROM (
            SELECT *, {plan}
            FROM (SELECT *, (10 - {luhn} % 10) % 10 AS check10,
                            (11 - {mod11} % 11) % 11 AS check11
                  FROM (SELECT i.*, n.seq, n.num, n.invoice_id,
                               i.creditor_id || '-' || (10001 + i.cust_seq) AS customer_id,
                               d.dup_num, d.dup_of
                        FROM _inv1 i JOIN _num n USING (g) LEFT JOIN _dup d USING (g))));
        UPDATE _inv SET defect = NULL
        WHERE defect = 'duplicate_invoice_number' AND dup_num IS NULL;
        DROP TABLE _inv1; DROP TABLE _num; DROP TABLE _dup_pool; DROP TABLE _spine0;
        """
    )


def _write_tables(con: duckdb.DuckDBPyConnection, p: _Params) -> None:
    """The final ``main`` tables, each in a stable order (by creditor and invoice sequence)."""
    con.execute(
        """
        INSERT INTO invoices
        SELECT invoice_id, creditor_id, customer_id, out_number, invoice_date, due_date,
            _money(out_amount), out_currency, out_kid, out_status, _money(out_remaining),
            kind = 'DISPUTED', out_description, NULL, out_updated_at
        FROM _inv ORDER BY creditor_no, seq
        """
    )
    interest_text = f"'Forsinkelsesrente {INTEREST_PERMILLE_PA / 10:.2f} % p.a.'".replace(
        ".", ",", 1
    )
    con.execute(
        f"""
        CREATE TEMP TABLE _lines AS
        SELECT creditor_no, seq, invoice_id,
            CASE WHEN r_lines % 10 < 6 THEN 1 WHEN r_lines % 10 < 9 THEN 2 ELSE 3 END AS n,
            CASE WHEN n = 1 THEN principal
                 WHEN n = 2 THEN principal * (30 + r_split % 41) // 100
                 ELSE principal * (20 + r_split % 31) // 100 END AS p1,
            CASE WHEN n = 2 THEN principal - p1
                 WHEN n = 3 THEN (principal - p1) * (30 + (r_split // 64) % 41) // 100
                 ELSE 0 END AS p2,
            principal - p1 - p2 AS p3,
            CASE WHEN defect = 'negative_amount' THEN -1 ELSE 1 END AS sign,
            line1, line2, line3, n_rem, fee, interest
        FROM _inv;
        INSERT INTO invoice_lines
        SELECT invoice_id, line_no, line_type, _money(ore), description
        FROM (
            SELECT creditor_no, seq, invoice_id, 1 AS line_no, 'PRINCIPAL' AS line_type,
                   sign * p1 AS ore, line1 AS description FROM _lines
            UNION ALL SELECT creditor_no, seq, invoice_id, 2, 'PRINCIPAL', sign * p2, line2
            FROM _lines WHERE n >= 2
            UNION ALL SELECT creditor_no, seq, invoice_id, 3, 'PRINCIPAL', sign * p3, line3
            FROM _lines WHERE n = 3
            UNION ALL
            SELECT creditor_no, seq, invoice_id, n + k, 'FEE', fee, 'Purregebyr, purring ' || k
            FROM (SELECT *, unnest(range(1, n_rem + 1)) AS k FROM _lines
                  WHERE n_rem > 0 AND fee > 0)
            UNION ALL
            SELECT creditor_no, seq, invoice_id,
                   n + (CASE WHEN fee > 0 THEN n_rem ELSE 0 END) + 1, 'INTEREST', interest,
                   {interest_text}
            FROM _lines WHERE interest > 0
        )
        ORDER BY creditor_no, seq, line_no;
        DROP TABLE _lines;
        """
    )
    con.execute(
        """
        INSERT INTO reminders
        SELECT invoice_id, k, due_date + ((k * delay + flow) // (flow + 1))::INT, _money(fee)
        FROM (SELECT *, unnest(range(1, n_rem + 1)) AS k FROM _inv WHERE n_rem > 0)
        ORDER BY creditor_no, seq, k
        """
    )
    pay_source = """
        SELECT creditor_no, seq, g * 4 + 1 AS pid, invoice_id, 1 AS k, pre_date AS d, pre AS ore,
               currency, out_kid FROM _inv WHERE has_pre
        UNION ALL
        SELECT creditor_no, seq, g * 4 + 2, invoice_id, CASE WHEN has_pre THEN 2 ELSE 1 END,
               post_date, post, currency, out_kid FROM _inv WHERE has_post
        UNION ALL
        SELECT creditor_no, seq, g * 4 + 1, invoice_id, 1, paid_date, paid_first, currency,
               out_kid FROM _inv WHERE kind IN ('PAID_ON_TIME', 'PAID_LATE')
        UNION ALL
        SELECT creditor_no, seq, g * 4 + 2, invoice_id, 2, due_date, principal - paid_first,
               currency, out_kid FROM _inv WHERE paid_split
    """
    method = (
        "CASE WHEN r_meth % 100 < 70 THEN 'BANK' WHEN r_meth % 100 < 90 THEN 'VIPPS'"
        " ELSE 'CARD' END"
    )
    con.execute(
        f"""
        INSERT INTO payments
        SELECT 'PAY-' || substr(invoice_id, 5) || '-' || k, invoice_id, d,
            _at(d, 21600 + r_reg % 57600), _money(ore), currency, {method},
            CASE WHEN {method} = 'CARD' THEN NULL ELSE out_kid END
        FROM ({_with_random(pay_source, "pid", ["meth", "reg"], p.seed)})
        ORDER BY creditor_no, seq, k
        """
    )
    con.execute(
        """
        INSERT INTO customers
        SELECT c.creditor_id || '-' || (10001 + f.cust_seq), c.creditor_id,
            (10001 + f.cust_seq)::VARCHAR, f.customer_type, f.first_name, f.last_name,
            f.company_name,
            CASE WHEN f.defect = 'invalid_national_id'
                 THEN CASE WHEN f.r_bad % 2 = 0
                           THEN left(f.national_id, 10)
                                || ((right(f.national_id, 1)::INT + 1 + f.r_bad // 2 % 9) % 10)
                           ELSE left(f.national_id, 10) END
                 ELSE f.national_id END,
            CASE WHEN f.defect = 'invalid_organization_number'
                 THEN left(f.orgnr, 8)
                      || ((right(f.orgnr, 1)::INT + 1 + f.r_bad // 2 % 9) % 10)
                 ELSE f.orgnr END,
            CASE WHEN f.customer_type = 'PERSON' THEN f.birth END,
            CASE WHEN f.defect = 'missing_address' THEN NULL ELSE f.street END,
            CASE WHEN f.defect = 'missing_address' THEN NULL ELSE f.zip_code END,
            CASE WHEN f.defect = 'missing_address' THEN NULL ELSE f.city END,
            'NO',
            CASE WHEN f.defect = 'invalid_email' THEN f.bad_email ELSE f.email END,
            f.phone, f.created_at
        FROM _cust_final f JOIN _cred c USING (creditor_no)
        ORDER BY f.creditor_no, f.cust_seq
        """
    )
    detail = {
        "invalid_national_id": "'customers.national_id of ' || customer_id"
        " || ': wrong check digit or length'",
        "invalid_organization_number": "'customers.organization_number of ' || customer_id"
        " || ': wrong check digit'",
        "missing_address": "'customers.street, zip_code, city of ' || customer_id || ': NULL'",
        "negative_amount": "'invoices.amount and its PRINCIPAL lines are negative'",
        "unknown_currency": "'invoices.currency is not an ISO 4217 code'",
        "duplicate_invoice_number": "'invoices.invoice_number is also the number of ' || dup_of",
        "invalid_kid": "'invoices.kid: wrong ' || kid_alg || ' check digit'",
        "invalid_email": "'customers.email of ' || customer_id || ': malformed'",
        "identity_of_wrong_kind": "'customers.national_id of ' || customer_id"
        " || ': a COMPANY with a personal number and no organisation number'",
    }
    detail_case = " ".join(f"WHEN {_lit(k)} THEN {v}" for k, v in detail.items())
    con.execute(
        f"""
        INSERT INTO demo_defects
        SELECT invoice_id, defect, CASE defect {detail_case} END
        FROM _inv WHERE defect IS NOT NULL
        ORDER BY creditor_no, seq
        """
    )


def _write_case_actions(con: duckdb.DuckDBPyConnection, p: _Params) -> None:
    """``case_actions``: case handlers' requests about invoices handed over on an earlier day.

    A share ``actions_share`` of the eligible invoices (at least one day before ``end_date``,
    so a request can follow; never a defective one: those cases never reach Amili) gets one
    request 1..``ACTION_DAYS_AFTER`` days after its collection day, at office hours in Oslo:
    WITHDRAW (the invoice was credited or is disputed after the hand-over), PAUSE (a payment
    delay until ``due_date``) or MESSAGE (a note). Half of the pauses with a day left for it
    are followed by a RESUME of the same invoice. Which invoices, which kind and which texts
    are fixed hash draws, like everything else here.

    The ``invoices`` rows keep their state at hand-over: the reason of a withdrawal is told in
    the request's message only, so the eligibility of the invoice (and its collection day) is
    not disturbed by what happened after it.
    """
    count = math.floor(p.actions_share * p.days * p.per_day_eligible + 0.5)
    end = _d(p.end_date)
    candidates = f"""
        SELECT g, creditor_no, seq, invoice_id, creditor_id, due_date + delay AS collection_day
        FROM _inv
        WHERE kind = 'ELIGIBLE' AND defect IS NULL AND due_date + delay < {end}
    """
    streams = ["act_pick", "act_kind", "act_day", "act_time", "act_pause", "act_resume",
               "act_text"]
    kind_case = " ".join(
        f"WHEN r_act_kind % 100 < {cut} THEN '{kind}'" for kind, cut in ACTION_KINDS
    )
    pause_subject, pause_text = nd.ACTION_PAUSE
    resume_subject, resume_text = nd.ACTION_RESUME
    withdraw_subjects = _list_lit([s for s, _ in nd.ACTION_WITHDRAW])
    withdraw_texts = _list_lit([m for _, m in nd.ACTION_WITHDRAW])
    message_subjects = _list_lit([s for s, _ in nd.ACTION_MESSAGES])
    message_texts = _list_lit([m for _, m in nd.ACTION_MESSAGES])
    withdraw_i = f"r_act_text % {len(nd.ACTION_WITHDRAW)} + 1"
    message_i = f"r_act_text % {len(nd.ACTION_MESSAGES)} + 1"
    pause_message = _lit(pause_text).replace(
        "{date}", "' || strftime(pause_until, '%d.%m.%Y') || '"
    )
    con.execute(
        f"""
        CREATE TEMP TABLE _act AS
        SELECT *,
            CASE {kind_case} END AS first_type,
            collection_day
                + (1 + r_act_day % least({ACTION_DAYS_AFTER}, {end} - collection_day))::INT
                AS day1,
            day1 + (14 + r_act_pause % 17)::INT AS pause_until,
            first_type = 'PAUSE' AND r_act_resume % 2 = 0 AND day1 < {end} AS has_resume,
            CASE WHEN has_resume
                 THEN day1 + (1 + (r_act_resume // 2) % least(4, {end} - day1))::INT END AS day2
        FROM ({_with_random(candidates, "g", streams, p.seed)})
        QUALIFY row_number() OVER (ORDER BY r_act_pick, g) <= {count};
        INSERT INTO case_actions
        SELECT action_id, invoice_id, creditor_id, action_type, requested_at, due_date, subject,
               message, conversation_id
        FROM (
            SELECT creditor_no, seq, 1 AS k,
                'ACT-' || substr(invoice_id, 5) || '-1' AS action_id, invoice_id, creditor_id,
                first_type AS action_type,
                _at(day1, 28800 + r_act_time % 30600) AS requested_at,
                CASE WHEN first_type = 'PAUSE' THEN pause_until END AS due_date,
                CASE first_type WHEN 'PAUSE' THEN {_lit(pause_subject)}
                     WHEN 'WITHDRAW' THEN {withdraw_subjects}[{withdraw_i}]
                     ELSE {message_subjects}[{message_i}] END AS subject,
                CASE first_type WHEN 'PAUSE' THEN {pause_message}
                     WHEN 'WITHDRAW' THEN {withdraw_texts}[{withdraw_i}]
                     ELSE {message_texts}[{message_i}] END AS message,
                'CNV-' || substr(invoice_id, 5) AS conversation_id
            FROM _act
            UNION ALL
            SELECT creditor_no, seq, 2, 'ACT-' || substr(invoice_id, 5) || '-2', invoice_id,
                creditor_id, 'RESUME', _at(day2, 28800 + (r_act_time // 65536) % 30600), NULL,
                {_lit(resume_subject)}, {_lit(resume_text)}, 'CNV-' || substr(invoice_id, 5)
            FROM _act WHERE has_resume
        )
        ORDER BY creditor_no, seq, k;
        DROP TABLE _act;
        """
    )


def _create_schema(con: duckdb.DuckDBPyConnection) -> None:
    for table, (comment, columns) in SCHEMA.items():
        cols = ", ".join(f"{name} {typ}" for name, typ, _ in columns)
        con.execute(f"CREATE TABLE main.{table} ({cols})")
        con.execute(f"COMMENT ON TABLE main.{table} IS {_lit(comment)}")
        for name, _, col_comment in columns:
            con.execute(f"COMMENT ON COLUMN main.{table}.{name} IS {_lit(col_comment)}")


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def default_end_date() -> date:
    """Yesterday in Europe/Oslo: the last complete day, the default last collection day."""
    return datetime.now(OSLO).date() - timedelta(days=1)


def generate_demo_warehouse(
    path: Path | str,
    *,
    days: int = 30,
    invoices_per_day: int = 200,
    bad_share: float = 0.05,
    seed: int = 42,
    end_date: date | None = None,
    creditors: int = 3,
    overdue_days: int = 14,
    action_share: float = 0.02,
) -> DemoWarehouseSummary:
    """Write the demo warehouse to ``path`` (replaced atomically) and say what is in it.

    ``days`` collection days end at ``end_date`` (default: yesterday in Oslo); on each of them
    ``invoices_per_day`` invoices reach ``due_date + overdue_days`` unpaid, and a share
    ``bad_share`` of all those carry one deliberate defect each (see ``demo_defects``). A share
    ``action_share`` of them gets a case handler's request (``case_actions``) a few days after
    its collection day.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if invoices_per_day < 1:
        raise ValueError(f"invoices_per_day must be at least 1, got {invoices_per_day}")
    if not 0.0 <= bad_share <= 1.0:
        raise ValueError(f"bad_share must be between 0 and 1, got {bad_share}")
    if not 0.0 <= action_share <= 1.0:
        raise ValueError(f"action_share must be between 0 and 1, got {action_share}")
    if creditors < 1:
        raise ValueError(f"creditors must be at least 1, got {creditors}")
    if overdue_days < 0:
        raise ValueError(f"overdue_days must not be negative, got {overdue_days}")
    started = time.perf_counter()
    end = end_date or default_end_date()
    other = math.ceil(invoices_per_day * OTHER_SHARE)
    eligible_total = days * invoices_per_day
    p = _Params(
        days=days,
        per_day_eligible=invoices_per_day,
        per_day_other=other,
        seed=seed,
        first_day=end - timedelta(days=days - 1),
        end_date=end,
        delay=overdue_days,
        defects_total=math.floor(bad_share * eligible_total + 0.5),
        actions_share=action_share,
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        con = duckdb.connect(str(tmp))
        try:
            con.execute("SET TimeZone = 'Europe/Oslo'")
            con.execute(_MACROS)
            con.execute("BEGIN TRANSACTION")  # one commit (one fsync) for the whole file
            _create_schema(con)
            rng = random.Random(seed)
            cred = _creditors(rng, creditors, overdue_days, p.first_day, p.total)
            _build_spine(con, p, _load_creditors(con, cred))
            _build_customers(con, p)
            _build_invoices(con, p)
            _write_tables(con, p)
            _write_case_actions(con, p)
            con.execute("COMMIT")
            union = " UNION ALL ".join(
                f"SELECT {i} AS i, {_lit(t)} AS t, count(*) AS n FROM main.{t}"
                for i, t in enumerate(TABLES)
            )
            counts = {t: int(n) for _, t, n in con.execute(f"{union} ORDER BY i").fetchall()}
            defect_rows = dict(
                con.execute("SELECT defect, count(*) FROM demo_defects GROUP BY defect").fetchall()
            )
            con.execute("CHECKPOINT")
        finally:
            con.close()
        wal = Path(str(target) + ".wal")
        if wal.exists():  # a stale log of the old file would be replayed onto the new one
            wal.unlink()
        os.replace(tmp, target)
    except BaseException:
        for leftover in (tmp, Path(str(tmp) + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    return DemoWarehouseSummary(
        path=target,
        row_counts=counts,
        first_collection_day=p.first_day,
        last_collection_day=end,
        defects={k: int(defect_rows.get(k, 0)) for k in DEFECT_KINDS},
        eligible_invoices=eligible_total,
        seed=seed,
        seconds=time.perf_counter() - started,
    )


def export_parquet(duckdb_path: Path | str, folder: Path | str) -> list[Path]:
    """Write every table of the warehouse as ``<folder>/<table>.parquet`` (same schema, order).

    This is the "folder of Parquet files" flavour of the source; each file is replaced
    atomically.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
                " AND database_name = current_database() ORDER BY table_name"
            ).fetchall()
        ]
        for table in tables:
            final = out / f"{table}.parquet"
            tmp = out / f".{table}.{os.getpid()}.{uuid.uuid4().hex[:8]}.parquet.tmp"
            try:
                con.execute(
                    f"COPY (SELECT * FROM main.\"{table}\") TO {_lit(str(tmp))}"
                    " (FORMAT parquet, COMPRESSION zstd)"
                )
                os.replace(tmp, final)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            written.append(final)
    return written
