"""Tokens, limits, OpenAPI, ack-only mode, admin endpoints and the server's life cycle."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable

import httpx
import jwt
import pytest
from pydantic import SecretStr
from sandbox_http import Api
from sandbox_payloads import batch, creditor, invoice

from amili.sandbox import SandboxServer, issue_token
from amili.sandbox.settings import SandboxSettings
from amili.settings import load

PATHS = [("POST", "/webapi/api/Batch?senderid=s"), ("GET", "/webapi/api/Batch?senderid=s"),
         ("GET", "/webapi/api/Ping?senderid=s")]


def _wrong_signature(sandbox: SandboxServer) -> str:
    other = sandbox.settings.model_copy(update={"jwt_secret": SecretStr("x" * 40)})
    return issue_token(other)


def _unsigned(sandbox: SandboxServer) -> str:
    claims = jwt.decode(sandbox.issue_token(), options={"verify_signature": False})
    return jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]


TOKENS: dict[str, Callable[[SandboxServer], str | None]] = {
    "missing": lambda s: None,
    "empty": lambda s: "Bearer",
    "malformed": lambda s: "Bearer not-a-jwt",
    "wrong-signature": lambda s: f"Bearer {_wrong_signature(s)}",
    "expired": lambda s: f"Bearer {s.issue_token(ttl_seconds=-60)}",
    "wrong-audience": lambda s: "Bearer " + issue_token(
        s.settings.model_copy(update={"jwt_audience": "elsewhere"})
    ),
    "alg-none": lambda s: f"Bearer {_unsigned(s)}",
    "basic": lambda s: "Basic " + base64.b64encode(b"user:password").decode(),
}


@pytest.mark.parametrize("method_path", PATHS, ids=[f"{m} {p}" for m, p in PATHS])
@pytest.mark.parametrize("kind", list(TOKENS))
def test_bad_tokens_are_401(
    sandbox: SandboxServer, api: Api, kind: str, method_path: tuple[str, str]
) -> None:
    method, path = method_path
    header = TOKENS[kind](sandbox)
    headers = {} if header is None else {"Authorization": header}
    response = httpx.request(method, sandbox.base_url + path, headers=headers,
                             content=b'{"batchid": "b"}' if method == "POST" else None)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["message"]
    assert api.stats()["batches"] == 0


def test_ping_needs_the_token_and_the_senderid_and_echoes_it(api: Api) -> None:
    response = api.http.get("/webapi/api/Ping", params={"senderid": "sender-7"})
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["time"].endswith("Z")
    assert response.json()["senderid"] == "sender-7"
    for params in ({}, {"senderid": ""}):  # as GET Batch: 400 in the legacy envelope
        missing = api.http.get("/webapi/api/Ping", params=params)
        assert missing.status_code == 400
        assert missing.json()["statuscode"] == 2
        assert "'senderid' is required" in missing.json()["errors"][0]["message"]
    # the token is checked first, as on the Batch endpoints
    assert httpx.get(f"{api.server.base_url}/webapi/api/Ping").status_code == 401


def test_ping_without_senderid_when_the_assumption_is_off(
    start_sandbox: Callable[..., Api],
) -> None:
    lenient = start_sandbox(assumptions={"ping_requires_senderid": False})
    response = lenient.http.get("/webapi/api/Ping")
    assert response.status_code == 200 and response.json()["senderid"] is None


def test_admin_token_endpoint_issues_a_working_token(api: Api) -> None:
    issued = httpx.post(f"{api.server.base_url}/sandbox/token", params={"ttl_seconds": 60}).json()
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 60
    ping = httpx.get(f"{api.server.base_url}/webapi/api/Ping", params={"senderid": "s"},
                     headers={"Authorization": f"Bearer {issued['access_token']}"})
    assert ping.status_code == 200


def test_too_many_objects_is_413(api: Api) -> None:
    body = batch("big", action=[{} for _ in range(5001)])
    response = api.post(body)
    assert response.status_code == 413
    assert response.json()["statuscode"] == 2
    assert "5001 objects" in response.json()["errors"][0]["message"]
    assert api.stats()["batches"] == 0


def test_limits_are_configurable_and_body_size_is_checked(
    start_sandbox: Callable[..., Api],
) -> None:
    small = start_sandbox(assumptions={"max_batch_objects": 3, "max_body_bytes": 4096})
    assert small.post(batch("ok", creditor=[creditor()])).status_code == 200
    too_many = small.post(batch("n", action=[{}, {}, {}, {}]))
    assert too_many.status_code == 413
    padded = batch("bytes", creditor=[creditor(message="x" * 5000)])
    too_big = small.post(padded)
    assert too_big.status_code == 413
    assert "at most 4096" in too_big.json()["errors"][0]["message"]
    # without a Content-Length header (chunked upload) the limit holds too
    chunked = small.http.post(
        "/webapi/api/Batch", params={"senderid": "s"},
        content=iter([b'{"batchid": "c", "creditor": [{"message": "', b"y" * 5000, b'"}]}']),
        headers={"Content-Type": "application/json"},
    )
    assert chunked.status_code == 413
    assert small.stats()["batches"] == 1


def test_openapi_describes_the_batch_api(api: Api) -> None:
    spec = api.http.get("/openapi.json").json()
    post = spec["paths"]["/webapi/api/Batch"]["post"]
    content = post["requestBody"]["content"]
    assert set(content) == {"application/json", "application/json-patch+json"}
    ref = content["application/json-patch+json"]["schema"]["$ref"]
    schemas = spec["components"]["schemas"]
    request_schema = schemas[ref.rsplit("/", 1)[1]]
    assert {"batchid", "creditor", "invoice", "payment", "action"} <= set(
        request_schema["properties"]
    )
    assert "Invoice" in schemas and "Debtor" in schemas
    assert "BatchResponse" in str(post["responses"]["200"])
    assert "422" not in post["responses"]
    get = spec["paths"]["/webapi/api/Batch"]["get"]
    assert "BatchQueryResponse" in str(get["responses"]["200"])
    assert {p["name"] for p in get["parameters"]} >= {
        "senderid", "creditorid", "customerref", "ledgerref", "includeclosed",
        "lastsettlementid", "remittancedate", "languagecode",
    }
    assert "/webapi/api/Ping" in spec["paths"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_ack_only_mode_reads_and_acknowledges_without_storing(
    start_sandbox: Callable[..., Api],
) -> None:
    lean = start_sandbox(ack_only=True)
    answer = lean.answer(batch("lean", invoice=[invoice(1), {"not": "valid"}]))
    assert answer == {"statuscode": 0, "errors": [], "responses": []}
    assert lean.stats()["batches"] == 0
    assert lean.post(batch("lean"), senderid=None).status_code == 400
    lean.http.headers.pop("Authorization")
    assert lean.post(batch("lean")).status_code == 401


def test_reset_and_stats(api: Api) -> None:
    api.answer(batch("r-1", creditor=[creditor()], invoice=[invoice(1)]))
    stats = api.stats()
    assert stats["batches"] == 1 and stats["creditors"] == 1 and stats["invoices"] == 1
    assert stats["requests"]["POST /webapi/api/Batch"] == {"200": 1}
    assert api.http.post("/sandbox/reset").json() == {"reset": True}
    stats = api.stats()
    assert stats["batches"] == 0 and stats["invoices"] == 0
    assert "POST /webapi/api/Batch" not in stats["requests"]
    # case numbers and settlement ids start again after a reset
    api.answer(batch("r-2", invoice=[invoice(1)]))
    assert api.query()["case"][0]["casenumber"] == "5000001"


def test_server_lifecycle_and_file_store(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    db = f"{tmp_path}/sandbox.sqlite"
    settings = load(SandboxSettings, port=0, db_path=db, log_level="info")
    with caplog.at_level(logging.INFO), SandboxServer(settings) as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.port > 0
        token = server.issue_token()
        response = httpx.post(
            f"{server.base_url}/webapi/api/Batch", params={"senderid": "s"},
            content=b'{"batchid": "persist", "invoice": []}',
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert response.status_code == 200
    assert '"POST /webapi/api/Batch?senderid=s HTTP/1.1" 200' in caplog.text  # access log
    assert token not in caplog.text  # which never shows the Authorization header
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with SandboxServer(settings) as again:  # the file keeps what was received
        stats = httpx.get(f"{again.base_url}/sandbox/stats").json()
        assert stats["batches"] == 1


def test_server_restarts_with_its_data_and_takes_overrides() -> None:
    server = SandboxServer(load(SandboxSettings, port=0), ack_only=False, log_level="error")
    assert server.settings.log_level == "error"
    with server:
        api = Api(server)
        api.answer(batch("restart", invoice=[invoice(1)]))
        api.http.close()
        server.stop()
        assert server.port == 0
        server.start()
        stats = httpx.get(f"{server.base_url}/sandbox/stats").json()
        assert stats["invoices"] == 1


def _own_non_loopback_address() -> str | None:
    """This machine's address on its default route, if it has one."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # a UDP connect sends no packet
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_admin_endpoints_refuse_non_loopback_clients() -> None:
    address = _own_non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with SandboxServer(load(SandboxSettings, port=0), host="0.0.0.0") as server:
        outside = f"http://{address}:{server.port}"
        assert httpx.get(f"{outside}/sandbox/stats").status_code == 403
        assert httpx.post(f"{outside}/sandbox/token").status_code == 403
        assert httpx.get(f"http://127.0.0.1:{server.port}/sandbox/stats").status_code == 200
        ping = httpx.get(f"{outside}/webapi/api/Ping", params={"senderid": "s"},
                         headers={"Authorization": f"Bearer {server.issue_token()}"})
        assert ping.status_code == 200  # the API itself is not restricted
