"""Reading cases and settlements back, against the real sandbox over loopback, its clock advanced.

Invoices of two creditors are handed over by the real submission, some are paid by a later
payment batch, and the sandbox's clock is moved on so its deterministic rules collect, credit
and close cases. What ``amili.cases`` and ``amili.settlements`` must hold is computed from what
was sent and from the sandbox's public fate function, never written down by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from pydantic import SecretStr

from amili import jsonio
from amili.client import AmiliClient, AmiliError
from amili.examples import example_creditor, example_invoice
from amili.models import BatchRequest
from amili.pipeline.ledger import record_results
from amili.pipeline.readback import handed_over_creditors, read_cases, read_settlements
from amili.pipeline.submission import submit_window
from amili.sandbox.lifecycle import LifecycleRules, case_fate, fate_amount
from amili.sandbox.server import SandboxServer
from amili.sandbox.settings import SandboxSettings
from amili.settings import ClientSettings, load
from tests.pipeline.test_submission import (
    DAY,
    NEXT,
    ORGNR_2,
    Inputs,
    creditor_payload,
)

ORGNR_1 = example_creditor().idnumber
CREDITOR_2 = "CR02"
RELATION = "main.batch_creditors_json"
RULES = {
    "seed": 11,
    "settlement_page_size": 3,
    "rules": [
        {"fate": "collected", "share": 0.4, "after_days": 10},
        {"fate": "collected", "share": 0.2, "after_days": 5, "fraction": "0.5"},
        {"fate": "credited", "share": 0.15, "after_days": 20},
        {"fate": "closed", "share": 0.1, "after_days": 30},
    ],
}
#: direct payments of the later payment batch: invoice -> amount (one in full, some in part)
PAID_DIRECTLY = {"A-0001": Decimal("101.25"), "A-0002": Decimal("40.00"),
                 "A-0005": Decimal("0.35"), "A-0008": Decimal("100.00")}


def amount_of(source_id: str) -> Decimal:
    return Decimal(100 + int(source_id[-4:])) + Decimal("0.25")


def invoices(prefix: str, count: int) -> list[tuple[str, str]]:
    rows = []
    for k in range(count):
        source = f"{prefix}{k:04d}"
        payload = jsonio.to_jsonable(example_invoice(source, amount=amount_of(source)))
        rows.append((source, jsonio.dumps(payload).decode()))
    return rows


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(load(SandboxSettings, port=0, lifecycle=RULES)) as server:
        yield server


def move_clock(server: SandboxServer, **body: Any) -> None:
    httpx.post(f"{server.base_url}/sandbox/clock", json=body).raise_for_status()


def client_for(server: SandboxServer, **overrides: Any) -> AmiliClient:
    values: dict[str, Any] = {
        "base_url": server.base_url, "token": SecretStr(server.issue_token()),
        "sender_id": "readback-sender", "backoff_initial_seconds": 0.01,
        "backoff_max_seconds": 0.05, "timeout_seconds": 10.0, **overrides}
    return AmiliClient(load(ClientSettings, **values))


def settlement_gets(server: SandboxServer) -> int:
    stats = httpx.get(f"{server.base_url}/sandbox/stats").json()
    return sum(stats["requests"].get("GET /webapi/api/Batch", {}).values())


@pytest.fixture
def handed_over(tmp_path: Path, sandbox: SandboxServer) -> Inputs:
    return hand_over(tmp_path, sandbox)


def hand_over(tmp_path: Path, sandbox: SandboxServer,
              before: Callable[[AmiliClient], None] | None = None) -> Inputs:
    """Day 1: 12 invoices of creditor 1, 7 of creditor 2. Day 2 (a day later on the sandbox's
    clock): the direct payments. Then 40 days pass: every fate is due. ``before`` runs
    against the sandbox first (as another system of ours might)."""
    inputs = Inputs(tmp_path / "pipeline.duckdb")
    move_clock(sandbox, now="2026-11-24T07:00:00Z")
    if before is not None:
        with client_for(sandbox) as client:
            before(client)
    inputs.creditor()
    inputs.creditor(CREDITOR_2, creditor_payload(idnumber=ORGNR_2, fullname="Annen AS"))
    inputs.invoices(invoices("A-", 12))
    inputs.invoices(invoices("B-", 7), creditor_id=CREDITOR_2)
    with client_for(sandbox) as client:
        submit_window(inputs.path, client, DAY, NEXT, max_objects=10, max_bytes=1_000_000)
        record_results(inputs.path, DAY, NEXT)
        ids = dict(inputs.sql("SELECT unique_source_invoice_id, amili_invoice_id "
                              "FROM amili.acknowledged_invoices"))
        assert len(ids) == 19
        move_clock(sandbox, advance_days=1)
        inputs.creditor(day=NEXT)
        for k, (source, amount) in enumerate(PAID_DIRECTLY.items()):
            inputs.payment(f"PAY-{k}", source, ids[source], str(amount), day=NEXT)
        day2 = submit_window(inputs.path, client, NEXT, NEXT + timedelta(days=1),
                             max_objects=10, max_bytes=1_000_000).days[0]
        assert day2.objects["payment"].accepted == len(PAID_DIRECTLY)
    move_clock(sandbox, advance_days=40)
    return inputs


def expected_history() -> tuple[dict[str, tuple[str, Decimal, Decimal, Decimal]],
                                set[tuple[str, str, Decimal]]]:
    """Per invoice (status, paid, credited, remaining), and the settlements
    (creditor, invoice, amount), from what was sent and the fate rules."""
    rules = LifecycleRules.model_validate(RULES)
    cases: dict[str, tuple[str, Decimal, Decimal, Decimal]] = {}
    settlements: set[tuple[str, str, Decimal]] = set()
    for prefix, count, idnumber in (("A-", 12, ORGNR_1), ("B-", 7, ORGNR_2)):
        for k in range(count):
            source = f"{prefix}{k:04d}"
            total = amount_of(source)
            paid = PAID_DIRECTLY.get(source, Decimal("0.00"))
            still_open = total - paid
            credited = Decimal("0.00")
            status = "CLOSED" if still_open == 0 else "OPEN"
            rule = case_fate(rules, source)
            if rule is not None and still_open > 0:
                taken = fate_amount(rule, still_open)
                if rule.fate == "collected":
                    paid += taken
                    settlements.add((idnumber, source, taken))
                    status = "CLOSED" if taken == still_open else "OPEN"
                elif rule.fate == "credited":
                    credited = taken
                    status = "CLOSED"
                else:
                    status = "CLOSED"
            cases[source] = (status, paid, credited, total - paid - credited)
    return cases, settlements


def stored_settlements(inputs: Inputs) -> list[tuple[str, str, Decimal]]:
    return [(c, s, a) for c, s, a in inputs.sql(
        "SELECT creditor_idnumber, unique_source_invoice_id, amount FROM amili.settlements "
        "ORDER BY settlement_id")]


def test_cases_and_settlements_are_what_amili_holds_and_a_rerun_adds_nothing(
    handed_over: Inputs, sandbox: SandboxServer
) -> None:
    inputs = handed_over
    cases, settlements = expected_history()
    # the history exercises every fate and the direct payments
    assert {s for s, _, _, _ in cases.values()} == {"OPEN", "CLOSED"}
    assert any(c[2] > 0 for c in cases.values()) and len(settlements) > 6
    with duckdb_ro(inputs.path) as con:
        assert handed_over_creditors(con, RELATION) == sorted([ORGNR_1, ORGNR_2])

    with client_for(sandbox) as client:
        first = read_settlements(inputs.path, client, creditors_relation=RELATION)
        snapshot = read_cases(inputs.path, client, creditors_relation=RELATION)
    first.raise_for_failures()
    got = stored_settlements(inputs)
    assert len(got) == len(set(got)) == first.inserted
    assert set(got) == settlements
    assert first.amount == sum((a for _, _, a in settlements), Decimal(0))
    assert first.pages >= 3  # page size 3: more than one page for a creditor

    rows = inputs.sql(
        "SELECT unique_source_invoice_id, status, paid_amount, credited_amount, "
        "remaining_amount, handed_over, creditor_idnumber, amili_invoice_id, sub_status, "
        "closed_at IS NOT NULL FROM amili.cases")
    assert snapshot.rows == len(rows) == len(cases) == 19 and snapshot.not_handed_over == 0
    assert {r[0]: (r[1], r[2], r[3], r[4]) for r in rows} == cases
    ids = dict(inputs.sql("SELECT unique_source_invoice_id, amili_invoice_id "
                          "FROM amili.acknowledged_invoices"))
    assert all(r[5] and r[7] == ids[r[0]] for r in rows)
    assert {r[6] for r in rows if r[0].startswith("B-")} == {ORGNR_2}
    assert all(r[9] == (r[1] == "CLOSED") for r in rows)
    assert ("PAID" in {r[8] for r in rows}) and ("CREDITED" in {r[8] for r in rows})

    # a second run reads one answer per creditor and stores nothing
    before = settlement_gets(sandbox)
    with client_for(sandbox) as client:
        again = read_settlements(inputs.path, client, creditors_relation=RELATION)
        read_cases(inputs.path, client, creditors_relation=RELATION)
    assert (again.inserted, again.already_stored, again.pages) == (0, 0, 0)
    assert settlement_gets(sandbox) - before == 2 + 2  # settlements and cases, 2 creditors
    assert stored_settlements(inputs) == got
    assert len(inputs.sql("SELECT * FROM amili.cases")) == 19


def test_a_run_failing_on_the_second_creditor_resumes_without_gap_or_duplicate(
    handed_over: Inputs, sandbox: SandboxServer
) -> None:
    inputs = handed_over
    _, settlements = expected_history()
    httpx.post(f"{sandbox.base_url}/sandbox/faults", json={"faults": [
        {"kind": "status", "status": 503, "method": "GET", "query": {"creditorid": ORGNR_2}},
    ]}).raise_for_status()
    with client_for(sandbox, max_retries=1) as client:
        broken = read_settlements(inputs.path, client, creditors_relation=RELATION)
    assert set(broken.failures) == {ORGNR_2} and "503" in broken.failures[ORGNR_2]
    with pytest.raises(AmiliError, match=f"resumes each from its cursor.*{ORGNR_2}.*HTTP 503"):
        broken.raise_for_failures()
    first_only = {s for s in settlements if s[0] == ORGNR_1}
    assert set(stored_settlements(inputs)) == first_only
    assert inputs.sql("SELECT creditor_idnumber FROM amili.settlement_cursors") == [(ORGNR_1,)]

    httpx.delete(f"{sandbox.base_url}/sandbox/faults").raise_for_status()
    with client_for(sandbox) as client:
        resumed = read_settlements(inputs.path, client, creditors_relation=RELATION)
    resumed.raise_for_failures()
    assert resumed.by_creditor == {ORGNR_1: 0, ORGNR_2: len(settlements - first_only)}
    got = stored_settlements(inputs)
    assert len(got) == len(set(got)) and set(got) == settlements


def test_a_run_dying_between_two_pages_of_one_creditor_keeps_the_first_and_resumes(
    handed_over: Inputs, sandbox: SandboxServer
) -> None:
    inputs = handed_over
    _, settlements = expected_history()
    with client_for(sandbox) as client:
        first_page = client.get_batches(creditorid=ORGNR_1, lastsettlementid=0).settlement
    cursor = max(s.line().settlement_id or 0 for s in first_page)
    httpx.post(f"{sandbox.base_url}/sandbox/faults", json={"faults": [
        {"kind": "drop", "method": "GET",
         "query": {"creditorid": ORGNR_1, "lastsettlementid": str(cursor)}},
    ]}).raise_for_status()
    with client_for(sandbox, max_retries=0) as client:
        broken = read_settlements(inputs.path, client, [ORGNR_1])
    assert set(broken.failures) == {ORGNR_1} and broken.inserted == len(first_page) == 3
    assert inputs.sql("SELECT last_settlement_id FROM amili.settlement_cursors") == [(cursor,)]
    httpx.delete(f"{sandbox.base_url}/sandbox/faults").raise_for_status()
    with client_for(sandbox) as client:
        read_settlements(inputs.path, client, [ORGNR_1, ORGNR_2]).raise_for_failures()
    got = stored_settlements(inputs)
    assert len(got) == len(set(got)) and set(got) == settlements


def duckdb_ro(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


def test_a_case_for_an_invoice_we_never_sent_is_marked(
    handed_over: Inputs, sandbox: SandboxServer
) -> None:
    inputs = handed_over
    # another system of the same sender hands an invoice of creditor 1 over directly
    with client_for(sandbox) as client:
        client.post_batch(BatchRequest(batchid="elsewhere", creditor=[example_creditor()],
                                       invoice=[example_invoice("NOT-OURS")]))
        read_cases(inputs.path, client, creditors_relation=RELATION)
    rows = inputs.sql("SELECT unique_source_invoice_id, handed_over FROM amili.cases "
                      "WHERE NOT handed_over")
    assert rows == [("NOT-OURS", False)]


def test_the_dagster_assets_materialize_resume_and_add_nothing_the_second_time(
    handed_over: Inputs, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Both assets through Dagster's own API on a real (temporary) instance: a run failing on
    the second creditor fails loudly but keeps the first's settlements; the next run completes
    them; a third stores nothing."""
    from dagster import DagsterInstance, materialize

    from assets.readback import amili_cases, amili_settlements
    from orchestration.resources import AmiliApiResource, PipelineResource

    inputs = handed_over
    cases, settlements = expected_history()
    monkeypatch.setenv("AMILI_TOKEN", sandbox.issue_token())
    resources = {
        "amili": AmiliApiResource(base_url=sandbox.base_url, sender_id="readback-sender"),
        "pipeline": PipelineResource(pipeline_db=str(inputs.path)),
    }
    config = {"creditors_relation": RELATION}
    run_config = {"ops": {"amili__settlements": {"config": config},
                          "amili__cases": {"config": config}}}
    monkeypatch.setenv("AMILI_MAX_RETRIES", "0")

    def run() -> Any:
        return materialize([amili_settlements, amili_cases], resources=resources,
                           run_config=run_config, instance=instance, raise_on_error=False)

    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        httpx.post(f"{sandbox.base_url}/sandbox/faults", json={"faults": [
            {"kind": "status", "status": 503, "method": "GET",
             "query": {"creditorid": ORGNR_2, "lastsettlementid": "0"}}]}).raise_for_status()
        failed = run()
        assert not failed.success
        assert set(stored_settlements(inputs)) == {s for s in settlements if s[0] == ORGNR_1}
        httpx.delete(f"{sandbox.base_url}/sandbox/faults").raise_for_status()

        done = run()
        assert done.success
        meta = {e.asset_key.path[-1]: e.materialization.metadata
                for e in done.get_asset_materialization_events()}
        assert meta["settlements"]["settlements_added"].value == len(
            [s for s in settlements if s[0] == ORGNR_2])
        assert meta["cases"]["dagster/row_count"].value == len(cases)
        got = stored_settlements(inputs)
        assert len(got) == len(set(got)) and set(got) == settlements

        again = run()
        assert again.success
        meta = {e.asset_key.path[-1]: e.materialization.metadata
                for e in again.get_asset_materialization_events()}
        assert meta["settlements"]["settlements_added"].value == 0
        assert stored_settlements(inputs) == got



