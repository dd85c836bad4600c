"""A thin httpx client for the sandbox tests (kept out of conftest so tests can import it)."""

from __future__ import annotations

from typing import Any

import httpx

from amili import jsonio
from amili.sandbox import SandboxServer

SENDER = "sender-1"


class Api:
    """A thin httpx wrapper: posts bodies through amili.jsonio (exact Decimals) and reads admin."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.http = httpx.Client(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {server.issue_token()}"},
            timeout=30,
        )

    def post(
        self, body: dict[str, Any] | bytes, senderid: str | None = SENDER, **kwargs: Any
    ) -> httpx.Response:
        content = body if isinstance(body, bytes) else jsonio.dumps(body)
        headers = {"Content-Type": "application/json-patch+json", **kwargs.pop("headers", {})}
        params = {"senderid": senderid} if senderid is not None else {}
        return self.http.post(
            "/webapi/api/Batch", content=content, params=params, headers=headers, **kwargs
        )

    def get(self, **params: Any) -> httpx.Response:
        params.setdefault("senderid", SENDER)
        return self.http.get("/webapi/api/Batch", params=params)

    def answer(self, body: dict[str, Any] | bytes, **kwargs: Any) -> dict[str, Any]:
        """POST and return the parsed 200 answer (Decimals kept)."""
        response = self.post(body, **kwargs)
        assert response.status_code == 200, response.text
        return jsonio.loads(response.content)

    def query(self, **params: Any) -> dict[str, Any]:
        response = self.get(**params)
        assert response.status_code == 200, response.text
        return jsonio.loads(response.content)

    def stats(self) -> dict[str, Any]:
        return self.http.get("/sandbox/stats").json()

    def add_faults(self, *rules: dict[str, Any]) -> None:
        self.http.post("/sandbox/faults", json={"faults": list(rules)}).raise_for_status()
