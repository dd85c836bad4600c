"""Fault injection: make the sandbox fail on purpose, so client retries are tested for real.

A fault is a :class:`FaultRule`. Rules are set at start (``SandboxSettings.faults``, e.g. the
environment variable ``AMILI_SANDBOX_FAULTS='[{"kind": "status", "status": 503, "times": 1}]'``)
or at run time through ``POST /sandbox/faults``. Each rule matches a method and a path (by
default ``POST /webapi/api/Batch``) and applies to the next ``times`` matching requests
(``null`` = until cleared). Kinds:

``status``
    answer at once with HTTP ``status`` (429, 500, 503, ...) and a legacy envelope, with a
    ``Retry-After`` header when ``retry_after`` is set. Nothing is processed. A 401 is
    answered as a refused token is (``amili.sandbox.app.unauthorized_answer``), not in the
    envelope.
``slow``
    wait ``delay_seconds`` (the body is read first), then handle the request normally: the
    batch is stored even if the client gave up waiting, as a slow real server would.
``drop``
    close the TCP connection without an HTTP answer; ``after_processing`` false drops before
    the batch is processed, true stores the batch first (the "crash between POST and
    acknowledgement" case: a retry with the same batchid gets the stored answer replayed).
``reject_share``
    reject a ``share`` (0..1) of the otherwise valid objects of each batch, chosen
    deterministically by :func:`fault_rejects` from ``seed`` and the object's unique id.

This module imports no web framework, so :mod:`amili.settings` can use :class:`FaultRule`.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Literal, Self
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, model_validator

FaultKind = Literal["status", "slow", "drop", "reject_share"]

DEFAULT_FAULT_METHOD = "POST"
DEFAULT_FAULT_PATH = "/webapi/api/Batch"
#: Paths no fault ever applies to, so a test can always clear faults and read stats.
ADMIN_PREFIX = "/sandbox"
#: Text every injected per-object rejection contains, so clients and tests can tell them apart.
REJECT_MESSAGE = "rejected by sandbox fault injection"


class FaultRule(BaseModel):
    """One fault: what to do (``kind``), to which requests, and how many times."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    method: str = Field(default=DEFAULT_FAULT_METHOD, description='HTTP method, or "*" for any')
    path: str = Field(
        default=DEFAULT_FAULT_PATH, description='exact path, or a prefix ending in "*"'
    )
    times: int | None = Field(default=None, ge=1, description="matching requests; null = all")
    status: int | None = Field(default=None, ge=400, le=599)
    retry_after: int | None = Field(default=None, ge=0, description="Retry-After, seconds")
    message: str | None = Field(default=None, description="error message of a status fault")
    delay_seconds: float | None = Field(default=None, ge=0, le=600)
    after_processing: bool = False
    share: float | None = Field(default=None, ge=0, le=1)
    seed: int = 0
    query: dict[str, str] | None = Field(
        default=None, description="only requests whose query string has these parameters "
        "with these values (e.g. {\"creditorid\": \"123456785\"})")

    @model_validator(mode="after")
    def _kind_fields(self) -> Self:
        """Each kind needs its own parameter; say which one is missing."""
        needed = {"status": "status", "slow": "delay_seconds", "reject_share": "share"}
        field = needed.get(self.kind)
        if field is not None and getattr(self, field) is None:
            raise ValueError(f"a {self.kind!r} fault needs {field!r}")
        return self

    def matches(self, method: str, path: str, query: str = "") -> bool:
        """Whether this rule is about a request with this method, path and query string."""
        if self.query:
            given = dict(parse_qsl(query, keep_blank_values=True))
            if any(given.get(name) != value for name, value in self.query.items()):
                return False
        if path.startswith(ADMIN_PREFIX):
            return False
        if self.method != "*" and self.method.upper() != method.upper():
            return False
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path


class _ActiveRule:
    """A rule plus its bookkeeping (id, how often it has been applied)."""

    __slots__ = ("applied", "id", "rule")

    def __init__(self, rule_id: int, rule: FaultRule) -> None:
        self.id = rule_id
        self.rule = rule
        self.applied = 0

    @property
    def remaining(self) -> int | None:
        return None if self.rule.times is None else max(self.rule.times - self.applied, 0)

    def as_json(self) -> dict[str, Any]:
        data = self.rule.model_dump(exclude_none=True)
        data.update(id=self.id, applied=self.applied, remaining=self.remaining)
        return data


class FaultBook:
    """The current fault rules; thread-safe, since handlers run on several threads."""

    def __init__(self, rules: list[FaultRule] | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[_ActiveRule] = []
        self._next_id = 1
        self.add(rules or [])

    def add(self, rules: list[FaultRule]) -> list[dict[str, Any]]:
        """Append rules (after the existing ones); returns them as listed by :meth:`list`."""
        with self._lock:
            added = []
            for rule in rules:
                active = _ActiveRule(self._next_id, rule)
                self._next_id += 1
                self._rules.append(active)
                added.append(active.as_json())
            return added

    def clear(self) -> int:
        """Remove every rule; returns how many there were."""
        with self._lock:
            count = len(self._rules)
            self._rules.clear()
            return count

    def list(self) -> list[dict[str, Any]]:
        """All rules, exhausted ones included (``remaining`` 0), with their counters."""
        with self._lock:
            return [active.as_json() for active in self._rules]

    def take(
        self, kind: FaultKind, method: str, path: str, *, after_processing: bool | None = None,
        query: str = "",
    ) -> FaultRule | None:
        """The first live rule of ``kind`` matching the request, counted as applied once."""
        with self._lock:
            for active in self._rules:
                rule = active.rule
                if rule.kind != kind or active.remaining == 0:
                    continue
                if after_processing is not None and rule.after_processing != after_processing:
                    continue
                if rule.matches(method, path, query):
                    active.applied += 1
                    return rule
            return None


def fault_rejects(seed: int, objectname: str, key: str, share: float) -> bool:
    """Whether a ``reject_share`` fault rejects this object; deterministic, so predictable.

    ``key`` is the object's unique id: ``uniqueSourceInvoiceId`` for an invoice,
    ``uniqueSourcePaymentId`` for a payment, ``idnumber`` for a creditor and the decimal
    ``objectindex`` for an action (or for any object lacking its id). The first 8 bytes of
    SHA-256 of ``"{seed}:{objectname}:{key}"`` as a fraction of 2**64 are compared with share.
    """
    if share <= 0:
        return False
    if share >= 1:
        return True
    digest = hashlib.sha256(f"{seed}:{objectname}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def fault_key(objectname: str, index: int, raw: Any) -> str:
    """The key :func:`fault_rejects` uses for an object of the batch body."""
    field = {"invoice": "uniqueSourceInvoiceId", "payment": "uniqueSourcePaymentId"}.get(
        objectname, "idnumber" if objectname == "creditor" else None
    )
    if field is not None and isinstance(raw, dict):
        value = raw.get(field)
        if isinstance(value, str) and value:
            return value
    return str(index)
