"""Property: a day of random malformed warehouse rows never stops the day or loses a row.

Hypothesis generates invoices, payments and case actions with nulls, extreme and negative
amounts, more decimals than the API carries, long and odd strings, dangling references and
repeated ids, added to a small demo warehouse on one collection day. For every such day the
daily job (real extract, real `dbt build`, the sandbox on loopback) completes, every
extracted row is in exactly one bucket (none unaccounted), the balance check passes, and no
object is posted twice. Each example runs the whole job (seconds), so there are few.
"""

from __future__ import annotations

import itertools
import shutil
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amili.warehouse import generate_demo_warehouse
from amili.warehouse.dirt import add_dirt
from tests.conftest import SandboxServer
from tests.pipeline.test_daily_job import check_results, run_job

DAY = date(2026, 11, 24)
_examples = itertools.count()

ODD_TEXT = st.one_of(
    st.none(), st.just(""), st.just("   "), st.text(max_size=12),
    st.just("x" * 2500), st.just("æøå \u00a0\u200b 'quote\" \\ ; --"),
)
AMOUNTS = st.one_of(
    st.none(),
    st.decimals(min_value=Decimal("-1e20"), max_value=Decimal("1e20"), places=2,
                allow_nan=False, allow_infinity=False),
    st.decimals(min_value=Decimal("-1000"), max_value=Decimal("1000"), places=6,
                allow_nan=False, allow_infinity=False),
    st.sampled_from([Decimal("0"), Decimal("0.005"), Decimal("99999999999999999.99"),
                     Decimal("-0.01"), Decimal("1e25")]),
)


@st.composite
def malformed_day(draw: st.DrawFn) -> dict[str, list[dict[str, object]]]:
    """Rows to add: each refers to ids by role ('eligible', 'unknown', None, 'new'), which
    the test resolves against the warehouse."""
    ids = st.one_of(st.none(), st.sampled_from(["dup", "new", "blank"]), ODD_TEXT)
    refs = st.sampled_from(["eligible", "unknown", "none", "not_handed_over"])
    invoices = draw(st.lists(st.fixed_dictionaries({
        "invoice_id": ids, "amount": AMOUNTS, "remaining": AMOUNTS, "description": ODD_TEXT,
        "invoice_number": ODD_TEXT, "customer": st.sampled_from(["existing", "missing", "none"]),
        "due_date_offset": st.sampled_from([0, 0, 0, -400, 3650]),
    }), max_size=6))
    payments = draw(st.lists(st.fixed_dictionaries({
        "payment_id": ids, "invoice": refs, "amount": AMOUNTS, "method": ODD_TEXT,
    }), max_size=6))
    actions = draw(st.lists(st.fixed_dictionaries({
        "action_id": ids, "invoice": refs, "message": ODD_TEXT,
        "action_type": st.sampled_from(["PAUSE", "WITHDRAW", "ESCALATE", None]),
    }), max_size=4))
    return {"invoices": invoices, "payments": payments, "actions": actions}


@pytest.fixture(scope="module")
def base_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("base") / "warehouse.duckdb"
    generate_demo_warehouse(path, days=2, invoices_per_day=8, end_date=DAY, seed=5)
    add_dirt(path, share=0)  # money columns wide enough for the malformed amounts
    return path


