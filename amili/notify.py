"""Tell someone: send an alert to every target the environment sets, or log it.

Targets (:class:`amili.settings.AlertSettings`): a webhook (``AMILI_ALERT_WEBHOOK_URL``, a
JSON POST whose ``text`` field Slack, Mattermost and Teams' incoming webhooks show as is) and
e-mail (``AMILI_ALERT_EMAIL_TO`` through ``AMILI_ALERT_SMTP_*``). With neither set, the alert
is a warning line in the caller's log, so a fresh install still says what went wrong.

Why it never raises: the callers are Dagster sensors, and a sensor that crashes on a dead
mail server tells nobody anything. A target that fails is logged (and the caller told, see
:class:`DeliveryReport`), and when every target failed the alert's own text is logged too,
so it is not lost. Secrets (the webhook URL, which often holds a token, and the SMTP
password) are never written to a log or an error message: targets are named by their host.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from amili.settings import AlertSettings, SettingsError, load

__all__ = ["Alert", "Delivery", "DeliveryReport", "EmailTarget", "Target", "WebhookTarget",
           "notify", "targets_from"]

_LOG = logging.getLogger(__name__)
#: Text that replaces a secret found in an error message.
_HIDDEN = "***"
#: Settings that set a target: named in the log line of an alert that went nowhere.
_TARGET_VARIABLES = "AMILI_ALERT_WEBHOOK_URL or AMILI_ALERT_EMAIL_TO"


@dataclass(frozen=True)
class Alert:
    """One thing someone should know: a title (the e-mail's subject), plain-text lines, a
    link to look at, and ``details`` for machines (JSON-safe after ``str`` of odd values such
    as :class:`~decimal.Decimal`, which keeps amounts exact)."""

    kind: str
    title: str
    lines: Sequence[str] = ()
    link: str | None = None
    severity: str = "error"
    details: Mapping[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """The whole alert as plain text: title, lines, link."""
        parts = [self.title, *self.lines]
        if self.link:
            parts.append(f"Open: {self.link}")
        return "\n".join(parts)


class Target(Protocol):
    """Somewhere an alert goes. ``name`` says where without a secret in it."""

    name: str

    def send(self, alert: Alert) -> None:
        """Deliver, or raise with a message that holds no secret."""


class DeliveryError(RuntimeError):
    """A target did not take the alert; the message names why, never a secret."""


def _scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret (and every long enough part of one) replaced."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, _HIDDEN)
    return text


class _HideSecrets(logging.Filter):
    """Takes the webhook URLs out of httpx's own log lines (``HTTP Request: POST <url>``, at
    INFO), which would otherwise carry a hook's token into whatever logs the process keeps."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            hidden = _scrub(text, sorted(self.secrets))
            if hidden != text:
                record.msg, record.args = hidden, ()
        return True


_HTTPX_FILTER = _HideSecrets()
logging.getLogger("httpx").addFilter(_HTTPX_FILTER)


