"""Harvest Files in the usage ledger, the stats, the meter and the metrics; retention of 731
days by the emulator clock; reset (issue 13, items 4 and 5)."""

from __future__ import annotations

import pytest

from tests.conftest import Emulator
from tests.harvest.api_helpers import (
    DAY_MS,
    DEFAULT_IMSI,
    DEFAULT_OPERATOR,
    NOW,
    advance,
    set_clock,
)
from tests.harvest.files.helpers import api_download, api_put, device, enable_files, entries
from tests.harvest.test_metrics import scrape, value

OPERATOR_METER = f"/operators/{DEFAULT_OPERATOR}/meter"


async def test_uploads_downloads_and_stored_bytes_are_metered_and_charged_nothing(
    emulator: Emulator,
) -> None:
    await set_clock(emulator, NOW)
    api = await emulator.api()
    await enable_files(api)
    _, before = await emulator.control("GET", OPERATOR_METER)
    assert await device(emulator, "PUT", "/a.bin", b"x" * 300) == (201, b"")
    assert await device(emulator, "GET", "/a.bin") == (200, b"x" * 300)
    await api_put(api, "/b.bin", b"y" * 700)
    assert (await api_download(api, "/b.bin"))[1] == b"y" * 700
    await api.call("DELETE", "/v1/files/private/b.bin")
    _, meter = await emulator.control("GET", OPERATOR_METER)
    assert meter["harvestFiles"] == {
        "uploads": 2,
        "uploadedBytes": 1000,
        "downloads": 2,
        "downloadedBytes": 1000,
        "peakStoredBytes": 1000,  # both files, before the delete
        "charges": 0.0,
    }
    assert meter["charges"] == before["charges"]  # no Harvest Files fee in the seeds
    # the next day's peak starts from what is stored when it starts
    await advance(emulator, DAY_MS / 1000)
    await set_clock(emulator, NOW + 20 * DAY_MS)  # next month: a fresh meter
    await emulator.api()  # the token expired meanwhile; the control plane needs none
    _, later = await emulator.control("GET", OPERATOR_METER)
    assert later["harvestFiles"]["peakStoredBytes"] == 300
    assert later["harvestFiles"]["uploads"] == 0


async def test_a_sims_file_requests_are_in_its_stats(emulator: Emulator) -> None:
    await set_clock(emulator, NOW)
    api = await emulator.api()
    await enable_files(api)
    await device(emulator, "PUT", "/a.txt", "a")
    await device(emulator, "PUT", "/a.txt", "b")
    await device(emulator, "GET", "/a.txt")
    reply = await api.get(
        f"/v1/stats/harvest/subscribers/{DEFAULT_IMSI}",
        **{"from": NOW // 1000 - 60, "to": NOW // 1000, "period": "day"},
    )
    [bucket] = reply.json
    assert bucket["harvestStatsMap"] == {"fileDownload": {"count": 1}, "fileUpload": {"count": 2}}


async def test_files_are_deleted_731_days_after_their_last_write(emulator: Emulator) -> None:
    await set_clock(emulator, NOW)
    api = await emulator.api()
    await api_put(api, "/old/a.txt", b"a")
    await api_put(api, "/old/b.txt", b"b")
    await advance(emulator, 365 * 86400)
    api = await emulator.api()  # the token expired meanwhile
    await api_put(api, "/old/b.txt", b"b2")  # rewritten: its 731 days start again
    await advance(emulator, 365 * 86400)
    api = await emulator.api()
    paths = [e["filePath"] for e in entries(await api.get("/v1/files/private/old/"))]
    assert paths == ["/old/a.txt", "/old/b.txt"]  # day 730
    await advance(emulator, 2 * 86400)
    api = await emulator.api()
    paths = [e["filePath"] for e in entries(await api.get("/v1/files/private/old/"))]
    assert paths == ["/old/b.txt"]
    _, scraped = await scrape_values(emulator)
    assert scraped == 1.0


async def scrape_values(emulator: Emulator) -> tuple[float, float]:
    samples, _ = await scrape(emulator)
    return (
        value(samples, "harvest_files_stored_bytes"),
        value(samples, "harvest_files_expired_total"),
    )


async def test_the_metrics_count_uploads_downloads_and_stored_bytes(emulator: Emulator) -> None:
    api = await emulator.api()
    await enable_files(api)
    await device(emulator, "PUT", "/a.bin", b"x" * 10)
    await device(emulator, "GET", "/a.bin")
    await api_put(api, "/b.bin", b"y" * 5)
    await api_download(api, "/b.bin")
    samples, _ = await scrape(emulator)
    assert value(samples, "harvest_files_uploads_total", side="device") == 1
    assert value(samples, "harvest_files_uploads_total", side="api") == 1
    assert value(samples, "harvest_files_downloads_total", side="device") == 1
    assert value(samples, "harvest_files_downloads_total", side="api") == 1
    assert value(samples, "harvest_files_uploaded_bytes_total") == 15
    assert value(samples, "harvest_files_downloaded_bytes_total") == 15
    assert value(samples, "harvest_files_stored_bytes") == 15


@pytest.mark.parametrize("memory", [False, True], ids=["sqlite", "memory"])
async def test_reset_removes_every_file(emulator: Emulator, memory: bool) -> None:
    api = await emulator.api()
    await api_put(api, "/a/b.txt", b"b")
    status, _ = await emulator.control("POST", "/reset")
    assert status == 200
    api = await emulator.api()
    assert entries(await api.get("/v1/files/private//")) == []
    if not memory:
        blobs = emulator.settings.data_dir / "files" / "blobs"
        assert list(blobs.glob("*/*")) == []
    _, meter = await emulator.control("GET", OPERATOR_METER)
    assert meter["harvestFiles"]["peakStoredBytes"] == 0
