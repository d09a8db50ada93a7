"""HTTP keep-alive: connections are reused, and closed after the idle timeout (spec A1: 65 s by
default; shortened here so the test is quick)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from yarl import URL

from tests.support.process import running

pytestmark = pytest.mark.timeout(60)

REQUEST = (
    b"POST / HTTP/1.1\r\nHost: harvest.soracom.io\r\nContent-Type: application/json\r\n"
    b'Content-Length: 7\r\n\r\n{"a":1}'
)


async def read_response(reader: asyncio.StreamReader) -> bytes:
    status = await reader.readline()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    return status


async def test_an_idle_connection_is_closed_after_the_keepalive_timeout(tmp_path: Path) -> None:
    args = ["--port", "0", "--data-dir", str(tmp_path), "--keepalive-timeout", "1"]
    with running(args) as process:
        url = URL(process.base_url)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            for _ in range(2):  # kept alive between requests
                writer.write(REQUEST)
                await writer.drain()
                assert (await read_response(reader)).startswith(b"HTTP/1.1 201")
            started = time.monotonic()
            assert await asyncio.wait_for(reader.read(), timeout=10) == b""  # closed by server
            idle = time.monotonic() - started
            assert 0.5 <= idle < 5, idle
        finally:
            writer.close()
