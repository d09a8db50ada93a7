"""``sessionStatus`` follows what the emulator sees (issue 12, item 6): online while the SIM sent
within ``session_idle_timeout`` (emulator clock) or holds a raw TCP connection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Emulator
from tests.gateway.test_dns import dns_port, udp_query
from tests.gateway.test_raw_listeners import port


async def session(emulator: Emulator, imsi: str, *, sims: bool = True) -> dict[str, Any]:
    """The subscriber's ``sessionStatus``, the same in ``listSims`` (``sims``: SORACOM's
    document has no ``suspended`` in the ``Sim`` schema, so those are read by IMSI only)."""
    api = await emulator.api()
    status: dict[str, Any] = (await api.get(f"/v1/subscribers/{imsi}")).json["sessionStatus"]
    if not sims:
        return status
    by_sim_list = (await api.get("/v1/sims")).json
    [same] = [s["sessionStatus"] for s in by_sim_list if s["sessionStatus"]["imsi"] == imsi]
    assert same == status
    return status


async def advance(emulator: Emulator, seconds: float) -> None:
    assert (await emulator.control("POST", "/clock/advance", {"seconds": seconds}))[0] == 200


async def test_a_sim_is_online_after_it_sends_and_offline_once_idle(emulator: Emulator) -> None:
    await emulator.control("PUT", "/clock", {"frozen": True})
    sim = await emulator.new_sim()
    before = await session(emulator, sim["imsi"])
    assert before["online"] is False
    assert "ueIpAddress" not in before
    assert (await emulator.device(sim["sessionAddress"]).send('{"a":1}'))[0] == 201
    sent_at = (await emulator.control("GET", "/clock"))[1]["now"]
    online = await session(emulator, sim["imsi"])
    assert (online["online"], online["ueIpAddress"]) == (True, sim["sessionAddress"])
    assert online["lastUpdatedAt"] == sent_at
    await advance(emulator, 299)
    assert (await session(emulator, sim["imsi"]))["online"] is True
    await advance(emulator, 2)
    idle = await session(emulator, sim["imsi"])
    assert idle["online"] is False
    assert idle["lastUpdatedAt"] == sent_at + 300_000  # when the idle window closed


async def test_a_held_tcp_connection_keeps_a_sim_online(emulator: Emulator) -> None:
    await emulator.control("PUT", "/clock", {"frozen": True})
    sim = await emulator.new_sim()
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", port(emulator), local_addr=(sim["sessionAddress"], 0)
    )
    try:
        await asyncio.sleep(0.05)
        await advance(emulator, 3600)  # silent for an hour, but connected
        assert (await session(emulator, sim["imsi"]))["online"] is True
    finally:
        writer.close()
        await writer.wait_closed()
    await asyncio.sleep(0.05)
    assert (await session(emulator, sim["imsi"]))["online"] is True  # idle time starts now
    await advance(emulator, 301)
    assert (await session(emulator, sim["imsi"]))["online"] is False


@pytest.mark.settings(ue_map="127.0.5.0/24=001010000000077", dns="127.0.0.1:0")
async def test_a_mapped_ues_address_is_the_one_it_sent_from(emulator: Emulator) -> None:
    await emulator.new_sim(imsi="001010000000077", sessionAddress="127.0.9.77")
    # a DNS query is traffic too, from the UE pool's address
    await udp_query("127.0.0.1", dns_port(emulator), "harvest.soracom.io", source="127.0.5.9")
    status = await session(emulator, "001010000000077")
    assert status["online"] is True
    assert status["ueIpAddress"] == "127.0.5.9"  # where it sent from, not its own address


async def test_a_suspended_sim_is_never_online(emulator: Emulator) -> None:
    sim = await emulator.new_sim()
    assert (await emulator.device(sim["sessionAddress"]).send('{"a":1}'))[0] == 201
    api = await emulator.api()
    assert (await api.call("POST", f"/v1/subscribers/{sim['imsi']}/suspend")).status == 200
    assert (await session(emulator, sim["imsi"], sims=False))["online"] is False


@pytest.mark.settings(session_status="address")
async def test_the_address_mode_reports_every_usable_sim_online(emulator: Emulator) -> None:
    status = await session(emulator, "001010000000001")
    assert (status["online"], status["ueIpAddress"]) == (True, "127.0.0.1")
