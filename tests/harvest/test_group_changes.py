"""Group settings take effect at once, even when every change falls in one frozen millisecond
(issue 8, item 1).

Each namespace and key the ingest reads is set, used, changed, used, removed and used again,
with the emulator clock frozen, through real sockets: a cache keyed on the group's modification
time would serve the first version to every later write.
"""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Emulator
from tests.gateway.test_raw_listeners import udp_exchange
from tests.support.clients import ApiClient

IMSI = "001010000000001"
T0 = 1_800_000_000_000
ISO = {"type": "jsonpointer", "value": "/time", "format": "iso-8601"}
UNIX_MS = {"type": "jsonpointer", "value": "/t", "format": "unixtime-milliseconds"}


class Group:
    """The default SIM's group, changed through the SORACOM API."""

    def __init__(self, api: ApiClient, group_id: str) -> None:
        self.api = api
        self.path = f"/v1/groups/{group_id}/configuration"

    @classmethod
    async def of_default_sim(cls, emulator: Emulator) -> Group:
        await emulator.control("PUT", "/clock", {"now": T0, "frozen": True})
        api = await emulator.api()  # after the clock moved: a token lives 24 h of its time
        return cls(api, (await api.get(f"/v1/subscribers/{IMSI}")).json["groupId"])

    async def put(self, namespace: str, **values: Any) -> None:
        body = [{"key": key, "value": value} for key, value in values.items()]
        reply = await self.api.call("PUT", f"{self.path}/{namespace}", json_body=body)
        assert reply.status == 200, reply.raw

    async def remove(self, namespace: str, key: str | None = None) -> None:
        path = f"{self.path}/{namespace}" + ("" if key is None else f"/{key}")
        reply = await self.api.call("DELETE", path)
        assert reply.status == 204, reply.raw

    async def entries(self) -> list[dict[str, Any]]:
        reply = await self.api.get(f"/v1/subscribers/{IMSI}/data", sort="asc", limit=1000)
        assert reply.status == 200
        return list(reply.json)

    async def clear_data(self, emulator: Emulator) -> None:
        status, _ = await emulator.control("POST", "/reset", {"imsi": IMSI})
        assert status == 200


async def send(emulator: Emulator, body: str, content_type: str = "application/json") -> int:
    status, _ = await emulator.device().send(body, content_type)
    return status


async def test_harvest_switched_off_and_on_in_one_millisecond(emulator: Emulator) -> None:
    group = await Group.of_default_sim(emulator)
    assert await send(emulator, '{"n":1}') == 201
    await group.put("SoracomHarvest", enabled=False)
    assert await send(emulator, '{"n":2}') == 400
    await group.put("SoracomHarvest", enabled=True)
    assert await send(emulator, '{"n":3}') == 201
    await group.remove("SoracomHarvest")
    assert await send(emulator, '{"n":4}') == 400
    await group.put("SoracomHarvest", enabled=True)
    assert await send(emulator, '{"n":5}') == 201


async def test_custom_timestamp_set_changed_and_removed(emulator: Emulator) -> None:
    group = await Group.of_default_sim(emulator)
    await group.put("SoracomHarvest", enabled=True, customTimestamp=ISO)
    assert await send(emulator, "plain text", "text/plain") == 400  # no timestamp in it
    assert await send(emulator, '{"time":"2027-01-15T07:00:00Z","t":1}') == 201  # T0 - 1 h
    await group.put("SoracomHarvest", customTimestamp=UNIX_MS)
    assert await send(emulator, '{"t":1799990000000}') == 201
    await group.remove("SoracomHarvest", "customTimestamp")
    assert await send(emulator, "plain text", "text/plain") == 201
    times = [entry["time"] for entry in await group.entries()]
    assert times == [1_799_990_000_000, T0 - 3_600_000, T0]


async def test_batch_write_set_changed_and_removed(emulator: Emulator) -> None:
    group = await Group.of_default_sim(emulator)
    batch = {"enabled": True, "pointer": "/a"}
    await group.put("SoracomHarvest", customTimestamp=UNIX_MS, batchWrite=batch)
    body = json.dumps({"a": [{"t": T0 - 2}, {"t": T0 - 1}], "b": [{"t": T0 - 5}]})
    assert await send(emulator, body) == 201
    assert [e["time"] for e in await group.entries()] == [T0 - 2, T0 - 1]

    await group.clear_data(emulator)
    await group.put("SoracomHarvest", batchWrite={"enabled": True, "pointer": "/b"})
    assert await send(emulator, body) == 201
    assert [e["time"] for e in await group.entries()] == [T0 - 5]

    await group.clear_data(emulator)
    await group.remove("SoracomHarvest", "batchWrite")
    await group.remove("SoracomHarvest", "customTimestamp")
    assert await send(emulator, body) == 201
    [whole] = await group.entries()
    assert json.loads(whole["content"]) == json.loads(body)


async def test_category_set_changed_and_removed(emulator: Emulator) -> None:
    group = await Group.of_default_sim(emulator)
    stamps = iter(range(T0 - 10, T0))

    async def write() -> None:
        headers = {"X-Soracom-Timestamp": str(next(stamps))}
        status, _ = await emulator.device().send('{"x":1}', headers=headers)
        assert status == 201

    await group.put("SoracomHarvest", category="first")
    await write()
    await group.put("SoracomHarvest", category="second")
    await write()
    await group.remove("SoracomHarvest", "category")
    await write()
    categories = [entry.get("category") for entry in await group.entries()]
    assert categories == ["first", "second", None]


async def test_binary_parser_set_changed_and_removed(emulator: Emulator) -> None:
    group = await Group.of_default_sim(emulator)
    await group.put("SoracomAir", binaryParserEnabled=True, binaryParserFormat="a:0:uint:8")
    assert await udp_exchange(emulator, [b"\x07\x09"]) == [b"201"]
    assert [e["content"] for e in await group.entries()] == ['{"a":7,"binaryParserEnabled":true}']

    await group.clear_data(emulator)
    await group.put("SoracomAir", binaryParserFormat="b:1:uint:8")
    assert await udp_exchange(emulator, [b"\x07\x09"]) == [b"201"]
    assert [e["content"] for e in await group.entries()] == ['{"b":9,"binaryParserEnabled":true}']

    await group.clear_data(emulator)
    await group.remove("SoracomAir")
    assert await udp_exchange(emulator, [b"\x07\x09"]) == [b"201"]
    assert [e["content"] for e in await group.entries()] == ['{"payload":"Bwk="}']


async def test_unified_endpoint_format_set_changed_and_removed(emulator: Emulator) -> None:
    group = await Group.of_default_sim(emulator)
    unified = {"Host": "uni.soracom.io"}

    async def reply() -> tuple[int, bytes]:
        return await emulator.device().send('{"u":1}', headers=unified)

    await group.put("UnifiedEndpoint", response={"format": "Unified"})
    status, body = await reply()
    assert (status, json.loads(body)["result"]) == (200, "ok")
    await group.put("UnifiedEndpoint", response={"format": "Auto"})
    assert await reply() == (201, b"")
    await group.put("UnifiedEndpoint", response={"format": "Unified"})
    assert (await reply())[0] == 200
    await group.remove("UnifiedEndpoint")
    assert await reply() == (201, b"")
