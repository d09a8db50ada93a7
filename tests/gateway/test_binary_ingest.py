"""Binary payloads and the group's Binary Parser through every transport (issue 3, item 2)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Emulator
from tests.gateway.test_raw_listeners import contents, payload, tcp_exchange, udp_exchange

IMSI = "001010000000001"
T3_FORMAT = "flag:0:bool:7 temp:1:int:13:/10 humid:3:uint:8:/100 lat::float:32 long::float:32"
T3_INPUT = bytes.fromhex("8007F85F420EADFF430BBE86")
T3_OUTPUT = (
    '{"flag":true,"temp":25.5,"humid":0.95,"lat":35.669918060302734,'
    '"long":139.74423217773438,"binaryParserEnabled":true}'
)


async def configure_parser(emulator: Emulator, fmt: str, enabled: bool = True) -> None:
    api = await emulator.api()
    group_id = (await api.get(f"/v1/subscribers/{IMSI}")).json["groupId"]
    reply = await api.call(
        "PUT",
        f"/v1/groups/{group_id}/configuration/SoracomAir",
        json_body=[
            {"key": "binaryParserEnabled", "value": enabled},
            {"key": "binaryParserFormat", "value": fmt},
        ],
    )
    assert reply.status == 200


async def send_binary(emulator: Emulator, transport: str, body: bytes) -> bytes:
    if transport == "udp":
        return (await udp_exchange(emulator, [body]))[0]
    if transport == "tcp":
        return (await tcp_exchange(emulator, [body]))[0]
    status, _ = await emulator.device().send(body, "application/octet-stream")
    return str(status).encode()


@pytest.mark.parametrize("transport", ["udp", "tcp", "http"])
async def test_the_group_parser_turns_binary_into_json(emulator: Emulator, transport: str) -> None:
    await configure_parser(emulator, T3_FORMAT)
    assert await send_binary(emulator, transport, T3_INPUT) == b"201"
    api = await emulator.api()
    [entry] = (await api.get(f"/v1/subscribers/{IMSI}/data")).json
    assert entry["contentType"] == "application/json"
    assert entry["content"] == T3_OUTPUT


async def test_json_over_udp_passes_through_with_the_json_format(emulator: Emulator) -> None:
    await configure_parser(emulator, "@json")
    assert await send_binary(emulator, "udp", b'{"t":1}') == b"201"
    assert await contents(emulator) == ['{"t":1,"binaryParserEnabled":true}']


async def test_a_parser_that_is_off_stores_the_plain_payload(emulator: Emulator) -> None:
    await configure_parser(emulator, T3_FORMAT, enabled=False)
    assert await send_binary(emulator, "udp", T3_INPUT) == b"201"
    assert await contents(emulator) == [payload(T3_INPUT)]


@pytest.mark.parametrize(
    ("fmt", "body", "reason"),
    [
        pytest.param(T3_FORMAT, b"\x80", "needs bytes", id="short-payload"),
        pytest.param("@json", b"not json", "JSON", id="json-that-is-not"),
    ],
)
async def test_what_the_parser_cannot_read_is_stored_plain_and_logged(
    emulator: Emulator, fmt: str, body: bytes, reason: str
) -> None:
    await configure_parser(emulator, fmt)
    assert await send_binary(emulator, "udp", body) == b"201"
    assert await contents(emulator) == [payload(body)]
    api = await emulator.api()
    [entry] = (await api.get("/v1/logs", service="Air", resource_id=IMSI)).json
    assert entry["logLevel"] == "warning"
    assert reason.lower() in entry["body"]["message"].lower()
    assert entry["body"]["format"] == fmt


async def test_typed_http_bodies_are_not_parsed(emulator: Emulator) -> None:
    await configure_parser(emulator, "@json")
    status, _ = await emulator.device().send('{"plain":true}')
    assert status == 201
    assert await contents(emulator) == ['{"plain":true}']
    assert json.loads((await contents(emulator))[0]) == {"plain": True}


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        pytest.param(
            [
                {"key": "binaryParserEnabled", "value": True},
                {"key": "binaryParserFormat", "value": "x:0:double:64"},
            ],
            "unknown type",
            id="bad-format",
        ),
        pytest.param(
            [
                {"key": "binaryParserEnabled", "value": True},
                {"key": "binaryParserFormat", "value": "@button"},
            ],
            "unsupported predefined format",
            id="unknown-predefined",
        ),
    ],
)
async def test_a_format_that_cannot_work_is_refused_when_set(
    emulator: Emulator, values: list[dict[str, object]], fragment: str
) -> None:
    api = await emulator.api()
    group_id = (await api.get(f"/v1/subscribers/{IMSI}")).json["groupId"]
    reply = await api.call(
        "PUT", f"/v1/groups/{group_id}/configuration/SoracomAir", json_body=values
    )
    assert reply.status == 400
    assert fragment in reply.json["message"]
    assert "SoracomAir" not in (await api.get(f"/v1/groups/{group_id}")).json["configuration"]
