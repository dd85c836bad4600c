"""amili.notify against real targets on loopback: an HTTP webhook receiver, and an SMTP server
(aiosmtpd) with STARTTLS and a login. Nothing mocked."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from amili.notify import Alert, notify
from amili.settings import AlertSettings, load
from tests.receiver import Receiver

ALERT = Alert(
    kind="run_failure",
    title="Run of amili_daily failed for 2026-11-24 at amili_submission",
    lines=["Job: amili_daily", "Failed: amili_submission: SettingsError: AMILI_TOKEN expired"],
    link="http://127.0.0.1:3000/runs/abc",
    details={"amount": Decimal("1234.50")},
)
SMTP_PASSWORD = "s3cret-smtp-pass"
HOOK_TOKEN = "T0KEN-in-the-path-9f8e7d"


def _settings(**values: Any) -> AlertSettings:
    return load(AlertSettings, **values)


def _no_secret_in(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret not in text


@pytest.fixture
def clean_alert_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No alert target from the machine's environment."""
    for name in ("WEBHOOK_URL", "EMAIL_TO", "SMTP_HOST", "SMTP_USER", "SMTP_PASSWORD"):
        monkeypatch.delenv(f"AMILI_ALERT_{name}", raising=False)


def test_the_webhook_gets_the_alert_as_json(clean_alert_env: None) -> None:
    received: list[bytes] = []

    def answer(n: int, body: bytes) -> tuple[int, str, bytes]:
        received.append(body)
        return 200, "application/json", b"{}"

    with Receiver(None, answer) as hook:
        report = notify(ALERT, settings=_settings(
            alert_webhook_url=f"{hook.url}/hooks/{HOOK_TOKEN}"))
    assert report.delivered and not report.failures
    assert report.summary() == f"webhook http://127.0.0.1:{hook.url.rsplit(':', 1)[1]}: sent"
    body = json.loads(received[0])
    assert body["title"] == ALERT.title
    assert body["text"].splitlines() == [ALERT.title, *ALERT.lines, f"Open: {ALERT.link}"]
    assert body["details"] == {"amount": "1234.50"}  # exact, not a float
    assert body["kind"] == "run_failure"


