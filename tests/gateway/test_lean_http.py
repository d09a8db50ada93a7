"""The lean device HTTP path answers exactly as aiohttp's application does (issue 11, item 3).

Two emulators run as ``harvest-emulator serve`` runs them (``harvest.server.serving``, real
sockets, SQLite files): one with ``device_http = "lean"`` (the default), one with ``aiohttp``.
Every request below goes, byte for byte, to both over a fresh connection; the answers must be
the same bytes (the ``Date`` field aside), and so must what each stored, logged and counted.
Requests that are not the lean path's shape check the hand-over to aiohttp (with the bytes
already read); the others that the lean path served them, by aiohttp's own request count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.devicehttp import DEVICE_HTTP
from harvest.server import serving
from harvest.settings import Settings

T0 = 1_800_000_000_000
IMSI = "001010000000001"
SUSPENDED_AT = "127.0.0.5"
UNIFIED_AT = "127.0.0.6"
NOBODY_AT = "127.0.0.9"
DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")
#: Group IDs are random: each emulator has its own.
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def post(
    body: bytes = b'{"t":1}', *, path: str = "/", host: str = "127.0.0.1", extra: str = ""
) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


JSON = "Content-Type: application/json\r\n"


@dataclass(frozen=True)
class Case:
    """Bytes sent (in chunks, a pause between), answers expected, and whether the lean path
    serves them all (``False``: aiohttp answers at least one)."""

    name: str
    chunks: tuple[bytes, ...]
    answers: int = 1
    lean: bool = True
    source: str = "127.0.0.1"
    #: Shut the sending side after the chunks (a client that sends its request and EOF).
    half_close: bool = False


WRITE = post(b'{"temp":21.5}', extra=JSON)
CASES = [
    Case("json", (WRITE,)),
    Case("binary", (post(b"\x00\x01\xfe\xff"),)),
    Case("text", (post(b"hello", extra="Content-Type: text/plain\r\n"),)),
    Case("timestamp", (post(b"{}", extra=JSON + f"X-Soracom-Timestamp: {T0 - 7}\r\n"),)),
    Case("bad-timestamp", (post(b"{}", extra="X-Soracom-Timestamp: 12a\r\n"),)),
    Case("bad-json", (post(b"{a:", extra=JSON),)),
    Case("empty-body", (post(b""),)),
    Case("largest", (post(b"x" * 1024),)),
    Case("too-large", (post(b"x" * 1025),), lean=False),
    Case("harvest-host-any-path", (post(b"1", path="/v1/auth", host="harvest.soracom.io:8080"),)),
    Case("harvest-host-case", (post(b"2", path="/a/b", host="Harvest.Soracom.IO"),)),
    Case("unified-host", (post(b"3", host="uni.soracom.io", extra="X-Soracom-Timestamp: 5\r\n"),)),
    Case("unified-path", (post(b"4", path="/_unified"),)),
    Case("unified-subpath", (post(b"5", path="/_unified/x"),)),
    Case("unified-format", (post(b"6", host="uni.soracom.io"),), source=UNIFIED_AT),
    Case(
        "unified-format-refusal",
        (post(b"{", host="uni.soracom.io", extra=JSON),),
        source=UNIFIED_AT,
    ),
    Case("no-sim", (WRITE,), source=NOBODY_AT),
    Case("suspended-sim", (WRITE,), answers=0, source=SUSPENDED_AT),
    Case("keep-alive", (post(b"7", extra="Connection: keep-alive\r\n"),)),
    Case("pipelined", (WRITE + post(b"8") + post(b"9", extra=JSON),), answers=3),
    Case("byte-by-byte", tuple(bytes([b]) for b in post(b'{"s":1}', extra=JSON))),
    Case("head-then-body", (post(b"abcdef")[:-6], b"abc", b"def")),
    Case("partial-head-then-eof", (WRITE[:20],), answers=0, half_close=True, lean=False),
    Case("partial-body-then-eof", (WRITE[:-3],), answers=0, half_close=True, lean=False),
    # What the lean path hands to aiohttp, with the bytes it has read
    Case(
        "write-then-api",
        (WRITE + b"GET /v1/subscribers HTTP/1.1\r\nHost: x\r\n\r\n",),
        answers=2,
        lean=False,
    ),
    Case("api", (b"GET /_emulator/clock HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",), lean=False),
    Case(
        "console", (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n",), lean=False
    ),
    Case("other-path", (post(b"a", path="/v1/auth", extra=JSON),), lean=False),
    Case("device-path-on-edge", (post(b"b", path="/data"),), lean=False),
    Case("query", (post(b"c", path="/?x=1"),), lean=False),
    Case("files-host", (post(b"d", path="/f.txt", host="harvest-files.soracom.io"),), lean=False),
    Case(
        "chunked",
        (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",),
        lean=False,
    ),
    Case("expect", (post(b"e", extra="Expect: 100-continue\r\n"),), answers=2, lean=False),
    Case("http-1.0", (post(b"f").replace(b"HTTP/1.1", b"HTTP/1.0"),), lean=False),
    Case("connection-close", (post(b"g", extra="Connection: close\r\n"),), lean=False),
    Case("leading-zero", (post(b"h").replace(b"Length: 1", b"Length: 01"),), lean=False),
    Case(
        "repeated-field",
        (post(b"i", extra="Content-Type: a/b\r\nContent-Type: c/d\r\n"),),
        lean=False,
    ),
    Case("no-host", (b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nj",), lean=False),
    Case("malformed", (b"POST / HTTP/1.1\r\nHost h\r\nContent-Length: 1\r\n\r\nk",), lean=False),
    Case(
        "obs-fold", (b"POST / HTTP/1.1\r\nHost: h\r\n x\r\nContent-Length: 1\r\n\r\nl",), lean=False
    ),
    Case("put", (b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nm",), lean=False),
]


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """One whole response (head and ``Content-Length`` body), or ``b""`` at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as cut:
        return cut.partial
    length = re.search(rb"\r\nContent-Length: (\d+)", head, re.IGNORECASE)
    body = await reader.readexactly(int(length[1])) if length else b""
    return DATE.sub(b"\r\nDate: -\r\n", head) + UUID.sub(b"<uuid>", body)


