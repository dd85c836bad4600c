"""Shared fixtures: a real sandbox server on a free loopback port, and clients for it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from amili.client import AmiliClient
from amili.sandbox.server import SandboxServer
from amili.sandbox.settings import SandboxSettings
from amili.settings import ClientSettings, load
from tests.postgres_server import PostgresServer, postgres_available, running_postgres


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """One sandbox for the session; tests that need a clean one use ``clean_sandbox``."""
    with SandboxServer(load(SandboxSettings, port=0)) as server:
        yield server


@pytest.fixture
def clean_sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The session sandbox, emptied of batches, faults and counters."""
    httpx.post(f"{sandbox_server.base_url}/sandbox/reset").raise_for_status()
    return sandbox_server


class SandboxAdmin:
    """The sandbox's admin endpoints (fault injection and counters), over HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def add_faults(self, *rules: dict[str, Any]) -> None:
        httpx.post(f"{self.base_url}/sandbox/faults", json={"faults": list(rules)}
                   ).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.base_url}/sandbox/faults").raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/sandbox/stats")
        response.raise_for_status()
        return response.json()


@pytest.fixture
def sandbox_admin(clean_sandbox: SandboxServer) -> SandboxAdmin:
    return SandboxAdmin(clean_sandbox.base_url)


@pytest.fixture
def make_client(clean_sandbox: SandboxServer) -> Iterator[Callable[..., AmiliClient]]:
    """Build clients for the clean sandbox; fast backoff unless a test overrides it."""
    clients: list[AmiliClient] = []

    def build(**overrides: Any) -> AmiliClient:
        values: dict[str, Any] = {
            "base_url": clean_sandbox.base_url,
            "token": SecretStr(clean_sandbox.issue_token()),
            "sender_id": "test-sender",
            "backoff_initial_seconds": 0.01,
            "backoff_max_seconds": 0.05,
            "timeout_seconds": 5.0,
        }
        client_kwargs = overrides.pop("client_kwargs", {})
        values.update(overrides)
        client = AmiliClient(load(ClientSettings, **values), **client_kwargs)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (see tests/postgres_server.py). In CI a
    missing server fails the test; elsewhere it is skipped."""
    if not postgres_available():
        if os.environ.get("CI"):
            pytest.fail("initdb/pg_ctl/postgres are not on PATH: CI needs PostgreSQL")
        pytest.skip("PostgreSQL (initdb, pg_ctl, postgres) is not on PATH")
    with running_postgres() as server:
        yield server
