"""Custom timestamp, batch write and category through the running emulator (issue 3, item 3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Emulator
from tests.gateway.test_raw_listeners import udp_exchange

IMSI = "001010000000001"
SORACOM_EXAMPLE = {
    "data": [
        {"time": "2025-03-17T09:00:00+09:00", "temperature": 10.5},
        {"time": "2025-03-18T09:00:00+09:00", "temperature": 9.4},
    ]
}


async def configure(emulator: Emulator, namespace: str, values: dict[str, Any]) -> None:
    api = await emulator.api()
    group_id = (await api.get(f"/v1/subscribers/{IMSI}")).json["groupId"]
    reply = await api.call(
        "PUT",
        f"/v1/groups/{group_id}/configuration/{namespace}",
        json_body=[{"key": k, "value": v} for k, v in values.items()],
    )
    assert reply.status == 200, reply.json


async def entries(emulator: Emulator, **params: Any) -> list[dict[str, Any]]:
    api = await emulator.api()
    reply = await api.get(f"/v1/subscribers/{IMSI}/data", sort="asc", limit=1000, **params)
    return list(reply.json)


TIMESTAMP = {"type": "jsonpointer", "value": "/time", "format": "iso-8601"}
DAY_MS = 86_400_000


async def clock_after(emulator: Emulator, time_ms: int) -> None:
    """Freeze the clock a day after ``time_ms``, so that entry is inside retention (40 days)."""
    await emulator.control("PUT", "/clock", {"now": time_ms + DAY_MS, "frozen": True})


async def test_the_custom_timestamp_comes_from_the_payload(emulator: Emulator) -> None:
    await configure(emulator, "SoracomHarvest", {"customTimestamp": TIMESTAMP})
    await clock_after(emulator, 1725280496789)
    status, _ = await emulator.device().send(
        '{"time":"2024-09-02T12:34:56.789Z","t":1}',
        headers={"X-Soracom-Timestamp": "1000"},  # the payload's time wins
    )
    assert status == 201
    [entry] = await entries(emulator, **{"from": 0})
    assert entry["time"] == 1725280496789


async def test_a_payload_without_its_timestamp_is_refused(emulator: Emulator) -> None:
    await configure(emulator, "SoracomHarvest", {"customTimestamp": TIMESTAMP})
    status, body = await emulator.device().send('{"t":1}')
    assert status == 400
    error = json.loads(body)
    assert error["code"] == "HEM4010"
    assert "/time" in error["message"]
    assert await entries(emulator, **{"from": 0}) == []


async def test_the_soracom_batch_example(emulator: Emulator) -> None:
    await configure(
        emulator,
        "SoracomHarvest",
        {"customTimestamp": TIMESTAMP, "batchWrite": {"enabled": True, "pointer": "/data"}},
    )
    await clock_after(emulator, 1742256000000)
    status, _ = await emulator.device().send(json.dumps(SORACOM_EXAMPLE))
    assert status == 201
    stored = await entries(emulator, **{"from": 0})
    assert [e["time"] for e in stored] == [1742169600000, 1742256000000]
    assert json.loads(stored[0]["content"]) == SORACOM_EXAMPLE["data"][0]
    _, sim = await emulator.control("GET", f"/sims/{IMSI}")
    assert sim["writesToday"] == 2  # each element is one write


@pytest.mark.settings(max_payload_bytes=4096)  # the size limit is per send, batch or not
@pytest.mark.parametrize(("count", "status"), [(100, 201), (101, 400)])
async def test_a_batch_holds_at_most_100_elements(
    emulator: Emulator, count: int, status: int
) -> None:
    await configure(
        emulator,
        "SoracomHarvest",
        {
            "customTimestamp": {
                "type": "jsonpointer",
                "value": "/t",
                "format": "unixtime-milliseconds",
            },
            "batchWrite": {"enabled": True, "pointer": ""},
        },
    )
    await emulator.control("PUT", "/clock", {"now": 2_000_000, "frozen": True})
    body = json.dumps([{"t": 1000 + i} for i in range(count)], separators=(",", ":"))
    api_status, _ = await emulator.device().send(body)
    assert api_status == status
    stored = await entries(emulator, **{"from": 0})
    assert len(stored) == (count if status == 201 else 0)
    _, sim = await emulator.control("GET", f"/sims/{IMSI}")
    assert sim["writesToday"] == len(stored)


async def test_category_is_stored_and_readable_by_category(emulator: Emulator) -> None:
    await configure(emulator, "SoracomHarvest", {"category": "weather"})
    assert (await emulator.device().send('{"t":1}'))[0] == 201
    [entry] = await entries(emulator)
    assert entry["category"] == "weather"
    api = await emulator.api()
    [by_category] = (await api.get("/v1/data/categories/weather")).json
    assert by_category["resourceId"] == IMSI
    assert (await api.get("/v1/data/categories/other")).json == []


async def test_options_apply_to_json_parsed_from_udp(emulator: Emulator) -> None:
    await configure(
        emulator, "SoracomAir", {"binaryParserEnabled": True, "binaryParserFormat": "@json"}
    )
    await configure(
        emulator,
        "SoracomHarvest",
        {"customTimestamp": {"type": "jsonpointer", "value": "/ts", "format": "unixtime-seconds"}},
    )
    await clock_after(emulator, 1_700_000_000_000)
    assert await udp_exchange(emulator, [b'{"ts":1700000000,"v":3}']) == [b"201"]
    [entry] = await entries(emulator, **{"from": 0})
    assert entry["time"] == 1_700_000_000_000


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(
            {"customTimestamp": {"type": "jsonpointer", "value": "time", "format": "iso-8601"}},
            id="pointer",
        ),
        pytest.param(
            {"customTimestamp": {"type": "jsonpointer", "value": "/t", "format": "fortnights"}},
            id="format",
        ),
        pytest.param({"batchWrite": {"enabled": True}}, id="batch-without-timestamp"),
    ],
)
async def test_options_that_cannot_work_are_refused_when_set(
    emulator: Emulator, values: dict[str, Any]
) -> None:
    api = await emulator.api()
    group_id = (await api.get(f"/v1/subscribers/{IMSI}")).json["groupId"]
    reply = await api.call(
        "PUT",
        f"/v1/groups/{group_id}/configuration/SoracomHarvest",
        json_body=[{"key": k, "value": v} for k, v in values.items()],
    )
    assert (reply.status, reply.json["code"]) == (400, "HEM1002")
    # nothing changed: devices still write
    assert (await emulator.device().send('{"t":1}'))[0] == 201
