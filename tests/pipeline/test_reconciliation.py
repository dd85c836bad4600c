"""Reconciliation marts and checks, end to end against the sandbox as a real HTTP server.

One module-scoped pipeline file goes through three demo days the way the daily runs would:
demo warehouse -> extract -> `dbt build` (a fresh database: the on-run-start hook creates the
ledger tables the marts read) -> submit day 1 -> results -> `dbt build` of days 2-3 (their
payments now find day 1's invoices acknowledged) -> submit day 2, and day 3 while the sandbox
rejects a share of the objects -> `dbt build` of the marts (stage ``honest``) -> re-run days 2
and 3 (faults cleared, but the first re-sent batch refused with a 422), and one ledger row of
day 1 deleted -> `dbt build` of the marts (stage ``after``). Each stage's marts are read once
into plain rows; the tests only look at them. dbt builds cost seconds each, so there are
four, reusing one target folder (dbt's partial parse) where the vars allow it.
"""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from pydantic import SecretStr

from amili.client import AmiliClient
from amili.pipeline.extract import extract_window
from amili.pipeline.ledger import ensure_schema, record_results
from amili.pipeline.reconciliation import balance_problems, reconciliation_summary, rejection_rate
from amili.pipeline.submission import Relations, SubmissionSummary, submit_window
from amili.reasons import MESSAGES
from amili.sandbox.faults import REJECT_MESSAGE, fault_rejects
from amili.sandbox.server import SandboxServer
from amili.settings import ClientSettings, load
from amili.warehouse import generate_demo_warehouse
from tests.conftest import SandboxAdmin
from tests.dbt.test_dbt_build import assert_green, dbt_vars, start_dbt
from tests.helpers import forget_last_ledger_object

pytestmark = pytest.mark.timeout(600)

END = date(2026, 11, 24)
DAY1, DAY2, DAY3 = END - timedelta(days=2), END - timedelta(days=1), END
WINDOW = (DAY1, END + timedelta(days=1))
RELATIONS = Relations.in_schema("batch")
MARTS = "path:models/marts"
SHARE = 0.3
LEDGER_TABLES = ("submission_ledger", "ledger_arrays", "ledger_object_answers", "ledger_objects",
                 "quarantine", "acknowledged_invoices", "changes_after_handover")
KINDS = ("creditor", "invoice", "payment", "action")


# --------------------------------------------------------------------------------------------
# What each stage leaves behind
# --------------------------------------------------------------------------------------------


def rows(con: duckdb.DuckDBPyConnection, query: str, params: Any = None) -> list[dict[str, Any]]:
    cur = con.execute(query, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, values, strict=True)) for values in cur.fetchall()]


def window_days() -> Iterator[date]:
    day = WINDOW[0]
    while day < WINDOW[1]:
        yield day
        day += timedelta(days=1)


@dataclass
class Stage:
    """The marts and checks of one moment, read once."""

    fates: list[dict[str, Any]]
    daily: list[dict[str, Any]]
    reasons: list[dict[str, Any]]
    unanswered: list[dict[str, Any]]
    ledger: list[dict[str, Any]]
    problems: dict[date, list[dict[str, Any]]]
    rates: dict[date, tuple[int, int, float]]
    summary: str

    def fate_of(self, day: date, objectname: str, source_id: str) -> dict[str, Any]:
        found = [f for f in self.fates if (f["partition_date"], f["objectname"],
                                           f["source_id"]) == (day, objectname, source_id)]
        assert len(found) == 1, (day, objectname, source_id, found)
        return found[0]

    def on(self, day: date, objectname: str | None = None) -> list[dict[str, Any]]:
        return [f for f in self.fates if f["partition_date"] == day
                and (objectname is None or f["objectname"] == objectname)]


def read_stage(db: Path) -> Stage:
    with duckdb.connect(str(db), read_only=True) as con:
        where = "WHERE partition_date >= $start AND partition_date < $end"
        params = {"start": WINDOW[0], "end": WINDOW[1]}
        return Stage(
            fates=rows(con, f"SELECT * FROM marts.rpt_object_fates {where}", params),
            daily=rows(con, f"SELECT * FROM marts.rpt_reconciliation_daily {where}", params),
            reasons=rows(con, f"SELECT * FROM marts.rpt_rejection_reasons {where}", params),
            unanswered=rows(con, f"SELECT * FROM marts.rpt_unanswered_batches {where}", params),
            ledger=rows(con, "SELECT o.*, l.state, l.chunk_number FROM amili.ledger_objects o "
                             "JOIN amili.submission_ledger l USING (batchid)"),
            problems={d: balance_problems(con, d, d + timedelta(days=1)) for d in window_days()},
            rates={d: rejection_rate(con, d, d + timedelta(days=1)) for d in window_days()},
            summary=reconciliation_summary(con, *WINDOW),
        )


