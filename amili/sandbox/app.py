"""The sandbox's HTTP face: Amili's legacy Batch API, plus loopback-only admin endpoints.

``create_app(settings)`` builds a FastAPI app serving

* ``POST /webapi/api/Batch?senderid=...`` - validate and store a batch, answer in the legacy
  envelope (``statuscode``, ``errors[]``, ``responses[]``);
* ``GET /webapi/api/Batch`` - creditors, cases and settlements stored for a sender;
* ``GET /webapi/api/Ping?senderid=...`` - a liveness answer that checks the token and the
  senderid (its real shape is undocumented);
* ``/sandbox/...`` - fault rules, statistics, reset and a token for manual use. These need no
  token but answer only clients on a loopback address (the server binds to loopback by default
  and trusts no proxy headers), so anything that can reach them is already on this machine.

The batch body is read as raw bytes and parsed with :func:`amili.jsonio.loads`, so amounts stay
``Decimal``; answers are written with :func:`amili.jsonio.dumps`, never through float. Work
that touches the store runs in a worker thread; the store's lock keeps concurrent requests
consistent. Faults are applied in :meth:`SandboxApp.__call__`, in front of routing, because
dropping a connection needs the server's own ``send`` (see :func:`_drop_connection`).

No ``from __future__ import annotations`` here: FastAPI must evaluate the handlers' annotations,
which refer to dependencies defined inside :func:`create_app`.
"""

import asyncio
import contextlib
import ipaddress
import logging
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from amili import jsonio
from amili.contract import ACCEPTED_CONTENT_TYPES, PING_STATUS
from amili.models import BatchQueryResponse, BatchRequest, BatchResponse
from amili.sandbox.faults import FaultBook, FaultRule
from amili.sandbox.lifecycle import ClockError, SandboxClock
from amili.sandbox.processor import BatchProcessor, Outcome, batch_error, envelope, now_utc
from amili.sandbox.settings import SandboxSettings
from amili.sandbox.store import Store
from amili.sandbox.tokens import TokenError, bearer_token, issue_token, verify_token

BATCH_PATH = "/webapi/api/Batch"
PING_PATH = "/webapi/api/Ping"
_JSON = "application/json"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("amili.sandbox")


class DroppedConnection(Exception):
    """Raised on purpose to make a server without a reachable transport cut a response."""


class _HideDeliberateDrops(logging.Filter):
    """Keep uvicorn from logging a traceback for a connection the sandbox dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


class RequestStats:
    """Requests seen, per ``"METHOD /path"`` and HTTP status (or ``"dropped"``); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = defaultdict(dict)

    def record(self, key: str, outcome: str) -> None:
        with self._lock:
            bucket = self._counts[key]
            bucket[outcome] = bucket.get(outcome, 0) + 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {key: dict(bucket) for key, bucket in sorted(self._counts.items())}

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


