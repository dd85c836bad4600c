"""A small HTTP server of a test's own on loopback, between the pipeline and the sandbox."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable
from typing import Any

import httpx

#: What a receiver answers a POST with: (HTTP status, Content-Type, body), or None to forward.
Answer = tuple[int, str, bytes] | None


class Receiver:
    """A small HTTP server of the test's own on loopback, in front of the sandbox: it answers
    each POST as ``answer(n, request)`` says (``n`` counts POSTs from 1; it may take its
    time), forwarding to the sandbox where ``answer`` returns None. What a proxy, a gateway
    or a misbehaving API would do between the pipeline and Amili."""

    def __init__(self, upstream: str | None,
                 answer: Callable[[int, bytes], Answer]) -> None:
        """``upstream`` None: nothing behind it, so ``answer`` must answer every POST."""
        self.posts = 0
        lock = threading.Lock()
        forward = httpx.Client(base_url=upstream or "http://127.0.0.1:9")
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _relay(self, body: bytes | None) -> None:
                with lock:
                    outer.posts += body is not None
                    n = outer.posts
                own = answer(n, body) if body is not None else None
                if own is None:
                    upstream_answer = forward.request(
                        self.command, self.path, content=body,
                        headers={k: v for k, v in self.headers.items()
                                 if k.lower() in ("authorization", "content-type")})
                    own = (upstream_answer.status_code,
                           upstream_answer.headers.get("content-type", ""),
                           upstream_answer.content)
                status, content_type, payload = own
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:  # (http.server names its handlers so)
                self._relay(self.rfile.read(int(self.headers["Content-Length"])))

            def do_GET(self) -> None:
                self._relay(None)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._forward = forward
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._forward.close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
