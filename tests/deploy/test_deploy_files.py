"""The deployment's files, checked without Docker (which does not run here): the production
instance yaml against the local one and Dagster's schema, the workspace, compose.yaml's
services, environment and volumes, the Dockerfile's build steps and .env.example."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance
from dagster._core.instance.config import dagster_instance_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DAGSTER_SERVICES = {"code-location", "webserver", "daemon"}
PG_ENV = {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD",
          "DAGSTER_PG_DB"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def env_names(node: Any) -> set[str]:
    """The variables a Dagster yaml reads (``{env: NAME}`` anywhere in it)."""
    if isinstance(node, dict):
        found = {node["env"]} if set(node) == {"env"} else set()
        return found.union(*(env_names(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(env_names(value) for value in node))
    return set()


def test_the_production_instance_differs_from_the_local_one_only_in_its_storage() -> None:
    local = load(REPO / "dagster_home" / "dagster.yaml")
    production = load(DEPLOY / "dagster.yaml")
    assert "storage" not in local  # the local instance keeps SQLite files in DAGSTER_HOME
    assert {key: value for key, value in production.items() if key != "storage"} == local
    assert set(production["storage"]) == {"postgres"}
    assert env_names(production) == PG_ENV  # nothing written in the file, the password least
    # the driver dagster-postgres installs (psycopg2), not SQLAlchemy 2.1's default psycopg 3
    assert production["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


def test_dagster_accepts_the_production_instance_yaml(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    for name in PG_ENV:
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")
    config, _ = dagster_instance_config(str(tmp_path))  # validates against the schema
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {
        "env": "DAGSTER_PG_PASSWORD"}
    # ... and a missing variable is refused before any connection is tried, naming it
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    with pytest.raises(Exception, match="DAGSTER_PG_PASSWORD"):
        DagsterInstance.from_config(str(tmp_path))


def compose() -> dict[str, Any]:
    return load(REPO / "compose.yaml")


def service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    return {str(key): str(value) for key, value in env.items()}


def test_compose_runs_postgres_and_the_three_dagster_processes_from_one_image() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", *DAGSTER_SERVICES}
    assert {services[name]["image"] for name in DAGSTER_SERVICES} == {"amili-pipeline:latest"}
    assert services["code-location"]["build"] == "."
    commands = {name: services[name]["command"] for name in DAGSTER_SERVICES}
    assert commands["code-location"][:3] == ["dagster", "code-server", "start"]
    assert commands["code-location"][-2:] == ["-m", "orchestration.definitions"]
    # the port the code server listens on is the one the workspace is given
    port = commands["code-location"][commands["code-location"].index("-p") + 1]
    for name in DAGSTER_SERVICES:
        env = service_env(services[name])
        assert env["DAGSTER_CODE_SERVER_HOST"] == "code-location"
        assert env["DAGSTER_CODE_SERVER_PORT"] == port
        assert set(env) >= PG_ENV, name
        assert env["DAGSTER_PG_HOST"] == "postgres"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("webserver", "daemon"):
        assert commands[name][-2:] == ["-w", "/opt/dagster/workspace.yaml"]
        assert services[name]["depends_on"]["code-location"]["condition"] == "service_healthy"
    assert commands["webserver"][0] == "dagster-webserver"
    assert commands["daemon"][:2] == ["dagster-daemon", "run"]


def test_compose_keeps_the_pipeline_file_on_one_volume_of_one_service() -> None:
    spec = compose()
    services = spec["services"]
    mounts = {name: service.get("volumes", []) for name, service in services.items()}
    assert mounts["code-location"] == ["pipeline-data:/opt/amili/data"]
    assert mounts["webserver"] == mounts["daemon"] == []  # runs are the code server's children
    assert set(spec["volumes"]) == {"pipeline-data", "dagster-postgres"}
    env = service_env(services["code-location"])
    assert env["AMILI_PIPELINE_DB"].startswith("/opt/amili/data/")
    assert services["code-location"]["env_file"] == ".env"


def test_compose_secrets_come_from_the_environment() -> None:
    text = (REPO / "compose.yaml").read_text()
    services = compose()["services"]
    assert service_env(services["postgres"])["POSTGRES_PASSWORD"].startswith(
        "${DAGSTER_PG_PASSWORD:?")
    for name in DAGSTER_SERVICES:
        assert service_env(services[name])["DAGSTER_PG_PASSWORD"].startswith(
            "${DAGSTER_PG_PASSWORD:?")
        assert not any(key in service_env(services[name])
                       for key in ("AMILI_TOKEN", "AMILI_ALERT_SMTP_PASSWORD"))
    assert not re.search(r"AMILI_TOKEN\s*[:=]", text)  # named in a comment, never set
    # every variable compose reads is in .env.example, whose secrets are placeholders
    example = dict(line.split("=", 1) for line in
                   (REPO / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    read = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", text))  # $${X}: the container's own
    assert read <= set(example), read - set(example)
    for key in ("DAGSTER_PG_PASSWORD", "AMILI_TOKEN"):
        assert example[key] == "change-me"
    assert {"AMILI_BASE_URL", "AMILI_TOKEN", "AMILI_SENDER_ID"} <= set(example)


def test_the_workspace_points_at_the_code_location_server() -> None:
    [entry] = load(DEPLOY / "workspace.yaml")["load_from"]
    server = entry["grpc_server"]
    assert server["host"] == {"env": "DAGSTER_CODE_SERVER_HOST"}
    assert server["port"] == {"env": "DAGSTER_CODE_SERVER_PORT"}
    assert server["location_name"] == "amili"


def dockerfile_steps() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (continuation lines joined), comments left out."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    steps = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            steps.append((word, " ".join(rest.split())))
    return steps


def test_the_dockerfile_builds_from_the_lock_file_as_a_non_root_user() -> None:
    steps = dockerfile_steps()
    runs = [rest for word, rest in steps if word == "RUN"]
    assert "uv sync --frozen --no-dev --no-install-project" in runs
    assert "uv sync --frozen --no-dev" in runs
    assert any("dbt parse" in run for run in runs)
    # what it copies exists, and the instance files are the deploy ones
    for word, rest in steps:
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                assert (REPO / source).exists(), source
    copied = [rest for word, rest in steps if word == "COPY"]
    assert "deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml" in copied
    assert "deploy/workspace.yaml /opt/dagster/workspace.yaml" in copied
    [user] = [rest for word, rest in steps if word == "USER"]
    assert user not in {"root", "0"}
    # the dbt manifest is built after the last copy of the code it describes
    order = [word + " " + rest for word, rest in steps]
    parse = next(i for i, step in enumerate(order) if "dbt parse" in step)
    assert parse > order.index("COPY dbt_project ./dbt_project")
    # the uv in the image is the one that wrote the lock file's format
    assert any("ghcr.io/astral-sh/uv:" in rest for word, rest in steps if word == "COPY")
