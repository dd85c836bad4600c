"""The daily job checks the AMILI_* settings it needs before its first step writes anything.

Real parts: a demo warehouse, the sandbox over loopback (its tokens are real JWTs), the daily
job materialized through Dagster.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import DagsterInstance

from orchestration.definitions import defs
from orchestration.resources import RETRIES_BEFORE_SETTINGS_TAG
from orchestration.run_failures import run_failures
from tests.conftest import SandboxServer
from tests.helpers import demo_pipeline_env

DAY = date(2026, 11, 24)


@pytest.fixture
def env(tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
        ) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no .env file supplies what a test takes away
    values = demo_pipeline_env(tmp_path, clean_sandbox, end_date=DAY, days=2)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run_job(**kwargs: Any) -> Any:
    return defs.resolve_job_def("amili_daily").execute_in_process(
        partition_key=DAY.isoformat(), raise_on_error=False, **kwargs)


def raw_rows(pipeline_db: Path) -> dict[str, int]:
    """Rows per table of the raw schema; empty when the database or the schema is not there."""
    if not pipeline_db.exists():
        return {}
    with duckdb.connect(str(pipeline_db), read_only=True) as con:
        tables = [name for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw'"
        ).fetchall()]
        return {t: con.execute(f'SELECT count(*) FROM raw."{t}"').fetchone()[0] for t in tables}


def expired_token(sandbox: SandboxServer) -> str:
    return sandbox.issue_token(ttl_seconds=-60)


BAD_SETTINGS = {
    "base url unset": ({"AMILI_BASE_URL": None}, "AMILI_BASE_URL is not set"),
    "base url without a scheme": ({"AMILI_BASE_URL": "127.0.0.1:8765"},
                                  "AMILI_BASE_URL is invalid"),
    "empty token": ({"AMILI_TOKEN": ""}, "AMILI_TOKEN is empty: set it to the JWT Amili issued"),
    "token not a jwt": ({"AMILI_TOKEN": "s3cr3t-but-no-jwt"}, "AMILI_TOKEN is not a JWT"),
    "expired token": ({"AMILI_TOKEN": expired_token}, "AMILI_TOKEN expired at"),
    "empty sender id": ({"AMILI_SENDER_ID": " "}, "AMILI_SENDER_ID is empty"),
    "bad memory limit": ({"AMILI_DUCKDB_MEMORY_LIMIT": "lots"},
                         "AMILI_DUCKDB_MEMORY_LIMIT is not a memory size"),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_bad_settings_fail_the_run_before_the_extract_writes_a_row(
    case: str, env: dict[str, str], clean_sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    changes, expected = BAD_SETTINGS[case]
    secrets = [env["AMILI_TOKEN"]]
    for name, value in changes.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            value = value(clean_sandbox) if callable(value) else value
            monkeypatch.setenv(name, value)
            if name == "AMILI_TOKEN":
                secrets.append(value)

    result = run_job()

    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_START"]
    [failure] = run_failures(result.all_events)
    assert failure.where == "resource setup"
    assert expected in failure.message, failure.message
    assert raw_rows(Path(env["AMILI_PIPELINE_DB"])) == {}
    # the token itself is in no event and no log line
    texts = [caplog.text, *(str(e) for e in result.all_events)]
    assert not [s for s in secrets if s.strip() and any(s in text for text in texts)]


@pytest.mark.parametrize("api_settings", ["unset", "set"])
def test_a_dry_run_needs_no_api_settings(
    api_settings: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if api_settings == "unset":
        for name in ("AMILI_BASE_URL", "AMILI_TOKEN", "AMILI_SENDER_ID"):
            monkeypatch.delenv(name)
    # a smaller batch size than the contract's is honoured without the other API settings
    monkeypatch.setenv("AMILI_MAX_BATCH_OBJECTS", "7")
    out = tmp_path / "dry-run"
    result = run_job(run_config={"ops": {"amili_submission": {"config": {
        "dry_run": True, "dry_run_dir": str(out)}}}})
    assert result.success  # the steps that stand for Amili's answers are skipped, not red
    succeeded = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert {"receivables_extract", "amili_submission"} <= succeeded
    bodies = [json.loads(path.read_text()) for path in sorted(out.glob("*.json"))]
    sizes = [sum(len(body.get(kind) or []) for kind in ("creditor", "invoice", "payment",
                                                        "action")) for body in bodies]
    assert len(bodies) > 1 and min(sizes) > 0 and max(sizes) <= 7, sizes  # as a real run cuts
    assert sum(raw_rows(Path(env["AMILI_PIPELINE_DB"])).values()) > 0
    assert "resource setup" not in {f.where for f in run_failures(result.all_events)}


def test_a_settings_failure_is_not_retried_and_a_fixed_reexecution_gets_its_retries_back(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Run retries on (as in dagster_home/dagster.yaml): a retry of a run whose settings are
    wrong would fail the same way and hold back the failure alert, so Dagster is told not to
    retry it; a re-execution (which copies its parent's tags) gets the job's retries back
    once its settings load."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    base_url = env["AMILI_BASE_URL"]
    monkeypatch.delenv("AMILI_BASE_URL")
    with DagsterInstance.local_temp(str(home), overrides={"run_retries": {"enabled": True}}
                                    ) as instance:
        failed = run_job(instance=instance)
        assert not failed.success
        tags = instance.get_run_by_id(failed.run_id).tags
        assert (tags["dagster/max_retries"], tags["dagster/will_retry"],
                tags[RETRIES_BEFORE_SETTINGS_TAG]) == ("0", "false", "2")

        monkeypatch.setenv("AMILI_BASE_URL", base_url)
        copied = {key: tags[key] for key in ("dagster/max_retries", RETRIES_BEFORE_SETTINGS_TAG)}
        fixed = run_job(instance=instance, tags=copied)
        assert fixed.success
        tags = instance.get_run_by_id(fixed.run_id).tags
        assert (tags["dagster/max_retries"], tags[RETRIES_BEFORE_SETTINGS_TAG]) == (
            "2", "restored")


@pytest.mark.parametrize("url", [
    "postgresql://reader:s3cr3t-pw@127.0.0.1:1/erp?schema=ar",
    "postgresql://reader@127.0.0.1:1/erp?password=s3cr3t-pw",
])
def test_a_warehouse_password_in_run_config_is_refused_before_any_work(
    url: str, env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Run config is stored with the run and shown in the Dagster UI: a warehouse URL with
    a password there fails the run at resource setup, says where the password belongs and
    does not repeat it."""
    result = run_job(run_config={"resources": {"pipeline": {"config": {"warehouse": url}}}})
    assert not result.success
    [failure] = run_failures(result.all_events)
    assert failure.where == "resource setup"
    assert "carries a password" in failure.message and "PGPASSWORD" in failure.message
    assert "127.0.0.1:1/erp" in failure.message  # the masked URL names which one
    assert raw_rows(Path(env["AMILI_PIPELINE_DB"])) == {}
    texts = [caplog.text, *(str(e) for e in result.all_events)]
    assert not [text for text in texts if "s3cr3t-pw" in text]
