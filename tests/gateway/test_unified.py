"""The Unified Endpoint over HTTP (by Host and by path) and raw TCP/UDP (issue 3, item 4)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Emulator
from tests.gateway.test_raw_listeners import tcp_exchange, udp_exchange

IMSI = "001010000000001"


async def set_format(emulator: Emulator, fmt: str | None) -> str:
    api = await emulator.api()
    group_id: str = (await api.get(f"/v1/subscribers/{IMSI}")).json["groupId"]
    if fmt is not None:
        reply = await api.call(
            "PUT",
            f"/v1/groups/{group_id}/configuration/UnifiedEndpoint",
            json_body=[{"key": "response", "value": {"format": fmt}}],
        )
        assert reply.status == 200
    return group_id


async def harvest_off(emulator: Emulator, group_id: str) -> None:
    api = await emulator.api()
    await api.call(
        "PUT",
        f"/v1/groups/{group_id}/configuration/SoracomHarvest",
        json_body=[{"key": "enabled", "value": False}],
    )


UNIFIED_HOST = {"Host": "uni.soracom.io"}


@pytest.mark.parametrize("fmt", [None, "Auto", "SoracomHarvest"])
@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/", UNIFIED_HOST, id="host"),
        pytest.param("/", {"Host": "unified.soracom.io:80"}, id="long-host"),
        pytest.param("/_unified", {}, id="path"),
    ],
)
async def test_auto_and_harvest_formats_answer_as_harvest(
    emulator: Emulator, fmt: str | None, path: str, headers: dict[str, str]
) -> None:
    await set_format(emulator, fmt)
    status, body = await emulator.device().send('{"a":1}', path=path, headers=headers)
    assert (status, body) == (201, b"")


@pytest.mark.parametrize("spelling", ["Unified", "unified"])
async def test_the_unified_format_over_http(emulator: Emulator, spelling: str) -> None:
    group_id = await set_format(emulator, spelling)
    status, body = await emulator.device().send('{"a":1}', headers=UNIFIED_HOST)
    assert status == 200
    assert json.loads(body) == {
        "result": "ok",
        "detail": {"harvest": {"statusCode": 201, "body": ""}},
    }
    await harvest_off(emulator, group_id)
    status, body = await emulator.device().send('{"a":1}', path="/_unified")
    assert status == 207
    reply: dict[str, Any] = json.loads(body)
    assert reply["result"] == "ng"
    assert reply["detail"]["harvest"]["statusCode"] == 400
    assert json.loads(reply["detail"]["harvest"]["body"])["code"] == "HEM4001"


async def test_the_direct_endpoint_ignores_the_unified_format(emulator: Emulator) -> None:
    await set_format(emulator, "Unified")
    assert await emulator.device().send('{"a":1}') == (201, b"")


async def test_the_unified_endpoint_does_not_honour_x_soracom_timestamp(
    emulator: Emulator,
) -> None:
    await emulator.control("PUT", "/clock", {"now": 1_800_000_000_000, "frozen": True})
    headers = {**UNIFIED_HOST, "X-Soracom-Timestamp": "1700000000000"}
    assert (await emulator.device().send('{"a":1}', headers=headers))[0] == 201
    api = await emulator.api()
    [entry] = (await api.get(f"/v1/subscribers/{IMSI}/data", **{"from": 0})).json
    assert entry["time"] == 1_800_000_000_000


@pytest.mark.parametrize("send", [tcp_exchange, udp_exchange], ids=["tcp", "udp"])
async def test_the_unified_port_answers_in_the_groups_format(emulator: Emulator, send: Any) -> None:
    assert await send(emulator, [b"x"], endpoint="unified") == [b"201"]  # Auto
    group_id = await set_format(emulator, "Unified")
    [reply] = await send(emulator, [b"y"], endpoint="unified")
    assert json.loads(reply) == {
        "statusCode": 200,
        "body": {"result": "ok", "detail": {"harvest": {"statusCode": 201, "body": ""}}},
    }
    # the Harvest port keeps Harvest's own reply
    assert await send(emulator, [b"z"], endpoint="harvest") == [b"201"]
    await harvest_off(emulator, group_id)
    [reply] = await send(emulator, [b"w"], endpoint="unified")
    refused = json.loads(reply)
    assert refused["statusCode"] == 207
    assert refused["body"]["detail"]["harvest"]["statusCode"] == 400
    # three stored writes (two may share a millisecond and overwrite, so count writes)
    _, sim = await emulator.control("GET", f"/sims/{IMSI}")
    assert sim["writesToday"] == 3
