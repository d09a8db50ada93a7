"""SIM statuses on the device side (issue 3, item 5; air-global-terms Schedule 1(2))."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Emulator
from tests.gateway.test_raw_listeners import port, tcp_exchange, udp_exchange
from tests.harvest.test_metrics import scrape, value
from tests.support.clients import NO_REPLY

IMSI = "001010000000001"


async def send(emulator: Emulator, protocol: str, address: str) -> bytes:
    if protocol == "udp":
        return (await udp_exchange(emulator, [b"x"], source=address))[0]
    if protocol == "tcp":
        return (await tcp_exchange(emulator, [b"x"], source=address))[0]
    status, _ = await emulator.device(address).send('{"x":1}')
    return str(status).encode()


async def no_reply(emulator: Emulator, protocol: str, address: str) -> None:
    """What a device without a data session sees: no answer. HTTP and TCP connections are
    closed at once, UDP datagrams vanish."""
    if protocol == "udp":
        with pytest.raises(TimeoutError):
            await udp_exchange(emulator, [b"x"], source=address, wait_s=0.5)
    elif protocol == "tcp":
        try:
            replies = await tcp_exchange(emulator, [b"x"], source=address)
        except ConnectionError:
            return  # reset before the message went out
        assert replies == [b""]  # closed, nothing sent back
    else:
        assert await emulator.device(address).send('{"x":1}') == (NO_REPLY, b"")


async def sessionless_sim(emulator: Emulator, status: str) -> dict[str, Any]:
    if status != "barred":
        return await emulator.new_sim(status=status)
    sim = await emulator.new_sim()
    assert (await emulator.control("POST", f"/sims/{sim['imsi']}/block"))[0] == 200
    return sim


REASONS = {
    "inactive": "HEM4007",
    "suspended": "HEM4007",
    "terminated": "HEM4007",
    "barred": "HEM4009",
}


@pytest.mark.parametrize("protocol", ["http", "tcp", "udp"])
@pytest.mark.parametrize("status", list(REASONS))
async def test_a_sim_without_a_data_session_gets_no_reply_on_any_protocol(
    emulator: Emulator, protocol: str, status: str
) -> None:
    """The default (spec B12): as on the real network, the device hears nothing back; the
    reason is in GET /v1/logs, the request log and the metrics."""
    sim = await sessionless_sim(emulator, status)
    await no_reply(emulator, protocol, sim["sessionAddress"])
    api = await emulator.api()
    assert (await api.get(f"/v1/subscribers/{sim['imsi']}/data")).json == []
    [entry] = (await api.get("/v1/logs", resource_id=sim["imsi"])).json
    assert entry["body"]["code"] == REASONS[status]
    assert entry["body"]["protocol"] == protocol
    _, logged = await emulator.control("GET", f"/requests?imsi={sim['imsi']}&protocol={protocol}")
    assert [(r["status"], r["reason"]) for r in logged] == [(0, REASONS[status])]
    session = (await api.get(f"/v1/subscribers/{sim['imsi']}")).json["sessionStatus"]
    assert session["online"] is False
    assert "ueIpAddress" not in session
    samples, _ = await scrape(emulator)
    refused = value(
        samples, "harvest_device_writes_refused_total", protocol=protocol, reason=REASONS[status]
    )
    assert refused == 1


async def test_the_api_still_answers_from_a_sessionless_sims_address(emulator: Emulator) -> None:
    """The default SIM's address is also where a local test suite calls the API from."""
    await emulator.control("POST", f"/sims/{IMSI}/block")
    await no_reply(emulator, "http", "127.0.0.1")
    api = await emulator.api()
    assert (await api.get(f"/v1/subscribers/{IMSI}")).status == 200


async def test_a_tcp_connection_is_cut_when_its_sim_loses_its_session(emulator: Emulator) -> None:
    sim = await emulator.new_sim()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port(emulator, "harvest"), local_addr=(sim["sessionAddress"], 0)
    )
    try:
        writer.write(b"one")
        assert await asyncio.wait_for(reader.read(16), 5) == b"201"
        await emulator.api()
        status, _ = await emulator.control("POST", f"/sims/{sim['imsi']}/block")
        assert status == 200
        writer.write(b"two")
        assert await asyncio.wait_for(reader.read(16), 5) == b""  # closed, no reply
    finally:
        writer.close()


@pytest.mark.settings(sessionless_sims="refuse")
@pytest.mark.parametrize("protocol", ["http", "tcp", "udp"])
@pytest.mark.parametrize("status", list(REASONS))
async def test_a_setting_answers_them_403_instead(
    emulator: Emulator, protocol: str, status: str
) -> None:
    sim = await sessionless_sim(emulator, status)
    assert await send(emulator, protocol, sim["sessionAddress"]) == b"403"
    api = await emulator.api()
    assert (await api.get(f"/v1/subscribers/{sim['imsi']}/data")).json == []
    [entry] = (await api.get("/v1/logs", resource_id=sim["imsi"])).json
    assert entry["body"]["code"] == REASONS[status]
    assert entry["body"]["protocol"] == protocol
    if status != "barred":
        assert status in entry["body"]["message"]


@pytest.mark.parametrize("protocol", ["http", "tcp", "udp"])
async def test_service_level_refusals_keep_their_status(emulator: Emulator, protocol: str) -> None:
    """Harvest off is the service's answer, not the network's: the device hears 400."""
    api = await emulator.api()
    group_id = (await api.get(f"/v1/subscribers/{IMSI}")).json["groupId"]
    body = [{"key": "enabled", "value": False}]
    reply = await api.call(
        "PUT", f"/v1/groups/{group_id}/configuration/SoracomHarvest", json_body=body
    )
    assert reply.status == 200
    assert await send(emulator, protocol, "127.0.0.1") == b"400"


@pytest.mark.parametrize("status", ["ready", "standby"])
async def test_data_in_ready_or_standby_makes_the_sim_active(
    emulator: Emulator, status: str
) -> None:
    sim = await emulator.new_sim(status=status)
    assert await send(emulator, "udp", sim["sessionAddress"]) == b"201"
    api = await emulator.api()
    assert (await api.get(f"/v1/subscribers/{sim['imsi']}")).json["status"] == "active"


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        pytest.param("GET", {}, id="another-method"),
        pytest.param("POST", {"X-Soracom-Timestamp": "abc"}, id="bad-timestamp"),
        pytest.param("PUT", {"Host": "harvest-files.soracom.io"}, id="files-host"),
    ],
)
async def test_nothing_a_sessionless_sim_sends_gets_an_answer(
    emulator: Emulator, method: str, headers: dict[str, str]
) -> None:
    """Found by the device fuzzer: before any other check answered (405, 400, or Harvest
    Files'), the network would not have carried the request at all."""
    sim = await sessionless_sim(emulator, "suspended")
    device = emulator.device(sim["sessionAddress"])
    assert await device.send('{"x":1}', method=method, headers=headers) == (NO_REPLY, b"")
    _, logged = await emulator.control("GET", f"/requests?imsi={sim['imsi']}")
    # (aiohttp's client retries an idempotent request once when the server hangs up)
    assert {(r["status"], r["reason"]) for r in logged} == {(0, "HEM4007")}
