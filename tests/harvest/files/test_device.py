"""The device side of Harvest Files on ``harvest-files.soracom.io`` (issue 13, item 1): upload,
overwrite, download whole and by range, the default path, and the refusals."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.conftest import Emulator
from tests.gateway.test_beam_ingest import PSK, beam_headers
from tests.harvest.api_helpers import DEFAULT_IMSI, NOW, create_group, set_clock
from tests.harvest.files.helpers import device, enable_files, entries
from tests.support.clients import NO_REPLY

FIRMWARE = bytes(range(256)) * 40  # 10,240 bytes


async def test_a_device_uploads_overwrites_and_downloads_by_its_path(emulator: Emulator) -> None:
    await enable_files(await emulator.api())
    assert await device(emulator, "PUT", "/logs/boot.txt", "one", content_type="text/plain") == (
        201,
        b"",
    )
    assert await device(emulator, "GET", "/logs/boot.txt") == (200, b"one")
    # the same path again replaces it: 200, as the API answers an overwrite
    assert await device(emulator, "POST", "/logs/boot.txt", "two!", content_type="text/csv") == (
        200,
        b"",
    )
    async with emulator.device().session.get(
        emulator.base_url + "/logs/boot.txt", headers={"Host": "harvest-files.soracom.io"}
    ) as response:
        assert (response.status, await response.read()) == (200, b"two!")
        assert response.headers["Content-Type"] == "text/csv"
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["ETag"] == f'"{hashlib.md5(b"two!").hexdigest()}"'


async def test_head_gives_the_headers_of_the_file(emulator: Emulator) -> None:
    await enable_files(await emulator.api())
    await device(emulator, "PUT", "/fw.bin", FIRMWARE, content_type="application/octet-stream")
    async with emulator.device().session.head(
        emulator.base_url + "/fw.bin", headers={"Host": "harvest-files.soracom.io"}
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(FIRMWARE))
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert await response.read() == b""


@pytest.mark.parametrize(
    ("header", "status", "start", "end"),
    [
        pytest.param("bytes=0-1023", 206, 0, 1023, id="first-piece"),
        pytest.param("bytes=9216-", 206, 9216, 10239, id="open-ended"),
        pytest.param("bytes=-100", 206, 10140, 10239, id="suffix"),
        pytest.param("bytes=10000-99999", 206, 10000, 10239, id="past-the-end-clipped"),
        pytest.param("bytes=0-10,20-30", 200, 0, 10239, id="several-ignored"),
        pytest.param("items=0-1", 200, 0, 10239, id="other-unit-ignored"),
    ],
)
async def test_firmware_downloads_in_pieces_with_range(
    emulator: Emulator, header: str, status: int, start: int, end: int
) -> None:
    await enable_files(await emulator.api())
    await device(emulator, "PUT", "/fw.bin", FIRMWARE, content_type="application/octet-stream")
    async with emulator.device().session.get(
        emulator.base_url + "/fw.bin", headers={"Host": "harvest-files.soracom.io", "Range": header}
    ) as response:
        assert response.status == status
        assert await response.read() == FIRMWARE[start : end + 1]
        if status == 206:
            assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(FIRMWARE)}"


async def test_a_piece_past_the_end_is_416(emulator: Emulator) -> None:
    await enable_files(await emulator.api())
    await device(emulator, "PUT", "/fw.bin", FIRMWARE)
    async with emulator.device().session.get(
        emulator.base_url + "/fw.bin",
        headers={"Host": "harvest-files.soracom.io", "Range": "bytes=10240-"},
    ) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == "bytes */10240"
        assert json.loads(await response.read())["code"] == "HEM4018"


async def test_a_whole_firmware_image_reassembles_from_its_pieces(emulator: Emulator) -> None:
    await enable_files(await emulator.api())
    await device(emulator, "PUT", "/fw.bin", FIRMWARE)
    pieces = []
    for start in range(0, len(FIRMWARE), 4096):
        headers = {"Range": f"bytes={start}-{start + 4095}"}
        status, piece = await device(emulator, "GET", "/fw.bin", headers=headers)
        assert status == 206
        pieces.append(piece)
    assert b"".join(pieces) == FIRMWARE


async def test_no_path_stores_at_the_groups_default_path(emulator: Emulator) -> None:
    api = await emulator.api()
    await set_clock(emulator, NOW)
    await enable_files(api, defaultPath="/logs/:imsi/:time/log.txt/")
    assert await device(emulator, "PUT", "/", "boot ok") == (201, b"")
    # :imsi and :time expanded, the trailing / ignored (notes section 5.1)
    path = f"/logs/{DEFAULT_IMSI}/{NOW}/log.txt"
    assert await device(emulator, "GET", path) == (200, b"boot ok")


async def test_without_a_default_path_the_emulators_is_used(emulator: Emulator) -> None:
    await set_clock(emulator, NOW)
    await enable_files(await emulator.api())
    assert (await device(emulator, "POST", "", "x"))[0] == 201
    assert await device(emulator, "GET", f"/{DEFAULT_IMSI}/{NOW}") == (200, b"x")


async def test_a_default_path_not_starting_with_a_slash_is_404(emulator: Emulator) -> None:
    await enable_files(await emulator.api(), defaultPath="logs/:imsi")
    status, body = await device(emulator, "PUT", "/", "x")
    assert (status, json.loads(body)["code"]) == (404, "HEM4016")


async def test_files_must_be_enabled_on_the_sims_group(emulator: Emulator) -> None:
    # the first start's group has Harvest Data on, not Harvest Files
    status, body = await device(emulator, "PUT", "/a.txt", "x")
    assert (status, json.loads(body)["code"]) == (400, "HEM4015")
    status, body = await device(emulator, "GET", "/a.txt")
    assert (status, json.loads(body)["code"]) == (400, "HEM4015")


async def test_a_sim_without_a_group_is_refused(emulator: Emulator) -> None:
    sim = await emulator.new_sim(groupId=None)
    status, body = await device(emulator, "PUT", "/a.txt", "x", address=sim["sessionAddress"])
    assert (status, json.loads(body)["code"]) == (400, "HEM4002")


async def test_an_address_without_a_session_is_403(emulator: Emulator) -> None:
    status, body = await device(emulator, "PUT", "/a.txt", "x", address="127.0.0.99")
    assert (status, json.loads(body)["code"]) == (403, "HEM4003")


@pytest.mark.parametrize("method", ["PUT", "GET"])
async def test_a_sessionless_sim_gets_no_answer(emulator: Emulator, method: str) -> None:
    api = await emulator.api()
    group = await create_group(api, {"configuration": {"SoracomHarvestFiles": {"enabled": True}}})
    sim = await emulator.new_sim(status="suspended", groupId=group["groupId"])
    status, _ = await device(emulator, method, "/a.txt", "x", address=sim["sessionAddress"])
    assert status == NO_REPLY


@pytest.mark.settings(sessionless_sims="refuse")
async def test_a_sessionless_sim_is_refused_when_so_configured(emulator: Emulator) -> None:
    sim = await emulator.new_sim(status="suspended")
    status, body = await device(emulator, "PUT", "/a.txt", "x", address=sim["sessionAddress"])
    assert (status, json.loads(body)["code"]) == (403, "HEM4007")


@pytest.mark.settings(beam_psk=PSK)
async def test_a_beam_signed_upload_is_the_signed_sims(emulator: Emulator) -> None:
    api = await emulator.api()
    group = await create_group(api, {"configuration": {"SoracomHarvestFiles": {"enabled": True}}})
    sim = await emulator.new_sim(groupId=group["groupId"])
    await emulator.control("PUT", "/clock", {"now": 1608251959862 + 3_600_000, "frozen": True})
    status, _ = await device(
        emulator, "PUT", "/via-beam.txt", "b", headers=beam_headers(sim["imsi"])
    )
    assert status == 201  # from 127.0.0.1, whose SIM's group has Files off


async def test_other_methods_are_405_with_allow(emulator: Emulator) -> None:
    await enable_files(await emulator.api())
    async with emulator.device().session.delete(
        emulator.base_url + "/a.txt", headers={"Host": "harvest-files.soracom.io"}
    ) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, HEAD, PUT, POST"


async def test_a_missing_file_is_404(emulator: Emulator) -> None:
    await enable_files(await emulator.api())
    for path in ("/nothing.txt", "/"):
        status, body = await device(emulator, "GET", path)
        assert (status, json.loads(body)["code"]) == (404, "HEM4017")


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/" + "a" * 1024, id="1025-bytes"),
        pytest.param("/d" * 17 + "/f.txt", id="17-directories"),
    ],
)
async def test_paths_past_the_limits_are_400(emulator: Emulator, path: str) -> None:
    await enable_files(await emulator.api())
    status, body = await device(emulator, "PUT", path, "x")
    assert (status, json.loads(body)["code"]) == (400, "HEM1008")


async def test_the_limits_themselves_are_accepted(emulator: Emulator) -> None:
    await enable_files(await emulator.api())
    deepest = "/d" * 16 + "/f.txt"
    longest = "/" + "a" * 1023
    for path in (deepest, longest):
        assert (await device(emulator, "PUT", path, "x"))[0] == 201


@pytest.mark.settings(files_device_max_bytes=1000)
async def test_a_device_upload_over_the_limit_is_413_and_keeps_nothing(emulator: Emulator) -> None:
    api = await emulator.api()
    await enable_files(api)
    status, body = await device(emulator, "PUT", "/big.bin", b"x" * 1001)
    assert (status, json.loads(body)["code"]) == (413, "HEM4004")
    assert (await device(emulator, "PUT", "/ok.bin", b"x" * 1000))[0] == 201
    assert [e["filePath"] for e in entries(await api.get("/v1/files/private//"))] == ["/ok.bin"]


async def test_a_file_upload_is_never_a_harvest_data_entry(emulator: Emulator) -> None:
    api = await emulator.api()
    await enable_files(api)
    await device(emulator, "PUT", "/a.json", '{"a":1}', content_type="application/json")
    reply = await api.get(f"/v1/subscribers/{DEFAULT_IMSI}/data", **{"from": 0})
    assert reply.json == []
    _, quota = await emulator.control("GET", f"/sims/{DEFAULT_IMSI}/quota")
    assert quota["used"] == 0


async def test_device_requests_are_in_the_request_log(emulator: Emulator) -> None:
    await enable_files(await emulator.api())
    await device(emulator, "PUT", "/a.txt", "x")
    await device(emulator, "GET", "/missing.txt")
    _, logged = await emulator.control("GET", f"/requests?imsi={DEFAULT_IMSI}")
    assert [(r["status"], r["target"], r["reason"]) for r in logged][:2] == [
        (404, "/missing.txt", "HEM4017"),  # newest first
        (201, "/a.txt", None),
    ]
