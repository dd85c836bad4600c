"""The dbt project against a real pipeline database: demo warehouse -> extract -> `dbt build`.

One module-scoped build of five demo days is shared by the read-only tests; the tests that
change data (re-run, an emptied day, an acknowledgement) work on their own copy of the built
file and run `dbt build` again for one day or the window, exactly as Dagster would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pydantic import BaseModel, ValidationError

from amili import jsonio
from amili.models import Action, Creditor, Invoice, Payment
from amili.pipeline.extract import extract_window
from amili.warehouse import generate_demo_warehouse
from tests.helpers import documented_example_body

DBT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
END = date(2026, 11, 24)
DAYS = 5
FIRST = END - timedelta(days=DAYS - 1)
# Half-open. It starts two weeks before the first collection day, so raw.payments also holds
# payments of invoices never handed over and payments made before an invoice's hand-over.
WINDOW = (FIRST - timedelta(days=14), END + timedelta(days=1))
PLACEHOLDER_UUID = "00000000-0000-4000-8000-000000000000"
AMILI_INVOICE_ID = "4f163819-178d-470c-a246-d6768476a6ec"  # as Amili would answer
BATCH_TABLES = ("batch_creditors", "batch_invoices", "batch_payments", "batch_actions")
HELD = "invoice not yet acknowledged by Amili"

pytestmark = pytest.mark.timeout(600)


# --------------------------------------------------------------------------------------------
# Running dbt
# --------------------------------------------------------------------------------------------


def dbt_executable() -> str:
    """The venv's dbt (next to this Python), else the one on PATH."""
    local = Path(sys.executable).with_name("dbt")
    found = str(local) if local.exists() else shutil.which("dbt")
    assert found, "dbt is not installed in this environment"
    return found


def dbt_vars(start: date, end: date) -> str:
    """The vars as Dagster passes them: JSON, ISO dates, the window half-open."""
    return json.dumps({"min_date": start.isoformat(), "max_date": end.isoformat()})


