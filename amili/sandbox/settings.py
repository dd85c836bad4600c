"""The settings of the local sandbox (``AMILI_SANDBOX_*``).

They live with the sandbox because nothing on the production path starts one; the groups the
pipeline reads, and :func:`~amili.settings.load`, are in :mod:`amili.settings`. This module
imports no web framework, so ``amili sandbox --help`` and the tests stay cheap.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from amili.contract import ApiContract
from amili.sandbox.faults import FaultRule
from amili.sandbox.lifecycle import LifecycleRules
from amili.settings import _Settings


class SandboxSettings(_Settings):
    """The local sandbox of the API (``AMILI_SANDBOX_*``).

    Nested values can be set one by one, e.g. ``AMILI_SANDBOX_ASSUMPTIONS__MAX_BATCH_OBJECTS``,
    or whole as JSON, e.g. ``AMILI_SANDBOX_FAULTS='[{"kind": "status", "status": 503}]'``.
    """

    model_config = SettingsConfigDict(env_prefix="AMILI_SANDBOX_", env_nested_delimiter="__")

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    jwt_secret: SecretStr = Field(
        default=SecretStr("amili-sandbox-local-secret-not-for-production"),
        description="HS256 secret the sandbox signs and checks tokens with",
    )
    jwt_issuer: str = "amili-sandbox"
    jwt_audience: str = "amili-autocollect-legacy"
    token_ttl_seconds: int = Field(default=12 * 3600, gt=0)
    db_path: str = Field(default=":memory:", description="SQLite file of received batches")
    ack_only: bool = Field(
        default=False,
        description="Lean benchmark mode: POST Batch reads the body and answers statuscode 0, "
        "without validating or storing anything",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        default="warning", description="uvicorn's log level (info adds access-log lines)"
    )
    faults: list[FaultRule] = Field(
        default_factory=list, description="Fault rules active from start (JSON list)"
    )
    assumptions: ApiContract = Field(
        default_factory=ApiContract,
        description="The API contract the sandbox enforces (amili.contract); "
        "AMILI_SANDBOX_ASSUMPTIONS__<FIELD> changes one choice",
    )
    lifecycle: LifecycleRules = Field(
        default_factory=LifecycleRules,
        description="What happens to cases over (sandbox) time: fates, their shares and "
        "delays, the seed, the settlement page size (amili.sandbox.lifecycle)",
    )
    case_revision: Literal["older", "newest"] = Field(
        default="older",
        description="Which documented revision GET Batch answers cases and settlements in: "
        "the older lower-case one (S3/S4) or the newest camelCase one (S5, §3.8)",
    )
