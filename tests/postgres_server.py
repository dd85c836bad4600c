"""A real PostgreSQL server for tests, started from the ``initdb``/``pg_ctl`` on PATH.

PostgreSQL refuses to run as root, so when the tests run as root the server's files belong to
``nobody`` and its programs run through ``runuser``; as any other user they run directly. The
server listens on a free loopback port and asks for a password over TCP (scram-sha-256), as a
company's server would, so tests can check that the password never leaks.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "amili_admin"


@dataclass(frozen=True)
class PostgresServer:
    """A running server: where it listens and how to log in."""

    host: str
    port: int
    user: str
    password: str
    data_dir: Path

    def url(self, database: str = "postgres", *, with_password: bool = True) -> str:
        secret = f":{self.password}" if with_password else ""
        return f"postgresql://{self.user}{secret}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL (with the password)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}"')
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def postgres_available() -> bool:
    return all(shutil.which(tool) for tool in ("initdb", "pg_ctl", "postgres"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(args: list[str]) -> list[str]:
    """The command run as the server's user: ``nobody`` when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "nobody", "--", *args]
    return args


@contextmanager
def running_postgres(base_dir: Path | None = None) -> Iterator[PostgresServer]:
    """Start a throwaway server, yield it, and stop it (and remove its files) afterwards."""
    if not postgres_available():
        raise RuntimeError("initdb, pg_ctl and postgres must be on PATH to start PostgreSQL")
    root = Path(tempfile.mkdtemp(prefix="amili-pg-", dir=base_dir))
    data_dir, socket_dir = root / "data", root / "socket"
    socket_dir.mkdir()
    password = secrets.token_urlsafe(16)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for path in (root, socket_dir, pwfile):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        root.chmod(0o700)
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    subprocess.run(
        _as_server_user([
            "initdb", "-D", str(data_dir), "-U", SUPERUSER, "--pwfile", str(pwfile),
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync",
        ]),
        check=True, capture_output=True, env=env,
    )
    options = (f"-h 127.0.0.1 -p {port} -k {socket_dir} -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
    subprocess.run(
        _as_server_user(["pg_ctl", "-D", str(data_dir), "-o", options, "-w",
                         "-l", str(root / "server.log"), "start"]),
        check=True, capture_output=True, env=env,
    )
    try:
        yield PostgresServer("127.0.0.1", port, SUPERUSER, password, data_dir)
    finally:
        subprocess.run(
            _as_server_user(["pg_ctl", "-D", str(data_dir), "-m", "immediate", "-w", "stop"]),
            capture_output=True, env=env,
        )
        shutil.rmtree(root, ignore_errors=True)
