"""Switches for the emulator's choices where the real service is undocumented (issue 8, item 8;
docs/fidelity.md): each default, and the other answer its setting gives."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Emulator
from tests.gateway.test_raw_listeners import udp_exchange
from tests.gateway.test_unified import UNIFIED_HOST, harvest_off, set_format

IMSI = "001010000000001"


async def contents(emulator: Emulator) -> list[tuple[str, str]]:
    api = await emulator.api()
    reply = await api.get(f"/v1/subscribers/{IMSI}/data")
    return [(entry["contentType"], entry["content"]) for entry in reply.json]


async def test_invalid_json_is_refused_by_default(emulator: Emulator) -> None:
    status, body = await emulator.device().send("{broken", "application/json")
    assert (status, json.loads(body)["code"]) == (400, "HEM4006")
    assert await contents(emulator) == []


@pytest.mark.settings(invalid_json="store")
async def test_invalid_json_can_be_stored_as_sent(emulator: Emulator) -> None:
    assert (await emulator.device().send("{broken", "application/json"))[0] == 201
    assert await contents(emulator) == [("application/json", "{broken")]


@pytest.mark.settings(invalid_json="store")
async def test_invalid_json_that_is_not_text_is_stored_as_binary(emulator: Emulator) -> None:
    assert (await emulator.device().send(b"\xff\xfe", "application/json"))[0] == 201
    assert await contents(emulator) == [("application/json", '{"payload":"//4="}')]


@pytest.mark.settings(invalid_json="store")
async def test_json_nested_too_deep_to_parse_is_stored_as_sent(emulator: Emulator) -> None:
    # Too deep for Python's parser (RecursionError, not ValueError): stored as its text like
    # any JSON that does not parse, not failed when the writer looks for its keys.
    deep = "[" * 1000
    assert (await emulator.device().send(deep, "application/json"))[0] == 201
    assert await contents(emulator) == [("application/json", deep)]


async def test_device_refusals_carry_a_json_body_by_default(emulator: Emulator) -> None:
    await harvest_off(emulator, await set_format(emulator, None))
    status, body = await emulator.device().send('{"a":1}')
    assert (status, json.loads(body)["code"]) == (400, "HEM4001")


@pytest.mark.settings(device_error_body="empty")
async def test_device_refusals_can_be_the_status_alone(emulator: Emulator) -> None:
    group_id = await set_format(emulator, "Unified")
    assert await emulator.device().send("{broken", "application/json") == (400, b"")
    async with emulator.device().session.get(emulator.base_url + "/") as reply:
        assert (reply.status, await reply.read()) == (405, b"")
        assert reply.headers["Allow"] == "POST"
    await harvest_off(emulator, group_id)
    status, body = await emulator.device().send('{"a":1}', headers=UNIFIED_HOST)
    assert status == 207
    assert json.loads(body)["detail"]["harvest"] == {"statusCode": 400, "body": ""}
    # the API's errors keep SORACOM's body: this is about device answers only
    api = await emulator.api()
    assert (await api.get("/v1/subscribers/nope")).json["code"] == "HEM2001"


async def unified_statuses(emulator: Emulator) -> tuple[int, int]:
    await set_format(emulator, "Unified")
    status, body = await emulator.device().send('{"a":1}', headers=UNIFIED_HOST)
    assert status == 200
    http = json.loads(body)["detail"]["harvest"]["statusCode"]
    [raw] = await udp_exchange(emulator, [b"x"], endpoint="unified")
    udp = json.loads(raw)["body"]["detail"]["harvest"]["statusCode"]
    return http, udp


async def test_harvest_answers_201_inside_a_unified_reply_by_default(emulator: Emulator) -> None:
    assert await unified_statuses(emulator) == (201, 201)


@pytest.mark.settings(unified_harvest_status=204)
async def test_or_204_as_soracoms_documentation_example_shows(emulator: Emulator) -> None:
    assert await unified_statuses(emulator) == (204, 204)
