"""One report per device write, made by the ingest service (issue 10, item 4): whatever the
transport, a stored write, a refusal and a refusal the transport made itself each give exactly
one request-log record and one latency observation, with the same byte count on every
protocol."""

from __future__ import annotations

import pytest

from tests.conftest import Emulator
from tests.gateway.test_raw_listeners import tcp_exchange, udp_exchange
from tests.harvest.test_metrics import scrape, value

IMSI = "001010000000001"


async def send(emulator: Emulator, protocol: str, body: bytes) -> bytes:
    if protocol == "udp":
        return (await udp_exchange(emulator, [body]))[0]
    if protocol == "tcp":
        return (await tcp_exchange(emulator, [body]))[0]
    status, _ = await emulator.device().send(body, "application/octet-stream")
    return str(status).encode()


async def records(emulator: Emulator, protocol: str) -> list[dict[str, object]]:
    _, logged = await emulator.control("GET", f"/requests?protocol={protocol}&limit=100")
    assert isinstance(logged, list)
    return logged


@pytest.mark.settings(max_payload_bytes=16)
@pytest.mark.parametrize("protocol", ["http", "tcp", "udp"])
async def test_each_write_is_reported_once_with_the_bytes_received(
    emulator: Emulator, protocol: str
) -> None:
    assert await send(emulator, protocol, b"hello") == b"201"
    assert await send(emulator, protocol, b"x" * 20) == b"413"

    logged = await records(emulator, protocol)
    assert [(r["status"], r["bytes"], r["imsi"]) for r in logged] == [
        (413, 20, IMSI),  # newest first
        (201, 5, IMSI),
    ]
    assert [r["reason"] for r in logged] == ["HEM4004", None]
    samples, _ = await scrape(emulator)
    assert value(samples, "harvest_device_write_duration_seconds_count", protocol=protocol) == 2


async def test_a_refusal_by_the_http_edge_is_reported_once(emulator: Emulator) -> None:
    """A malformed ``X-Soracom-Timestamp`` is refused before the ingest sees the write; the
    ingest still reports it (request log, refusal counter) exactly once."""
    device = emulator.device()
    status, _ = await device.send("1", "text/plain", headers={"X-Soracom-Timestamp": "soon"})
    assert status == 400
    status, _ = await device.send("1", "text/plain", method="GET")
    assert status == 405

    logged = await records(emulator, "http")
    assert [(r["status"], r["imsi"]) for r in logged] == [(405, IMSI), (400, IMSI)]
    samples, _ = await scrape(emulator)
    refused = [
        n for (name, labels), n in samples.items() if name == "harvest_device_writes_refused_total"
    ]
    assert sum(refused) == 2