def materialize_readback(pipeline_db: Path, sandbox: SandboxServer, folder: Path, *,
                         with_checks: bool = False) -> Any:
    """The read-back assets and their dbt marts (and, if asked, their checks) materialized
    through Dagster against ``sandbox`` for the creditors of :data:`RELATION`."""
    from dagster import DagsterInstance, materialize

    from assets.readback import (
        READBACK_CHECKS,
        amili_cases,
        amili_readback_models,
        amili_settlements,
    )
    from orchestration.resources import AmiliApiResource, PipelineResource, dbt_resource

    resources = {
        "amili": AmiliApiResource(base_url=sandbox.base_url, sender_id="readback-sender"),
        "pipeline": PipelineResource(pipeline_db=str(pipeline_db)),
        "dbt": dbt_resource(),
    }
    config = {"creditors_relation": RELATION}
    run_config = {"ops": {"amili__settlements": {"config": config},
                          "amili__cases": {"config": config}}}
    with pytest.MonkeyPatch.context() as mp, \
            DagsterInstance.ephemeral(tempdir=str(folder / "dagster")) as instance:
        mp.setenv("AMILI_TOKEN", sandbox.issue_token())
        mp.setenv("AMILI_PIPELINE_DB", str(pipeline_db))
        return materialize(
            [amili_settlements, amili_cases, amili_readback_models,
             *(READBACK_CHECKS if with_checks else [])],
            resources=resources, run_config=run_config, instance=instance,
            raise_on_error=False)