def test_a_failing_webhook_is_logged_without_its_token_and_the_alert_is_kept(
    clean_alert_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(n: int, body: bytes) -> tuple[int, str, bytes]:
        return 500, "text/plain", b"internal error"

    caplog.set_level(logging.INFO)
    with Receiver(None, refuse) as hook:
        report = notify(ALERT, settings=_settings(
            alert_webhook_url=f"{hook.url}/hooks/{HOOK_TOKEN}?key={HOOK_TOKEN}"))
    assert not report.delivered
    assert report.failures[0].error == "answered HTTP 500: internal error"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("not delivered to webhook http://127.0.0.1" in e for e in errors)
    # nobody got it: its whole text is in the log
    assert any("ALERT NOT DELIVERED" in e and ALERT.lines[1] in e for e in errors)
    _no_secret_in(caplog, HOOK_TOKEN)


def test_a_webhook_nobody_listens_on_fails_without_raising(
    clean_alert_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    report = notify(ALERT, settings=_settings(
        alert_webhook_url=f"http://user:{HOOK_TOKEN}@127.0.0.1:{port}/{HOOK_TOKEN}",
        alert_timeout_seconds=2))
    assert not report.delivered
    assert report.failures[0].error.startswith("ConnectError")
    assert HOOK_TOKEN not in report.summary()
    _no_secret_in(caplog, HOOK_TOKEN)


def test_without_a_target_the_alert_is_a_log_line(
    clean_alert_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    report = notify(ALERT, settings=_settings())
    assert report.logged_only and report.delivered
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no alert target set: AMILI_ALERT_WEBHOOK_URL or AMILI_ALERT_EMAIL_TO" in warnings[0]
    assert ALERT.title in warnings[0] and ALERT.link in warnings[0]


def test_a_bad_setting_is_named_and_the_alert_still_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AMILI_ALERT_WEBHOOK_URL", f"hooks.example.com/{HOOK_TOKEN}")
    report = notify(ALERT)
    assert not report.delivered
    assert "AMILI_ALERT_WEBHOOK_URL is not an http(s) URL" in report.summary()
    assert any(ALERT.title in r.getMessage() for r in caplog.records)
    _no_secret_in(caplog, HOOK_TOKEN)


# --- e-mail ---------------------------------------------------------------------------------


class Inbox:
    """aiosmtpd handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == b"alerts" and (
        data.password == SMTP_PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # False: the server answers 535 itself


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the client trusts it through SSL_CERT_FILE)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key


@pytest.fixture
def smtp_server(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, clean_alert_env: None
) -> Iterator[tuple[Inbox, int]]:
    """An SMTP server on loopback that requires STARTTLS before a login, and a login."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    inbox = Inbox()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=_free_port(), tls_context=context,
        require_starttls=True, auth_required=True, authenticator=_login,
        # smtplib falls back to LOGIN after a refused PLAIN, which this server's LOGIN then
        # waits on until the timeout: offer PLAIN only, so a refusal is answered at once
        auth_exclude_mechanism=["LOGIN"],
    )
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


def _mail_settings(port: int, **values: Any) -> AlertSettings:
    return _settings(**{
        "alert_email_to": "controller@example.com, ops@example.com",
        "alert_email_from": "pipeline@example.com", "alert_smtp_host": "127.0.0.1",
        "alert_smtp_port": port, "alert_smtp_user": "alerts",
        "alert_smtp_password": SMTP_PASSWORD, "alert_timeout_seconds": 5, **values})


def test_the_email_goes_through_starttls_and_a_login(
    smtp_server: tuple[Inbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    inbox, port = smtp_server
    caplog.set_level(logging.INFO)
    report = notify(ALERT, settings=_mail_settings(port))
    assert report.delivered, report.summary()
    assert report.summary() == (f"e-mail to controller@example.com, ops@example.com via "
                                f"127.0.0.1:{port}: sent")
    [(recipients, raw)] = inbox.messages
    assert recipients == ["controller@example.com", "ops@example.com"]
    message = message_from_bytes(raw, policy=policy.default)
    # (a long subject is folded; a mail reader unfolds it)
    assert message["Subject"].strip() == f"[Amili pipeline] {ALERT.title}"
    assert message["From"] == "pipeline@example.com"
    assert message.get_content().splitlines() == [
        ALERT.title, *ALERT.lines, f"Open: {ALERT.link}"]
    _no_secret_in(caplog, SMTP_PASSWORD)


def test_a_wrong_password_or_no_starttls_fails_without_the_password(
    smtp_server: tuple[Inbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    inbox, port = smtp_server
    wrong = notify(ALERT, settings=_mail_settings(port, alert_smtp_password="wrong-" + "x" * 8))
    plain = notify(ALERT, settings=_mail_settings(port, alert_smtp_starttls=False))
    assert not wrong.delivered and "SMTPAuthenticationError" in wrong.summary()
    # the server demands STARTTLS: without it nothing is sent, and nothing crashes
    assert not plain.delivered and "FAILED" in plain.summary()
    assert inbox.messages == []
    _no_secret_in(caplog, SMTP_PASSWORD, "wrong-" + "x" * 8)


def test_email_without_a_server_says_which_setting_is_missing(
    clean_alert_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    report = notify(ALERT, settings=_settings(alert_email_to="controller@example.com"))
    assert not report.delivered
    assert "AMILI_ALERT_EMAIL_TO is set but AMILI_ALERT_SMTP_HOST is not" in report.summary()


def test_one_failing_target_does_not_stop_the_other(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    report = notify(ALERT, settings=_mail_settings(
        port, alert_webhook_url=f"http://127.0.0.1:{_free_port()}/{HOOK_TOKEN}"))
    assert report.delivered
    assert [d.ok for d in report.deliveries] == [False, True]
    assert len(inbox.messages) == 1


# aiosmtpd warns of AUTH without STARTTLS; here the connection is TLS from its first byte
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_the_email_goes_over_tls_from_the_start_smtps(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, clean_alert_env: None
) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    inbox = Inbox()
    # aiosmtpd counts only STARTTLS as TLS for AUTH; the whole connection is TLS here
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(), ssl_context=context,
                            auth_required=True, authenticator=_login, auth_require_tls=False,
                            auth_exclude_mechanism=["LOGIN"])
    controller.start()
    try:
        report = notify(ALERT, settings=_mail_settings(
            controller.port, alert_smtp_ssl=True, alert_smtp_starttls=True))
    finally:
        controller.stop()
    assert report.delivered, report.summary()
    assert len(inbox.messages) == 1
