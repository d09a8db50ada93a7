"""No lock-out (issue 9, item 5): one address cannot take the slots every device needs.

The reproducer: 1,024 idle connections from one local client took every slot of port 8514, and
every device then got ``503`` for the idle timeout (65 s), with a WARNING per refusal. Here
connections are capped per source below the listener's cap, on the raw TCP listeners and on the
HTTP edge; a connection that sends nothing is closed after the first-byte timeout; refusals are
logged once per source per interval, with a count.

The HTTP edge's guard lives in ``harvest.server.serving`` (the aiohttp test client of the other
tests has its own listener), so the HTTP tests start the emulator through it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from gateway.app import RAW_LISTENERS
from harvest.edge import EDGE_GUARD
from harvest.server import ensure_open_files, open_files_needed, serving
from harvest.settings import Settings
from tests.gateway.test_raw_listeners import UdpClient
from tests.support.clients import device_session

#: The issue's figure, and then some: more than the listener's whole cap, from one address.
HELD = 2000
#: The flooding client: 127.0.0.1, the address of the default SIM, the API and the control plane.
FLOODER = "127.0.0.1"
#: Readers go through another loopback address, whose share the flood does not touch.
READER = "127.0.0.3"
COUNTED = re.compile(r": (\d+) more in the last")


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[tuple[web.Application, int]]:
    """The emulator as ``harvest-emulator serve`` runs it, HTTP edge guard included."""
    async with serving(settings) as running:
        yield running


def open_files_for(settings: Settings, clients: int) -> None:
    """Let this process hold ``clients`` client sockets beside what the emulator's caps need:
    the soft limit is raised up to the hard one (skip if even that is too low)."""
    needed = clients + open_files_needed(settings)
    allowed = ensure_open_files(needed)
    if allowed is not None and allowed < needed:
        pytest.skip(f"needs {needed} open files; the hard limit allows {allowed}")


async def hold(count: int, source: str, port: int) -> list[socket.socket]:
    """Open ``count`` connections from ``source`` that never send a byte, and keep them."""
    loop = asyncio.get_running_loop()
    held: list[socket.socket] = []

    async def one() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        held.append(sock)
        sock.bind((source, 0))
        await loop.sock_connect(sock, ("127.0.0.1", port))

    try:
        for start in range(0, count, 50):  # within the listen backlog (100)
            await asyncio.gather(*(one() for _ in range(min(50, count - start))))
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held


async def first_answer(port: int, source: str, data: bytes = b"") -> bytes:
    """What the emulator says first on a new connection from ``source`` after ``data``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        if data:
            writer.write(data)
        return await asyncio.wait_for(reader.read(200), 5)
    except ConnectionResetError:
        return b""  # refused while it was still sending
    finally:
        writer.close()


