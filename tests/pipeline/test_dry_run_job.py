"""A dry run of the whole daily job, then a real run of the same day.

Real parts: a demo warehouse, the sandbox over loopback, the daily job through Dagster with
dbt building the models. A dry run writes the bodies and hands nothing over: the ledger
assets are not materialized, so everything that means "what Amili answered" is skipped,
and the run succeeds; the real run after it sends every object once.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance

from assets.reconciliation import RECONCILIATION_KEY
from assets.reporting import MART_KEYS, SNAPSHOT_KEY
from assets.submission import LEDGER_KEYS, RESULT_KEYS
from orchestration.definitions import defs
from tests.conftest import SandboxAdmin, SandboxServer
from tests.helpers import demo_pipeline_env

DAY = date(2026, 11, 24)
OUR_CHECKS = {"every_krone_is_accounted_for", "every_sent_object_is_answered",
              "no_object_changed_after_handover", "rejection_rate_is_low"}
#: The steps that stand for Amili's answers: skipped in a dry run.
ANSWER_STEPS = {"amili_results", "amili_reconciliation_models", "reporting__reporting_snapshot",
                "reporting__signoff_report",
                *(f"marts__rpt_reconciliation_daily_{name}" for name in OUR_CHECKS)}
KINDS = ("creditor", "invoice", "payment", "action")


@pytest.fixture
def pipeline_env(tmp_path: Path, clean_sandbox: SandboxServer,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the reports and a relative dry_run_dir stay in tmp_path
    for name, value in demo_pipeline_env(tmp_path, clean_sandbox, end_date=DAY).items():
        monkeypatch.setenv(name, value)
    return tmp_path / "pipeline.duckdb"


def run_job(instance: DagsterInstance, **kwargs: Any) -> Any:
    return defs.resolve_job_def("amili_daily").execute_in_process(
        partition_key=DAY.isoformat(), raise_on_error=False, instance=instance, **kwargs)


def query(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def amili_rows(db: Path) -> dict[str, int]:
    """The tables of schema amili (ledger, results, Amili's ids) that hold rows."""
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [name for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'amili' "
            "AND table_type = 'BASE TABLE'").fetchall()]
        counts = {t: con.execute(f'SELECT count(*) FROM amili."{t}"').fetchone()[0]
                  for t in tables}
    return {table: rows for table, rows in counts.items() if rows}


def steps(result: Any, event_type: str) -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type_value == event_type}


def posts(admin: SandboxAdmin) -> int:
    return sum(admin.stats()["requests"].get("POST /webapi/api/Batch", {}).values())


@pytest.mark.timeout(600)  # two runs of the job
def test_a_dry_run_of_the_whole_job_succeeds_and_claims_nothing_then_a_real_run_sends_once(
    pipeline_env: Path, sandbox_admin: SandboxAdmin, tmp_path: Path
) -> None:
    out = tmp_path / "dry-run"
    with DagsterInstance.ephemeral() as instance:
        dry = run_job(instance, run_config={"ops": {"amili_submission": {"config": {
            "dry_run": True, "dry_run_dir": str(out)}}}})

        # the run is green, and what means "Amili answered" did not run
        assert dry.success
        assert {"receivables_extract", "amili_dbt_models", "amili_submission"} <= steps(
            dry, "STEP_SUCCESS")
        assert steps(dry, "STEP_SKIPPED") == ANSWER_STEPS
        assert not steps(dry, "STEP_FAILURE")
        materialized = {e.asset_key for e in dry.get_asset_materialization_events()}
        assert not materialized & {*LEDGER_KEYS.values(), *RESULT_KEYS.values(), *MART_KEYS,
                                   SNAPSHOT_KEY, AssetKey(["reporting", "signoff_report"])}
        assert not [e for e in dry.get_asset_check_evaluations()
                    if e.check_name in OUR_CHECKS]
        # no check records a verdict for the day (a skipped one is no failure)
        balance = AssetCheckKey(RECONCILIATION_KEY, "every_krone_is_accounted_for")
        assert not [r for r in instance.event_log_storage.get_asset_check_execution_history(
            balance, limit=10) if r.status.value != "PLANNED"]

        # the bodies are on disk, nothing reached Amili, nothing is in the ledger
        bodies = sorted(out.glob("*.json"))
        assert bodies and (out / f"quarantine-{DAY}.jsonl").exists()
        assert posts(sandbox_admin) == 0
        assert amili_rows(pipeline_env) == {}
        assert not (tmp_path / "data" / "reports").exists()  # no sign-off report

        # the dry run's figures: an observation per ledger asset, and the log
        observations = {e.asset_key: e.asset_observation_data.asset_observation
                        for e in dry.get_asset_observation_events()}
        assert set(LEDGER_KEYS.values()) <= set(observations)
        seen = observations[LEDGER_KEYS["submission_ledger"]]
        assert seen.partition == DAY.isoformat()
        figures = {key: value.value for key, value in seen.metadata.items()}
        assert figures["dry_run"] is True
        assert figures["dry_run_dir"] == str(out.resolve())
        assert figures["bodies_written"] == len(bodies)
        assert figures["bodies"] == [path.name for path in bodies]
        quarantined = sum(figures[f"{kind}.quarantined"] for kind in KINDS)
        assert quarantined == len((out / f"quarantine-{DAY}.jsonl").read_text().splitlines())
        assert quarantined > 0  # the demo has bad rows
        written = {kind: figures[f"{kind}.written"] for kind in KINDS}
        assert written["invoice"] > 0
        in_bodies = {kind: sum(len(json.loads(p.read_bytes()).get(kind) or [])
                               for p in bodies) for kind in KINDS}
        assert {k: v for k, v in in_bodies.items() if k != "creditor"} == {
            k: v for k, v in written.items() if k != "creditor"}
        logged = [entry.user_message for entry in instance.all_logs(dry.run_id)]
        assert any(f"{len(bodies)} bodies written to {out.resolve()}" in m for m in logged)

        # the real run of the same day sends every object once, as the dry run showed it
        real = run_job(instance)
        assert real.success
        checks = {e.check_name: e.passed for e in real.get_asset_check_evaluations()
                  if e.check_name in OUR_CHECKS}
        assert checks == dict.fromkeys(OUR_CHECKS, True)
        stats = sandbox_admin.stats()
        assert stats["duplicates"] == 0 and stats["replays"] == 0
        for kind in ("invoice", "payment", "action"):
            assert stats[f"{kind}s"] == written[kind], kind
        assert posts(sandbox_admin) == len(bodies)  # one body per creditor here, as dry
        # the very objects the dry run wrote, each once (the bodies are built again from the
        # day's rows, so the order within a body, and with it the batch id, may differ)
        for kind, field in (("invoice", "uniqueSourceInvoiceId"),
                            ("payment", "uniqueSourcePaymentId")):
            shown = sorted(obj[field] for p in bodies
                           for obj in json.loads(p.read_bytes()).get(kind) or [])
            assert sorted(source_id for (source_id,) in query(
                pipeline_env, f"SELECT source_id FROM amili.ledger_objects "
                f"WHERE objectname = '{kind}'")) == shown, kind
        assert query(pipeline_env, """
            SELECT count(*) = count(DISTINCT (objectname, source_id))
            FROM amili.ledger_objects""") == [(True,)]
        assert query(pipeline_env, "SELECT count(*) FROM amili.quarantine") == [(quarantined,)]
