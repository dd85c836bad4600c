"""What the Dagster UI shows of the definitions: the lineage by stage, and which day the
schedule's tick runs (the UI's "Test schedule" evaluates the tick the same way)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from dagster import DagsterInstance, build_schedule_context

from assets.dbt_models import STAGE_GROUPS
from orchestration.definitions import defs
from orchestration.jobs import COLLECTION_DAY_TAG

OSLO = ZoneInfo("Europe/Oslo")


def test_every_asset_is_in_the_group_of_its_stage_and_the_stages_read_left_to_right() -> None:
    graph = defs.resolve_asset_graph()
    groups = {key: graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert "default" not in groups.values()
    assert set(groups.values()) == {*STAGE_GROUPS, "amili_api"}  # the ping stands alone
    by_group = {name: {k.to_user_string() for k, g in groups.items() if g == name}
                for name in set(groups.values())}
    assert by_group["extract"] == {f"raw/{t}" for t in (
        "invoices", "invoice_lines", "reminders", "payments", "case_actions", "customers",
        "creditors")}
    assert by_group["submission"] == {"amili/submission_ledger", "amili/ledger_objects",
                                      "amili/quarantine"}
    assert by_group["results"] == {"amili/responses", "amili/errors"}
    assert "marts/rpt_reconciliation_daily" in by_group["marts"]
    assert "batch/batch_invoices_json" in by_group["batch"]
    assert "staging/stg_invoices" in by_group["staging"]
    # every edge between groups goes forward: the group-level graph has no loop back
    order = {name: index for index, name in enumerate(STAGE_GROUPS)}
    for key in graph.get_all_asset_keys():
        for parent in graph.get(key).parent_keys:
            source, target = groups[parent], groups[key]
            if source != target:
                assert order[source] < order[target], (parent, key, source, target)
    # the dbt models keep their descriptions
    assert graph.get(next(k for k in groups if k.to_user_string()
                          == "marts/rpt_reconciliation_daily")).description


@pytest.mark.parametrize(("tick", "day"), [
    (datetime(2026, 12, 7, 6, 0, tzinfo=OSLO), "2026-12-06"),
    # just after midnight in Oslo it is still the day before in UTC: Oslo's day counts
    (datetime(2026, 11, 25, 0, 30, tzinfo=OSLO), "2026-11-24"),
    # the morning after the clocks went forward (a 23-hour day)
    (datetime(2026, 3, 30, 6, 0, tzinfo=OSLO), "2026-03-29"),
])
def test_the_schedules_tick_names_the_day_it_runs(tick: datetime, day: str) -> None:
    schedule = defs.resolve_schedule_def("amili_daily_schedule")
    assert schedule.execution_timezone == "Europe/Oslo"
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                         repository_def=defs.get_repository_def())
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == day
    assert request.run_key == day
    assert request.tags[COLLECTION_DAY_TAG] == day
    assert request.tags["dagster/partition"] == day


def test_the_schedule_skips_a_tick_before_the_first_partition() -> None:
    schedule = defs.resolve_schedule_def("amili_daily_schedule")
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2020, 1, 1, 6, tzinfo=OSLO),
            repository_def=defs.get_repository_def())
        result = schedule.evaluate_tick(context)
    assert not result.run_requests
    assert "the partitions start on" in (result.skip_message or "")
