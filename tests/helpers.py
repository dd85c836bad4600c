"""Small shared test helpers that need no server."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"


def documented_example_body() -> bytes:
    """The request body of the documented curl example (copied from Amili's API page)."""
    return (DATA_DIR / "documented-batch-request.json").read_bytes()
