"""HTTP client of Amili's legacy AutoCollect Batch API (``/webapi/api/...``), built on httpx.

Why it looks the way it does:

* Transient failures are normal (429, 502, 503, 504, dropped connections, timeouts), so each
  call is retried with exponential backoff and jitter (tenacity), honouring ``Retry-After``.
  Other 4xx answers are the caller's mistake and are raised at once as :class:`AmiliAPIError`.
* Re-posting a batch is safe only because the pipeline derives batch ids from their content
  and every invoice and payment carries a unique source id; the client itself never invents
  ids, so a retried POST is byte-identical to the first.
* The bearer token lives in a :class:`pydantic.SecretStr` and is added to each request by an
  ``httpx.Auth`` whose repr hides it: it cannot reach a log line, an exception or a repr.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Generic, Protocol, TypeVar

import httpx
from pydantic import SecretStr
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from amili import jsonio
from amili.models import BatchQueryResponse, BatchRequest, BatchResponse, SettlementLine
from amili.settings import ClientSettings, SettingsError, load

log = logging.getLogger("amili.client")

BATCH_PATH = "/webapi/api/Batch"
PING_PATH = "/webapi/api/Ping"
BATCH_CONTENT_TYPE = "application/json-patch+json"

#: HTTP statuses worth another attempt: rate limiting and gateway/availability failures.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

#: HTTP statuses that refuse the credentials: no retry, and no further batch with them.
AUTH_STATUSES = frozenset({401, 403})

#: How much of an error body an exception keeps (bodies can be large).
_BODY_EXCERPT = 4000


class AmiliError(Exception):
    """Base of every error this client raises."""


class AmiliAPIError(AmiliError):
    """Amili answered with an HTTP status that is not a success.

    ``status_code`` and ``body`` are what the server sent; ``attempts`` counts every try.
    """

    def __init__(
        self, method: str, path: str, status_code: int, body: str, attempts: int = 1
    ) -> None:
        self.method = method
        self.path = path
        self.status_code = status_code
        self.body = body
        self.attempts = attempts
        super().__init__(
            f"{method} {path} answered HTTP {status_code} after {attempts} attempt(s): "
            f"{body[:_BODY_EXCERPT]}"
        )


class AmiliAuthError(AmiliAPIError):
    """Amili refused the credentials (HTTP 401 or 403).

    Not transient and not about one batch: every later call with the same token gets the
    same answer, so :meth:`AmiliClient.post_batches` stops posting after it.
    """


class AmiliUnreadableAnswerError(AmiliAPIError):
    """A success status whose body is not a Batch answer (HTML from a proxy, a truncated
    body, another JSON shape).

    Amili may well have processed the batch, so the caller must treat its fate as unknown.
    ``body`` keeps only the first :data:`_BODY_EXCERPT` characters; ``content_type`` is the
    header as received.
    """

    def __init__(
        self, method: str, path: str, response: httpx.Response, attempts: int,
        batchid: str | None, cause: Exception,
    ) -> None:
        self.content_type = response.headers.get("Content-Type", "")
        self.batchid = batchid
        excerpt = response.content[:_BODY_EXCERPT].decode("utf-8", "replace")
        AmiliError.__init__(
            self,
            f"{method} {path} of batch {batchid or '(no batchid)'} answered HTTP "
            f"{response.status_code} with a body that is not a Batch answer "
            f"(Content-Type {self.content_type or 'none'}, {len(response.content)} bytes; "
            f"{type(cause).__name__}: {str(cause)[:300]}); the body begins: {excerpt[:500]!r}",
        )
        self.method = method
        self.path = path
        self.status_code = response.status_code
        self.body = excerpt
        self.attempts = attempts


class AmiliTransportError(AmiliError):
    """No HTTP answer: connection refused or dropped, or a timeout, after every retry."""

    def __init__(self, method: str, path: str, cause: BaseException, attempts: int) -> None:
        self.method = method
        self.path = path
        self.attempts = attempts
        super().__init__(
            f"{method} {path} failed after {attempts} attempt(s): "
            f"{type(cause).__name__}: {cause}"
        )


class _RetryableStatus(Exception):
    """Internal: a retryable HTTP answer, carried through tenacity to read Retry-After."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        super().__init__(f"HTTP {response.status_code}")


