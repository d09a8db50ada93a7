"""SIM statuses on the device side (issue 3, item 5; air-global-terms Schedule 1(2))."""

from __future__ import annotations

import pytest

from tests.conftest import Emulator
from tests.gateway.test_raw_listeners import tcp_exchange, udp_exchange


async def send(emulator: Emulator, protocol: str, address: str) -> bytes:
    if protocol == "udp":
        return (await udp_exchange(emulator, [b"x"], source=address))[0]
    if protocol == "tcp":
        return (await tcp_exchange(emulator, [b"x"], source=address))[0]
    status, _ = await emulator.device(address).send('{"x":1}')
    return str(status).encode()


@pytest.mark.parametrize("protocol", ["http", "tcp", "udp"])
@pytest.mark.parametrize("status", ["inactive", "suspended", "terminated"])
async def test_sims_without_data_service_are_refused_on_every_protocol(
    emulator: Emulator, protocol: str, status: str
) -> None:
    sim = await emulator.new_sim(status=status)
    assert await send(emulator, protocol, sim["sessionAddress"]) == b"403"
    api = await emulator.api()
    assert (await api.get(f"/v1/subscribers/{sim['imsi']}/data")).json == []
    [entry] = (await api.get("/v1/logs", resource_id=sim["imsi"])).json
    assert entry["body"]["code"] == "HEM4007"
    assert status in entry["body"]["message"]
    assert entry["body"]["protocol"] == protocol


@pytest.mark.parametrize("status", ["ready", "standby"])
async def test_data_in_ready_or_standby_makes_the_sim_active(
    emulator: Emulator, status: str
) -> None:
    sim = await emulator.new_sim(status=status)
    assert await send(emulator, "udp", sim["sessionAddress"]) == b"201"
    api = await emulator.api()
    assert (await api.get(f"/v1/subscribers/{sim['imsi']}")).json["status"] == "active"
