"""The web console's server side (issue 14): where it is served and where not, the control
plane calls it relies on, and its live-update stream. The pages themselves are tested in a real
browser (tests/console/test_browser.py)."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import signal
import time
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harvest.console.app import static_files
from harvest.console.stream import CONSOLE_HUB, MAX_BACKLOG, StreamHub
from harvest.server import SHUTDOWN_TIMEOUT_S
from tests.conftest import Emulator
from tests.support import process

ROOT = Path(__file__).resolve().parents[2]
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def get(emulator: Emulator, path: str, **headers: str) -> aiohttp.ClientResponse:
    async with emulator.client.get(path, headers=headers, allow_redirects=False) as response:
        await response.read()
        return response


# --- where the console is, and where it is not ----------------------------------------------------
async def test_a_browser_at_the_root_is_sent_to_the_console(emulator: Emulator) -> None:
    response = await get(emulator, "/", Accept=BROWSER_ACCEPT)
    assert response.status == 302
    assert response.headers["Location"] == "/console/"


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/", {"Accept": "*/*"}, id="curl"),
        pytest.param("/", {}, id="no-accept"),
        pytest.param("/other", {"Accept": BROWSER_ACCEPT}, id="browser-other-path"),
        pytest.param("/", {"Accept": BROWSER_ACCEPT, "Host": "harvest.soracom.io"}, id="device"),
        pytest.param("/", {"Accept": BROWSER_ACCEPT, "Host": "uni.soracom.io"}, id="unified"),
    ],
)
async def test_devices_and_curl_keep_their_answer(
    emulator: Emulator, path: str, headers: dict[str, str]
) -> None:
    response = await get(emulator, path, **headers)
    assert response.status == 405
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize("host", ["harvest.soracom.io", "uni.soracom.io"])
async def test_device_hosts_never_serve_the_console(emulator: Emulator, host: str) -> None:
    for path in ("/console/", "/console/main.js", "/console/stream"):
        response = await get(emulator, path, Host=host, Accept=BROWSER_ACCEPT)
        assert response.status == 405, path


async def test_the_page_is_served_with_a_strict_policy(emulator: Emulator) -> None:
    async with emulator.client.get("/console/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
        policy = response.headers["Content-Security-Policy"]
    assert '<html lang="en">' in page
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "http" not in policy  # nothing from elsewhere
    async with emulator.client.get("/console/main.js") as response:
        assert response.content_type == "text/javascript"
    assert (await get(emulator, "/console/nothing.js")).status == 404
    assert (await get(emulator, "/console")).headers["Location"] == "/console/"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"console": False}, id="console-off"),
        pytest.param({"control": False}, id="control-off"),
    ],
)
async def test_off_means_not_served(emulator_with: Any, overrides: dict[str, Any]) -> None:
    emulator = await emulator_with(**overrides)
    assert (await get(emulator, "/", Accept=BROWSER_ACCEPT)).status == 405
    assert (await get(emulator, "/console/")).status == 405  # as any other path of the edge
    assert (await get(emulator, "/console/stream")).status == 405


@pytest.fixture
def emulator_with(aiohttp_client: Any, tmp_path: Path) -> Any:
    from harvest.app import create_app
    from harvest.settings import Settings

    async def make(**overrides: Any) -> Emulator:
        settings = Settings(
            port=0, harvest_port=0, unified_port=0, data_dir=tmp_path / "data", **overrides
        )
        return Emulator(await aiohttp_client(create_app(settings)), settings)

    return make


# --- the static files ship with the package -------------------------------------------------------
def test_every_static_file_is_package_data() -> None:
    """``pip install .`` (not only an editable install) ships each file: the globs of
    ``[tool.setuptools.package-data]`` cover every file under harvest/console/static."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["harvest"]
    static = ROOT / "harvest" / "console" / "static"
    files = [p.relative_to(ROOT / "harvest").as_posix() for p in static.rglob("*") if p.is_file()]
    assert files
    for name in files:
        assert any(fnmatch.fnmatch(name, g) and name.count("/") == g.count("/") for g in globs), (
            name
        )
    served = static_files()
    assert {"index.html", "main.js", "chart.js", "style.css", "pages/sim.js"} <= set(served)
    assert len(served) == len(files)


# --- the control plane calls the console makes ----------------------------------------------------
async def test_operators_are_listed_without_secrets(emulator: Emulator) -> None:
    await emulator.new_operator(operatorId="OP0000000077")
    status, operators = await emulator.control("GET", "/operators")
    assert status == 200
    assert [o["operatorId"] for o in operators] == ["OP0000000000", "OP0000000077"]
    assert all(set(o) == {"operatorId", "email"} for o in operators)