class _BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer ...`` per request; its repr never shows the token.

    An empty token is refused here, at once: it would go out as the header ``Bearer ``,
    which HTTP forbids, and every attempt would fail the same way."""

    def __init__(self, token: SecretStr) -> None:
        if not token.get_secret_value().strip():
            raise SettingsError("AMILI_TOKEN is empty: set it to the JWT Amili issued")
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(token=**********)"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class SettlementPage:
    """One answer's new settlements of a creditor and the cursor after them."""

    creditorid: str
    settlements: list[SettlementLine]
    cursor: int
    """The highest settlement id of the page: the ``lastsettlementid`` of the next request."""
    last_known: int | None
    """The creditor's ``lastsettlementid`` as the answer reported it (None: not reported)."""


@dataclass(frozen=True)
class PostResult:
    """One acknowledged POST: Amili's answer plus what it took to get it."""

    batchid: str | None
    http_status: int
    response: BatchResponse
    raw_body: bytes
    attempts: int
    elapsed_seconds: float


class HasBody(Protocol):
    """Anything that carries a ready request body, such as a :class:`amili.chunking.Chunk`."""

    @property
    def body(self) -> bytes: ...

    @property
    def batchid(self) -> str: ...


BatchLike = BatchRequest | bytes | HasBody
T = TypeVar("T", bound=BatchLike)


@dataclass(frozen=True)
class BatchOutcome(Generic[T]):
    """What happened to one batch of :meth:`AmiliClient.post_batches`: a result or an error."""

    item: T
    result: PostResult | None = None
    error: AmiliError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _AttemptCounter:
    attempts: int = 0
    started: float = field(default_factory=time.perf_counter)