class WebhookTarget:
    """A JSON POST of the alert; any 2xx answer counts as delivered."""

    def __init__(self, url: str, timeout_seconds: float = 10.0) -> None:
        self._url = url
        self._timeout = timeout_seconds
        parts = urlsplit(url)
        # the path and query often hold the hook's token: name the host only
        self.name = f"webhook {parts.scheme}://{parts.hostname}" + (
            f":{parts.port}" if parts.port else "")
        self._secrets = [url, parts.path, parts.query, parts.password or ""]
        _HTTPX_FILTER.secrets.update(s for s in self._secrets if len(s) >= 4)

    def payload(self, alert: Alert) -> bytes:
        body = {
            "text": alert.text(),
            "title": alert.title,
            "kind": alert.kind,
            "severity": alert.severity,
            "link": alert.link,
            "details": alert.details,
            "source": "amili-autocollect-pipeline",
        }
        return json.dumps(body, default=str, ensure_ascii=False).encode()

    def send(self, alert: Alert) -> None:
        try:
            response = httpx.post(
                self._url, content=self.payload(alert), timeout=self._timeout,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
        except httpx.HTTPError as exc:  # httpx puts the URL in some messages: scrubbed
            raise DeliveryError(
                _scrub(f"{type(exc).__name__}: {exc}", self._secrets)) from None
        if not response.is_success:
            raise DeliveryError(
                f"answered HTTP {response.status_code}: "
                + _scrub(response.text[:200].strip(), self._secrets))


class EmailTarget:
    """A plain-text e-mail through one SMTP server, with STARTTLS or TLS when asked."""

    def __init__(self, settings: AlertSettings) -> None:
        self._settings = settings
        self._to = settings.recipients()
        host = settings.alert_smtp_host
        self.name = (f"e-mail to {', '.join(self._to)} via {host}:{settings.alert_smtp_port}"
                     if host else f"e-mail to {', '.join(self._to)}")
        password = settings.alert_smtp_password
        self._secrets = [password.get_secret_value()] if password else []

    def message(self, alert: Alert) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"[Amili pipeline] {alert.title}"
        message["From"] = self._settings.alert_email_from
        message["To"] = ", ".join(self._to)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="amili-pipeline")
        message.set_content(alert.text() + "\n")
        return message

    def send(self, alert: Alert) -> None:
        settings = self._settings
        if not settings.alert_smtp_host:
            raise DeliveryError("AMILI_ALERT_EMAIL_TO is set but AMILI_ALERT_SMTP_HOST is not: "
                                "set the SMTP server to send through")
        if settings.alert_smtp_user and settings.alert_smtp_password is None:
            raise DeliveryError("AMILI_ALERT_SMTP_USER is set but AMILI_ALERT_SMTP_PASSWORD "
                                "is not")
        context = ssl.create_default_context()
        try:
            if settings.alert_smtp_ssl:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    settings.alert_smtp_host, settings.alert_smtp_port,
                    timeout=settings.alert_timeout_seconds, context=context)
            else:
                smtp = smtplib.SMTP(settings.alert_smtp_host, settings.alert_smtp_port,
                                    timeout=settings.alert_timeout_seconds)
            with smtp:
                smtp.ehlo()
                if settings.alert_smtp_starttls and not settings.alert_smtp_ssl:
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if settings.alert_smtp_user and settings.alert_smtp_password is not None:
                    smtp.login(settings.alert_smtp_user,
                               settings.alert_smtp_password.get_secret_value())
                refused = smtp.send_message(self.message(alert))
        except (OSError, smtplib.SMTPException) as exc:  # ssl.SSLError is an OSError
            raise DeliveryError(
                _scrub(f"{type(exc).__name__}: {exc}", self._secrets)) from None
        if refused:
            raise DeliveryError(f"the server refused {', '.join(sorted(refused))}")


def targets_from(settings: AlertSettings) -> list[Target]:
    """The targets the settings set, webhook first; empty when none is set."""
    targets: list[Target] = []
    if settings.alert_webhook_url is not None:
        targets.append(WebhookTarget(settings.alert_webhook_url.get_secret_value(),
                                     settings.alert_timeout_seconds))
    if settings.recipients():
        targets.append(EmailTarget(settings))
    return targets


@dataclass(frozen=True)
class Delivery:
    """What became of an alert at one target (``target`` names it without secrets)."""

    target: str
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class DeliveryReport:
    """What :func:`notify` did: each target's delivery, or that there was no target."""

    deliveries: tuple[Delivery, ...]
    logged_only: bool = False

    @property
    def delivered(self) -> bool:
        """Someone was told: a target took it, or no target is set (then the log is it)."""
        return self.logged_only or any(d.ok for d in self.deliveries)

    @property
    def failures(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.ok]

    def summary(self) -> str:
        if self.logged_only:
            return f"logged only (no target set: {_TARGET_VARIABLES})"
        return "; ".join(f"{d.target}: sent" if d.ok else f"{d.target}: FAILED ({d.error})"
                         for d in self.deliveries)


def notify(
    alert: Alert,
    *,
    settings: AlertSettings | None = None,
    targets: Sequence[Target] | None = None,
    log: Any = None,
) -> DeliveryReport:
    """Send ``alert`` to every target; never raises. ``log`` is the caller's logger (a
    Dagster sensor's ``context.log``), else this module's. Targets default to those of
    ``settings``, which default to the environment's; a setting that does not load is
    reported like a failed target, and the alert is logged."""
    log = log or _LOG
    failed_settings: list[Delivery] = []
    if targets is None:
        try:
            targets = targets_from(settings or load(AlertSettings))
        except SettingsError as exc:  # names the variable, never a secret's value
            failed_settings.append(Delivery("alert settings", False, str(exc)))
            targets = []
    if not targets and not failed_settings:
        log.warning(f"ALERT (no alert target set: {_TARGET_VARIABLES}): {alert.text()}")
        return DeliveryReport((), logged_only=True)
    deliveries = list(failed_settings)
    for target in targets:
        try:
            target.send(alert)
        except Exception as exc:  # any failure of one target: the others still get it
            error = str(exc) if isinstance(exc, DeliveryError) else type(exc).__name__
            deliveries.append(Delivery(target.name, False, error))
            log.error(f"Alert {alert.title!r} not delivered to {target.name}: {error}")
        else:
            deliveries.append(Delivery(target.name, True))
            log.info(f"Alert {alert.title!r} sent to {target.name}")
    report = DeliveryReport(tuple(deliveries))
    if not report.delivered:
        log.error(f"ALERT NOT DELIVERED to any target ({report.summary()}): {alert.text()}")
    return report