class SandboxState:
    """Everything one sandbox app holds: settings, store, processor, faults, statistics."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.assumptions = settings.assumptions
        self.store = Store(settings.db_path)
        self.clock = SandboxClock()
        self.processor = BatchProcessor(
            self.store, self.assumptions, self.clock, settings.lifecycle,
            settings.case_revision)
        self.faults = FaultBook(list(settings.faults))
        self.requests = RequestStats()
        #: Bumped by every reset; a request remembers the value it arrived under.
        self.generation = 0

    def stats(self) -> dict[str, Any]:
        """The ``GET /sandbox/stats`` answer."""
        counts = self.store.counts()
        counters = self.store.counters()
        names = ("duplicates", "replays", "conflicts", "objects_accepted", "objects_rejected",
                 "injected_rejections")
        return {
            "requests": self.requests.snapshot(),
            **counts,
            **{name: counters.get(name, 0) for name in names},
        }

    def reset(self) -> None:
        """Forget everything; requests still in flight from before will store nothing."""
        with self.store.transaction():
            self.store.reset()
            self.generation += 1
        self.clock.release()
        self.faults.clear()
        self.requests.clear()


class AuthFailure(Exception):
    """A request to the Amili API without an acceptable bearer token (answered 401)."""

    def __init__(self, reason: str, token_given: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token_given = token_given


class _AdminRefused(Exception):
    """An admin endpoint called from a non-loopback address (answered 403)."""


# --------------------------------------------------------------------------------------------
# The ASGI app with fault injection in front
# --------------------------------------------------------------------------------------------


async def _read_all(receive: Receive) -> list[Message]:
    """Every message of the request body, so it can be replayed after a delay."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that first hands out buffered messages, then defers to the server."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _drop_connection(receive: Receive, send: Send) -> None:
    """Close the TCP connection without a (complete) HTTP answer.

    With uvicorn, ``send`` is a method of the request cycle, which holds the asyncio
    transport: closing it sends FIN with no response at all, and the client sees "server
    disconnected without sending a response". Waiting for ``http.disconnect`` lets uvicorn
    register the loss first, so it does not try to send a 500 of its own. On a server where
    the transport is out of reach, a response is started with a Content-Length that is never
    met and an exception makes the server cut the connection.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if callable(getattr(transport, "close", None)):  # asyncio's or uvloop's transport
        transport.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                while (await receive())["type"] != "http.disconnect":
                    pass
        return
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", _JSON.encode()), (b"content-length", b"4096")],
    })
    await send({"type": "http.response.body", "body": b'{"statuscode"', "more_body": True})
    raise DroppedConnection("connection dropped by sandbox fault injection")


def _no_fault(*args: object, **kwargs: object) -> None:
    """Stands in for ``FaultBook.take`` for a request that must not consume any fault."""
    return None


class SandboxApp(FastAPI):
    """FastAPI plus fault injection and request statistics around every HTTP request."""

    sandbox: SandboxState

    async def __call__(  # type: ignore[override]
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        key = f"{method} {path}"
        faults, stats = self.sandbox.faults, self.sandbox.requests
        scope.setdefault("state", {})["sandbox_generation"] = self.sandbox.generation
        seen: dict[str, int] = {}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = int(message["status"])
            await send(message)

        generation = self.sandbox.generation
        query = scope.get("query_string", b"").decode("latin-1")

        def take(kind: Any, method: str, path: str, **kwargs: Any) -> FaultRule | None:
            return faults.take(kind, method, path, query=query, **kwargs)
        slow = take("slow", method, path)
        if slow is not None:
            receive = _replaying(await _read_all(receive), receive)
            await asyncio.sleep(slow.delay_seconds or 0)
            if self.sandbox.generation != generation:
                # A reset happened while this request slept: the faults now set are meant
                # for later requests, so this stale one must not use them up.
                take = _no_fault

        status_rule = take("status", method, path)
        if status_rule is not None:
            await _read_all(receive)
            await self._send_status_fault(scope, counting_send, status_rule)
            stats.record(key, str(seen.get("status")))
            return

        if take("drop", method, path, after_processing=False) is not None:
            stats.record(key, "dropped")
            await _read_all(receive)  # closing with unread input would send RST, not FIN
            await _drop_connection(receive, send)
            return

        reject = take("reject_share", method, path)
        if reject is not None:
            scope.setdefault("state", {})["reject_share"] = reject

        if take("drop", method, path, after_processing=True) is not None:

            async def discard(message: Message) -> None:
                return None

            await super().__call__(scope, receive, discard)
            stats.record(key, "dropped")
            await _drop_connection(receive, send)
            return

        try:
            await super().__call__(scope, receive, counting_send)
        finally:
            stats.record(key, str(seen.get("status", "none")))

    async def _send_status_fault(self, scope: Scope, send: Send, rule: FaultRule) -> None:
        status = rule.status or 503
        message = rule.message or f"sandbox fault injection: HTTP {status}"
        extra: dict[str, str] = {}
        if status == 401:  # as the sandbox's own 401s, so a client needs to know one shape
            authorization = dict(scope.get("headers", ())).get(b"authorization", b"")
            given = _is_bearer(authorization.decode("latin-1"))
            content, extra = unauthorized_answer(message, given)
        else:
            content = batch_error(self.sandbox.assumptions, status, message).content
        headers = [
            (b"content-type", _JSON.encode()),
            (b"content-length", str(len(content)).encode()),
            *((name.lower().encode(), value.encode()) for name, value in extra.items()),
        ]
        if rule.retry_after is not None:
            headers.append((b"retry-after", str(rule.retry_after).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content, "more_body": False})


# --------------------------------------------------------------------------------------------
# Building the app
# --------------------------------------------------------------------------------------------


def unauthorized_answer(reason: str, token_given: bool) -> tuple[bytes, dict[str, str]]:
    """Body and headers of every 401 the sandbox sends: a refused token and an injected
    ``status`` 401 fault alike, so a client's handling of one is tested by the other.

    An RFC 6750 challenge (``error="invalid_token"`` when a bearer token was sent and refused)
    and ``{"error": ..., "message": reason}``. Reasons are fixed texts, never the token.
    """
    challenge = 'Bearer realm="amili-sandbox"'
    if token_given:
        quoted = reason.replace('"', "'")
        challenge += f', error="invalid_token", error_description="{quoted}"'
    body = {"error": "invalid_token" if token_given else "unauthorized", "message": reason}
    return jsonio.dumps(body), {"WWW-Authenticate": challenge}


def _is_bearer(authorization: str | None) -> bool:
    """Whether an Authorization header offers a bearer token (however bad)."""
    return authorization is not None and authorization.strip().lower().startswith("bearer ")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = data if isinstance(data, bytes) else jsonio.dumps(data)
    return Response(content, status_code=status, media_type=_JSON, headers=headers)


def _outcome(outcome: Outcome) -> Response:
    return Response(
        outcome.content, status_code=outcome.status, media_type=_JSON, headers=outcome.headers
    )


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ClockChange(BaseModel):
    """Body of ``POST /sandbox/clock``."""

    model_config = ConfigDict(extra="forbid")

    now: datetime | None = None
    advance_days: float = 0
    advance_seconds: float = 0


class FaultList(BaseModel):
    """Body of ``POST /sandbox/faults``."""

    faults: list[FaultRule]


def _openapi_schemas() -> dict[str, Any]:
    """JSON schemas of the request body's models, as OpenAPI components."""
    _, top = models_json_schema(
        [(BatchRequest, "validation")], ref_template="#/components/schemas/{model}"
    )
    return dict(top.get("$defs", {}))