class AmiliClient:
    """Synchronous, thread-safe client; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=str(settings.base_url).rstrip("/"),
            auth=_BearerAuth(settings.token),
            timeout=httpx.Timeout(
                settings.timeout_seconds, connect=settings.connect_timeout_seconds
            ),
            limits=httpx.Limits(
                max_connections=settings.max_concurrency,
                max_keepalive_connections=settings.max_concurrency,
            ),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "amili-autocollect-pipeline"},
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> AmiliClient:
        """A client from ``AMILI_*`` environment variables (or ``.env``), failing early with a
        message that names any missing setting."""
        return cls(load(ClientSettings, **overrides))

    def __repr__(self) -> str:
        return (
            f"AmiliClient(base_url={str(self.settings.base_url)!r}, "
            f"sender_id={self.settings.sender_id!r}, token=**********)"
        )

    def __enter__(self) -> AmiliClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---------------------------------------------------------------- endpoints

    def ping(self) -> Any:
        """``GET /webapi/api/Ping``: checks that the API answers and accepts the token."""
        response, _ = self._request("GET", PING_PATH)
        return jsonio.loads(response.content) if response.content else None

    def post_batch(self, batch: BatchLike) -> PostResult:
        """``POST /webapi/api/Batch`` one batch; raises :class:`AmiliError` when it fails.

        A 200 answer is returned even when objects were rejected: the per-object ``errors``
        are data for the caller, not an exception.
        """
        body, batchid = _body_of(batch)
        counter = _AttemptCounter()
        response, attempts = self._request(
            "POST", BATCH_PATH, body=body, headers={"Content-Type": BATCH_CONTENT_TYPE},
            counter=counter,
        )
        try:
            parsed = BatchResponse.model_validate(jsonio.loads(response.content))
        except ValueError as exc:  # not JSON, not UTF-8, or JSON of another shape
            raise AmiliUnreadableAnswerError(
                "POST", BATCH_PATH, response, attempts, batchid, exc) from None
        return PostResult(
            batchid=batchid,
            http_status=response.status_code,
            response=parsed,
            raw_body=response.content,
            attempts=attempts,
            elapsed_seconds=time.perf_counter() - counter.started,
        )

    def get_batches(
        self,
        *,
        creditorid: str | None = None,
        customerref: str | None = None,
        ledgerref: str | None = None,
        includeclosed: bool | None = None,
        lastsettlementid: int | None = None,
        remittancedate: date | None = None,
        languagecode: str | None = None,
    ) -> BatchQueryResponse:
        """Legacy ``GET /webapi/api/Batch``: creditors, cases and settlements by filter.

        Same retries as the POST (429, 502-504, dropped connections; ``Retry-After``
        honoured). The answer is typed by :class:`~amili.models.BatchQueryResponse`, which
        takes every documented revision of cases and settlements and keeps unknown fields;
        a 2xx body that is not such an answer raises :class:`AmiliUnreadableAnswerError`.
        """
        if lastsettlementid is not None and lastsettlementid < 0:
            raise ValueError("lastsettlementid must not be negative")
        params: dict[str, str] = {}
        for name, value in (
            ("creditorid", creditorid),
            ("customerref", customerref),
            ("ledgerref", ledgerref),
            ("includeclosed", includeclosed),
            ("lastsettlementid", lastsettlementid),
            ("remittancedate", remittancedate),
            ("languagecode", languagecode),
        ):
            if value is None:
                continue
            if isinstance(value, bool):
                params[name] = "true" if value else "false"
            elif isinstance(value, date):
                params[name] = value.isoformat()
            else:
                params[name] = str(value)
        response, attempts = self._request("GET", BATCH_PATH, params=params)
        try:
            return BatchQueryResponse.model_validate(jsonio.loads(response.content))
        except ValueError as exc:  # not JSON, or JSON of another shape
            raise AmiliUnreadableAnswerError(
                "GET", BATCH_PATH, response, attempts, None, exc) from None

    def get_cases(self, creditorid: str, *, includeclosed: bool = True) -> BatchQueryResponse:
        """Every case of one creditor (closed ones too by default): one request.

        The legacy API documents no paging of cases, so a creditor's cases come in one answer.
        """
        return self.get_batches(creditorid=creditorid, includeclosed=includeclosed)

    def iter_settlement_pages(
        self, creditorid: str, after: int = 0, *, max_pages: int = 100_000
    ) -> Iterator[SettlementPage]:
        """Settlements of one creditor with ids above ``after``, page by page, oldest first.

        ``lastsettlementid`` is the documented incremental cursor: each request asks for what
        follows the highest id seen so far. An answer may hold only part of what is there
        (Amili documents no page size), so the reading goes on until the creditor's own
        ``lastsettlementid`` (reported with it) is reached, or a page brings nothing new.
        Each page is yielded before the next is asked for, so the caller can store it and its
        cursor together: a crash loses at most the page in hand, and a restart from the
        stored cursor neither skips nor repeats a settlement.
        """
        cursor = after
        for _ in range(max_pages):
            answer = self.get_batches(creditorid=creditorid, lastsettlementid=cursor)
            lines = [line for line in answer.settlement_lines()
                     if line.settlement_id is None or line.settlement_id > cursor]
            missing = [line for line in lines if line.settlement_id is None]
            if missing:
                raise AmiliError(
                    f"GET {BATCH_PATH} for creditor {creditorid} answered {len(missing)} "
                    "settlement(s) without a numeric settlement id: they cannot be read "
                    "incrementally with lastsettlementid")
            last_known = answer.last_settlement_id(creditorid)
            if not lines:
                return
            cursor = max(line.settlement_id or 0 for line in lines)
            yield SettlementPage(creditorid=creditorid, settlements=lines, cursor=cursor,
                                 last_known=last_known)
            if last_known is not None and cursor >= last_known:
                return
        raise AmiliError(f"settlements of creditor {creditorid}: more than {max_pages} pages")

    def post_batches(
        self, batches: Iterable[T], *, max_concurrency: int | None = None
    ) -> Iterator[BatchOutcome[T]]:
        """Post many batches with at most ``max_concurrency`` in flight; yield as each ends.

        The input is consumed lazily (a bounded window of futures), so a generator of
        millions of objects' worth of batches never sits in memory at once. One batch's
        failure is yielded as an outcome with ``error`` and does not stop the others, except
        a refused token (:class:`AmiliAuthError`): then no further batch is taken from the
        input (those in flight still end and are yielded), since every one would be refused.
        """
        bound = max_concurrency or self.settings.max_concurrency
        if bound < 1:
            raise ValueError("max_concurrency must be at least 1")
        with ThreadPoolExecutor(max_workers=bound, thread_name_prefix="amili-post") as pool:
            in_flight: dict[Future[PostResult], T] = {}
            iterator = iter(batches)
            exhausted = False
            while in_flight or not exhausted:
                while not exhausted and len(in_flight) < bound:
                    try:
                        item = next(iterator)
                    except StopIteration:
                        exhausted = True
                        break
                    in_flight[pool.submit(self.post_batch, item)] = item
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    item = in_flight.pop(future)
                    try:
                        outcome = BatchOutcome(item=item, result=future.result())
                    except AmiliError as error:
                        outcome = BatchOutcome(item=item, error=error)
                        if isinstance(error, AmiliAuthError):
                            exhausted = True
                    yield outcome

    # ---------------------------------------------------------------- retries

    def _request(
        self,
        method: str,
        path: str,
        *,
        counter: _AttemptCounter | None = None,
        body: bytes | None = None,
        **kwargs: Any,
    ) -> tuple[httpx.Response, int]:
        """One call with retries; returns the successful response and the attempt count.

        ``body`` goes out with its ``Content-Length``, from a one-element iterator made per
        attempt. Why not ``content=body``: httpx's response and its stream refer to each
        other, and through the request to the body, so every body sent would stay in memory
        until Python's cycle collector happened to run; an exhausted iterator lets go of the
        body as soon as it is sent. The bytes on the wire are the same.
        """
        counter = counter or _AttemptCounter()
        params = {"senderid": self.settings.sender_id, **kwargs.pop("params", {})}
        if body is not None:
            kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Length": str(len(body))}
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_is_retryable),
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(method, path, state),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    counter.attempts += 1
                    if body is not None:
                        kwargs["content"] = iter((body,))
                    response = self._http.request(method, path, params=params, **kwargs)
                    if response.status_code in RETRYABLE_STATUSES:
                        raise _RetryableStatus(response)
                    if response.status_code in AUTH_STATUSES:
                        raise AmiliAuthError(
                            method, path, response.status_code, response.text, counter.attempts
                        )
                    if response.is_error:
                        raise AmiliAPIError(
                            method, path, response.status_code, response.text, counter.attempts
                        )
                    return response, counter.attempts
        except _RetryableStatus as exc:
            raise AmiliAPIError(
                method, path, exc.response.status_code, exc.response.text, counter.attempts
            ) from None
        except httpx.TransportError as exc:
            raise AmiliTransportError(method, path, exc, counter.attempts) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter, or the server's ``Retry-After`` when it sent one."""
        backoff = wait_exponential_jitter(
            multiplier=self.settings.backoff_initial_seconds,
            max=self.settings.backoff_max_seconds,
            jitter=self.settings.backoff_initial_seconds,
        )(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _RetryableStatus):
            retry_after = parse_retry_after(exc.response.headers.get("Retry-After"))
            if retry_after is not None:
                return min(retry_after, self.settings.retry_after_max_seconds)
        return backoff

    def _log_retry(self, method: str, path: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = f"HTTP {exc.response.status_code}" if isinstance(exc, _RetryableStatus) else (
            type(exc).__name__
        )
        wait_seconds = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s %s: %s on attempt %d, retrying in %.2f s",
            method, path, reason, state.attempt_number, wait_seconds,
        )


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, _RetryableStatus | httpx.TransportError)


def _body_of(batch: BatchLike) -> tuple[bytes, str | None]:
    """The request body bytes and the batch id of whatever the caller handed in."""
    if isinstance(batch, BatchRequest):
        return jsonio.dumps(batch), batch.batchid
    if isinstance(batch, bytes | bytearray):
        return bytes(batch), None
    return batch.body, batch.batchid