def test_the_marts_and_checks_flag_divergences_missing_cases_and_book_settlements(
    sandbox: SandboxServer, tmp_path: Path,
) -> None:
    """Real ``dbt build`` of the read-back marts through Dagster, with the checks.

    Amili holds another amount for A-0003 than the pipeline sent: an earlier post of the same
    uniqueSourceInvoiceId (as another system of ours might have made) was kept, and the
    pipeline's own post was answered DUPLICATE. NOT-OURS is a case for an invoice the
    pipeline never sent. A missing case is simulated by one row added to
    amili.acknowledged_invoices for an id Amili never issued (Amili cannot be made to lose a
    case)."""
    other = Decimal("999.99")

    def earlier_posts(client: AmiliClient) -> None:
        answer = client.post_batch(BatchRequest(
            batchid="elsewhere", creditor=[example_creditor()],
            invoice=[example_invoice("A-0003", amount=other), example_invoice("NOT-OURS")]))
        assert answer.response.statuscode == 0, answer.response.errors

    inputs = hand_over(tmp_path, sandbox, earlier_posts)
    inputs.sql("INSERT INTO amili.acknowledged_invoices VALUES ('LOST-1', 'never-issued', "
               "TIMESTAMPTZ '2026-11-20 10:00:00+00')")
    result = materialize_readback(inputs.path, sandbox, tmp_path, with_checks=True)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    missing = checks["every_acknowledged_invoice_has_a_case"]
    assert not missing.passed and missing.severity.value == "ERROR"
    assert missing.metadata["missing"].value == 1
    diverging = checks["cases_match_what_we_handed_over"]
    assert not diverging.passed and diverging.severity.value == "WARN"
    assert diverging.metadata["reason: amount differs"].value == 1
    assert diverging.metadata["reason: case for an invoice we never sent"].value == 1
    assert all(c.passed for name, c in checks.items() if name not in (
        "every_acknowledged_invoice_has_a_case", "cases_match_what_we_handed_over")), [
        name for name, c in checks.items() if not c.passed]
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert {"rpt_handover_status", "rpt_settlements_monthly", "cases", "settlements"
            } <= materialized

    flagged = inputs.sql(
        "SELECT unique_source_invoice_id, divergence_reason, acknowledged_amount, "
        "case_original_amount, amount_difference FROM marts.rpt_handover_status "
        "WHERE diverges ORDER BY 1")
    assert flagged == [
        ("A-0003", "amount differs", amount_of("A-0003"), other, other - amount_of("A-0003")),
        ("LOST-1", "case missing", None, None, None),
        ("NOT-OURS", "case for an invoice we never sent", None, Decimal("1250.00"), None),
    ]
    assert inputs.sql("SELECT count(*) FROM marts.rpt_handover_status WHERE NOT diverges"
                      ) == [(19 - 1,)]
    booked = inputs.sql(
        "SELECT creditor_idnumber, month, settled_amount, settlements "
        "FROM marts.rpt_settlements_monthly ORDER BY 1, 2")
    stored = inputs.sql(
        "SELECT creditor_idnumber, date_trunc('month', remittance_date)::DATE, sum(amount), "
        "count(*) FROM amili.settlements GROUP BY ALL ORDER BY 1, 2")
    assert booked == stored and len(booked) >= 2
    assert sum(row[3] for row in booked) == len(inputs.sql("SELECT * FROM amili.settlements"))


