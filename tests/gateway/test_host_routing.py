"""Routing by host, as the real endpoints are separate hosts (issue 8, item 3; spec B1).

Every request to a device host is a device request whatever its path; the management API, the
control plane and ``/metrics`` answer only on other hosts; what is sent to
``harvest-files.soracom.io`` is a file, never a Harvest Data entry.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Emulator

IMSI = "001010000000001"
T0 = 1_800_000_000_000


async def entries(emulator: Emulator) -> list[dict[str, Any]]:
    api = await emulator.api()
    reply = await api.get(f"/v1/subscribers/{IMSI}/data", sort="asc", limit=100, **{"from": 0})
    assert reply.status == 200
    return list(reply.json)


async def freeze(emulator: Emulator) -> None:
    await emulator.control("PUT", "/clock", {"now": T0, "frozen": True})


@pytest.mark.parametrize(
    "host",
    [
        "harvest.soracom.io",
        "harvest.soracom.io:80",
        "harvest.soracom.io:8080",
        "Harvest.Soracom.IO",
    ],
)
@pytest.mark.parametrize(
    "path", ["/", "/v1/data", "/v1/auth", "/_emulator/reset", "/metrics", "/_unified/x"]
)
async def test_every_path_of_the_harvest_host_is_a_harvest_write(
    emulator: Emulator, host: str, path: str
) -> None:
    await freeze(emulator)
    headers = {"Host": host, "X-Soracom-Timestamp": str(T0 - 5)}
    status, body = await emulator.device().send('{"on":"harvest"}', path=path, headers=headers)
    assert (status, body) == (201, b"")
    [entry] = await entries(emulator)
    # Harvest's own endpoint honours X-Soracom-Timestamp, even under /_unified
    assert (entry["time"], entry["content"]) == (T0 - 5, '{"on":"harvest"}')


@pytest.mark.parametrize("host", ["harvest.soracom.io", "uni.soracom.io", "unified.soracom.io"])
async def test_other_methods_on_a_device_host_are_device_refusals(
    emulator: Emulator, host: str
) -> None:
    status, body = await emulator.device().send("", path="/v1/subscribers", method="GET",
                                                headers={"Host": host})  # fmt: skip
    assert (status, json.loads(body)["code"]) == (405, "HEM4008")


@pytest.mark.parametrize("host", ["uni.soracom.io", "unified.soracom.io:80"])
async def test_every_path_of_the_unified_host_is_a_unified_write(
    emulator: Emulator, host: str
) -> None:
    await freeze(emulator)
    headers = {"Host": host, "X-Soracom-Timestamp": str(T0 - 5)}
    status, _ = await emulator.device().send('{"on":"uni"}', path="/v1/auth", headers=headers)
    assert status == 201
    [entry] = await entries(emulator)
    assert entry["time"] == T0  # the Unified Endpoint does not honour X-Soracom-Timestamp


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("path", ["/logs/device.txt", "/v1/files", "/_emulator/reset", "/metrics"])
async def test_every_path_of_the_files_host_is_a_harvest_files_path(
    emulator: Emulator, method: str, path: str
) -> None:
    api = await emulator.api()
    group_id = (await api.get(f"/v1/subscribers/{IMSI}")).json["groupId"]
    body = [{"key": "enabled", "value": True}]
    await api.call(
        "PUT", f"/v1/groups/{group_id}/configuration/SoracomHarvestFiles", json_body=body
    )
    headers = {"Host": "harvest-files.soracom.io"}
    device = emulator.device()
    assert await device.send('{"a":1}', path=path, method=method, headers=headers) == (201, b"")
    assert await device.send("", path=path, method="GET", headers=headers) == (200, b'{"a":1}')
    # a file, never a Harvest Data entry
    assert await entries(emulator) == []
    _, quota = await emulator.control("GET", f"/sims/{IMSI}/quota")
    assert quota["used"] == 0


@pytest.mark.parametrize("host", [None, "api.soracom.io", "127.0.0.1", "emulator.internal:8080"])
async def test_the_api_and_control_plane_answer_on_every_other_host(
    emulator: Emulator, host: str | None
) -> None:
    headers = {} if host is None else {"Host": host}
    credentials = {"authKeyId": "keyId-harvest-emulator", "authKey": "secret-harvest-emulator"}
    async with emulator.client.post("/v1/auth", json=credentials, headers=headers) as reply:
        assert reply.status == 200
        assert "token" in await reply.json()
    async with emulator.client.get("/_emulator/clock", headers=headers) as reply:
        assert reply.status == 200
    async with emulator.client.get("/metrics", headers=headers) as reply:
        assert reply.status == 200
    status, _ = await emulator.device().send('{"a":1}', headers=headers)
    assert status == 201  # a device write to the edge's own address still works