def start_dbt(db: Path, work: Path, *args: str) -> subprocess.Popen[str]:
    """Start ``dbt <args>`` on ``db``, with its own target and log folders under ``work``."""
    env = {**os.environ, "AMILI_PIPELINE_DB": str(db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    command = [
        dbt_executable(), "--no-use-colors", *args,
        "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR),
        "--target-path", str(work / "target"), "--log-path", str(work / "logs"),
    ]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=540)
    return process.returncode, output


def start_build(
    db: Path, work: Path, start: date, end: date, *, yaml_vars: bool = False
) -> subprocess.Popen[str]:
    """Start a real ``dbt build`` of the window [start, end)."""
    # Both documented --vars forms work: JSON (as Dagster passes them) and YAML (a shell).
    variables = (
        f"{{min_date: {start.isoformat()}, max_date: {end.isoformat()}}}"
        if yaml_vars else dbt_vars(start, end)
    )
    return start_dbt(db, work, "build", "--vars", variables)


def assert_green(process: subprocess.Popen[str], work: Path) -> None:
    """The build passed: exit code 0 and every node a success; else dbt's output."""
    code, output = finish(process)
    assert code == 0, output[-8000:]
    results = json.loads((work / "target" / "run_results.json").read_text())["results"]
    bad = [r["unique_id"] for r in results if r["status"] not in ("success", "pass")]
    assert not bad, bad


# --------------------------------------------------------------------------------------------
# The shared build
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    warehouse: Path
    db: Path
    tmp: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("dbt")
    warehouse = tmp / "warehouse.duckdb"
    # A higher share of case actions than the default, so five small days have some.
    generate_demo_warehouse(
        warehouse, days=DAYS, invoices_per_day=40, end_date=END, seed=11, action_share=0.1
    )
    db = tmp / "pipeline.duckdb"
    extract_window(db, warehouse, *WINDOW)
    assert_green(start_build(db, tmp / "build", *WINDOW), tmp / "build")
    return Built(warehouse, db, tmp)


@pytest.fixture
def con(built: Built) -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect(str(built.db), read_only=True) as connection:
        yield connection


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every batch table (nested values as their text), in a stable order."""
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            table: con.execute(
                f"SELECT * FROM (SELECT COLUMNS(*)::VARCHAR FROM batch.{table}) ORDER BY ALL"
            ).fetchall()
            for table in BATCH_TABLES
        }


def count_by_day(con: duckdb.DuckDBPyConnection, relation: str) -> dict[date, int]:
    return dict(
        con.execute(f"SELECT partition_date, count(*) FROM {relation} GROUP BY ALL").fetchall()
    )


def payloads(con: duckdb.DuckDBPyConnection, kind: str, key: str) -> list[tuple[str, Any, Any]]:
    """(source id, hold_reason or None, parsed payload) of every row of batch_<kind>_json."""
    hold = "hold_reason" if kind in ("payments", "actions") else "NULL"
    rows = con.execute(
        f"SELECT {key}, {hold}, payload FROM batch.batch_{kind}_json ORDER BY ALL"
    ).fetchall()
    return [(source_id, reason, jsonio.loads(text)) for source_id, reason, text in rows]


def strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


def key_paths(value: Any, prefix: str = "") -> list[str]:
    """Every key path of a JSON value in document order, lists flattened to ``[]``."""
    paths: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            paths.append(f"{prefix}/{key}")
            paths.extend(key_paths(item, f"{prefix}/{key}"))
    elif isinstance(value, list):
        for item in value:
            paths.extend(p for p in key_paths(item, f"{prefix}[]") if p not in paths)
    return paths


def unique_paths(objects: list[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for obj in objects:
        for path in key_paths(obj):
            seen.setdefault(path, None)
    return list(seen)


def assert_round_trips(model: type[BaseModel], obj: dict[str, Any]) -> None:
    """Valid, and what the client would write from the model is our JSON minus its nulls."""
    parsed = model.model_validate(obj)
    assert jsonio.loads(jsonio.dumps(parsed)) == strip_nulls(obj)


# --------------------------------------------------------------------------------------------
# The build and its row counts
# --------------------------------------------------------------------------------------------


def test_build_is_green_and_rows_match_the_raw_days(
    built: Built, con: duckdb.DuckDBPyConnection
) -> None:
    # one batch row per raw invoice, creditor and action, on the same day
    for batch, raw in [("batch_invoices", "invoices"), ("batch_creditors", "creditors"),
                       ("batch_actions", "case_actions")]:
        expected = count_by_day(con, f"raw.{raw}")
        assert expected and count_by_day(con, f"batch.{batch}") == expected, batch
        assert count_by_day(con, f"batch.{batch}_json") == expected, batch
    # payments: only those of invoices handed over on the payment's day or earlier
    raw_payments = con.execute(
        "SELECT payment_id, invoice_id, partition_date FROM raw.payments"
    ).fetchall()
    handed_over = dict(con.execute(
        "SELECT invoice_id, min(partition_date) FROM raw.invoices GROUP BY ALL"
    ).fetchall())
    expected_ids = {
        payment_id for payment_id, invoice_id, day in raw_payments
        if invoice_id in handed_over and handed_over[invoice_id] <= day
    }
    got_ids = {r[0] for r in con.execute("SELECT payment_id FROM batch.batch_payments").fetchall()}
    assert got_ids == expected_ids
    never = {p for p, i, _ in raw_payments if i not in handed_over}
    before = {p for p, i, day in raw_payments if i in handed_over and day < handed_over[i]}
    assert got_ids and never and before  # both kinds of payment exist, and are left out
    # the extract took the day's actions from the warehouse by their Oslo day
    with duckdb.connect(str(built.warehouse), read_only=True) as wh:
        actions = wh.execute(
            "SELECT count(*) FROM case_actions WHERE timezone('Europe/Oslo', requested_at)::DATE"
            " >= ? AND timezone('Europe/Oslo', requested_at)::DATE < ?", list(WINDOW)
        ).fetchone()[0]
    assert actions > 0 and sum(count_by_day(con, "raw.case_actions").values()) == actions


def test_source_rows_carry_the_creditor_the_warehouse_names(
    built: Built, con: duckdb.DuckDBPyConnection,
) -> None:
    """A payment takes its invoice's creditor (the day it was handed over, as batch_payments
    does), also when it nets into the claims; one of an invoice never handed over takes the
    creditor the warehouse gives that invoice (the extract's invoice_creditor_id); only one
    of no invoice, or of one the warehouse does not have, has none known. The aggregate,
    summed over creditors, is still the rows per day, table, bucket and currency: the
    creditor splits the figures, it adds or drops none."""
    with duckdb.connect(str(built.warehouse), read_only=True) as warehouse:
        in_warehouse = dict(warehouse.execute(
            "SELECT invoice_id, creditor_id FROM invoices").fetchall())
    payments = con.execute(
        """SELECT s.creditor_id, h.creditor_id, s.bucket, p.invoice_id
           FROM marts.rpt_source_rows AS s
           JOIN raw.payments AS p USING (partition_date, source_row)
           LEFT JOIN (SELECT invoice_id, arg_min(creditor_id, partition_date) AS creditor_id
                      FROM raw.invoices GROUP BY ALL) AS h USING (invoice_id)
           WHERE s.source_table = 'payments'""").fetchall()
    assert all(got == (handed_over or in_warehouse.get(invoice))
               for got, handed_over, _, invoice in payments)
    assert {bucket for got, _, bucket, _ in payments if got is not None} >= {
        "held", "netted_before_handover", "not_handed_over"}  # held: no submission here
    never_handed_over = [got for got, handed_over, _, _ in payments if handed_over is None]
    assert never_handed_over and None not in never_handed_over
    assert [invoice for got, _, _, invoice in payments
            if got is None and invoice in in_warehouse] == []
    # every other table names its creditor on every row of the clean demo
    assert con.execute("""SELECT count(*) FROM marts.rpt_source_rows
                          WHERE source_table <> 'payments' AND creditor_id IS NULL""").fetchone(
    ) == (0,)
    per_creditor, rows = (con.execute(f"""
        SELECT partition_date, source_table, bucket, currency, {n}, {amount}
        FROM {relation} GROUP BY ALL ORDER BY ALL""").fetchall() for relation, n, amount in (
        ("marts.rpt_source_reconciliation", "sum(row_count)", "sum(amount)"),
        ("marts.rpt_source_rows", "count(*)", "sum(amount)")))
    assert per_creditor == rows
    assert con.execute("""SELECT count(DISTINCT creditor_id) FROM
                          marts.rpt_source_reconciliation""").fetchone()[0] >= 2


def test_claims_hold_what_was_owed_at_hand_over(
    built: Built, con: duckdb.DuckDBPyConnection
) -> None:
    """Against the warehouse: lines minus the payments made before the collection day."""
    con.execute(f"ATTACH '{built.warehouse}' AS wh (READ_ONLY)")
    try:
        rows = con.execute(
            """WITH truth AS (
                   SELECT i.invoice_id,
                          (SELECT sum(amount) FROM wh.invoice_lines l
                           WHERE l.invoice_id = i.invoice_id)
                          - coalesce((SELECT sum(amount) FROM wh.payments p
                                      WHERE p.invoice_id = i.invoice_id
                                        AND timezone('Europe/Oslo', p.registered_at)::DATE
                                            < i.due_date + c.collection_delay_days), 0)
                          AS owed
                   FROM wh.invoices i JOIN wh.creditors c USING (creditor_id))
               SELECT b.invoice_id, t.owed,
                      list_sum([x.remainingAmount for x in b.claims]), d.defect
               FROM batch.batch_invoices b JOIN truth t USING (invoice_id)
               LEFT JOIN wh.demo_defects d USING (invoice_id)"""
        ).fetchall()
    finally:
        con.execute("DETACH wh")
    assert len(rows) == DAYS * 40
    wrong = [r for r in rows if r[1] != r[2] and r[3] != "negative_amount"]
    assert not wrong
    # later payments were netted in remaining_amount by the extract and are added back
    paid_later = con.execute(
        "SELECT count(*) FROM batch.batch_invoices WHERE paid_since_handover > 0"
    ).fetchone()[0]
    assert paid_later > 0


# --------------------------------------------------------------------------------------------
# The JSON against the API models and the documented key spelling
# --------------------------------------------------------------------------------------------


def test_invoice_payloads_validate_except_the_deliberate_defects(
    built: Built, con: duckdb.DuckDBPyConnection
) -> None:
    with duckdb.connect(str(built.warehouse), read_only=True) as wh:
        defects = dict(wh.execute("SELECT invoice_id, defect FROM demo_defects").fetchall())
    rows = payloads(con, "invoices", "invoice_id")
    failed: dict[str, ValidationError] = {}
    for invoice_id, _, obj in rows:
        try:
            assert_round_trips(Invoice, obj)
        except ValidationError as exc:
            failed[invoice_id] = exc
    negative = {i for i, d in defects.items() if d == "negative_amount"}
    assert negative and set(failed) == negative
    for exc in failed.values():  # for the right reason: the amounts are negative
        locations = {".".join(map(str, e["loc"])) for e in exc.errors()}
        assert "originalInvoiceAmount" in locations
        assert any(loc.startswith("claims.") and loc.endswith("remainingAmount")
                   for loc in locations)
        assert all("must not be negative" in e["msg"] for e in exc.errors())
    # the other defects reach the JSON unchanged, for the submission's validation to find
    by_id = {invoice_id: obj for invoice_id, _, obj in rows}
    in_window = {i: d for i, d in defects.items() if i in by_id}
    currencies = {by_id[i]["currency"] for i, d in in_window.items() if d == "unknown_currency"}
    assert currencies and currencies.isdisjoint({"NOK", "SEK", "EUR"})
    missing = [by_id[i]["debtors"][0]["addresses"] for i, d in in_window.items()
               if d == "missing_address"]
    assert missing and all(a == [] for a in missing)


def test_creditor_payloads_validate(con: duckdb.DuckDBPyConnection) -> None:
    rows = payloads(con, "creditors", "creditor_id")
    assert rows
    for _, _, obj in rows:
        assert_round_trips(Creditor, obj)


@pytest.mark.parametrize(("kind", "key", "model", "amili_id"), [
    ("payments", "payment_id", Payment, "invoiceId"),
    ("actions", "action_id", Action, "ledgerref"),
])
def test_held_payloads_validate_once_amili_has_an_id(
    con: duckdb.DuckDBPyConnection, kind: str, key: str, model: type[BaseModel], amili_id: str
) -> None:
    rows = payloads(con, kind, key)
    assert rows
    for _, reason, obj in rows:
        # nothing is acknowledged yet in this database: everything waits, nothing is guessed
        assert reason == HELD and obj[amili_id] is None
        with pytest.raises(ValidationError, match=amili_id):
            model.model_validate(obj)
        assert_round_trips(model, {**obj, amili_id: PLACEHOLDER_UUID})


def test_json_keys_are_spelled_and_ordered_as_documented(
    con: duckdb.DuckDBPyConnection,
) -> None:
    documented = jsonio.loads(documented_example_body())
    ours = {
        "creditor": [p for _, _, p in payloads(con, "creditors", "creditor_id")],
        "invoice": [p for _, _, p in payloads(con, "invoices", "invoice_id")],
        "payment": [p for _, _, p in payloads(con, "payments", "payment_id")],
        "action": [p for _, _, p in payloads(con, "actions", "action_id")],
    }
    for name, objects in ours.items():
        expected = key_paths(documented[name][0])
        got = set(unique_paths(objects))
        if name == "creditor":  # a subset of the creditor's fields
            assert got <= set(expected)
        else:  # every documented key path, nothing else
            assert got == set(expected), name
        for obj in objects:  # each object's keys in the documented order
            paths = key_paths(obj)
            assert paths == [p for p in expected if p in set(paths)], name
    text = con.execute(
        "SELECT string_agg(payload, '\n') FROM batch.batch_invoices_json"
    ).fetchone()[0]
    for key in ("uniqueSourceInvoiceId", "invoiceNumber", "originalInvoiceAmount", "firstname",
                "lastname", "phoneNumbers", "originalValue", "zipCode", "countryCode",
                "dateOfBirth", "remainingAmount", "ocrReferenceNumber"):
        assert f'"{key}":' in text, key
    # money is a JSON number with exactly two decimals, never a double or a string
    amounts = re.findall(r'"(?:originalInvoiceAmount|remainingAmount)":([^,}]+)', text)
    assert amounts and all(re.fullmatch(r"-?\d+\.\d{2}", a) for a in amounts)
    dates = re.findall(r'"(?:invoiceDate|dueDate)":"([^"]+)"', text)
    assert dates and all(re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00\.000Z", d) for d in dates)


# --------------------------------------------------------------------------------------------
# Re-runs, emptied days and acknowledgements (each on its own copy of the built database)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rebuilt:
    """A copy of the built database, changed, then rebuilt by ``dbt build``."""

    db: Path
    before: dict[str, list[tuple[Any, ...]]]  # batch rows before the change and the rebuild
    after: dict[str, list[tuple[Any, ...]]]
    day: date  # the day that was rebuilt (the whole window for "rerun")
    detail: dict[str, str]


@pytest.fixture(scope="module")
def rebuilt(built: Built, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rebuilt]:
    """Three scenarios on three copies, their dbt builds run side by side (each dbt process
    spends seconds starting up; in parallel the three cost little more than one)."""
    started: dict[str, tuple[Path, Path, dict[str, Any], subprocess.Popen[str]]] = {}

    def launch(name: str, prepare: Any, window: tuple[date, date], **kwargs: Any) -> None:
        work = tmp_path_factory.mktemp(name)
        db = work / "pipeline.duckdb"
        shutil.copyfile(built.db, db)  # dbt has closed the file: no WAL is left
        before = snapshot(db)
        detail = prepare(db) or {}
        started[name] = (work, db, {"before": before, "day": window[0], "detail": detail},
                         start_build(db, work, *window, **kwargs))

    # "rerun": the same window again, nothing changed
    launch("rerun", lambda db: None, WINDOW)

    # "emptied": one day's source rows deleted, that day rebuilt alone (YAML vars this time)
    emptied = FIRST + timedelta(days=2)

    def empty_day(db: Path) -> None:
        with duckdb.connect(str(db)) as con:
            for table in ("invoices", "invoice_lines", "reminders", "payments", "case_actions",
                          "customers", "creditors"):
                con.execute(f"DELETE FROM raw.{table} WHERE partition_date = ?", [emptied])

    launch("emptied", empty_day, (emptied, emptied + timedelta(days=1)), yaml_vars=True)

    # "acknowledged": Amili acknowledged the invoice of a held payment; the payment's day is
    # rebuilt (the invoice was handed over on an earlier day)
    with duckdb.connect(str(built.db), read_only=True) as con:
        payment_id, invoice_id, paid_on = con.execute(
            """SELECT p.payment_id, p.invoice_id, p.partition_date
               FROM batch.batch_payments p JOIN batch.batch_invoices i USING (invoice_id)
               WHERE p.hold_reason IS NOT NULL AND i.partition_date < p.partition_date
               ORDER BY p.partition_date, p.payment_id LIMIT 1"""
        ).fetchone()

    def acknowledge(db: Path) -> dict[str, str]:
        with duckdb.connect(str(db)) as con:
            con.execute("INSERT INTO amili.acknowledged_invoices VALUES (?, ?, now())",
                        [invoice_id, AMILI_INVOICE_ID])
        return {"payment_id": payment_id, "invoice_id": invoice_id}

    launch("acknowledged", acknowledge, (paid_on, paid_on + timedelta(days=1)))

    results = {}
    for name, (work, db, info, process) in started.items():
        assert_green(process, work)
        results[name] = Rebuilt(db, info["before"], snapshot(db), info["day"], info["detail"])
    return results


def other_days(rows: list[tuple[Any, ...]], day: date) -> list[tuple[Any, ...]]:
    return [row for row in rows if row[0] != day.isoformat()]  # column 0 is partition_date


def test_rerunning_the_window_gives_identical_rows(rebuilt: dict[str, Rebuilt]) -> None:
    run = rebuilt["rerun"]
    assert all(run.before[table] for table in BATCH_TABLES)
    assert run.after == run.before  # same rows, none twice


def test_a_day_emptied_in_the_source_is_rebuilt_empty(rebuilt: dict[str, Rebuilt]) -> None:
    run = rebuilt["emptied"]
    for table in BATCH_TABLES:
        assert len(other_days(run.before[table], run.day)) < len(run.before[table]), table
        # the day has no rows left, and every other day is untouched
        assert run.after[table] == other_days(run.before[table], run.day), table


def test_an_acknowledged_invoice_releases_its_held_payment(
    rebuilt: dict[str, Rebuilt],
) -> None:
    run = rebuilt["acknowledged"]
    payment_id, invoice_id = run.detail["payment_id"], run.detail["invoice_id"]
    with duckdb.connect(str(run.db), read_only=True) as con:
        reason, invoice_ref, text = con.execute(
            "SELECT p.hold_reason, p.invoiceId, j.payload FROM batch.batch_payments_json j"
            " JOIN batch.batch_payments p USING (partition_date, payment_id)"
            " WHERE payment_id = ?", [payment_id]
        ).fetchone()
        ready = con.execute(
            "SELECT count(*) FROM batch.batch_payments WHERE hold_reason IS NULL"
        ).fetchone()[0]
    assert reason is None and invoice_ref == AMILI_INVOICE_ID
    payment = Payment.model_validate(jsonio.loads(text))
    assert payment.invoiceId == AMILI_INVOICE_ID and payment.uniqueSourcePaymentId == payment_id
    # only that invoice's payments of the rebuilt day were released; other days wait for
    # their own rebuild and are untouched
    released = [r for r in run.after["batch_payments"]
                if r[0] == run.day.isoformat() and r[2] == invoice_id]
    assert ready == len(released) >= 1
    for table in BATCH_TABLES:
        assert other_days(run.after[table], run.day) == other_days(run.before[table], run.day)


def test_a_date_time_window_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """The vars are dates; a date-time (a partition window's start.isoformat()) is refused
    while dbt parses the project, with a message naming the var; no database is opened."""
    db = tmp_path / "never-created.duckdb"
    variables = {"min_date": "2026-11-20T00:00:00+01:00", "max_date": "2026-11-21"}
    code, output = finish(start_dbt(db, tmp_path, "parse", "--vars", json.dumps(variables)))
    assert code != 0
    assert "var 'min_date' must be an ISO date YYYY-MM-DD" in output
    assert not db.exists()