async def exchange(port: int, case: Case) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(case.source, 0))
    try:
        for chunk in case.chunks:
            writer.write(chunk)
            await writer.drain()
            if len(case.chunks) > 1:
                await asyncio.sleep(0.002)
        if case.half_close:
            writer.write_eof()
        answers = [await asyncio.wait_for(read_answer(reader), 10) for _ in range(case.answers)]
        if not case.answers:  # no answer: the server closes the connection
            answers.append(await asyncio.wait_for(reader.read(), 10))
        return answers
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@dataclass
class Running:
    app: web.Application
    port: int
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        async with self.session.request(method, url, json=body) as reply:
            assert reply.status < 300, (method, path, reply.status, await reply.text())
            return await reply.json() if reply.content_length else None

    async def text(self, path: str) -> str:
        async with self.session.get(f"http://127.0.0.1:{self.port}{path}") as reply:
            return await reply.text()

    async def token(self) -> dict[str, str]:
        login = await self.call(
            "POST",
            "/v1/auth",
            {"authKeyId": "keyId-harvest-emulator", "authKey": "secret-harvest-emulator"},
        )
        return {"X-Soracom-API-Key": login["apiKey"], "X-Soracom-Token": login["token"]}

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        url = f"http://127.0.0.1:{self.port}/v1{path}"
        headers = await self.token()
        async with self.session.request(method, url, json=body, headers=headers) as reply:
            assert reply.status < 300, (method, path, reply.status, await reply.text())
            return await reply.json() if reply.content_length else None


@contextlib.asynccontextmanager
async def emulator(
    tmp_path: Path, device_http: str, *, again: bool = False, **overrides: Any
) -> AsyncIterator[Running]:
    """An emulator as ``serve`` runs it, with a suspended SIM and one in a group that asks
    for the Unified format; ``again``: a restart on the same data, as it was."""
    settings = Settings(
        port=0, harvest_port=0, unified_port=0, data_dir=tmp_path / device_http,
        device_http=device_http, **overrides,
    )  # fmt: skip
    async with serving(settings) as (app, port), aiohttp.ClientSession() as session:
        running = Running(app, port, session)
        if again:
            yield running
            return
        await running.call("PUT", "/_emulator/clock", {"now": T0, "frozen": True})
        await running.call("POST", "/_emulator/sims", {"status": "suspended",
                                                       "sessionAddress": SUSPENDED_AT})  # fmt: skip
        unified = await running.call("POST", "/_emulator/sims", {"sessionAddress": UNIFIED_AT})
        group = await running.api("POST", "/groups", {"tags": {"name": "unified"}})
        group_id = group["groupId"]
        for namespace, key, value in (
            ("SoracomHarvest", "enabled", True),
            ("UnifiedEndpoint", "response", {"format": "Unified"}),
        ):
            path = f"/groups/{group_id}/configuration/{namespace}"
            await running.api("PUT", path, [{"key": key, "value": value}])
        await running.api(
            "POST", f"/subscribers/{unified['imsi']}/set_group", {"groupId": group_id}
        )
        yield running