async def tcp_send(port: int, source: str, message: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(message)
        return await asyncio.wait_for(reader.read(100), 5)
    finally:
        writer.close()
        await writer.wait_closed()


async def udp_send(port: int, source: str, message: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        UdpClient, local_addr=(source, 0), remote_addr=("127.0.0.1", port)
    )
    try:
        transport.sendto(message)
        return await asyncio.wait_for(client.replies.get(), 5)
    finally:
        transport.close()


def refusal_lines(records: list[logging.LogRecord], listener: str) -> tuple[int, int]:
    """(refusals logged one by one, refusals only counted) for ``listener``."""
    lines = [r.getMessage() for r in records if r.getMessage().startswith(f"{listener}: refused")]
    counted = sum(int(m.group(1)) for line in lines if (m := COUNTED.search(line)))
    return sum(1 for line in lines if "refused a connection" in line), counted


@pytest.mark.slow
@pytest.mark.settings(memory=True)
async def test_idle_connections_from_one_address_lock_no_device_out(
    served: tuple[web.Application, int], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's reproducer, doubled: 2,000 idle connections from 127.0.0.1 to the Harvest
    TCP port and 2,000 to the HTTP edge; a device at its own address still writes over TCP,
    HTTP and UDP, and the refusals take a few lines with their counts."""
    open_files_for(settings, 2 * HELD + 64)
    app, http_port = served
    raw = app[RAW_LISTENERS]
    tcp_port = raw.ports["harvest"]
    async with aiohttp.ClientSession() as control:
        base = f"http://127.0.0.1:{http_port}"
        async with control.post(f"{base}/_emulator/sims", json={}) as reply:
            device = (await reply.json())["sessionAddress"]
    caplog.set_level(logging.WARNING)

    held = await hold(HELD, FLOODER, tcp_port) + await hold(HELD, FLOODER, http_port)
    try:
        # Connections are accepted in order: once one more is answered, all before it were.
        assert await first_answer(tcp_port, FLOODER) == b"503"
        assert (await first_answer(http_port, FLOODER)).startswith(b"HTTP/1.1 503")

        assert await tcp_send(tcp_port, device, b"over tcp") == b"201"
        async with (
            device_session(device) as session,
            session.post(f"http://127.0.0.1:{http_port}/", data=b"over http") as reply,
        ):
            assert reply.status == 201
        assert await udp_send(tcp_port, device, b"over udp") == b"201"

        tcp_limits, http_limits = raw.tcp["harvest"].limits, app[EDGE_GUARD].limits
        assert tcp_limits.held_by(FLOODER) == settings.tcp_max_connections_per_source
        assert http_limits.held_by(FLOODER) == settings.http_max_connections_per_source
        assert tcp_limits.refused == HELD + 1 - settings.tcp_max_connections_per_source
        assert http_limits.refused == HELD + 1 - settings.http_max_connections_per_source
    finally:
        for sock in held:
            sock.close()

    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(READER, 0))) as api,
        api.get(f"http://127.0.0.1:{http_port}/_emulator/requests?limit=10") as reply,
    ):
        seen = {(r["protocol"], r["status"]) for r in await reply.json() if r["peer"] == device}
    assert seen == {("tcp", 201), ("http", 201), ("udp", 201)}

    app[EDGE_GUARD].throttle.flush(everything=True)  # the counts, as at shutdown
    for name, limits in (("harvest-tcp", tcp_limits), ("http", http_limits)):
        logged, counted = refusal_lines(caplog.records, name)
        assert logged <= 3, name  # one per 10 s interval: the flood takes a few seconds
        assert logged + counted == limits.refused, name  # every refusal is in a line or a count


@pytest.mark.settings(tcp_max_connections=8, tcp_max_connections_per_source=3)
async def test_the_tcp_per_source_cap_refuses_only_that_source(
    served: tuple[web.Application, int],
) -> None:
    app, _ = served
    port = app[RAW_LISTENERS].ports["harvest"]
    held = await hold(3, "127.0.0.5", port)
    try:
        assert await first_answer(port, "127.0.0.5") == b"503"
        assert await tcp_send(port, "127.0.0.1", b"x") == b"201"  # the default SIM, elsewhere
        held.pop().close()
        limits = app[RAW_LISTENERS].tcp["harvest"].limits
        for _ in range(100):  # until the emulator has seen it close
            if limits.held_by("127.0.0.5") < 3:
                break
            await asyncio.sleep(0.02)
        assert await first_answer(port, "127.0.0.5", b"x") == b"403"  # let in: no such SIM
    finally:
        for sock in held:
            sock.close()


@pytest.mark.settings(tcp_max_connections=4, tcp_max_connections_per_source=2)
async def test_the_tcp_total_cap_holds_across_sources(
    served: tuple[web.Application, int],
) -> None:
    app, _ = served
    port = app[RAW_LISTENERS].ports["harvest"]
    held = await hold(2, "127.0.0.5", port) + await hold(2, "127.0.0.6", port)
    try:
        assert await first_answer(port, "127.0.0.7") == b"503"
        assert app[RAW_LISTENERS].tcp["harvest"].limits.open == 4
    finally:
        for sock in held:
            sock.close()


@pytest.mark.settings(http_max_connections_per_source=4)
async def test_the_http_per_source_cap_refuses_only_that_source(
    served: tuple[web.Application, int],
) -> None:
    app, port = served
    held = await hold(4, "127.0.0.5", port)
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"
    try:
        refused = await first_answer(port, "127.0.0.5")
        assert refused.startswith(b"HTTP/1.1 503")
        assert b"Retry-After: 1" in refused
        assert (await first_answer(port, "127.0.0.1", request)).startswith(b"HTTP/1.1 201")
        held.pop().close()
        for _ in range(100):
            if app[EDGE_GUARD].limits.held_by("127.0.0.5") < 4:
                break
            await asyncio.sleep(0.02)
        assert (await first_answer(port, "127.0.0.5", request)).startswith(b"HTTP/1.1 403")
    finally:
        for sock in held:
            sock.close()


@pytest.mark.settings(http_max_connections=3, http_max_connections_per_source=2)
async def test_the_http_total_cap_holds_across_sources(
    served: tuple[web.Application, int],
) -> None:
    app, port = served
    held = await hold(2, "127.0.0.5", port) + await hold(1, "127.0.0.6", port)
    try:
        assert (await first_answer(port, "127.0.0.7")).startswith(b"HTTP/1.1 503")
        assert app[EDGE_GUARD].limits.open == 3
    finally:
        for sock in held:
            sock.close()


@pytest.mark.settings(first_byte_timeout=0.3)
async def test_a_connection_that_sends_nothing_is_closed_after_the_first_byte_timeout(
    served: tuple[web.Application, int],
) -> None:
    app, http_port = served
    for port in (app[RAW_LISTENERS].ports["harvest"], http_port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed, nothing said
        assert time.monotonic() - started >= 0.25
        writer.close()
    assert app[RAW_LISTENERS].tcp["harvest"].limits.open == 0
    assert app[EDGE_GUARD].limits.open == 0


@pytest.mark.settings(first_byte_timeout=0.3)
async def test_a_device_that_sends_at_once_keeps_its_connection_between_messages(
    served: tuple[web.Application, int],
) -> None:
    """Firmware connects, sends at once, and then every few seconds: the first-byte timeout
    never cuts it; the idle timeout between messages (65 s, spec A1) is what applies."""
    app, http_port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", app[RAW_LISTENERS].ports["harvest"])
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"
    http_reader, http_writer = await asyncio.open_connection("127.0.0.1", http_port)
    try:
        for _ in range(2):
            writer.write(b"x")
            assert await asyncio.wait_for(reader.read(100), 5) == b"201"
            http_writer.write(request)
            assert (await asyncio.wait_for(http_reader.read(1000), 5)).startswith(b"HTTP/1.1 201")
            await asyncio.sleep(1.0)  # over three first-byte timeouts of silence
    finally:
        writer.close()
        http_writer.close()


@pytest.mark.settings(memory=True)
async def test_malformed_http_is_one_line_per_peer_never_a_traceback(
    served: tuple[web.Application, int], caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's reproducer: each unparseable request logged an aiohttp ERROR traceback."""
    app, port = served
    caplog.set_level(logging.DEBUG)
    garbage = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello
        b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ]
    sent = 0
    for round_ in range(40):
        answers = await asyncio.gather(
            *(first_answer(port, "127.0.0.9", g) for g in garbage * 5), return_exceptions=True
        )
        sent += len(answers)
        assert all(isinstance(a, bytes) for a in answers), answers[:3]
        if round_ == 0:
            assert any(isinstance(a, bytes) and a.startswith(b"HTTP/1.0 400") for a in answers)
    app[EDGE_GUARD].throttle.flush(everything=True)

    assert [r for r in caplog.records if r.exc_info] == []
    about = [r.getMessage() for r in caplog.records if "127.0.0.9" in r.getMessage()]
    malformed = [m for m in about if m.startswith("http: malformed request from")]
    assert 1 <= len(malformed) <= 3, about  # the first line of each 10 s window, and counts
    counted = sum(int(m.group(1)) for line in about if (m := COUNTED.search(line)))
    assert len(malformed) + counted <= sent
    assert len(malformed) + counted >= sent - 5 * len(garbage)  # a few may be cut short
    assert all(len(line) < 300 for line in about)


def test_the_open_file_limit_is_raised_to_what_the_caps_need(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past the soft open-file limit the kernel refuses connections before any cap can: the
    lock-out again, for everyone. Start-up raises it (never past the hard limit, never lower)."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = len(os.listdir("/proc/self/fd")) + 64 if os.path.isdir("/proc/self/fd") else 1024
    if hard != resource.RLIM_INFINITY and hard < low + 100:
        pytest.skip(f"the hard open-file limit ({hard}) leaves no room to test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        assert ensure_open_files(low + 100) == low + 100
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (low + 100, hard)
        assert ensure_open_files(low) == low + 100  # never lowered
        assert caplog.records == []
        if hard != resource.RLIM_INFINITY:
            assert ensure_open_files(hard + 1) == hard
            assert "connection caps need" in caplog.records[-1].getMessage()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
