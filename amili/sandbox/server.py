"""Run the sandbox: in a background thread for tests and demos, or in the foreground.

:class:`SandboxServer` binds its socket *before* starting uvicorn (port 0 picks a free port),
so the port is known at once and no other process can take it in between. uvicorn logs at
``warning`` by default; its access log (on only at ``info`` or ``debug``) writes the client,
method, path with query string and status, never request headers, so the bearer token never
reaches a log.
"""

from __future__ import annotations

import socket
import sys
import threading
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI

from amili.sandbox.app import create_app
from amili.sandbox.settings import SandboxSettings
from amili.sandbox.tokens import issue_token
from amili.settings import load

_START_TIMEOUT_SECONDS = 15.0


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; connections queue in its backlog until uvicorn is up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def _uvicorn_config(app: FastAPI, settings: SandboxSettings, foreground: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=settings.log_level,
        # The embedded server leaves the host program's logging alone.
        log_config=uvicorn.config.LOGGING_CONFIG if foreground else None,
        access_log=settings.log_level in ("info", "debug"),
        proxy_headers=False,  # the admin endpoints' loopback check must see the real peer
        server_header=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class SandboxServer:
    """A sandbox listening on loopback in a background thread; use it as a context manager.

    ``SandboxServer()`` takes its settings from the environment (``AMILI_SANDBOX_*``) but
    listens on a free port unless ``port`` (or ``settings`` with a port) is given.
    """

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None:
            overrides.setdefault("port", 0 if port is None else port)
            settings = load(SandboxSettings, **overrides)
        elif overrides:
            settings = type(settings)(**{**dict(settings), **overrides})
        self.settings = settings
        self.host = host or settings.host
        self._requested_port = settings.port if port is None else port
        self.app = create_app(settings)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """e.g. ``http://127.0.0.1:54321`` (no trailing slash, no ``/webapi``)."""
        if not self.port:
            raise RuntimeError("the sandbox server is not running")
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def state(self) -> Any:
        """The app's :class:`~amili.sandbox.app.SandboxState` (store, faults, statistics)."""
        return self.app.state.sandbox

    def issue_token(self, subject: str = "sandbox-client", ttl_seconds: int | None = None) -> str:
        """A bearer token this server accepts."""
        return issue_token(self.settings, subject, ttl_seconds)

    def start(self) -> SandboxServer:
        """Bind, start uvicorn in a daemon thread, and wait until it accepts requests."""
        if self._thread is not None:
            raise RuntimeError("the sandbox server is already running")
        self._socket = _bind(self.host, self._requested_port)
        self.port = self._socket.getsockname()[1]
        self._server = uvicorn.Server(_uvicorn_config(self.app, self.settings, False))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"amili-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        ready = threading.Event()
        deadline = _START_TIMEOUT_SECONDS
        while not self._server.started and self._thread.is_alive() and deadline > 0:
            ready.wait(0.01)
            deadline -= 0.01
        if not self._server.started:
            self.stop()
            raise RuntimeError("the sandbox server did not start (see the log above)")
        return self

    def stop(self) -> None:
        """Ask uvicorn to finish (in-flight requests complete) and wait for the thread.

        The store stays open, so ``start()`` may serve the same data again; leaving the
        ``with`` block (or :meth:`close`) also closes the store.
        """
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self.port = 0

    def close(self) -> None:
        """Stop, and close the store (its SQLite connection)."""
        self.stop()
        self.state.store.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve(settings: SandboxSettings | None = None) -> None:
    """Run the sandbox in the foreground on ``settings.host:settings.port`` until Ctrl-C."""
    settings = settings or load(SandboxSettings)
    app = create_app(settings)
    sock = _bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    base = f"http://{_url_host(settings.host)}:{port}"
    mode = " (ack-only mode: nothing is validated or stored)" if settings.ack_only else ""
    print(
        f"Amili sandbox listening on {base}{mode}\n"
        f"  API:     {base}/webapi/api/Batch?senderid=...  (Bearer token required)\n"
        f"  token:   curl -X POST {base}/sandbox/token\n"
        f"  OpenAPI: {base}/docs\n"
        "Press Ctrl-C to stop.",
        file=sys.stderr,
        flush=True,
    )
    server = uvicorn.Server(_uvicorn_config(app, settings, True))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        app.state.sandbox.store.close()
