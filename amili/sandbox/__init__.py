"""A faithful local sandbox of Amili's legacy AutoCollect Batch API.

The public names are imported lazily: :mod:`amili.settings` imports
:mod:`amili.sandbox.assumptions` and :mod:`amili.sandbox.faults`, and must not pull in
FastAPI and uvicorn with them.
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
