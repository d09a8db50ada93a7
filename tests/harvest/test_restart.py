"""A restart keeps every acknowledged entry, even after a crash (issue 2: "a 201 means the data
is durable"). The emulator runs as its own process, started as a user starts it."""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.support.clients import ApiClient, device_session
from tests.support.process import running

pytestmark = pytest.mark.timeout(120)


async def provision(base: str, count: int) -> list[dict[str, str]]:
    async with aiohttp.ClientSession() as session:
        sims = []
        for _ in range(count):
            async with session.post(f"{base}/_emulator/sims", json={}) as response:
                assert response.status == 201
                sims.append(await response.json())
        return sims


async def write_until_stopped(
    base: str, sim: dict[str, str], acked: list[int], stop: asyncio.Event, enough: asyncio.Event
) -> None:
    """Write with distinct timestamps (so nothing overwrites) and note every 201."""
    async with device_session(sim["sessionAddress"]) as session:
        # distinct times from an hour ago: inside retention, and never in the future
        stamp = int(time.time() * 1000) - 3_600_000 + int(sim["imsi"][-3:]) * 10_000_000
        while not stop.is_set():
            stamp += 1
            try:
                async with session.post(
                    base + "/",
                    data=f'{{"n":{stamp}}}',
                    headers={"Content-Type": "application/json", "X-Soracom-Timestamp": str(stamp)},
                ) as response:
                    if response.status == 201:
                        acked.append(stamp)
                        if len(acked) >= 100:
                            enough.set()
            except aiohttp.ClientError:
                return  # the server died under us: this write was never acknowledged


async def stored_times(base: str, imsi: str) -> set[int]:
    async with aiohttp.ClientSession() as session:
        api = await ApiClient(session, base).login()
        entries = await api.all_pages(
            f"/v1/subscribers/{imsi}/data", limit=1000, **{"from": 0, "to": 2**62}
        )
        return {entry["time"] for entry in entries}


@dataclass
class Load:
    """Writers from several SIMs, each noting its acknowledged writes."""

    acked: dict[str, list[int]]
    stop: asyncio.Event
    writers: list[asyncio.Task[None]]

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.writers)


async def start_load(base: str, sims: int = 4) -> Load:
    """Start the writers and return once one SIM has 100 acknowledged writes: all of them are
    then mid-stream."""
    load = Load({}, asyncio.Event(), [])
    enough = asyncio.Event()
    for sim in await provision(base, sims):
        load.acked[sim["imsi"]] = []
        load.writers.append(
            asyncio.create_task(
                write_until_stopped(base, sim, load.acked[sim["imsi"]], load.stop, enough)
            )
        )
    await enough.wait()
    return load


async def assert_all_kept(data_dir: str, acked: dict[str, list[int]]) -> None:
    """Restart on ``data_dir`` and check every acknowledged write is there."""
    with running(["--port", "0", "--data-dir", data_dir]) as process:
        for imsi, times in acked.items():
            assert times, f"SIM {imsi} wrote nothing"
            missing = set(times) - await stored_times(process.base_url, imsi)
            assert not missing, f"{len(missing)} acknowledged writes of {imsi} were lost"


async def test_a_killed_emulator_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    with running(["--port", "0", "--data-dir", data_dir]) as process:
        load = await start_load(process.base_url)
        process.popen.send_signal(signal.SIGKILL)  # a crash, mid-stream
        await asyncio.to_thread(process.popen.wait)
        await load.finish()
    await assert_all_kept(data_dir, load.acked)


async def test_a_restart_keeps_state_and_does_not_provision_again(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    with running(["--port", "0", "--data-dir", data_dir]) as process:
        base = process.base_url
        async with aiohttp.ClientSession() as session:
            api = await ApiClient(session, base).login()
            group = (
                await api.call("POST", "/v1/groups", json_body={"tags": {"name": "kept"}})
            ).json
            groups_before = sorted(g["groupId"] for g in (await api.get("/v1/groups")).json)
        [sim] = await provision(base, 1)
        process.popen.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.popen.wait, 15) == 0

    with running(["--port", "0", "--data-dir", data_dir]) as process:
        async with aiohttp.ClientSession() as session:
            api = await ApiClient(session, process.base_url).login()
            groups_after = sorted(g["groupId"] for g in (await api.get("/v1/groups")).json)
            assert groups_after == groups_before
            assert group["groupId"] in groups_after
            got = await api.get(f"/v1/subscribers/{sim['imsi']}")
            assert got.status == 200
            assert got.json["ipAddress"] == sim["sessionAddress"]


async def test_sigterm_under_load_finishes_in_flight_writes_and_exits_in_time(
    tmp_path: Path,
) -> None:
    data_dir = str(tmp_path / "data")
    with running(["--port", "0", "--data-dir", data_dir]) as process:
        load = await start_load(process.base_url)
        started = time.monotonic()
        process.popen.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.popen.wait, 30)
        elapsed = time.monotonic() - started
        await load.finish()
        assert code == 0
        assert elapsed < 20, f"shutdown took {elapsed:.1f} s"
    await assert_all_kept(data_dir, load.acked)