def test_the_dbt_macro_creates_exactly_the_readback_tables() -> None:
    from amili.pipeline.readback import DBT_MACROS_FILE, dbt_macros

    assert DBT_MACROS_FILE.read_text() == dbt_macros(), (
        "run `python -m amili.pipeline.readback` after changing its DDL")


def test_status_changes_are_recorded_and_the_day_is_exported_as_csv_and_parquet(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """A first read sees every case as new; 40 days later the second sees the fates that
    happened; the day's files hold every settlement and change read that day, exactly."""
    import csv
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from amili.pipeline.readback import (
        CASE_CHANGE_EXPORT_COLUMNS,
        SETTLEMENT_EXPORT_COLUMNS,
        export_day,
    )

    inputs = Inputs(tmp_path / "pipeline.duckdb")
    move_clock(sandbox, now="2026-11-24T07:00:00Z")
    inputs.creditor()
    inputs.invoices(invoices("A-", 12))
    with client_for(sandbox) as client:
        submit_window(inputs.path, client, DAY, NEXT, max_objects=10, max_bytes=1_000_000)
        record_results(inputs.path, DAY, NEXT)
        first = read_cases(inputs.path, client, creditors_relation=RELATION)
        assert first.changes == 12  # every case is new to us
        assert read_cases(inputs.path, client, creditors_relation=RELATION).changes == 0
        move_clock(sandbox, advance_days=40)
        later = read_cases(inputs.path, client, creditors_relation=RELATION)
        read_settlements(inputs.path, client, creditors_relation=RELATION).raise_for_failures()
    cases, _ = expected_history()
    ours = {k: v for k, v in cases.items() if k.startswith("A-")}
    # without the direct payments of the other tests: every fate changes its case
    rules = LifecycleRules.model_validate(RULES)
    assert later.changes == sum(1 for k in ours if case_fate(rules, k) is not None) > 0
    changes = inputs.sql("SELECT unique_source_invoice_id, previous_status, status "
                         "FROM amili.case_status_changes WHERE previous_status IS NOT NULL")
    assert len(changes) == later.changes
    assert all(prev == "OPEN" for _, prev, _ in changes)

    today = datetime.now(ZoneInfo("Europe/Oslo")).date()
    files = export_day(inputs.path, today, tmp_path / "exports")
    assert files.settlements_csv.name == f"amili-settlements-{today}.csv"
    with files.settlements_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == SETTLEMENT_EXPORT_COLUMNS
    stored = inputs.sql("SELECT settlement_id, unique_source_invoice_id, amount "
                        "FROM amili.settlements ORDER BY settlement_id")
    assert [(int(r["settlement_id"]), r["unique_source_invoice_id"], Decimal(r["amount"]))
            for r in rows] == stored == sorted(stored)
    with duckdb.connect() as con:
        parquet = con.execute(
            f"SELECT settlement_id, unique_source_invoice_id, amount FROM "
            f"'{files.settlements_parquet}' ORDER BY settlement_id").fetchall()
        kinds = dict(con.execute(
            f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "
            f"'{files.settlements_parquet}')").fetchall())
        changed = con.execute(f"SELECT count(*) FROM '{files.case_changes_parquet}'"
                              ).fetchone()[0]
    assert parquet == stored and kinds["amount"] == "DECIMAL(38,10)"  # exact, as Amili said
    assert changed == files.case_changes == 12 + later.changes
    with files.case_changes_csv.open(newline="") as handle:
        assert tuple(next(csv.reader(handle))) == CASE_CHANGE_EXPORT_COLUMNS
    # another day has nothing; the same day again gives the same bytes
    before = files.settlements_csv.read_bytes()
    assert export_day(inputs.path, today, tmp_path / "exports").settlements_csv.read_bytes(
        ) == before
    empty = export_day(inputs.path, today.replace(year=today.year - 1), tmp_path / "exports")
    assert (empty.settlements, empty.case_changes) == (0, 0)


def test_the_newest_revision_reads_back_the_same_rows(tmp_path: Path) -> None:
    """The sandbox answering in the newest documented revision (camelCase cases holding
    ``invoices[]``, camelCase settlements): the same tables as with the older one."""
    settings = load(SandboxSettings, port=0, lifecycle=RULES, case_revision="newest")
    with SandboxServer(settings) as sandbox:
        inputs = hand_over(tmp_path, sandbox)
        raw = httpx.get(f"{sandbox.base_url}/webapi/api/Batch", params={
            "senderid": "readback-sender", "creditorid": ORGNR_1, "includeclosed": "true"},
            headers={"Authorization": f"Bearer {sandbox.issue_token()}"}).json()
        assert "caseId" in raw["case"][0] and "invoices" in raw["case"][0]
        assert "settlementId" in raw["settlement"][0]
        with client_for(sandbox) as client:
            read_settlements(inputs.path, client, creditors_relation=RELATION
                             ).raise_for_failures()
            read_cases(inputs.path, client, creditors_relation=RELATION)
    cases, settlements = expected_history()
    assert set(stored_settlements(inputs)) == settlements
    rows = inputs.sql("SELECT unique_source_invoice_id, status, paid_amount, credited_amount, "
                      "remaining_amount, case_id IS NOT NULL, currency FROM amili.cases")
    assert {r[0]: (r[1], r[2], r[3], r[4]) for r in rows} == cases
    assert all(r[5] and r[6] == "NOK" for r in rows)


def test_the_readback_job_after_the_daily_job_end_to_end(
    tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's own definitions: the daily job hands a demo day over (real extract, dbt
    and submission), 40 days pass at the sandbox, then the amili_readback job reads back,
    builds the marts, runs the checks and writes the day's files."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from dagster import DagsterInstance

    from orchestration.definitions import defs
    from tests.helpers import demo_pipeline_env

    for name, value in demo_pipeline_env(tmp_path, sandbox, end_date=DAY).items():
        monkeypatch.setenv(name, value)
    db = tmp_path / "pipeline.duckdb"
    move_clock(sandbox, now="2026-11-25T05:00:00Z")
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        daily = defs.resolve_job_def("amili_daily").execute_in_process(
            partition_key=DAY.isoformat(), instance=instance, raise_on_error=False)
        assert daily.success
        move_clock(sandbox, advance_days=40)
        exports = tmp_path / "exports"
        readback = defs.resolve_job_def("amili_readback").execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"ops": {"amili__erp_export": {"config": {"out_dir": str(exports)}}}})
    assert readback.success
    checks = {c.check_name: c.passed for c in readback.get_asset_check_evaluations()}
    assert checks["every_acknowledged_invoice_has_a_case"] is True
    assert checks["cases_match_what_we_handed_over"] is True

    with duckdb.connect(str(db), read_only=True) as con:
        acknowledged = con.execute("SELECT count(*) FROM amili.acknowledged_invoices"
                                   ).fetchone()[0]
        assert acknowledged > 0
        assert con.execute("SELECT count(*), count(*) FILTER (handed_over) FROM amili.cases"
                           ).fetchone() == (acknowledged, acknowledged)
        assert con.execute("SELECT count(*) FROM marts.rpt_handover_status WHERE diverges"
                           ).fetchone()[0] == 0
        # the settlements are the rules' collections of what was handed over
        claims = dict(con.execute(
            """SELECT a.unique_source_invoice_id, c.remaining_amount + c.paid_amount
                   + c.credited_amount
               FROM amili.acknowledged_invoices AS a
               JOIN amili.cases AS c USING (amili_invoice_id)""").fetchall())
        stored = set(con.execute("SELECT unique_source_invoice_id, amount "
                                 "FROM amili.settlements").fetchall())
        booked = con.execute("SELECT sum(settled_amount) FROM marts.rpt_settlements_monthly"
                             ).fetchone()[0]
    rules = LifecycleRules.model_validate(RULES)  # the rules this file's sandbox plays
    expected = set()
    for source, claim in claims.items():
        rule = case_fate(rules, source)
        if rule is not None and rule.fate == "collected":
            expected.add((source, fate_amount(rule, claim)))
    assert stored == expected and expected
    assert booked == sum(amount for _, amount in stored)
    # the analysts' snapshot was published again with what was just read
    from amili.settings import reporting_paths

    with duckdb.connect(str(reporting_paths(db).reporting_db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM report.amili_cases").fetchone()[0] \
            == acknowledged
        assert con.execute("SELECT sum(settled_amount) FROM marts.rpt_settlements_monthly"
                           ).fetchone()[0] == booked
    today = datetime.now(ZoneInfo("Europe/Oslo")).date()
    assert (exports / f"amili-settlements-{today}.csv").is_file()
    assert (exports / f"amili-case-changes-{today}.parquet").is_file()


def test_amounts_with_more_decimals_are_kept_exactly_flagged_and_unstorable_ones_named(
    tmp_path: Path, handed_over: Inputs, sandbox: SandboxServer
) -> None:
    """The project never rounds money silently. A database written when amounts were
    DECIMAL(18, 2) is widened with its rows intact; pages the real sandbox answered, their
    amounts then given more decimals or digits than DECIMAL(18, 2) holds (the sandbox pays
    to the øre, so the test changes the parsed values), go through the real storage: kept
    exactly, flagged per row in the ERP files; an amount beyond the type fails naming the
    settlement, and nothing of its page is stored."""
    import csv
    import dataclasses
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from amili.pipeline.duckdb_io import connect_writer
    from amili.pipeline.readback import (
        DDL,
        AmountNotStorable,
        _store_page,
        case_divergences,
        ensure_readback_schema,
        export_day,
        store_cases,
    )

    inputs = handed_over
    with duckdb.connect(str(inputs.path)) as con:  # the tables as an older version made them
        for statement in DDL:
            con.execute(statement.replace("DECIMAL(38, 10)", "DECIMAL(18, 2)"))
        con.execute("INSERT INTO amili.settlements VALUES ('OLD', 999999, NULL, NULL, NULL, NULL, "
                    "NULL, 7.50, 'NOK', NULL, '{}', now())")
        assert con.execute("SELECT data_type FROM duckdb_columns() WHERE table_name = "
                           "'settlements' AND column_name = 'amount'").fetchone() == (
                               "DECIMAL(18,2)",)
    with client_for(sandbox) as client:
        pages = list(client.iter_settlement_pages(ORGNR_1, 0))
        lines = client.get_cases(ORGNR_1).case_lines()
    assert len(pages) >= 2 and len(pages[0].settlements) >= 2
    first, second = pages[0].settlements[:2]
    odd = first.amount + Decimal("0.005")
    wide = Decimal("12345678901234567.891")  # beyond DECIMAL(18, 2) in digits and decimals
    page = [dataclasses.replace(first, amount=odd), dataclasses.replace(second, amount=wide),
            *pages[0].settlements[2:]]
    too_fine = dataclasses.replace(pages[1].settlements[0], amount=Decimal("0.12345678901"))
    with connect_writer(inputs.path) as con:
        ensure_readback_schema(con)  # the migration
        kinds = set(con.execute(
            "SELECT data_type FROM duckdb_columns() WHERE schema_name = 'amili' AND "
            "column_name IN ('amount', 'original_amount', 'paid_amount', 'credited_amount', "
            "'remaining_amount') AND table_name IN ('settlements', 'cases', "
            "'case_status_changes')").fetchall())
        assert kinds == {("DECIMAL(38,10)",)}
        assert _store_page(con, ORGNR_1, page, pages[0].cursor) == len(page)
        with pytest.raises(AmountNotStorable, match=(
                f"settlement {too_fine.settlement_id} of creditor {ORGNR_1}: Amili answered "
                r"the amount 0.12345678901, which DECIMAL\(38, 10\) cannot hold exactly")):
            _store_page(con, ORGNR_1, [*pages[1].settlements[1:], too_fine], pages[1].cursor)
    assert inputs.sql("SELECT amount FROM amili.settlements WHERE creditor_idnumber = 'OLD'"
                      ) == [(Decimal("7.50"),)]
    assert inputs.sql("SELECT settlement_id, amount FROM amili.settlements WHERE "
                      "creditor_idnumber = ? ORDER BY settlement_id", [ORGNR_1]) == sorted(
        (s.settlement_id, s.amount) for s in page)
    assert inputs.sql("SELECT last_settlement_id FROM amili.settlement_cursors WHERE "
                      "creditor_idnumber = ?", [ORGNR_1]) == [(pages[0].cursor,)]

    today = datetime.now(ZoneInfo("Europe/Oslo")).date()
    files = export_day(inputs.path, today, tmp_path / "exports")
    with files.settlements_csv.open(newline="") as handle:
        rows = {row["settlement_id"]: row for row in csv.DictReader(handle)}
    assert rows[str(first.settlement_id)]["amount"] == str(odd)
    assert rows[str(second.settlement_id)]["amount"] == "12345678901234567.891"
    assert rows["999999"]["amount"] == "7.50"
    assert {k for k, row in rows.items() if row["more_than_two_decimals"] == "true"} == {
        str(first.settlement_id), str(second.settlement_id)}
    assert files.settlements_beyond_cents == 2
    with duckdb.connect() as con:
        parquet = dict(con.execute(
            f"SELECT settlement_id, amount FROM '{files.settlements_parquet}' "
            "WHERE more_than_two_decimals").fetchall())
    assert parquet == {first.settlement_id: odd, second.settlement_id: wide}

    # a case Amili holds at 0.004 more than we sent: no longer rounded into agreement
    [line] = [x for x in lines if x.unique_source_invoice_id == "A-0003"
              or x.ledgerref == inputs.sql("SELECT amili_invoice_id FROM "
                                           "amili.acknowledged_invoices WHERE "
                                           "unique_source_invoice_id = 'A-0003'")[0][0]]
    changed = dataclasses.replace(line, original_amount=line.original_amount
                                  + Decimal("0.004"))
    store_cases(inputs.path, [(ORGNR_1, [changed])])
    with pytest.raises(AmountNotStorable, match=(
            f"original_amount of case {line.casenumber} \\(invoice {line.ledgerref}\\) "
            f"of creditor {ORGNR_1}: Amili answered the amount 1E\\+28")):
        store_cases(inputs.path, [(ORGNR_1, [dataclasses.replace(
            line, original_amount=Decimal("1E+28"))])])
    with connect_writer(inputs.path) as con:  # the snapshot before the failed one, whole
        [diverging] = case_divergences(con)
    assert (diverging["unique_source_invoice_id"], diverging["reason"],
            diverging["case_amount"]) == ("A-0003", "amount differs", amount_of("A-0003")
                                          + Decimal("0.004"))


def test_cases_are_stored_creditor_by_creditor_and_a_failed_read_keeps_the_snapshot(
    handed_over: Inputs, sandbox: SandboxServer
) -> None:
    """Memory holds one creditor's cases: each creditor's answer is in the staging table
    before the next creditor is asked for (the file is looked at in between, with no
    connection of the read open), and amili.cases is replaced only after the last. A read
    failing at the second creditor leaves the previous snapshot and no staging table."""
    from amili.pipeline.readback import store_cases

    inputs = handed_over
    with client_for(sandbox) as client:
        answers = {c: client.get_cases(c).case_lines() for c in (ORGNR_1, ORGNR_2)}
        previous = read_cases(inputs.path, client, [ORGNR_1])  # yesterday's snapshot
    assert previous.rows == len(answers[ORGNR_1]) == 12
    seen: list[tuple[int, int]] = []

    def lines(fail_at_second: bool) -> Iterator[tuple[str, list]]:
        yield ORGNR_1, answers[ORGNR_1]
        # between two creditors: the first is staged, the snapshot is still yesterday's
        staged, current = inputs.sql(
            "SELECT (SELECT count(*) FROM amili.cases_incoming WHERE creditor_idnumber = ?), "
            "(SELECT count(*) FROM amili.cases)", [ORGNR_1])[0]
        seen.append((staged, current))
        if fail_at_second:
            raise AmiliError("Amili did not answer for the second creditor")
        yield ORGNR_2, answers[ORGNR_2]

    with pytest.raises(AmiliError, match="second creditor"):
        store_cases(inputs.path, lines(fail_at_second=True))
    assert seen == [(12, 12)]
    assert inputs.sql("SELECT count(*) FROM duckdb_tables() "
                      "WHERE table_name = 'cases_incoming'") == [(0,)]
    assert inputs.sql("SELECT count(DISTINCT creditor_idnumber), count(*) FROM amili.cases"
                      ) == [(1, 12)]

    stored = store_cases(inputs.path, lines(fail_at_second=False))
    assert seen[-1] == (12, 12)
    assert stored.rows == 12 + 7 == inputs.sql("SELECT count(*) FROM amili.cases")[0][0]
    assert stored.changes == 7  # the second creditor's cases are new; the first's unchanged
