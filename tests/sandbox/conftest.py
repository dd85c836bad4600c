"""A real sandbox on a free loopback port, and plain httpx clients talking to it over TCP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sandbox_http import Api

from amili.sandbox import SandboxServer
from amili.sandbox.settings import SandboxSettings
from amili.settings import load


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """One sandbox for the sandbox tests; :func:`api` empties it before each test."""
    with SandboxServer(load(SandboxSettings, port=0)) as server:
        yield server


@pytest.fixture
def api(sandbox: SandboxServer) -> Iterator[Api]:
    client = Api(sandbox)
    client.http.post("/sandbox/reset").raise_for_status()
    yield client
    client.http.close()


@pytest.fixture
def start_sandbox() -> Iterator[Callable[..., Api]]:
    """Start extra sandboxes with other settings (limits, faults at start, ack-only)."""
    servers: list[SandboxServer] = []
    clients: list[Api] = []

    def start(**overrides: Any) -> Api:
        server = SandboxServer(load(SandboxSettings, port=0, **overrides)).start()
        servers.append(server)
        clients.append(Api(server))
        return clients[-1]

    yield start
    for client in clients:
        client.http.close()
    for server in servers:
        server.close()
