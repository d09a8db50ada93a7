"""Device HTTP writes on the edge port (issue 2, item 4; spec A1, B2, B5, B6)."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3

import pytest

from tests.conftest import Emulator

IMSI = "001010000000001"


async def entries(
    emulator: Emulator, params: dict[str, object] | None = None, imsi: str = IMSI
) -> list[dict[str, object]]:
    api = await emulator.api()
    reply = await api.get(f"/v1/subscribers/{imsi}/data", **(params or {}))
    assert reply.status == 200
    return list(reply.json)


async def test_json_write_answers_201_with_an_empty_body_and_reads_back(emulator: Emulator) -> None:
    status, body = await emulator.device().send('{"temp":21.5}')
    assert (status, body) == (201, b"")
    [entry] = await entries(emulator)
    assert entry["contentType"] == "application/json"
    assert entry["content"] == '{"temp":21.5}'  # a string, not an object (spec A1)
    assert entry["resourceType"] == "Subscriber"
    assert entry["resourceId"] == IMSI
    assert isinstance(entry["time"], int)


@pytest.mark.parametrize(
    ("content_type", "body", "stored_type", "stored"),
    [
        pytest.param(
            "application/json; charset=utf-8",
            b'{"a":[1,2]}',
            "application/json",
            '{"a":[1,2]}',
            id="json-with-charset",
        ),
        pytest.param("text/plain", "héllo".encode(), "text/plain", "héllo", id="text"),
        pytest.param(
            "application/octet-stream",
            b"\x00\x01\xff",
            "application/json",
            json.dumps(
                {"payload": base64.b64encode(b"\x00\x01\xff").decode()}, separators=(",", ":")
            ),
            id="binary",
        ),
        pytest.param(
            None,
            b"\x10\x20",
            "application/json",
            '{"payload":"ECA="}',
            id="no-content-type-is-binary",
        ),
        pytest.param(
            "text/plain",
            b"\xff\xfe",
            "application/json",
            '{"payload":"//4="}',
            id="text-that-is-not-utf8-is-binary",
        ),
    ],
)
async def test_content_types_are_stored_as_the_spec_says(
    emulator: Emulator, content_type: str | None, body: bytes, stored_type: str, stored: str
) -> None:
    status, _ = await emulator.device().send(body, content_type)
    assert status == 201
    [entry] = await entries(emulator)
    assert (entry["contentType"], entry["content"]) == (stored_type, stored)


async def test_invalid_json_sent_as_json_is_refused_and_nothing_is_stored(
    emulator: Emulator,
) -> None:
    status, body = await emulator.device().send("{not json")
    assert status == 400
    assert json.loads(body)["code"] == "HEM4006"
    assert await entries(emulator) == []


async def test_any_path_is_a_write(emulator: Emulator) -> None:
    status, _ = await emulator.device().send('{"x":1}', path="/some/device/path")
    assert status == 201
    assert len(await entries(emulator)) == 1


async def test_x_soracom_timestamp_sets_the_entry_time(emulator: Emulator) -> None:
    # an hour later by the emulator clock: the entry is well inside retention (40 days)
    await emulator.control("PUT", "/clock", {"now": 1700003600000, "frozen": True})
    status, _ = await emulator.device().send(
        '{"x":1}', headers={"X-Soracom-Timestamp": "1700000000123"}
    )
    assert status == 201
    [entry] = await entries(emulator, {"from": 0})
    assert entry["time"] == 1700000000123


async def test_a_bad_x_soracom_timestamp_is_400(emulator: Emulator) -> None:
    status, body = await emulator.device().send('{"x":1}', headers={"X-Soracom-Timestamp": "soon"})
    assert status == 400
    assert json.loads(body)["code"] == "HEM4005"
    assert await entries(emulator, {"from": 0}) == []


async def test_an_address_with_no_session_is_403_and_stores_nothing(emulator: Emulator) -> None:
    status, body = await emulator.device("127.0.0.77").send('{"x":1}')
    assert status == 403
    error = json.loads(body)
    assert error["code"] == "HEM4003"
    assert "127.0.0.77" in error["message"]


async def test_harvest_disabled_in_the_group_is_400(emulator: Emulator) -> None:
    api = await emulator.api()
    group_id = (await api.get(f"/v1/subscribers/{IMSI}")).json["groupId"]
    reply = await api.call(
        "PUT",
        f"/v1/groups/{group_id}/configuration/SoracomHarvest",
        json_body=[{"key": "enabled", "value": False}],
    )
    assert reply.status == 200
    status, body = await emulator.device().send('{"x":1}')
    assert (status, json.loads(body)["code"]) == (400, "HEM4001")
    assert await entries(emulator) == []


async def test_a_sim_with_no_group_is_400(emulator: Emulator) -> None:
    api = await emulator.api()
    assert (await api.call("POST", f"/v1/subscribers/{IMSI}/unset_group")).status == 200
    status, body = await emulator.device().send('{"x":1}')
    assert (status, json.loads(body)["code"]) == (400, "HEM4002")


@pytest.mark.settings(max_payload_bytes=16)
async def test_the_size_limit_is_inclusive_and_413_above_it(emulator: Emulator) -> None:
    device = emulator.device()
    assert (await device.send(b"x" * 16, "text/plain"))[0] == 201
    status, body = await device.send(b"x" * 17, "text/plain")
    assert (status, json.loads(body)["code"]) == (413, "HEM4004")
    assert len(await entries(emulator)) == 1


async def test_default_size_limit_is_1_kib(emulator: Emulator) -> None:
    device = emulator.device()
    assert (await device.send(b"y" * 1024, "text/plain"))[0] == 201
    assert (await device.send(b"y" * 1025, "text/plain"))[0] == 413
    # a body far over the limit is refused without being buffered whole
    assert (await device.send(b"z" * 5_000_000, "text/plain"))[0] == 413


async def test_a_ready_sim_becomes_active_on_its_first_write(emulator: Emulator) -> None:
    api = await emulator.api()
    assert (await api.get(f"/v1/subscribers/{IMSI}")).json["status"] == "ready"
    assert (await emulator.device().send('{"x":1}'))[0] == 201
    assert (await api.get(f"/v1/subscribers/{IMSI}")).json["status"] == "active"


async def test_a_second_write_in_the_same_millisecond_overwrites_and_is_counted(
    emulator: Emulator,
) -> None:
    await emulator.control("PUT", "/clock", {"now": 1_800_000_000_000, "frozen": True})
    device = emulator.device()
    assert (await device.send('{"n":1}'))[0] == 201
    assert (await device.send('{"n":2}'))[0] == 201
    [entry] = await entries(emulator)
    assert entry["content"] == '{"n":2}'
    assert entry["time"] == 1_800_000_000_000
    _, sim = await emulator.control("GET", f"/sims/{IMSI}")
    assert sim["writesToday"] == 2


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_other_methods_are_not_writes(emulator: Emulator, method: str) -> None:
    status, body = await emulator.device().send("x", "text/plain", method=method)
    assert status == 405
    assert json.loads(body)["code"] == "HEM4008"


async def test_a_201_means_the_entry_is_already_in_the_sqlite_file(emulator: Emulator) -> None:
    device = emulator.device()
    results = await asyncio.gather(*(device.send(f'{{"n":{i}}}') for i in range(50)))
    assert all(status == 201 for status, _ in results)
    # a separate connection to the file sees what was acknowledged, without the emulator's help
    path = emulator.settings.database_path
    assert path is not None
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT count(*) FROM entries").fetchone()
    # a frozen clock is not in use, but writes in one millisecond overwrite: count the keys
    assert 1 <= count <= 50
    _, sim = await emulator.control("GET", f"/sims/{IMSI}")
    assert sim["writesToday"] == 50


async def test_keep_alive_serves_many_writes_on_one_connection(emulator: Emulator) -> None:
    url = emulator.client.make_url("/")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        for i in range(3):
            body = f'{{"i":{i}}}'.encode()
            writer.write(
                b"POST / HTTP/1.1\r\nHost: harvest.soracom.io\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            status_line = await reader.readline()
            assert status_line.startswith(b"HTTP/1.1 201"), status_line
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("raw", ["²", str(10**30), "-5", "1e3"])
async def test_timestamps_that_are_not_int64_milliseconds_are_400(
    emulator: Emulator, raw: str
) -> None:
    status, body = await emulator.device().send('{"x":1}', headers={"X-Soracom-Timestamp": raw})
    assert (status, json.loads(body)["code"]) == (400, "HEM4005")


async def test_json_nested_too_deep_is_400_not_500(emulator: Emulator) -> None:
    status, body = await emulator.device().send("[" * 1000)
    assert (status, json.loads(body)["code"]) == (400, "HEM4006")