def create_app(settings: SandboxSettings) -> FastAPI:
    """A fresh sandbox (its own store, faults and statistics) configured by ``settings``."""
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDeliberateDrops) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(_HideDeliberateDrops())
    state = SandboxState(settings)
    assumptions = state.assumptions
    app = SandboxApp(
        title="Amili AutoCollect legacy API - local sandbox",
        version="1.0",
        description=(
            "A local stand-in for Amili's legacy AutoCollect Batch API. Where Amili's "
            "documentation is silent the sandbox's choices are listed in "
            "docs/sandbox-assumptions.md. /sandbox/* endpoints answer loopback clients only."
        ),
    )
    app.sandbox = state
    app.state.sandbox = state

    bearer = HTTPBearer(
        auto_error=False,
        description="A JWT issued by the sandbox (issue_token() or POST /sandbox/token)",
    )

    async def require_token(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> dict[str, Any]:
        """The token's claims; an :class:`AuthFailure` (401) when missing or refused."""
        header = request.headers.get("authorization")
        try:
            return verify_token(settings, bearer_token(header))
        except TokenError as exc:
            raise AuthFailure(str(exc), token_given=_is_bearer(header)) from None

    async def loopback_only(request: Request) -> None:
        if not _is_loopback(request):
            raise _AdminRefused()

    # ---- error handlers --------------------------------------------------------------------

    @app.exception_handler(AuthFailure)
    async def _auth_failed(request: Request, exc: AuthFailure) -> Response:
        content, headers = unauthorized_answer(exc.reason, exc.token_given)
        return _json(content, 401, headers)

    @app.exception_handler(_AdminRefused)
    async def _admin_refused(request: Request, exc: _AdminRefused) -> Response:
        return _json({"error": "the /sandbox endpoints answer loopback clients only"}, 403)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        messages = []
        for error in exc.errors():
            loc = [str(part) for part in error.get("loc", ())]
            where = f"{loc[0]} parameter {'.'.join(loc[1:])!r}" if len(loc) > 1 else "request"
            messages.append(f"{where}: {error.get('msg', 'invalid')}")
        return _outcome(batch_error(assumptions, 400, *messages))

    @app.exception_handler(Exception)
    async def _crashed(request: Request, exc: Exception) -> Response:
        logger.exception("sandbox failed on %s %s", request.method, request.url.path)
        message = f"internal sandbox error ({type(exc).__name__})"
        return _outcome(batch_error(assumptions, 500, message))

    # ---- the Amili API ---------------------------------------------------------------------

    envelope_doc = {"model": BatchResponse, "description": "Legacy envelope"}

    @app.post(
        BATCH_PATH,
        summary="Post a batch of creditors, invoices, payments and actions",
        tags=["AutoCollect legacy"],
        dependencies=[Depends(require_token)],
        response_model=None,
        responses={
            200: {"model": BatchResponse, "description": "Per-object result"},
            400: {**envelope_doc, "description": "Malformed JSON, missing senderid or batchid"},
            401: {"description": "Missing, malformed, expired or wrongly signed token"},
            409: {**envelope_doc, "description": "batchid reused with a different body"},
            413: {**envelope_doc, "description": "Too many objects or too many bytes"},
            415: {**envelope_doc, "description": "Unsupported Content-Type"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    media: {"schema": {"$ref": "#/components/schemas/BatchRequest"}}
                    for media in sorted(ACCEPTED_CONTENT_TYPES)
                },
            }
        },
    )
    async def post_batch(
        request: Request,
        senderid: Annotated[
            str | None, Query(description="Sender (integration) id; required")
        ] = None,
    ) -> Response:
        """Validate each object, store the accepted ones, answer in the legacy envelope."""
        if not senderid:
            return _outcome(batch_error(
                assumptions, 400, "query parameter 'senderid' is required"
            ))
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type and content_type not in ACCEPTED_CONTENT_TYPES:
            return _outcome(batch_error(
                assumptions, 415, f"Content-Type {content_type!r} is not accepted; send "
                "application/json-patch+json or application/json",
            ))
        limit = assumptions.max_body_bytes
        declared = request.headers.get("content-length", "")
        too_big = declared.isdigit() and int(declared) > limit
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                too_big = too_big or size > limit
                if not too_big:
                    chunks.append(chunk)
        except ClientDisconnect:
            return Response(status_code=499)
        if too_big:
            return _outcome(batch_error(
                assumptions, 413, f"the body has {max(size, int(declared or 0))} bytes; at "
                f"most {limit} are accepted",
            ))
        if settings.ack_only:
            return _json(envelope(assumptions.statuscode_ok))
        reject: FaultRule | None = getattr(request.state, "reject_share", None)
        arrived_in = getattr(request.state, "sandbox_generation", state.generation)
        outcome = await run_in_threadpool(
            state.processor.process,
            senderid,
            b"".join(chunks),
            reject,
            lambda: state.generation == arrived_in,
        )
        return _outcome(outcome)

    @app.get(
        BATCH_PATH,
        summary="Creditors, cases and settlements stored for a sender",
        tags=["AutoCollect legacy"],
        dependencies=[Depends(require_token)],
        response_model=None,
        responses={
            200: {"model": BatchQueryResponse, "description": "Stored data"},
            400: {**envelope_doc, "description": "Missing senderid or a malformed parameter"},
            401: {"description": "Missing, malformed, expired or wrongly signed token"},
        },
    )
    async def get_batch(
        senderid: Annotated[str | None, Query(description="Sender id; required")] = None,
        creditorid: Annotated[str | None, Query(description="A creditor's idnumber")] = None,
        customerref: Annotated[str | None, Query(description="Debtor customerNumber")] = None,
        ledgerref: Annotated[str | None, Query(description="An invoice's ledgerref")] = None,
        includeclosed: Annotated[bool, Query(description="Also list closed cases")] = False,
        lastsettlementid: Annotated[
            int, Query(ge=0, description="Only settlements with a higher settlementid")
        ] = 0,
        remittancedate: Annotated[
            date | None, Query(description="Only settlements paid on this date (YYYY-MM-DD)")
        ] = None,
        languagecode: Annotated[str | None, Query(description="Accepted, ignored")] = None,
    ) -> Response:
        """Read back what the sandbox stored: one case per invoice, one settlement per payment."""
        if not senderid and assumptions.get_requires_senderid:
            return _outcome(batch_error(
                assumptions, 400, "query parameter 'senderid' is required"
            ))
        content = await run_in_threadpool(
            state.processor.query,
            senderid or None,
            creditorid,
            customerref,
            ledgerref,
            includeclosed,
            lastsettlementid,
            remittancedate,
        )
        return _json(content)

    @app.get(
        PING_PATH,
        summary="Liveness check",
        tags=["AutoCollect legacy"],
        dependencies=[Depends(require_token)],
        response_model=None,
        responses={
            200: {"description": '{"status": "ok", "time": ..., "senderid": ...}'},
            400: {**envelope_doc, "description": "Missing senderid"},
            401: {"description": "Missing, malformed, expired or wrongly signed token"},
        },
    )
    async def ping(
        senderid: Annotated[str | None, Query(description="Sender id; required")] = None,
    ) -> Response:
        """Undocumented by Amili; the sandbox answers ``{"status": "ok", "time": ...,
        "senderid": ...}`` and, like the Batch endpoints, wants the token and the senderid."""
        if not senderid and assumptions.ping_requires_senderid:
            return _outcome(batch_error(
                assumptions, 400, "query parameter 'senderid' is required"
            ))
        return _json({"status": PING_STATUS, "time": now_utc(), "senderid": senderid or None})

    # ---- admin (loopback only, no token) ---------------------------------------------------

    admin = {"tags": ["sandbox admin"], "dependencies": [Depends(loopback_only)]}

    @app.get("/sandbox/faults", summary="Active fault rules", **admin)
    async def list_faults() -> dict[str, Any]:
        return {"faults": state.faults.list()}

    @app.post("/sandbox/faults", summary="Append fault rules", **admin)
    async def add_faults(request: Request) -> Response:
        """Body ``{"faults": [rule, ...]}`` (a bare list or one rule object is also taken)."""
        try:
            data = jsonio.loads(await request.body())
            if isinstance(data, list):
                data = {"faults": data}
            elif isinstance(data, dict) and "kind" in data:
                data = {"faults": [data]}
            rules = FaultList.model_validate(data).faults
        except (ValueError, ValidationError) as exc:
            return _json({"error": f"invalid fault rules: {exc}"}, 400)
        added = state.faults.add(rules)
        return _json({"added": added, "faults": state.faults.list()})

    @app.delete("/sandbox/faults", summary="Remove every fault rule", **admin)
    async def clear_faults() -> dict[str, int]:
        return {"cleared": state.faults.clear()}

    @app.get("/sandbox/stats", summary="Requests and stored objects", **admin)
    async def stats() -> Response:
        return _json(await run_in_threadpool(state.stats))

    @app.post("/sandbox/reset", summary="Forget all batches, faults and statistics", **admin)
    async def reset() -> dict[str, bool]:
        await run_in_threadpool(state.reset)
        return {"reset": True}

    @app.get("/sandbox/clock", summary="The sandbox's now", **admin)
    async def get_clock() -> dict[str, Any]:
        return {"now": state.clock.now_text(), "fixed": state.clock.fixed}

    @app.post("/sandbox/clock", summary="Set or advance the sandbox's now", **admin)
    async def set_clock(request: Request) -> Response:
        """Body ``{"now": "2026-12-01T00:00:00Z"}`` or ``{"advance_days": 3}`` (and/or
        ``advance_seconds``). The clock never goes back (409); case fates due by the new now
        are stored at once, so their settlement ids are fixed before anyone reads."""
        try:
            data = ClockChange.model_validate(jsonio.loads(await request.body() or b"{}"))
        except (ValueError, ValidationError) as exc:
            return _json({"error": f"invalid clock change: {exc}"}, 400)
        try:
            if data.now is not None:
                state.clock.set(data.now)
            delta = timedelta(days=data.advance_days, seconds=data.advance_seconds)
            if delta:
                state.clock.advance(delta)
        except ClockError as exc:
            return _json({"error": str(exc)}, 409)
        realized = await run_in_threadpool(state.processor.realize)
        return _json({"now": state.clock.now_text(), "fixed": state.clock.fixed,
                      "fates_stored": realized})

    @app.post("/sandbox/token", summary="Issue a bearer token (for manual use)", **admin)
    async def token(
        subject: Annotated[str, Query(min_length=1)] = "sandbox-client",
        ttl_seconds: Annotated[int | None, Query(gt=0)] = None,
    ) -> dict[str, Any]:
        ttl = ttl_seconds or settings.token_ttl_seconds
        return {
            "access_token": issue_token(settings, subject, ttl),
            "token_type": "Bearer",
            "expires_in": ttl,
        }

    # ---- OpenAPI: describe the raw-bytes body by BatchRequest's schema ---------------------

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in _openapi_schemas().items():
                components.setdefault(name, definition)
            # Bad parameters are answered 400 in the legacy envelope, never FastAPI's 422.
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for unused in ("HTTPValidationError", "ValidationError"):
                components.pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
