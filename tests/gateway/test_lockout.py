"""No lock-out (issue 9, item 5): one address cannot take the slots every device needs.

The reproducer: 1,024 idle connections from one local client took every slot of port 8514, and
every device then got ``503`` for the idle timeout (65 s), with a WARNING per refusal. Here
connections are capped per source below the listener's cap on the raw TCP listeners; a
connection that sends nothing is closed after the first-byte timeout; refusals are logged once
per source per interval, with a count.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.app import RAW_LISTENERS
from harvest.server import serving
from harvest.settings import Settings


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[tuple[web.Application, int]]:
    """The emulator as ``harvest-emulator serve`` runs it."""
    async with serving(settings) as running:
        yield running


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


@pytest.mark.settings(first_byte_timeout=0.3)
async def test_a_connection_that_sends_nothing_is_closed_after_the_first_byte_timeout(
    served: tuple[web.Application, int],
) -> None:
    app, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", app[RAW_LISTENERS].ports["harvest"])
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed, nothing said
    assert time.monotonic() - started >= 0.25
    writer.close()
    assert app[RAW_LISTENERS].tcp["harvest"].limits.open == 0


@pytest.mark.settings(first_byte_timeout=0.3)
async def test_a_device_that_sends_at_once_keeps_its_connection_between_messages(
    served: tuple[web.Application, int],
) -> None:
    """Firmware connects, sends at once, and then every few seconds: the first-byte timeout
    never cuts it; the idle timeout between messages (65 s, spec A1) is what applies."""
    app, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", app[RAW_LISTENERS].ports["harvest"])
    try:
        for _ in range(2):
            writer.write(b"x")
            assert await asyncio.wait_for(reader.read(100), 5) == b"201"
            await asyncio.sleep(1.0)  # over three first-byte timeouts of silence
    finally:
        writer.close()
