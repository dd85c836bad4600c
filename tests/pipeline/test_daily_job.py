"""The daily job end to end through Dagster, against the sandbox as a real server."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import AssetKey

from orchestration.definitions import defs
from tests.conftest import SandboxAdmin, SandboxServer
from tests.helpers import demo_pipeline_env, forget_last_ledger_object
from tests.receiver import Receiver

DAY = date(2026, 11, 24)


@pytest.fixture
def pipeline_env(
    tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    for name, value in demo_pipeline_env(tmp_path, clean_sandbox, end_date=DAY).items():
        monkeypatch.setenv(name, value)
    return tmp_path / "pipeline.duckdb"


def run_job(**kwargs: Any) -> Any:
    return defs.resolve_job_def("amili_daily").execute_in_process(raise_on_error=False, **kwargs)


def query(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_one_partition_end_to_end_then_a_rerun_posts_nothing_new(
    pipeline_env: Path, sandbox_admin: SandboxAdmin
) -> None:
    result = run_job(partition_key=DAY.isoformat())
    assert result.success
    stats = sandbox_admin.stats()
    assert stats["invoices"] > 0
    sent = query(pipeline_env, "SELECT count(*) FROM amili.responses WHERE objectname='invoice'")
    quarantined = query(pipeline_env, "SELECT count(*) FROM amili.quarantine")[0][0]
    assert sent[0][0] + quarantined >= 20  # every eligible invoice is sent or quarantined
    responses = next(
        e.materialization.metadata for e in result.get_asset_materialization_events()
        if e.asset_key == AssetKey(["amili", "responses"])
    )
    assert responses["quarantined"].value == quarantined > 0  # the demo has bad rows
    assert responses["sent"].value == responses["accepted"].value + responses["rejected"].value
    reasons = responses["top_rejection_reasons"].value
    assert [column.name for column in reasons.schema.columns] == ["reason", "objects"]
    assert reasons.records or responses["rejected"].value == 0
    assert stats["invoices"] == query(
        pipeline_env,
        "SELECT count(*) FROM amili.responses WHERE objectname='invoice' AND outcome='accepted'",
    )[0][0]
    # Amili's ids of the accepted invoices are recorded for later payments
    assert query(pipeline_env, "SELECT count(*) FROM amili.acknowledged_invoices")[0][0] == (
        stats["invoices"]
    )

    assert check_results(result) == {
        "every_krone_is_accounted_for": True, "rejection_rate_is_low": True,
        "every_sent_object_is_answered": True, "no_object_changed_after_handover": True,
    }

    again = run_job(partition_key=DAY.isoformat())
    assert again.success
    assert check_results(again)["every_krone_is_accounted_for"]
    after = sandbox_admin.stats()
    for kind in ("invoices", "payments", "actions"):
        assert after[kind] == stats[kind], kind


def check_results(result: Any) -> dict[str, bool]:
    """Our own reconciliation checks' verdicts (dbt's tests are checks too; left out here)."""
    return {
        evaluation.check_name: evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.check_name in {"every_krone_is_accounted_for", "rejection_rate_is_low",
                                     "every_sent_object_is_answered",
                                     "no_object_changed_after_handover"}
    }


def test_the_balance_check_fails_when_a_row_is_removed_from_the_ledger(
    pipeline_env: Path, sandbox_admin: SandboxAdmin
) -> None:
    assert run_job(partition_key=DAY.isoformat()).success
    with duckdb.connect(str(pipeline_env)) as con:
        (batchid,) = con.execute(
            "SELECT min(batchid) FROM amili.ledger_arrays WHERE objectname = 'invoice'"
        ).fetchone()
        forget_last_ledger_object(con, batchid, "invoice")
    marts = [AssetKey(["marts", name]) for name in (
        "rpt_object_fates", "rpt_reconciliation_daily", "rpt_rejection_reasons",
        "rpt_unanswered_batches",
    )]
    rerun = defs.resolve_job_def("amili_daily").execute_in_process(
        partition_key=DAY.isoformat(), asset_selection=marts, raise_on_error=False
    )
    assert check_results(rerun)["every_krone_is_accounted_for"] is False


def test_429_and_503_on_the_way_and_the_run_still_completes(
    pipeline_env: Path, sandbox_admin: SandboxAdmin
) -> None:
    sandbox_admin.add_faults(
        {"kind": "status", "status": 429, "retry_after": 0, "times": 2},
        {"kind": "status", "status": 503, "times": 2},
    )
    result = run_job(partition_key=DAY.isoformat())
    assert result.success
    assert query(pipeline_env, "SELECT count(*) FROM amili.submission_ledger "
                 "WHERE state = 'failed'")[0][0] == 0
    requests = sandbox_admin.stats()["requests"]["POST /webapi/api/Batch"]
    assert requests.get("429") == 2
    assert requests.get("503") == 2


def test_a_day_where_amili_is_down_fails_the_step_with_a_clear_message(
    pipeline_env: Path, sandbox_admin: SandboxAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMILI_MAX_RETRIES", "1")
    sandbox_admin.add_faults({"kind": "status", "status": 503, "times": None})
    result = run_job(partition_key=DAY.isoformat())
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "batches of 2026-11-24 failed" in str(failure.event_specific_data.error)


def test_a_three_day_backfill_runs_as_one_run(
    pipeline_env: Path, sandbox_admin: SandboxAdmin
) -> None:
    """What a UI backfill of a date range runs: one run over the range (single-run policy)."""
    result = run_job(tags={
        "dagster/asset_partition_range_start": "2026-11-22",
        "dagster/asset_partition_range_end": "2026-11-24",
    })
    assert result.success
    days = query(pipeline_env,
                 "SELECT DISTINCT partition_date FROM amili.submission_ledger ORDER BY 1")
    assert [d for (d,) in days] == [date(2026, 11, 22), date(2026, 11, 23), date(2026, 11, 24)]
    # payments of invoices acknowledged on an earlier day of the range got Amili's id
    assert sandbox_admin.stats()["invoices"] > 0


@pytest.mark.timeout(900)  # three runs of the job
def test_payments_held_in_a_range_are_carried_forward_and_sent_once(
    pipeline_env: Path, sandbox_admin: SandboxAdmin
) -> None:
    """dbt builds every day of a range before anything is sent, so a payment on a later day
    of the range against an invoice of its first day is held (Amili has not acknowledged the
    invoice yet). The next day's run carries it forward: sent once, with Amili's invoice id,
    and the day it was held on accounts for it as carried_forward."""
    assert run_job(tags={
        "dagster/asset_partition_range_start": "2026-11-21",
        "dagster/asset_partition_range_end": "2026-11-23",
    }).success
    waiting = query(pipeline_env, """
        SELECT p.payment_id, a.amili_invoice_id, p.amount, p.partition_date
        FROM batch.batch_payments p
        JOIN amili.acknowledged_invoices a ON a.unique_source_invoice_id = p.invoice_id
        WHERE p.hold_reason = 'invoice not yet acknowledged by Amili'
        ORDER BY 1""")
    # seed 11: payments of 11-22 and 11-23 against invoices of 11-21
    assert {day for *_, day in waiting} == {date(2026, 11, 22), date(2026, 11, 23)}
    payments_before = sandbox_admin.stats()["payments"]

    result = run_job(partition_key=DAY.isoformat())
    assert result.success
    assert check_results(result) == {
        "every_krone_is_accounted_for": True, "rejection_rate_is_low": True,
        "every_sent_object_is_answered": True, "no_object_changed_after_handover": True,
    }
    # each waiting payment went out on 11-24, pointing at Amili's id of its invoice
    carried = query(pipeline_env, """
        SELECT payment_id, invoiceId, amount, carried_from_date FROM batch.batch_payments
        WHERE partition_date = DATE '2026-11-24' AND carried_from_date IS NOT NULL
        ORDER BY 1""")
    assert carried == waiting
    fates = query(pipeline_env, """
        SELECT partition_date, fate, outcome, count(*) FROM marts.rpt_object_fates
        WHERE objectname = 'payment' AND source_id IN (
            SELECT payment_id FROM batch.batch_payments WHERE carried_from_date IS NOT NULL)
        GROUP BY ALL ORDER BY ALL""")
    held_on = {day: sum(1 for *_, d in waiting if d == day) for day in {d for *_, d in waiting}}
    assert fates == [
        *((day, "carried_forward", None, n) for day, n in sorted(held_on.items())),
        (date(2026, 11, 24), "sent", "accepted", len(waiting)),
    ]
    # the sandbox stored every payment it was sent exactly once
    sent_payments = query(pipeline_env, """
        SELECT count(DISTINCT source_id), count(*) FROM amili.ledger_objects
        WHERE objectname = 'payment'""")[0]
    assert sent_payments[0] == sent_payments[1]
    assert sandbox_admin.stats()["payments"] - payments_before >= len(waiting)
    carried_amount = query(pipeline_env, """
        SELECT carried_forward_amount, carried_forward_count FROM (
            SELECT sum(carried_forward_amount) AS carried_forward_amount,
                   sum(carried_forward_count) AS carried_forward_count
            FROM marts.rpt_reconciliation_daily WHERE partition_date < DATE '2026-11-24')""")
    assert carried_amount == [(sum(amount for _, _, amount, _ in waiting), len(waiting))]
    assert query(pipeline_env, "SELECT bool_and(balances) FROM marts.rpt_reconciliation_daily"
                 ) == [(True,)]

    # running the day again carries nothing twice and posts nothing new
    posted = sandbox_admin.stats()["payments"]
    assert run_job(partition_key=DAY.isoformat()).success
    assert sandbox_admin.stats()["payments"] == posted
    assert query(pipeline_env, """
        SELECT count(*) FROM batch.batch_payments WHERE carried_from_date IS NOT NULL""") == [
        (len(waiting),)]


def test_a_refused_token_fails_the_step_and_the_next_run_sends_only_the_rest(
    pipeline_env: Path, sandbox_admin: SandboxAdmin, clean_sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 401 after the first batch: the submission stops posting and fails naming
    AMILI_TOKEN, nothing downstream runs on its half-sent day; the next run (token fixed)
    sends only what Amili did not acknowledge and every check passes."""
    refusal = (401, "application/json", b'{"statuscode": 2, "errors": [], "responses": []}')
    monkeypatch.setenv("AMILI_MAX_CONCURRENCY", "1")
    monkeypatch.setenv("AMILI_MAX_BATCH_OBJECTS", "6")
    with Receiver(clean_sandbox.base_url, lambda n, _: refusal if n >= 2 else None) as front:
        monkeypatch.setenv("AMILI_BASE_URL", front.url)
        result = run_job(partition_key=DAY.isoformat())
        assert front.posts == 2
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "AMILI_TOKEN" in message and "HTTP 401" in message and "not sent" in message
    assert failure.step_key == "amili_submission"
    ran = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert "amili_results" not in ran and "amili_reconciliation_models" not in ran
    states = dict(query(pipeline_env, "SELECT state, count(*) FROM amili.submission_ledger "
                                      "GROUP BY ALL"))
    assert states["accepted"] == 1 and states["failed"] == 1 and states.get("not_sent", 0) >= 1
    accepted_before = sandbox_admin.stats()["invoices"]
    assert accepted_before > 0

    monkeypatch.setenv("AMILI_BASE_URL", clean_sandbox.base_url)
    again = run_job(partition_key=DAY.isoformat())
    assert again.success
    assert check_results(again) == {
        "every_krone_is_accounted_for": True, "rejection_rate_is_low": True,
        "every_sent_object_is_answered": True, "no_object_changed_after_handover": True,
    }
    sent = query(pipeline_env, "SELECT count(DISTINCT source_id) FROM amili.responses "
                 "WHERE objectname = 'invoice' AND outcome = 'accepted'")[0][0]
    assert sandbox_admin.stats()["invoices"] == sent  # none stored twice