async def same_answers(lean: Running, plain: Running, case: Case) -> None:
    """``case`` gets the same answers from both, and the lean path served it or handed it
    over as the case says."""
    path = lean.app[DEVICE_HTTP]
    handed_before, served_before = path.handed_over, path.served
    assert await exchange(lean.port, case) == await exchange(plain.port, case), case.name
    served, handed = path.served - served_before, path.handed_over - handed_before
    if case.lean:
        assert (handed, served) == (0, max(case.answers, 1)), case.name
    else:
        assert handed == 1, case.name


async def same_state(lean: Running, plain: Running) -> None:
    """Both stored, logged and counted the same."""
    for path in (
        f"/subscribers/{IMSI}/data?from=0&sort=asc&limit=1000",
        "/logs?limit=100",
    ):
        assert normal(await lean.api("GET", path)) == normal(await plain.api("GET", path)), path
    requests = [await e.call("GET", "/_emulator/requests?limit=1000") for e in (lean, plain)]
    for log in requests:
        for record in log:
            record.pop("latencyMs", None)
            record.pop("time", None)
    assert normal(requests[0]) == normal(requests[1])
    metrics = [await e.text("/metrics") for e in (lean, plain)]
    assert stored_writes(metrics[0]) == stored_writes(metrics[1])
    assert any(line.startswith("harvest_device_writes_stored") for line in metrics[0].splitlines())


def normal(value: Any) -> str:
    """``value`` as JSON, its random IDs replaced."""
    return UUID.sub(b"<uuid>", json.dumps(value, sort_keys=True).encode()).decode()


def stored_writes(exposition: str) -> list[str]:
    """The metrics of device writes (stored, refused, received), without timings."""
    return sorted(
        line
        for line in exposition.splitlines()
        if line.startswith(("harvest_device_", "harvest_bundle_", "harvest_entries_replaced"))
        and not line.startswith(("harvest_device_write_duration", "#"))
        and "_created" not in line
    )


async def test_the_lean_path_answers_as_aiohttp_does(tmp_path: Path) -> None:
    async with (
        emulator(tmp_path, "lean") as lean,
        emulator(tmp_path, "aiohttp") as plain,
    ):
        for case in CASES:
            await same_answers(lean, plain, case)
        await same_state(lean, plain)
        requests = json.dumps(await lean.call("GET", "/_emulator/requests?limit=1000"))
        assert requests.count('"protocol": "http"') > sum(c.lean for c in CASES)


#: A fault for each case, made on both emulators before it is sent.
FAULTED: list[tuple[dict[str, Any], Case]] = [
    ({"effect": "status", "status": 500}, Case("status", (WRITE,))),
    ({"effect": "status", "status": 429}, Case("status-429", (WRITE,))),
    ({"effect": "maintenance"}, Case("maintenance", (WRITE,))),
    ({"effect": "drop"}, Case("drop", (WRITE,), answers=0)),
    ({"effect": "delay", "delayMs": 30}, Case("delay", (WRITE,))),
    ({"effect": "duplicate"}, Case("duplicate", (post(b"dup"),))),
]
#: Without a fault, with the settings of this test.
SETTINGS_CASES = [
    Case("bare-refusal", (post(b"{", extra=JSON),)),
    Case(
        "bare-unified-refusal", (post(b"{", host="uni.soracom.io", extra=JSON),), source=UNIFIED_AT
    ),
    Case("bare-no-sim", (WRITE,), source=NOBODY_AT),
    Case("beam-signed", (post(b"x", extra="X-Soracom-IMSI: 001010000000001\r\n"),), lean=False),
    Case("unified-204", (post(b"6", host="uni.soracom.io"),), source=UNIFIED_AT),
]


