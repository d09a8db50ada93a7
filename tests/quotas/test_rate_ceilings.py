"""Rate ceilings with default settings measure real throughput (issue 8, item 2; spec B9).

What tests and firmware do (one request at a time, clock frozen) never meets a ceiling; floods
of overlapping requests from one SIM or one operator do, and get ``429`` with the headers.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import aiohttp
import pytest

from tests.conftest import Emulator
from tests.support.clients import device_session

IMSI = "001010000000001"
T0 = 1_800_000_000_000


async def freeze(emulator: Emulator) -> None:
    status, _ = await emulator.control("PUT", "/clock", {"now": T0, "frozen": True})
    assert status == 200


@pytest.mark.settings(memory=True)  # the ceiling does not depend on the store; memory is quick
async def test_ten_thousand_sequential_writes_with_a_frozen_clock_all_succeed(
    emulator: Emulator,
) -> None:
    await freeze(emulator)
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.1", 0), limit=1)  # one keep-alive
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        for n in range(10_000):
            headers = {"Content-Type": "application/json", "X-Soracom-Timestamp": str(T0 - n)}
            async with session.post(emulator.base_url, data=b'{"n":1}', headers=headers) as r:
                statuses[r.status] += 1
    assert statuses == {201: 10_000}
    _, quota = await emulator.control("GET", f"/sims/{IMSI}/quota")
    assert (quota["used"], quota["overage"]) == (10_000, 8_000)  # metered past the bundle


@pytest.mark.settings(memory=True)
async def test_five_thousand_sequential_api_calls_with_a_frozen_clock_all_succeed(
    emulator: Emulator,
) -> None:
    await freeze(emulator)
    api = await emulator.api()
    headers = {"X-Soracom-API-Key": api.api_key or "", "X-Soracom-Token": api.token or ""}
    statuses: Counter[int] = Counter()
    remaining = set()
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(5_000):
            async with session.get(f"{emulator.base_url}/v1/subscribers/{IMSI}") as reply:
                statuses[reply.status] += 1
                remaining.add(reply.headers["X-Soracom-Ratelimit-Remaining"])
    assert statuses == {200: 5_000}
    assert remaining == {"1000"}  # nothing overlapped, so nothing was counted


@pytest.mark.settings(memory=True)
async def test_a_flood_of_overlapping_writes_from_one_sim_meets_the_ceiling(
    emulator: Emulator,
) -> None:
    """64 connections from one SIM's address at once: past the burst of 1,000 overlapping
    writes (refilled at 100 a second), writes get ``429 HEM4012`` with ``Retry-After``."""
    await freeze(emulator)
    statuses: Counter[int] = Counter()
    retry_after: set[str] = set()

    async def connection(session: aiohttp.ClientSession, worker: int) -> None:
        for n in range(50):
            stamp = str(T0 - worker * 100 - n)
            headers = {"Content-Type": "application/json", "X-Soracom-Timestamp": stamp}
            async with session.post(emulator.base_url, data=b"{}", headers=headers) as reply:
                statuses[reply.status] += 1
                if reply.status == 429:
                    assert json.loads(await reply.read())["code"] == "HEM4012"
                    retry_after.add(reply.headers["Retry-After"])

    async with device_session("127.0.0.1") as session:
        await asyncio.gather(*(connection(session, worker) for worker in range(64)))
    assert set(statuses) == {201, 429}
    assert statuses[201] + statuses[429] == 3200
    assert retry_after == {"1"}  # a token every 10 ms
    _, quota = await emulator.control("GET", f"/sims/{IMSI}/quota")
    assert quota["used"] == statuses[201]  # a refused write counts nothing


@pytest.mark.settings(memory=True)
async def test_a_flood_of_overlapping_api_calls_meets_the_budget(emulator: Emulator) -> None:
    """40 parallel clients of one operator, 50 calls each: past 1,000 overlapping calls in the
    minute, ``429 HEM1007`` with the ``X-Soracom-Ratelimit-*`` headers."""
    await freeze(emulator)
    api = await emulator.api()
    headers = {"X-Soracom-API-Key": api.api_key or "", "X-Soracom-Token": api.token or ""}
    statuses: Counter[int] = Counter()
    refused_headers: list[dict[str, str]] = []

    async def client(session: aiohttp.ClientSession) -> None:
        for _ in range(50):
            async with session.get(f"{emulator.base_url}/v1/groups") as reply:
                statuses[reply.status] += 1
                if reply.status == 429:
                    assert json.loads(await reply.read())["code"] == "HEM1007"
                    refused_headers.append(
                        {k: v for k, v in reply.headers.items() if k.startswith("X-Soracom-")}
                    )

    async with aiohttp.ClientSession(headers=headers) as session:
        await asyncio.gather(*(client(session) for _ in range(40)))
    assert set(statuses) == {200, 429}
    assert statuses[200] >= 1000  # the budget, plus calls that happened to overlap nothing
    for sent in refused_headers:
        assert sent["X-Soracom-Ratelimit-Limit"] == "1000"
        assert sent["X-Soracom-Ratelimit-Remaining"] == "0"
        assert 1 <= int(sent["X-Soracom-Ratelimit-Seconds-Before-Refresh"]) <= 60