def test_a_batch_left_without_an_answer_fails_the_answers_check_until_the_next_run(
    pipeline_env: Path, sandbox_admin: SandboxAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMILI_MAX_RETRIES", "0")
    monkeypatch.setenv("AMILI_MAX_CONCURRENCY", "1")
    monkeypatch.setenv("AMILI_MAX_BATCH_OBJECTS", "6")
    sandbox_admin.add_faults({"kind": "status", "status": 503, "times": 1})
    result = run_job(partition_key=DAY.isoformat())
    assert result.success  # a partial failure: the day goes on, and says so
    checks = check_results(result)
    assert checks["every_krone_is_accounted_for"] is True  # it balances ...
    assert checks["every_sent_object_is_answered"] is False  # ... but was not handed over
    evaluation = next(e for e in result.get_asset_check_evaluations()
                      if e.check_name == "every_sent_object_is_answered")
    assert evaluation.severity.value == "ERROR"
    outstanding = evaluation.metadata["outstanding"].value
    assert outstanding > 0
    # analysts see them in the snapshot's problem list, with what happens next
    snapshot = pipeline_env.parent / "reporting.duckdb"
    unanswered = query(snapshot, "SELECT kind, message FROM report.problems "
                                 "WHERE kind = 'no answer yet'")
    assert len(unanswered) == outstanding
    assert all("next run sends it again" in message for _, message in unanswered)

    sandbox_admin.clear_faults()
    again = run_job(partition_key=DAY.isoformat())
    assert again.success and check_results(again)["every_sent_object_is_answered"] is True
    assert query(snapshot, "SELECT count(*) FROM report.problems "
                           "WHERE kind = 'no answer yet'") == [(0,)]
