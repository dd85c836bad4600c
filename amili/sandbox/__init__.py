"""A faithful local sandbox of Amili's legacy AutoCollect Batch API.

It is a test double: it holds what is about being a sandbox (its server, store, processor,
faults, tokens and settings); what Amili is assumed to accept is :mod:`amili.contract`, which
the production path imports instead of this package. The public names are imported lazily,
so :mod:`amili.sandbox.settings` can be read without pulling in FastAPI and uvicorn.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amili.sandbox.app import create_app
    from amili.sandbox.server import SandboxServer, serve
    from amili.sandbox.tokens import issue_token, verify_token

__all__ = ["SandboxServer", "create_app", "issue_token", "serve", "verify_token"]

_WHERE = {
    "SandboxServer": "amili.sandbox.server",
    "serve": "amili.sandbox.server",
    "create_app": "amili.sandbox.app",
    "issue_token": "amili.sandbox.tokens",
    "verify_token": "amili.sandbox.tokens",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'amili.sandbox' has no attribute {name!r}")