def table_shapes(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """DESCRIBE and the constraints of the amili tables: what the two DDLs must agree on."""
    shapes: dict[str, Any] = {}
    for table in LEDGER_TABLES:
        shapes[table] = {
            "describe": con.execute(f"DESCRIBE amili.{table}").fetchall(),
            "constraints": sorted(con.execute(
                """SELECT constraint_type, constraint_text, expression,
                          constraint_column_names::VARCHAR
                   FROM duckdb_constraints()
                   WHERE schema_name = 'amili' AND table_name = ?""", [table]
            ).fetchall()),
            # the view's query, as DuckDB keeps it, whitespace aside
            "view": [" ".join(sql.split()) for (sql,) in con.execute(
                "SELECT sql FROM duckdb_views() WHERE schema_name = 'amili' AND view_name = ?",
                [table]).fetchall()],
        }
    return shapes


@dataclass
class Pipeline:
    db: Path
    shapes_before_any_submission: dict[str, Any]
    before: Stage
    honest: Stage
    after: Stage
    submissions: dict[str, SubmissionSummary] = field(default_factory=dict)
    seed: int = 0
    deleted: dict[str, Any] = field(default_factory=dict)
    refused_batch: str = ""
    payloads: dict[tuple[date, str, str], str] = field(default_factory=dict)
    creditor_idnumbers: dict[str, str] = field(default_factory=dict)


def choose_seed(con: duckdb.DuckDBPyConnection, day: date) -> int:
    """A reject_share seed that spares every creditor of the day (a rejected creditor takes
    its whole batch with it) and rejects some of its invoices."""
    idnumbers = [r[0] for r in con.execute(
        "SELECT idnumber FROM batch.batch_creditors WHERE partition_date = ?", [day]
    ).fetchall()]
    invoices = [r[0] for r in con.execute(
        "SELECT invoice_id FROM batch.batch_invoices WHERE partition_date = ?", [day]
    ).fetchall()]
    for seed in range(1000):
        if any(fault_rejects(seed, "creditor", i, SHARE) for i in idnumbers):
            continue
        if sum(fault_rejects(seed, "invoice", i, SHARE) for i in invoices) >= 3:
            return seed
    raise AssertionError("no seed spares the creditors")  # pragma: no cover


@pytest.fixture(scope="module")
def pipeline(
    sandbox_server: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    tmp = tmp_path_factory.mktemp("reconciliation")
    warehouse, db = tmp / "warehouse.duckdb", tmp / "pipeline.duckdb"
    generate_demo_warehouse(warehouse, days=3, invoices_per_day=30, end_date=END, seed=11,
                            action_share=0.1)
    extract_window(db, warehouse, *WINDOW)
    with duckdb.connect(str(db), read_only=True) as con:
        assert not con.execute("SELECT * FROM duckdb_tables() WHERE schema_name = 'amili'"
                               ).fetchall(), "the extract made amili tables: the hook is untested"

    def dbt(target: str, start: date, end: date, *args: str) -> None:
        work = tmp / target
        assert_green(start_dbt(db, work, "build", "--vars", dbt_vars(start, end), *args), work)

    # 1. the whole project on a fresh database: the marts read the ledger tables the hook made
    dbt("t", *WINDOW)
    with duckdb.connect(str(db), read_only=True) as con:
        shapes = table_shapes(con)
    before = read_stage(db)

    httpx.post(f"{sandbox_server.base_url}/sandbox/reset").raise_for_status()
    admin = SandboxAdmin(sandbox_server.base_url)
    client = AmiliClient(load(
        ClientSettings, base_url=sandbox_server.base_url,
        token=SecretStr(sandbox_server.issue_token()), sender_id="reconciliation",
        backoff_initial_seconds=0.01, backoff_max_seconds=0.05, timeout_seconds=10.0,
    ))
    submissions: dict[str, SubmissionSummary] = {}

    def submit(name: str, day: date) -> None:
        submissions[name] = submit_window(db, client, day, day + timedelta(days=1),
                                          relations=RELATIONS)
        record_results(db, *WINDOW)

    try:
        # 2. day 1, then days 2-3 rebuilt (Dagster's next runs): their payments of day 1's
        #    invoices are released
        submit("day1", DAY1)
        dbt("t2", DAY2, WINDOW[1], "--exclude", MARTS)
        # 3. day 2, and day 3 with a share of the objects rejected by Amili
        submit("day2", DAY2)
        with duckdb.connect(str(db), read_only=True) as con:
            seed = choose_seed(con, DAY3)
        admin.add_faults({"kind": "reject_share", "share": SHARE, "seed": seed})
        submit("day3", DAY3)
        admin.clear_faults()
        dbt("t", *WINDOW, "--select", MARTS)
        honest = read_stage(db)

        # 4. re-runs: day 3 re-sends its rejected objects (the first batch refused with a 422,
        #    no retry), day 2 has nothing new; and one ledger row of day 1 is lost
        admin.add_faults({"kind": "status", "status": 422, "message": "not today", "times": 1})
        submit("day3_rerun", DAY3)
        admin.clear_faults()
        submit("day2_rerun", DAY2)
        with duckdb.connect(str(db)) as con:
            deleted = rows(con, """
                SELECT o.batchid, o.objectname, o.objectindex, o.source_id, f.creditor_id,
                       f.amount, f.currency
                FROM amili.ledger_objects o JOIN marts.rpt_object_fates f
                  ON f.partition_date = o.partition_date AND f.objectname = o.objectname
                 AND f.source_id = o.source_id
                JOIN amili.ledger_arrays a
                  ON a.batchid = o.batchid AND a.objectname = o.objectname
                WHERE o.partition_date = ? AND o.objectname = 'invoice'
                  AND o.outcome = 'accepted' AND f.currency = 'NOK'
                  AND o.objectindex = a.object_count - 1
                ORDER BY o.source_id LIMIT 1""", [DAY1])[0]
            assert forget_last_ledger_object(
                con, deleted["batchid"], deleted["objectname"]) == deleted["source_id"]
            payloads = {(r[0], r[1], r[2]): r[3] for r in con.execute(
                " UNION ALL ".join(
                    f"SELECT partition_date, '{kind}', {kind}_id, payload "
                    f"FROM batch.batch_{kind}s_json" for kind in KINDS)).fetchall()}
            idnumbers = dict(con.execute(
                "SELECT DISTINCT creditor_id, idnumber FROM batch.batch_creditors").fetchall())
            refused = con.execute(
                "SELECT batchid FROM amili.submission_ledger WHERE http_status = 422"
            ).fetchall()
        dbt("t", *WINDOW, "--select", MARTS)
        after = read_stage(db)
    finally:
        client.close()
        httpx.post(f"{sandbox_server.base_url}/sandbox/reset").raise_for_status()
    assert len(refused) == 1, refused
    yield Pipeline(db, shapes, before, honest, after, submissions, seed, deleted,
                   refused[0][0], payloads, idnumbers)


# --------------------------------------------------------------------------------------------
# The hook's DDL and the payload hash
# --------------------------------------------------------------------------------------------


def test_dbt_creates_the_ledger_tables_exactly_as_the_submission_does(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The on-run-start hooks (dbt_project/macros/amili_ledger.sql, generated from
    ledger.DDL): on a fresh database both make the same columns, types, defaults, keys and
    CHECKs."""
    with duckdb.connect(str(tmp_path / "submission.duckdb")) as con:
        ensure_schema(con)
        by_submission = table_shapes(con)
    assert pipeline.shapes_before_any_submission == by_submission
    states = [c for c in by_submission["submission_ledger"]["constraints"] if c[0] == "CHECK"]
    assert states and "superseded" in str(states)


def test_the_payload_hash_is_the_submissions(pipeline: Pipeline) -> None:
    """Every object the submission wrote to the ledger has payload_hash = sha256 (hex) of its
    payload text as it went into the body, and the marts compute the same hash."""
    ledger = [r for r in pipeline.honest.ledger if r["partition_date"] == DAY1]
    assert len(ledger) > 30
    for row in ledger:
        payload = pipeline.payloads[(DAY1, row["objectname"], row["source_id"])]
        assert payload == payload.strip()  # submission.objects._compact leaves it as it is
        assert row["payload_hash"] == hashlib.sha256(payload.encode()).hexdigest()
        fate = pipeline.honest.fate_of(DAY1, row["objectname"], row["source_id"])
        assert fate["payload_hash"] == row["payload_hash"]
        assert fate["payload_matches_sent"] is True


# --------------------------------------------------------------------------------------------
# Honest days
# --------------------------------------------------------------------------------------------


def test_before_any_submission_nothing_is_accounted_for(pipeline: Pipeline) -> None:
    before = pipeline.before
    assert {f["fate"] for f in before.fates} == {"held", "unaccounted"}
    for day in window_days():
        problems = before.problems[day]
        assert problems and all(p["partition_date"] == day.isoformat() for p in problems)
        assert {p["objectname"] for p in problems} >= {"creditor", "invoice"}
    assert "DOES NOT BALANCE" in before.summary


def test_honest_days_balance_and_nothing_is_unaccounted(pipeline: Pipeline) -> None:
    honest = pipeline.honest
    assert honest.fates and not [f for f in honest.fates if f["fate"] == "unaccounted"]
    assert all(row["balances"] for row in honest.daily)
    assert honest.problems == {day: [] for day in window_days()}
    assert "balances: all" in honest.summary
    # every kind of fate and amounts of both invoices and payments took part
    assert {f["fate"] for f in honest.fates} >= {"sent", "held", "quarantined"}
    sent_payments = [f for f in honest.fates if f["objectname"] == "payment"
                     and f["fate"] == "sent"]
    assert sent_payments and all(f["amount"] is not None for f in sent_payments)


@pytest.mark.parametrize(("name", "day"), [("day1", DAY1), ("day2", DAY2), ("day3", DAY3)])
def test_the_marts_agree_with_the_submissions_own_tally(
    pipeline: Pipeline, name: str, day: date
) -> None:
    """Counted from the ledger in SQL, or by the submission as it went: the same buckets,
    counts and NOK amounts, per kind of object."""
    tallies = pipeline.submissions[name].days[0].objects
    for kind in KINDS:
        fates = pipeline.honest.on(day, kind)
        tally = tallies[kind]
        counts = Counter(f["fate"] for f in fates)
        outcomes = Counter(f["outcome"] for f in fates if f["fate"] == "sent")
        assert len(fates) == tally.seen, kind
        assert counts["quarantined"] == tally.quarantined, kind
        assert counts["held"] == tally.held, kind
        assert counts["sent"] == tally.sent, kind
        assert outcomes["accepted"] == tally.accepted + tally.duplicates, kind
        assert outcomes["rejected"] == tally.rejected, kind
        for fate in ("quarantined", "held", "sent"):
            money = sum((f["amount"] for f in fates if f["fate"] == fate
                         and f["currency"] == "NOK"), Decimal(0))
            assert money == tally.amount(fate), (kind, fate)


def test_a_later_day_sends_or_skips_unchanged_creditors_consistently(
    pipeline: Pipeline,
) -> None:
    honest = pipeline.honest
    creditors = honest.on(DAY2, "creditor")
    earlier = {f["source_id"]: f for f in honest.on(DAY1, "creditor")}
    assert creditors and set(earlier) & {f["source_id"] for f in creditors}
    live = {(r["partition_date"], r["source_id"]) for r in honest.ledger
            if r["objectname"] == "creditor" and r["state"] != "superseded"}
    for fate in creditors:
        assert fate["fate"] in ("sent", "skipped_unchanged"), fate
        if fate["fate"] == "sent":
            assert (DAY2, fate["source_id"]) in live
        else:
            assert (DAY2, fate["source_id"]) not in live
            assert fate["acknowledged_on"] == DAY1
            assert fate["payload_hash"] == earlier[fate["source_id"]]["payload_hash"]
    assert all(r["balances"] for r in honest.daily if r["partition_date"] == DAY2)


# --------------------------------------------------------------------------------------------
# Rejections
# --------------------------------------------------------------------------------------------


def fault_key(pipeline: Pipeline, fate: dict[str, Any]) -> str:
    """The key the sandbox's reject_share fault draws on (see sandbox.faults.fault_key)."""
    if fate["objectname"] == "creditor":
        return pipeline.creditor_idnumbers[fate["source_id"]]
    if fate["objectname"] == "action":
        return str(fate["objectindex"])
    return fate["source_id"]


def test_rejected_objects_show_with_their_source_ids_and_reasons(pipeline: Pipeline) -> None:
    honest = pipeline.honest
    sent = [f for f in honest.on(DAY3) if f["fate"] == "sent"]
    expected = {(f["objectname"], f["source_id"]) for f in sent
                if fault_rejects(pipeline.seed, f["objectname"], fault_key(pipeline, f), SHARE)}
    rejected = [f for f in honest.on(DAY3) if f["outcome"] == "rejected"]
    assert {(f["objectname"], f["source_id"]) for f in rejected} == expected
    assert any(name == "invoice" for name, _ in expected)
    assert all(REJECT_MESSAGE in f["error_message"] for f in rejected)
    assert all(f["batch_state"] == "partially_rejected" for f in rejected)

    # the reasons group them without their positions; amounts and example ids add up
    reasons = [r for r in honest.reasons if r["kind"] == "rejected by Amili"]
    assert {r["partition_date"] for r in reasons} == {DAY3}
    for name in {name for name, _ in expected}:
        mine = [r for r in reasons if r["objectname"] == name]
        ids = {sid for n, sid in expected if n == name}
        assert sum(r["object_count"] for r in mine) == len(ids)
        assert {r["reason_code"] for r in mine} == {"sandbox_fault_injection"}
        assert {r["reason"] for r in mine} == {MESSAGES["sandbox_fault_injection"]}
        assert all(set(r["example_source_ids"]) <= ids for r in mine)
        assert all(f"{REJECT_MESSAGE} (share={SHARE})" in r["example_message"] for r in mine)
        money = sum((f["amount"] for f in rejected if f["objectname"] == name
                     and f["amount"] is not None), Decimal(0))
        assert sum((r["amount"] for r in mine), Decimal(0)) == money
    assert all(r["balances"] for r in honest.daily)  # rejected objects are accounted for

    sent_day3, rejected_day3, rate = honest.rates[DAY3]
    assert (sent_day3, rejected_day3) == (len(sent), len(expected))
    assert rate == pytest.approx(len(expected) / len(sent))
    assert honest.rates[DAY1][1] == 0 and honest.rates[DAY1][2] == 0.0


def test_quarantined_rows_are_reasons_too(pipeline: Pipeline) -> None:
    honest = pipeline.honest
    quarantined = [f for f in honest.fates if f["fate"] == "quarantined"]
    reasons = [r for r in honest.reasons if r["kind"] == "quarantined"]
    assert quarantined and sum(r["object_count"] for r in reasons) == len(quarantined)
    # one code per problem, its message without the object's own values, the values apart
    currency = [r for r in reasons if r["reason_code"] == "currency_unknown"]
    assert currency and all(r["reason"] == MESSAGES["currency_unknown"] for r in currency)
    assert all("ISO 4217" in r["example_message"] for r in currency)
    assert all(r["currency"] in r["example_values"] for r in currency)


# --------------------------------------------------------------------------------------------
# Re-runs and a lost ledger row
# --------------------------------------------------------------------------------------------


def test_rerunning_a_day_keeps_its_balance(pipeline: Pipeline) -> None:
    honest, after = pipeline.honest, pipeline.after
    # the objects re-sent in the batch the sandbox refused (its creditor heads it)
    refused = {(r["objectname"], r["source_id"]) for r in after.ledger
               if r["batchid"] == pipeline.refused_batch}
    assert refused
    for day in (DAY2, DAY3):
        assert after.problems[day] == []
        assert all(r["balances"] for r in after.daily if r["partition_date"] == day)
        before = {(f["objectname"], f["source_id"]): f for f in honest.on(day)}
        now = {(f["objectname"], f["source_id"]): f for f in after.on(day)}
        assert before.keys() == now.keys()
        for key, fate in before.items():
            assert now[key]["fate"] == fate["fate"], key  # sent stays sent
            if fate["outcome"] == "accepted":
                # the latest answer counts: a creditor re-sent at the head of the refused
                # batch waits for one again
                expected = "outstanding" if day == DAY3 and key in refused else "accepted"
                assert now[key]["outcome"] == expected, key
    assert pipeline.submissions["day2_rerun"].days[0].batches_posted == 0

    # day 3's rejected objects went again: accepted now, or waiting in the refused batch
    for f in honest.on(DAY3):
        if f["outcome"] != "rejected" or f["objectname"] == "creditor":
            continue
        now = after.fate_of(DAY3, f["objectname"], f["source_id"])
        assert now["times_sent"] == 2
        if (f["objectname"], f["source_id"]) in refused:
            assert (now["outcome"], now["batchid"]) == ("outstanding", pipeline.refused_batch)
        else:
            assert now["outcome"] == "accepted" and now["batch_state"] == "accepted"

    # the refused batch has no definite answer: it is listed, and not in doubt (a 4xx)
    assert [(b["batchid"], b["state"], b["http_status"], b["in_doubt"])
            for b in after.unanswered] == [(pipeline.refused_batch, "failed", 422, False)]
    assert after.unanswered[0]["creditor_id"] is not None
    assert "not today" in after.unanswered[0]["error"]
    assert honest.unanswered == []


def test_a_lost_ledger_row_is_reported_for_its_creditor_and_day(pipeline: Pipeline) -> None:
    after, deleted = pipeline.after, pipeline.deleted
    fate = after.fate_of(DAY1, "invoice", deleted["source_id"])
    assert fate["fate"] == "unaccounted"
    problems = after.problems[DAY1]
    # the object, and the warehouse rows it was made of (the invoice, its lines and
    # reminders): each names the invoice
    objects = [p for p in problems if not p["objectname"].startswith("source:")]
    sources = [p for p in problems if p["objectname"].startswith("source:")]
    assert len(objects) == 1, problems
    assert "source:invoices" in {p["objectname"] for p in sources}
    assert all(deleted["source_id"] in p["problem"] and "ended in no bucket" in p["problem"]
               for p in sources), sources
    problem = objects[0]
    assert (problem["partition_date"], problem["creditor_id"], problem["objectname"],
            problem["currency"]) == (DAY1.isoformat(), deleted["creditor_id"], "invoice", "NOK")
    assert problem["balances"] is False
    assert problem["unaccounted_count"] == 1
    assert Decimal(problem["unaccounted_amount"]) == deleted["amount"]
    assert "1 eligible object(s) unaccounted" in problem["problem"]
    assert "DOES NOT BALANCE: 1 of" in after.summary


def test_the_summary_is_a_table_per_creditor_and_kind(pipeline: Pipeline) -> None:
    lines = pipeline.honest.summary.splitlines()
    assert lines[0].startswith(f"Reconciliation {DAY1.isoformat()} .. {DAY3.isoformat()}")
    header = lines[1].split()
    assert header == ["creditor", "kind", "eligible", "quarantined", "held", "carried",
                      "changed", "skipped", "sent", "accepted", "rejected", "unconfirmed",
                      "outstanding", "unaccounted"]
    creditors = sorted({f["creditor_id"] for f in pipeline.honest.fates})
    for creditor in creditors:
        assert any(line.split()[:2] == [creditor, "invoice"] for line in lines)
    total = next(line for line in lines if line.startswith("total"))
    eligible = len(pipeline.honest.fates)
    assert total.split()[2] == str(eligible)
    nok = sum((f["amount"] for f in pipeline.honest.fates if f["currency"] == "NOK"),
              Decimal(0))
    assert f"{nok:,.2f}" in lines[lines.index(total) + 1]


def test_a_day_missing_from_the_marts_is_reported(pipeline: Pipeline, tmp_path: Path) -> None:
    """A mart that was not rebuilt cannot vouch for the day: the check compares it with the
    batch relations and says so, instead of passing on an empty table."""
    db = tmp_path / "pipeline.duckdb"
    shutil.copyfile(pipeline.db, db)
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM marts.rpt_reconciliation_daily WHERE partition_date = ?",
                    [DAY2])
        problems = balance_problems(con, DAY2, DAY3)
    expected = {(f["creditor_id"], f["objectname"]) for f in pipeline.after.on(DAY2)}
    assert {(p["creditor_id"], p["objectname"]) for p in problems} == expected
    assert all(p["balances"] is None and p["eligible_count"] == 0 for p in problems)
    assert all("missing or stale" in p["problem"] for p in problems)