async def test_an_operator_token_opens_a_v1_session(emulator: Emulator) -> None:
    await emulator.new_operator(operatorId="OP0000000077")
    status, session = await emulator.control("POST", "/operators/OP0000000077/token")
    assert status == 201
    assert session["operatorId"] == "OP0000000077"
    headers = {"X-Soracom-API-Key": session["apiKey"], "X-Soracom-Token": session["token"]}
    async with emulator.client.get("/v1/subscribers", headers=headers) as response:
        assert response.status == 200
        assert await response.json() == []  # that operator's SIMs: none
    assert (await emulator.control("POST", "/operators/OP9/token"))[0] == 404
    path = "/operators/OP0000000077/token"
    assert (await emulator.control("POST", path, {"tokenTimeoutSeconds": 0}))[0] == 400
    assert (await emulator.control("POST", "/operators/OP0000000077/token", {"x": 1}))[0] == 400


async def test_sims_are_listed_with_todays_writes(emulator: Emulator) -> None:
    second = await emulator.new_sim()
    assert (await emulator.device().send('{"a":1}'))[0] == 201
    status, sims = await emulator.control("GET", "/sims")
    assert status == 200
    assert [(s["imsi"], s["writesToday"]) for s in sims] == [
        ("001010000000001", 1),
        (second["imsi"], 0),
    ]
    assert sims[0]["sessionAddress"] == "127.0.0.1"
    assert (await emulator.control("GET", "/sims?operatorId=OP404"))[0] == 404


# --- the stream -----------------------------------------------------------------------------------
async def read_events(response: aiohttp.ClientResponse, wanted: str) -> Any:
    """The data of the next event named ``wanted``."""
    name = None
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 10)).decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name == wanted:
            return json.loads(line[6:])


async def test_the_stream_tells_of_each_write(emulator: Emulator) -> None:
    async with emulator.client.get("/console/stream") as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        clock = await read_events(stream, "clock")
        assert set(clock) == {"now", "frozen"}
        assert (await emulator.device().send('{"temp":1}'))[0] == 201
        [record] = await read_events(stream, "requests")
        assert record["imsi"] == "001010000000001"
        assert (record["protocol"], record["status"]) == ("http", 201)
    for _ in range(50):  # the server notices within a second that the page went away
        if emulator.app[CONSOLE_HUB].clients == 0:
            break
        await asyncio.sleep(0.1)
    assert emulator.app[CONSOLE_HUB].clients == 0


@pytest.mark.settings(control_token="s3cret")
async def test_the_stream_needs_the_control_token(emulator: Emulator) -> None:
    assert (await get(emulator, "/console/")).status == 200  # the page holds no data
    refused = await get(emulator, "/console/stream")
    assert refused.status == 401
    async with emulator.client.get(
        "/console/stream", headers={"X-Emulator-Token": "s3cret"}
    ) as stream:
        assert stream.status == 200
        await read_events(stream, "clock")


@pytest.mark.settings(console_clients=1)
async def test_streams_are_capped(emulator: Emulator) -> None:
    async with emulator.client.get("/console/stream") as first:
        await read_events(first, "clock")
        async with emulator.client.get("/console/stream") as second:
            assert second.status == 503
            assert (await second.json())["code"] == "HEM9010"


async def test_a_stream_behind_is_told_of_the_gap(emulator: Emulator) -> None:
    hub: StreamHub = emulator.app[CONSOLE_HUB]
    client = hub.join()
    try:
        for _ in range(MAX_BACKLOG + 5):
            hub._observe("udp", "127.0.0.1", None, 201)
        events = hub.take(client)
        assert events[0].startswith(b'event: gap\ndata: {"skipped":5}')
        assert client.pending == 0
        assert hub.take(client) == []
    finally:
        hub.leave(client)


async def test_shutdown_ends_open_streams(emulator: Emulator) -> None:
    async with emulator.client.get("/console/stream") as stream:
        await read_events(stream, "clock")
        emulator.app[CONSOLE_HUB].close()
        rest = await asyncio.wait_for(stream.content.read(), 5)  # the server ends it
        assert b"event: requests" not in rest


async def test_a_server_with_an_open_stream_stops_at_once() -> None:
    """On SIGINT the stream ends before the server waits for its handlers (up to
    SHUTDOWN_TIMEOUT_S): a page left open never holds up a shutdown."""
    with process.running(["--memory", "--port", "0"]) as emulator:
        async with (
            aiohttp.ClientSession() as session,
            session.get(emulator.base_url + "/console/stream") as stream,
        ):
            await read_events(stream, "clock")
            started = time.monotonic()
            emulator.popen.send_signal(signal.SIGINT)
            await asyncio.wait_for(stream.content.read(), 5)
            await asyncio.to_thread(emulator.popen.wait, 10)
        assert emulator.popen.returncode == 0
        assert time.monotonic() - started < SHUTDOWN_TIMEOUT_S / 2
