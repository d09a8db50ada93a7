"""Harvest Files in snapshots (issue 13, item 5): an export carries every file and directory,
an import (into SQLite or memory) puts them back byte for byte, and a damaged file part is
refused before anything changes."""

from __future__ import annotations

from typing import Any

import pytest

from harvest.app import create_app
from harvest.settings import Settings
from tests.conftest import AiohttpClient, Emulator
from tests.harvest.files.helpers import api_download, api_put, device, enable_files, entries
from tests.harvest.test_snapshot import _get_snapshot, _put_snapshot, build, records_of_bytes

BIG = bytes(range(256)) * (3 * 4096 + 7)  # 3 MiB and a bit: four parts


async def listing(emulator: Emulator) -> list[dict[str, Any]]:
    api = await emulator.api()
    return await api.all_pages("/v1/files", scope="private", prefix="/", limit=100)


async def fill(emulator: Emulator) -> None:
    api = await emulator.api()
    await enable_files(api)
    await device(emulator, "PUT", "/dev/log.txt", "from the device", content_type="text/plain")
    await api_put(api, "/ota/big.bin", BIG, "application/octet-stream")
    await api_put(api, "/empty.txt", b"")
    await api_put(api, "/gone/x.txt", b"x")
    await api.call("DELETE", "/v1/files/private/gone/x.txt")  # an empty directory stays


@pytest.mark.parametrize("memory", [False, True], ids=["into-sqlite", "into-memory"])
async def test_files_round_trip_through_a_snapshot(
    emulator: Emulator, aiohttp_client: AiohttpClient, tmp_path: Any, memory: bool
) -> None:
    await fill(emulator)
    before = await listing(emulator)
    exported = await _get_snapshot(emulator)
    parts = [r for r in records_of_bytes(exported)[1:] if r[0] == "file"]
    assert [(r[2], r[3]) for r in parts if r[2] == "/ota/big.bin"] == [
        ("/ota/big.bin", n) for n in range(4)
    ]
    target = emulator
    if memory:
        settings = Settings(port=0, harvest_port=0, unified_port=0, memory=True)
        target = Emulator(await aiohttp_client(create_app(settings)), settings)
    else:
        await emulator.control("POST", "/reset")
        assert await listing(emulator) == []
    status, body = await _put_snapshot(target, exported)
    assert status == 200, body
    assert body["imported"]["counts"]["files"] == 6  # 4 files and the 2 directories left
    assert await listing(target) == before  # times and etags as they were
    api = await target.api()
    assert (await api_download(api, "/ota/big.bin"))[1] == BIG
    assert [e["filename"] for e in entries(await api.get("/v1/files/private//"))] == [
        "dev/",
        "empty.txt",
        "gone/",
        "ota/",
    ]
    await target.close()


async def test_an_import_replaces_the_files_there_were(emulator: Emulator) -> None:
    await fill(emulator)
    exported = await _get_snapshot(emulator)
    api = await emulator.api()
    await api_put(api, "/after/export.txt", b"later")
    assert (await _put_snapshot(emulator, exported))[0] == 200
    paths = [e["filePath"] for e in await listing(emulator)]
    assert "/after/export.txt" not in paths


async def test_a_damaged_file_part_is_refused_and_nothing_changes(emulator: Emulator) -> None:
    await fill(emulator)
    objects = records_of_bytes(await _get_snapshot(emulator))
    before = await listing(emulator)
    for record in objects[1:]:
        if record[0] == "file" and record[2] == "/ota/big.bin" and record[3] == 2:
            record[5] = b"\xff" + record[5][1:]  # one byte changed, checksum made right
    status, body = await _put_snapshot(emulator, build(objects))
    assert status == 400
    assert "does not match its etag" in body["message"]
    assert await listing(emulator) == before
