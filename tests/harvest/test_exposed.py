"""Safe defaults off loopback (issue 9, item 8): bound where other hosts can reach it, the
emulator does not leave its control plane (reset, snapshots with credentials, SIM
provisioning) open; it generates a token, prints it in the banner and requires it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harvest.settings import Settings
from tests.support.process import running


@pytest.mark.parametrize(
    ("host", "exposed"),
    [
        ("127.0.0.1", False),
        ("::1", False),
        ("localhost", False),
        ("127.0.0.1,::1", False),
        ("127.0.0.2", False),
        ("0.0.0.0", True),
        ("::", True),
        ("10.45.0.1", True),
        ("emulator.internal", True),
        ("127.0.0.1,0.0.0.0", True),
    ],
)
def test_which_binds_are_exposed(host: str, exposed: bool) -> None:
    assert Settings(host=host).exposed is exposed


def test_a_token_is_made_only_when_exposed_open_and_not_given() -> None:
    def make() -> str:
        return "generated"

    assert Settings(host="0.0.0.0").secured(make).control_token == "generated"
    assert Settings(host="127.0.0.1").secured(make).control_token == ""
    assert Settings(host="0.0.0.0", control_token="mine").secured(make).control_token == "mine"
    off = Settings(host="0.0.0.0", control=False)
    assert off.secured(make) is off


def get(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("X-Emulator-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_bound_to_every_address_the_control_plane_needs_the_printed_token(
    tmp_path: Path,
) -> None:
    with running(["--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path)]) as process:
        [token_line] = [line for line in process.banner if "control token" in line]
        token = token_line.split()[-1]
        assert len(token) >= 24
        base = process.base_url.replace("0.0.0.0", "127.0.0.1")
        status, body = get(base + "/_emulator/clock")
        assert (status, body["code"]) == (401, "HEM9001")
        assert get(base + "/_emulator/clock", "wrong")[0] == 401
        assert get(base + "/_emulator/clock", token)[0] == 200
        assert get(base + "/_emulator/health")[0] == 200  # health checks stay open


def test_on_loopback_the_control_plane_stays_open(tmp_path: Path) -> None:
    with running(["--port", "0", "--data-dir", str(tmp_path)]) as process:
        assert not [line for line in process.banner if "control token" in line]
        assert get(process.base_url + "/_emulator/clock")[0] == 200