def _add_rows(warehouse: Path, day: dict[str, list[dict[str, object]]], n: int) -> None:
    """Resolve the drawn roles against the warehouse and insert the rows."""
    with duckdb.connect(str(warehouse)) as con:
        creditor, delay, customer = con.execute(
            """SELECT c.creditor_id, coalesce(c.collection_delay_days, 14), min(u.customer_id)
               FROM creditors c JOIN customers u USING (creditor_id)
               GROUP BY ALL ORDER BY 1 LIMIT 1""").fetchone()
        eligible = [r[0] for r in con.execute(
            """SELECT invoice_id FROM invoices i JOIN creditors c USING (creditor_id)
               WHERE i.status = 'OPEN' AND i.remaining_amount > 0 AND NOT i.disputed
                 AND i.handed_over_to_collection_at IS NULL
                 AND i.due_date + coalesce(c.collection_delay_days, 14) = ?
               ORDER BY 1""", [DAY]).fetchall()]
        not_handed = con.execute(
            "SELECT min(invoice_id) FROM invoices WHERE status = 'PAID'").fetchone()[0]
        counter = itertools.count()

        def resolve_id(value: object, prefix: str, existing: str) -> object:
            if value == "dup":
                return existing
            if value == "new":
                return f"{prefix}-{n}-{next(counter)}"
            if value == "blank":
                return "   "
            return value

        def resolve_ref(role: object) -> object:
            return {"eligible": eligible[0] if eligible else None, "unknown": "NO-SUCH",
                    "none": None, "not_handed_over": not_handed}[str(role)]

        at = datetime.combine(DAY, time(12), tzinfo=UTC)
        for row in day["invoices"]:
            con.execute(
                """INSERT INTO invoices BY NAME SELECT ? AS invoice_id, ? AS creditor_id,
                   ? AS customer_id, ? AS invoice_number, ? AS invoice_date, ? AS due_date,
                   ? AS amount, 'NOK' AS currency, 'OPEN' AS status, ? AS remaining_amount,
                   false AS disputed, ? AS description""",
                [resolve_id(row["invoice_id"], "INV-X", eligible[0] if eligible else "E"),
                 creditor,
                 {"existing": customer, "missing": "NO-SUCH-CUSTOMER", "none": None}[
                     str(row["customer"])],
                 row["invoice_number"], DAY - timedelta(days=delay + 30),
                 DAY - timedelta(days=delay) + timedelta(days=int(row["due_date_offset"])),
                 row["amount"], row["remaining"] if row["remaining"] is not None
                 and row["remaining"] > 0 else Decimal("1"), row["description"]])
        for row in day["payments"]:
            con.execute(
                """INSERT INTO payments BY NAME SELECT ? AS payment_id, ? AS invoice_id,
                   ? AS payment_date, ? AS registered_at, ? AS amount, 'NOK' AS currency,
                   ? AS method""",
                [resolve_id(row["payment_id"], "PAY-X", "PAY-DUP"), resolve_ref(row["invoice"]),
                 DAY, at, row["amount"], row["method"]])
        for row in day["actions"]:
            con.execute(
                """INSERT INTO case_actions BY NAME SELECT ? AS action_id, ? AS invoice_id,
                   ? AS creditor_id, ? AS action_type, ? AS requested_at, ? AS message""",
                [resolve_id(row["action_id"], "ACT-X", "ACT-DUP"), resolve_ref(row["invoice"]),
                 creditor, row["action_type"], at, row["message"]])


@pytest.mark.timeout(1800)
@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(day=malformed_day())
def test_a_day_of_malformed_rows_completes_and_accounts_for_every_row(
    day: dict[str, list[dict[str, object]]], base_warehouse: Path, sandbox_server: SandboxServer,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    n = next(_examples)
    work = tmp_path / f"example-{n}"
    work.mkdir()
    warehouse = work / "warehouse.duckdb"
    shutil.copy(base_warehouse, warehouse)
    _add_rows(warehouse, day, n)
    db = work / "pipeline.duckdb"
    for name, value in {
        "AMILI_WAREHOUSE": str(warehouse), "AMILI_PIPELINE_DB": str(db),
        "AMILI_BASE_URL": sandbox_server.base_url,
        "AMILI_TOKEN": sandbox_server.issue_token(ttl_seconds=3600),
        # each example its own sender: Amili deduplicates per sender
        "AMILI_SENDER_ID": f"property-{n}", "AMILI_BACKOFF_INITIAL_SECONDS": "0.01",
    }.items():
        monkeypatch.setenv(name, value)

    result = run_job(partition_key=DAY.isoformat())
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert check_results(result)["every_krone_is_accounted_for"]
    with duckdb.connect(str(db), read_only=True) as con:
        for table in ("invoices", "invoice_lines", "reminders", "payments", "case_actions",
                      "customers", "creditors"):
            (raw,) = con.execute(f"SELECT count(*) FROM raw.{table}").fetchone()
            (accounted,) = con.execute(
                f"""SELECT count(*) FROM marts.rpt_source_rows
                    WHERE source_table = '{table}' AND bucket <> 'unaccounted'""").fetchone()
            assert accounted == raw, table
        twice = con.execute(
            """SELECT objectname, source_id, count(*) FROM amili.ledger_objects
               WHERE objectname <> 'creditor' GROUP BY ALL HAVING count(*) > 1""").fetchall()
        assert twice == []