async def test_faults_and_settings_answer_as_aiohttp_does(tmp_path: Path) -> None:
    overrides: dict[str, Any] = {
        "device_error_body": "empty", "beam_psk": "topsecret", "unified_harvest_status": 204,
    }  # fmt: skip
    async with (
        emulator(tmp_path, "lean", **overrides) as lean,
        emulator(tmp_path, "aiohttp", **overrides) as plain,
    ):
        for fault, case in FAULTED:
            for running in (lean, plain):
                rule = {"protocol": "http", "count": 1, **fault}
                await running.call("POST", "/_emulator/faults", rule)
            await same_answers(lean, plain, case)
        for case in SETTINGS_CASES:
            await same_answers(lean, plain, case)
        await same_state(lean, plain)


async def test_writes_from_many_connections_are_all_stored_and_answered(tmp_path: Path) -> None:
    async with emulator(tmp_path, "lean") as lean:
        await lean.call("PUT", "/_emulator/clock", {"frozen": False})
        cases = [Case(f"w{i}", (post(f'{{"n":{i}}}'.encode(), extra=JSON),)) for i in range(60)]
        answers = await asyncio.gather(*(exchange(lean.port, case) for case in cases))
        assert {answer[0].split(b"\r\n")[0] for answer in answers} == {b"HTTP/1.1 201 Created"}
        assert lean.app[DEVICE_HTTP].served == 60
        stored = await lean.api("GET", f"/subscribers/{IMSI}/data?from=0&limit=1000")
        # same-millisecond writes of one SIM replace one another (spec A1); none is lost
        log = await lean.call("GET", "/_emulator/requests?protocol=http&limit=1000")
        assert [r["status"] for r in log].count(201) == 60
        assert 1 <= len(stored) <= 60


async def test_shutdown_answers_the_writes_being_stored(tmp_path: Path) -> None:
    case = Case("slow", (WRITE,))
    async with emulator(tmp_path, "lean") as lean:
        await lean.call("POST", "/_emulator/faults", {"effect": "delay", "delayMs": 300})
        answer = asyncio.ensure_future(exchange(lean.port, case))
        for _ in range(1000):  # until the write is being stored (its delay is 300 ms)
            if lean.app[DEVICE_HTTP].served:
                break
            await asyncio.sleep(0.01)
    # the server has stopped: the write was answered, and stored
    assert (await answer)[0].startswith(b"HTTP/1.1 201 Created")
    async with emulator(tmp_path, "lean", again=True) as again:
        stored = await again.api("GET", f"/subscribers/{IMSI}/data?from=0&to={T0 + 1}")
        assert [entry["content"] for entry in stored] == ['{"temp":21.5}']


@pytest.mark.parametrize("writes", [1, 2])
async def test_a_client_that_shuts_its_side_after_writing_is_answered(
    tmp_path: Path, writes: int
) -> None:
    """A device that sends its request and shuts its sending side (``shutdown(SHUT_WR)``, as
    some small stacks and ``nc -N`` do) gets its answers before the connection closes, as from
    an HTTP server such as nginx. Through aiohttp's application the connection is closed at
    the EOF without an answer, though the write is stored (docs/device-writes.md)."""
    bodies = [f'{{"n":{n}}}'.encode() for n in range(writes)]
    case = Case("eof", (b"".join(post(b, extra=JSON) for b in bodies),), answers=writes + 1,
                half_close=True)  # fmt: skip
    async with emulator(tmp_path, "lean") as lean:
        await lean.call("PUT", "/_emulator/clock", {"frozen": False})
        *answers, end = await exchange(lean.port, case)
        assert [a.split(b"\r\n")[0] for a in answers] == [b"HTTP/1.1 201 Created"] * writes
        assert end == b""  # then closed
        stored = await lean.api("GET", f"/subscribers/{IMSI}/data?from=0&limit=10&sort=asc")
        assert [entry["content"] for entry in stored] == [b.decode() for b in bodies]
    async with emulator(tmp_path, "aiohttp") as plain:
        await plain.call("PUT", "/_emulator/clock", {"frozen": False})
        assert await exchange(plain.port, case) == [b""] * (writes + 1)
        await asyncio.sleep(0.2)
        log = await plain.call("GET", "/_emulator/requests?protocol=http&limit=10")
        assert [r["status"] for r in log] == [201]
