"""Overwrites are visible (issue 9, item 7): the real service keys an entry on (resource, time in
ms), so a second write at the same millisecond replaces the first and both get ``201`` (spec
A1). The emulator keeps that rule and counts and marks every replacement."""

from __future__ import annotations

import pytest

from tests.conftest import Emulator
from tests.gateway.test_raw_listeners import tcp_exchange, udp_exchange
from tests.harvest.test_metrics import scrape, value

IMSI = "001010000000001"
T0 = 1_800_000_000_000


async def send_twice(emulator: Emulator, protocol: str) -> list[bytes]:
    """Two writes of the default SIM in one frozen millisecond."""
    if protocol == "udp":
        return await udp_exchange(emulator, [b"first", b"second"])
    if protocol == "tcp":
        return await tcp_exchange(emulator, [b"first", b"second"])
    device = emulator.device()
    return [str((await device.send(body, "text/plain"))[0]).encode() for body in ("a", "b")]


@pytest.mark.parametrize("protocol", ["http", "tcp", "udp"])
async def test_a_second_write_in_the_same_millisecond_is_counted_and_marked(
    emulator: Emulator, protocol: str
) -> None:
    await emulator.control("PUT", "/clock", {"now": T0, "frozen": True})
    assert await send_twice(emulator, protocol) == [b"201", b"201"]  # as the real service

    api = await emulator.api()
    entries = (await api.get(f"/v1/subscribers/{IMSI}/data")).json
    assert len(entries) == 1  # the later write won
    samples, _ = await scrape(emulator)
    assert value(samples, "harvest_entries_replaced_total", protocol=protocol) == 1
    assert value(samples, "harvest_device_writes_stored_total", protocol=protocol) == 2
    _, logged = await emulator.control("GET", f"/requests?protocol={protocol}&limit=2")
    assert [entry["replaced"] for entry in logged] == [1, 0]  # newest first


async def test_distinct_timestamps_replace_nothing(emulator: Emulator) -> None:
    """How a device avoids it: one write per millisecond of entry time, e.g. its own
    X-Soracom-Timestamp (or batch elements with distinct times)."""
    await emulator.control("PUT", "/clock", {"now": T0, "frozen": True})
    device = emulator.device()
    for stamp in (T0 - 2, T0 - 1):
        status, _ = await device.send(
            "x", "text/plain", headers={"X-Soracom-Timestamp": str(stamp)}
        )
        assert status == 201
    samples, _ = await scrape(emulator)
    assert value(samples, "harvest_entries_replaced_total", protocol="http") == 0
