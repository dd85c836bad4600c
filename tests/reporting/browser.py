"""The system Chromium under Playwright, and a page that records what a test must check."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import pytest

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
#: Schemes that never leave the machine.
LOCAL_SCHEMES = {"data", "blob", "file", "about", "chrome-extension"}


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")


def launch_chromium() -> tuple[Any, Any]:
    """(playwright, browser); skips when no system Chromium is installed."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        message = "no system Chromium (scripts/test installs Debian's chromium with apt)"
        if os.environ.get("CI"):
            pytest.fail(message)  # in CI a skipped browser test would hide a broken page
        pytest.skip(message)
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=path,
                                        args=["--no-sandbox", "--disable-dev-shm-usage"])
    return playwright, browser


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme in LOCAL_SCHEMES:
        return True
    host = (parsed.hostname or "").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


@dataclass
class Recorder:
    """Console errors, page errors and every request URL of one page."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> Any:
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("websocket", lambda ws: self.requests.append(ws.url))
        return page

    @property
    def outside_loopback(self) -> list[str]:
        return [url for url in self.requests if not is_local(url)]
