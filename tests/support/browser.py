"""A real browser for the web console's tests and screenshots: Debian's Chromium driven by
Playwright (PyPI ``playwright``, launched with ``executable_path``; nothing is downloaded).

Without Chromium or Playwright the tests skip with the reason, except in CI (``CI`` set), where
they fail: ``.ci/run`` installs the ``chromium`` package where it is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright

#: Headless, and quiet: without the background-networking flags Chromium keeps trying to reach
#: Google's services, which on a closed network is a flood of refused connections.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
CHROMIUM_NAMES = ("chromium", "chromium-browser")
FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str:
    """Debian's Chromium, and Playwright to drive it; skip without them, fail in CI."""
    found = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    reason = None
    if found is None:
        reason = "no chromium binary: install Debian's chromium package (.ci/run does)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "no playwright: pip install -e '.[test]'"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    assert found is not None
    return found


def launch(playwright: Playwright, executable: str) -> Browser:
    # Playwright gives every launch a fresh, temporary profile (user data dir).
    return playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))


@dataclass
class Watched:
    """A page and every script error it showed: console errors and uncaught exceptions."""

    page: Page
    errors: list[str] = field(default_factory=list)
    #: Statuses a test expects some call to answer (a refusal the page shows as a message):
    #: the browser logs each such answer as a console error of its own.
    expected_statuses: set[int] = field(default_factory=set)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        failed = FAILED_LOAD.match(message.text)
        if failed and int(failed.group(1)) in self.expected_statuses:
            return
        self.errors.append(f"console: {message.text}")


def watch(page: Page) -> Watched:
    watched = Watched(page)
    page.on("console", watched.on_console)
    page.on("pageerror", lambda error: watched.errors.append(f"page error: {error}"))
    return watched


# --- the emulator over real HTTP ----------------------------------------------------------------
def call(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One HTTP call; (status, parsed JSON or None)."""
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None


def control(base_url: str, method: str, path: str, body: Any = None) -> Any:
    status, answer = call(base_url, method, "/_emulator" + path, body)
    assert 200 <= status < 300, (status, answer)
    return answer


def write(
    base_url: str,
    body: bytes | str,
    content_type: str = "application/json",
    timestamp: int | None = None,
) -> int:
    """A device write over HTTP from 127.0.0.1, the default SIM's session address."""
    headers = {"Content-Type": content_type}
    if timestamp is not None:
        headers["X-Soracom-Timestamp"] = str(timestamp)
    payload = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(base_url + "/", data=payload, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def api_headers(base_url: str, operator_id: str = "OP0000000000") -> dict[str, str]:
    """An API session of the operator, as ``/v1`` takes it (the control plane issues it)."""
    session = control(base_url, "POST", f"/operators/{operator_id}/token")
    return {"X-Soracom-API-Key": session["apiKey"], "X-Soracom-Token": session["token"]}


def put_file(
    base_url: str, path: str, body: bytes, content_type: str = "application/octet-stream"
) -> int:
    """``putFile`` of the default operator: ``body`` at ``path`` (``/logs/a.txt``)."""
    headers = {**api_headers(base_url), "Content-Type": content_type}
    url = base_url + "/v1/files/private" + urllib.parse.quote(path)
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def seed(base_url: str, now_ms: int, points: int = 30) -> None:
    """A morning of readings for the default SIM (temperature and humidity a minute apart, one
    binary write), a second SIM, a fault rule and a few files: enough for every page to show
    something."""
    for i in range(points):
        reading = {"temp": round(20 + (i % 7) * 0.4, 1), "hum": 40 + (i % 5), "battery": 3.3}
        assert write(base_url, json.dumps(reading), timestamp=now_ms - (points - i) * 60_000) == 201
    assert write(base_url, b"\x01\x02\xfe", "application/octet-stream") == 201
    control(base_url, "POST", "/sims", {})
    control(base_url, "POST", "/faults", {"effect": "status", "status": 500, "protocol": "udp"})
    for path, body, content_type in SEED_FILES:
        assert put_file(base_url, path, body, content_type) == 201


#: Harvest Files for the file browser's picture: logs by day, a firmware image, a photo.
SEED_FILES = (
    ("/logs/2026-03-09.txt", b"boot ok\n" * 40, "text/plain"),
    ("/logs/2026-03-10.txt", b"boot ok\nlow battery\n" * 12, "text/plain"),
    ("/ota/fw-1.4.2.bin", bytes(range(256)) * 800, "application/octet-stream"),
    ("/camera/front.jpg", b"\xff\xd8\xff\xe0" + bytes(4000), "image/jpeg"),
    ("/config.json", b'{"interval": 60}', "application/json"),
)


def screenshot_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "docs" / "console"
