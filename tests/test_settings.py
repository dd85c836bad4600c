"""The settings' own checks: messages that name the variable and never show a secret."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import SecretStr

from amili.client import AmiliClient
from amili.sandbox.settings import SandboxSettings
from amili.sandbox.tokens import issue_token
from amili.settings import (
    AlertSettings,
    ClientSettings,
    PipelineSettings,
    ReportingSettings,
    SettingsError,
    load,
    load_api_settings,
    token_problem,
)


def part(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def test_a_token_the_sandbox_issues_passes_and_an_expired_one_does_not() -> None:
    settings = SandboxSettings()
    assert token_problem(issue_token(settings)) is None
    expired = token_problem(issue_token(settings, ttl_seconds=-60))
    assert expired is not None and expired.startswith("expired at ")
    assert token_problem(f"{part({'alg': 'none'})}.{part({'sub': 'x'})}.") is None  # no exp


@pytest.mark.parametrize(("token", "says"), [
    ("", "is empty"),
    ("   ", "is empty"),
    ("opaque-api-key", "three base64url parts"),
    ("a.b", "three base64url parts"),
    (f"{part({'alg': 'HS256'})}.{part({'exp': 1})}.sig\n", "three base64url parts"),
    (f"bm90IGpzb24.{part({'exp': 1})}.sig", "header is not base64url-encoded JSON"),
    (f"{part({'alg': 'HS256'})}.{part([1, 2])}.sig", "payload is not a JSON object"),
    (f"{part({'alg': 'HS256'})}.{part({'exp': 'soon'})}.sig", "exp claim is not a number"),
])
def test_token_problems_are_named_without_the_token(token: str, says: str) -> None:
    problem = token_problem(token)
    assert problem is not None and says in problem
    assert not token.strip() or token.strip() not in problem
    with pytest.raises(SettingsError, match="AMILI_TOKEN") as caught:
        load_api_settings(base_url="http://127.0.0.1:1", token=token, sender_id="s")
    assert not token.strip() or token.strip() not in str(caught.value)


def test_the_client_refuses_an_empty_token_instead_of_sending_a_broken_header() -> None:
    with pytest.raises(SettingsError, match="AMILI_TOKEN is empty"):
        load(ClientSettings, base_url="http://127.0.0.1:1", token="", sender_id="s")
    # settings built around the validation still do not make a client
    unchecked = ClientSettings.model_construct(
        **{**load(ClientSettings, base_url="http://127.0.0.1:1", token="t",
                  sender_id="s").model_dump(), "token": SecretStr(" ")})
    with pytest.raises(SettingsError, match="AMILI_TOKEN is empty"):
        AmiliClient(unchecked)


@pytest.mark.parametrize("value", ["256MB", "64mb", "1GiB", "1.5GB", " 512 MB "])
def test_duckdb_memory_limit_takes_sizes(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMILI_DUCKDB_MEMORY_LIMIT", value)
    assert load(PipelineSettings).duckdb_memory_limit == value.strip()


@pytest.mark.parametrize("value", ["lots", "256", "80%", "1GB'; DROP TABLE x; --"])
def test_a_bad_duckdb_memory_limit_is_named(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMILI_DUCKDB_MEMORY_LIMIT", value)
    with pytest.raises(SettingsError, match="AMILI_DUCKDB_MEMORY_LIMIT is not a memory size"):
        load(PipelineSettings)


def test_duckdb_memory_limit_defaults_to_256mb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMILI_DUCKDB_MEMORY_LIMIT", raising=False)
    assert load(PipelineSettings).duckdb_memory_limit == "256MB"


def test_the_dagster_ui_url_is_one_setting_for_reports_and_alerts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AMILI_DAGSTER_UI_URL", " https://dagster.example/ ")
    assert load(ReportingSettings).dagster_ui_url == "https://dagster.example"
    assert load(AlertSettings).dagster_ui_url == "https://dagster.example"
    monkeypatch.setenv("AMILI_DAGSTER_UI_URL", "dagster.example")
    for settings in (ReportingSettings, AlertSettings):
        with pytest.raises(SettingsError, match="AMILI_DAGSTER_UI_URL is not an http"):
            load(settings)
