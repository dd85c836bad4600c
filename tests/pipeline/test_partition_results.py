"""What the Dagster UI shows per day after a three-day single-run backfill, read back through
the instance's API: each day's own metadata (figures from the tables by ``partition_date``,
amounts per currency) and each day's own check verdict (Passed, never Skipped)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import AssetCheckKey, AssetKey, AssetRecordsFilter, DagsterInstance
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
)

from orchestration.definitions import defs
from tests.conftest import SandboxServer
from tests.helpers import demo_pipeline_env

DAYS = [date(2026, 11, 22), date(2026, 11, 23), date(2026, 11, 24)]
RECONCILIATION = AssetKey(["marts", "rpt_reconciliation_daily"])
CHECKS = ("every_krone_is_accounted_for", "every_sent_object_is_answered",
          "no_object_changed_after_handover", "rejection_rate_is_low")


@pytest.fixture
def range_run(tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
              ) -> tuple[DagsterInstance, str, Path]:
    """The daily job over the three days as one run (what a UI backfill launches), on a
    real instance in ``tmp_path``; returns the instance, the run id and the pipeline file."""
    env = demo_pipeline_env(tmp_path, clean_sandbox, end_date=DAYS[-1], invoices_per_day=30)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    instance = DagsterInstance.from_config(str(home))
    result = defs.resolve_job_def("amili_daily").execute_in_process(
        instance=instance, raise_on_error=False, tags={
            "dagster/asset_partition_range_start": DAYS[0].isoformat(),
            "dagster/asset_partition_range_end": DAYS[-1].isoformat(),
        })
    assert result.success
    yield instance, result.run_id, tmp_path / "pipeline.duckdb"
    instance.dispose()


def latest_metadata(instance: DagsterInstance, key: list[str], day: date) -> dict[str, Any]:
    [record] = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(key), asset_partitions=[day.isoformat()]),
        limit=1).records
    materialization = record.asset_materialization
    assert materialization is not None and materialization.partition == day.isoformat()
    return {name: value.value for name, value in materialization.metadata.items()}


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


@pytest.mark.timeout(600)
def test_a_three_day_range_run_records_each_days_figures_and_verdicts(
    range_run: tuple[DagsterInstance, str, Path]
) -> None:
    instance, run_id, db = range_run
    sent_per_day = []
    for day in DAYS:
        # the extract: each day's rows
        raw = latest_metadata(instance, ["raw", "invoices"], day)
        assert raw["dagster/row_count"] == query(
            db, "SELECT count(*) FROM raw.invoices WHERE partition_date = ?", day)[0][0]
        eligible = {r.data["currency"]: Decimal(r.data["eligible_remaining_amount"])
                    for r in raw["eligible_amount"].records}
        assert eligible == dict(query(db, """SELECT currency, sum(remaining_amount)
            FROM raw.invoices WHERE partition_date = ? GROUP BY ALL""", day))

        # the results: each day's counts, and invoice amounts per currency (never summed)
        responses = latest_metadata(instance, ["amili", "responses"], day)
        by_outcome = dict(query(db, """SELECT outcome, count(*) FROM amili.responses
            WHERE partition_date = ? GROUP BY ALL""", day))
        assert responses["sent"] == sum(by_outcome.values()) > 0
        for outcome in ("accepted", "rejected", "outstanding"):
            assert responses[outcome] == by_outcome.get(outcome, 0), (day, outcome)
        assert responses["quarantined"] == query(
            db, "SELECT count(*) FROM amili.quarantine WHERE partition_date = ?", day)[0][0]
        sent_per_day.append(responses["sent"])
        accepted = dict(query(db, """
            SELECT i.currency, sum(i.originalInvoiceAmount)
            FROM amili.responses r JOIN batch.batch_invoices i
              ON i.partition_date = r.partition_date AND i.invoice_id = r.source_id
            WHERE r.objectname = 'invoice' AND r.outcome = 'accepted'
              AND r.partition_date = ? GROUP BY ALL""", day))
        assert accepted, day
        table = {r.data["currency"]: Decimal(r.data["accepted"])
                 for r in responses["invoice_amounts_by_currency"].records}
        assert {c: a for c, a in table.items() if a} == accepted
        units = {"NOK": "ore", "SEK": "ore", "EUR": "cent"}
        for currency, amount in accepted.items():
            key = f"accepted_amount_{currency.lower()}_{units.get(currency, 'minor')}"
            assert responses[key] == int(amount * 100), (day, key)
        assert not any(name.startswith("invoice_amount_") for name in responses)

        # the submission: each day's batches
        ledger = latest_metadata(instance, ["amili", "submission_ledger"], day)
        batches = query(db, "SELECT count(*) FROM amili.submission_ledger "
                            "WHERE partition_date = ?", day)[0][0]
        assert sum(v for k, v in ledger.items() if k.startswith("batches.")) == batches > 0

        # the sign-off report: that day's own file
        report = latest_metadata(instance, ["reporting", "signoff_report"], day)
        assert Path(report["path"]).name == f"{day.isoformat()}.html"

    # the days differ, so a range total repeated per day would have shown here
    assert len(set(sent_per_day)) > 1, sent_per_day
    assert sum(sent_per_day) == query(db, "SELECT count(*) FROM amili.responses")[0][0]

    # every partitioned check: one execution per day, none left planned ("Skipped")
    storage = instance.event_log_storage
    for name in CHECKS:
        check_key = AssetCheckKey(RECONCILIATION, name)
        records = [r for r in storage.get_asset_check_execution_history(check_key, limit=50)
                   if r.run_id == run_id]
        assert sorted(r.partition for r in records) == [d.isoformat() for d in DAYS], name
        assert all(r.status != AssetCheckExecutionRecordStatus.PLANNED for r in records), name
        for day in DAYS:
            [latest] = storage.get_asset_check_execution_history(
                check_key, limit=1, partition_filter=PartitionKeyFilter(key=day.isoformat()))
            evaluation = latest.event.dagster_event.event_specific_data
            assert evaluation.partition == day.isoformat()
            assert evaluation.target_materialization_data is not None  # links the day's mart
            if name == "every_krone_is_accounted_for":
                assert latest.status == AssetCheckExecutionRecordStatus.SUCCEEDED, day
                assert evaluation.blocking
                # the day per kind and currency, as the mart has it for that day alone
                shown = {(r.data["objectname"], r.data["currency"]):
                         (r.data["eligible_count"], r.data["sent_amount"])
                         for r in evaluation.metadata["by_kind_and_currency"].value.records}
                expected = {(kind, currency): (count, None if amount is None else str(amount))
                            for kind, currency, count, amount in query(db, """
                    SELECT objectname, currency, sum(eligible_count)::BIGINT,
                           sum(sent_amount)::DECIMAL(38, 2)
                    FROM marts.rpt_reconciliation_daily WHERE partition_date = ?
                    GROUP BY ALL""", day)}
                assert shown == expected, day
                assert len({c for k, c in shown if k == "invoice"}) >= 1
    # the rejection rate is each day's own
    for day in DAYS:
        [latest] = storage.get_asset_check_execution_history(
            AssetCheckKey(RECONCILIATION, "rejection_rate_is_low"), limit=1,
            partition_filter=PartitionKeyFilter(key=day.isoformat()))
        metadata = latest.event.dagster_event.event_specific_data.metadata
        [(sent, rejected)] = query(db, """SELECT sum(sent_count), sum(rejected_count)
            FROM marts.rpt_reconciliation_daily WHERE partition_date = ?""", day)
        assert (metadata["sent"].value, metadata["rejected"].value) == (sent, rejected)
