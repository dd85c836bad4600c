"""A real Dagster deployment for tests: ``dagster-webserver`` and ``dagster-daemon`` (and
optionally a code-location gRPC server) as subprocesses on a temporary ``DAGSTER_HOME``, and
the GraphQL calls the UI makes to launch and follow backfills.

Shared by ``tests/pipeline/test_backfill.py`` (the project's local instance) and
``tests/deploy/test_postgres_instance.py`` (the production instance on PostgreSQL).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from dagster import DagsterEventType, DagsterInstance

REPO = Path(__file__).resolve().parents[1]
JOB = "amili_daily"

#: Bounds of each wait. The daemon looks for backfills every 30 s (fixed in Dagster) and one
#: run over the three days takes 1-3 minutes (two dbt builds): a backfill ends in about 2.5
#: minutes on a quiet machine, 4-5 on a busy one.
STARTUP_TIMEOUT = 180.0
BACKFILL_TIMEOUT = 480.0
TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stops a subprocess and everything it started (code servers, run workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)  # the group: started with a session of its own
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):  # whatever is left of the group
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=5)


def _tail(path: Path, lines: int = 120) -> str:
    """The log's errors (the daemon's tail is mostly backfill status), then its last lines."""
    text = path.read_text(errors="replace").splitlines() if path.exists() else ["(no log)"]
    errors = [line for line in text if "ERROR" in line or "Error:" in line][:40]
    return "\n".join([*errors, "...", *text[-lines:]])


@dataclass
class DagsterStack:
    """The webserver and daemon of one temporary instance, and what they work on."""

    url: str
    home: Path
    pipeline_db: Path
    logs: list[Path] = field(default_factory=list)
    location: str = ""

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/graphql", json={"query": query,
                                                            "variables": variables},
                              timeout=60)
        assert response.status_code == 200, f"{response.status_code}: {response.text[:3000]}"
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def log_tails(self) -> str:
        return "\n".join(f"----- {log.name} -----\n{_tail(log)}" for log in self.logs)


@contextlib.contextmanager
def running_stack(tmp_path: Path, *, instance_yaml: Path, env: Mapping[str, str],
                  workspace: Path = REPO / "workspace.yaml",
                  code_server_port: int | None = None) -> Iterator[DagsterStack]:
    """``dagster-webserver`` + ``dagster-daemon run`` on a temporary instance holding
    ``instance_yaml``, always stopped; with ``code_server_port``, a code-location gRPC server
    on that port too (the workspace must point at it).

    The instance's configuration is read in this process too (to create its storage and,
    later, to read runs back), so whatever ``env:`` variables it names must be in
    ``os.environ``. The logs are printed at the end: pytest shows them only when a test failed.
    """
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(instance_yaml, home / "dagster.yaml")
    # Create the instance's storage once, here: a webserver and a daemon creating it at the
    # same moment can race ("alembic_version has more than one head").
    with DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
    full_env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1",
                **env}
    bin_dir = Path(sys.executable).parent
    port = free_port()
    commands: dict[str, list[str]] = {}
    if code_server_port is not None:
        commands["code-server"] = [str(bin_dir / "dagster"), "code-server", "start",
                                   "-m", "orchestration.definitions",
                                   "-h", "127.0.0.1", "-p", str(code_server_port)]
    commands["webserver"] = [str(bin_dir / "dagster-webserver"), "-w", str(workspace),
                             "-h", "127.0.0.1", "-p", str(port)]
    commands["daemon"] = [str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)]
    stack = DagsterStack(url=f"http://127.0.0.1:{port}", home=home,
                         pipeline_db=tmp_path / "pipeline.duckdb")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, command in commands.items():
            log = tmp_path / f"{name}.log"
            stack.logs.append(log)
            with log.open("wb") as out:
                processes.append(subprocess.Popen(
                    command, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,  # one process group to stop, children included
                ))
        _wait_for_code_location(stack, processes)
        yield stack
    finally:
        for process in processes:
            _stop(process)
        print(stack.log_tails())


def _wait_for_code_location(stack: DagsterStack, processes: list[subprocess.Popen[bytes]]
                            ) -> None:
    """Waits until the webserver answers and has loaded the code location, or fails.

    A location served by a gRPC server that is still starting shows as an error first; the
    webserver retries it, so only a load error that outlasts the startup bound fails."""
    query = """{ workspaceOrError { ... on Workspace { locationEntries {
        name loadStatus locationOrLoadError { __typename ... on PythonError { message } }
    } } } }"""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last: Any = None
    while time.monotonic() < deadline:
        for process in processes:
            assert process.poll() is None, f"{process.args[0]} exited\n{stack.log_tails()}"
        try:
            entries = stack.graphql(query)["workspaceOrError"]["locationEntries"]
        except httpx.HTTPError:
            entries = []
        for entry in entries:
            loaded = entry["locationOrLoadError"]
            last = loaded
            if entry["loadStatus"] == "LOADED" and loaded["__typename"] == "RepositoryLocation":
                stack.location = entry["name"]
                return
        time.sleep(1)
    raise AssertionError(f"the code location did not load: {last}\n{stack.log_tails()}")


def launch_backfill(stack: DagsterStack, days: Sequence[date], *,
                    from_job_page: bool = False) -> str:
    """What *Materialize* → *Launch backfill* sends for the job's assets and the days.

    From the asset graph it is an asset backfill (run by Dagster's implicit asset job); from
    the job's page the UI adds the job's partition set, and the runs are ``amili_daily``'s.
    """
    job = {"pipelineName": JOB, "repositoryName": "__repository__",
           "repositoryLocationName": stack.location}
    nodes = stack.graphql(
        "query ($job: PipelineSelector) { assetNodes(pipeline: $job) { assetKey { path } } }",
        job=job,
    )["assetNodes"]
    assert len(nodes) > 10, nodes  # extract, dbt models, submission, results, marts
    params: dict[str, Any] = {
        "assetSelection": [node["assetKey"] for node in nodes],
        "partitionNames": [day.isoformat() for day in days],
        "fromFailure": False,
        "tags": [{"key": "dagster/from_ui", "value": "true"}],
    }
    if from_job_page:
        params["selector"] = {
            "partitionSetName": f"{JOB}_partition_set",
            "repositorySelector": {"repositoryName": job["repositoryName"],
                                   "repositoryLocationName": stack.location},
        }
    result = stack.graphql(
        """mutation ($params: LaunchBackfillParams!) {
             launchPartitionBackfill(backfillParams: $params) {
               __typename
               ... on LaunchBackfillSuccess { backfillId }
               ... on PythonError { message stack }
               ... on Error { message }
             } }""",
        params=params,
    )["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return str(result["backfillId"])


def wait_for_backfill(stack: DagsterStack, backfill_id: str) -> str:
    """Polls the backfill until it reaches a terminal status; returns the status."""
    query = """query ($id: String!) { partitionBackfillOrError(backfillId: $id) {
        ... on PartitionBackfill { status error { message } } } }"""
    deadline = time.monotonic() + BACKFILL_TIMEOUT
    status = "unknown"
    while time.monotonic() < deadline:
        backfill = stack.graphql(query, id=backfill_id)["partitionBackfillOrError"]
        status = backfill["status"]
        if status in TERMINAL:
            return str(status)
        time.sleep(2)
    raise AssertionError(f"backfill {backfill_id} still {status} after {BACKFILL_TIMEOUT} s")


@dataclass
class BackfillRun:
    run_id: str
    status: str
    tags: dict[str, str]
    checks: dict[str, list[bool]]  # our checks' verdicts in this run
    failures: list[str]


def recorded_runs(stack: DagsterStack, tag: str, value: str) -> list[BackfillRun]:
    """The runs with that tag as the instance recorded them, with check verdicts and errors."""
    found = []
    with DagsterInstance.from_config(str(stack.home)) as instance:
        for run in instance.get_runs():
            if run.tags.get(tag) != value:
                continue
            checks: dict[str, list[bool]] = {}
            failures = []
            for entry in instance.all_logs(run.run_id):
                event = entry.dagster_event
                if event is None:
                    continue
                if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
                    evaluation = event.event_specific_data
                    checks.setdefault(evaluation.check_name, []).append(evaluation.passed)
                elif event.event_type in (DagsterEventType.STEP_FAILURE,
                                          DagsterEventType.RUN_FAILURE):
                    failures.append(f"{event.step_key}: {event.message} "
                                    f"{getattr(event.event_specific_data, 'error', '')}")
            found.append(BackfillRun(run.run_id, run.status.value, dict(run.tags), checks,
                                     failures))
    return found


def backfill_runs(stack: DagsterStack, backfill_id: str) -> list[BackfillRun]:
    """The backfill's runs as the instance recorded them."""
    return recorded_runs(stack, "dagster/backfill", backfill_id)


def root_runs(runs: list[BackfillRun]) -> list[BackfillRun]:
    """The runs the backfill launched, without the retries of a failed one."""
    return [run for run in runs if "dagster/parent_run_id" not in run.tags]
