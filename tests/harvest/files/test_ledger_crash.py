"""An upload's metadata and its ledger rows commit in one transaction (docs/files.md, "Storage
and durability"): the emulator is killed with SIGKILL at random moments while devices upload,
over several rounds on one data directory, and the ledger is checked against the files.

Every path is new and nothing is deleted, so the ledger must count exactly the files whose
metadata is stored (uploads in flight at a kill may be stored unanswered: they count too), and
the day's stored-bytes peak is exactly the bytes stored. Before the two commits were one, a
kill between them left files the ledger never counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from tests.harvest.files.test_durability import enable_files
from tests.support.process import running

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

OP = "OP0000000000"
UPLOADERS = 6
ROUNDS = 6
FILE_KINDS = ("file_upload", "file_upload_bytes", "file_stored_bytes")


async def upload_until_killed(
    base: str, round_: int, acked: dict[str, int], rng: random.Random
) -> None:
    """``UPLOADERS`` devices (the default SIM, one connection each) upload new files back to
    back until the emulator goes away; the answered ones go to ``acked``."""

    async def uploader(worker: int) -> None:
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.1", 0))
        async with aiohttp.ClientSession(connector=connector) as session:
            for n in range(100_000):
                path = f"/r{round_}/w{worker}/{n}.bin"
                body = bytes([n % 256]) * rng.randrange(1, 4000)
                try:
                    async with session.put(
                        base + path, data=body, headers={"Host": "harvest-files.soracom.io"}
                    ) as response:
                        assert response.status == 201, await response.text()
                except aiohttp.ClientError:
                    return  # killed
                acked[path] = len(body)

    await asyncio.gather(*(uploader(w) for w in range(UPLOADERS)))


def stored_files(database: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        rows = db.execute(
            "SELECT path, size FROM files WHERE operator_id = ? AND blob IS NOT NULL", (OP,)
        ).fetchall()
    return {path: int(size) for path, size in rows}


def ledger_totals(database: Path) -> dict[str, int]:
    """The operator's file usage over every day: the ledger and what the store's journal has
    not folded into it yet."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        rows = db.execute(
            "SELECT kind, sum(count) FROM (SELECT operator_id, kind, count FROM ledger "
            "UNION ALL SELECT operator_id, kind, count FROM journal_usage) "
            "WHERE operator_id = ? GROUP BY kind",
            (OP,),
        ).fetchall()
    totals = {kind: int(count) for kind, count in rows}
    return {kind: totals.get(kind, 0) for kind in FILE_KINDS}


async def test_kills_during_uploads_leave_the_ledger_counting_exactly_the_stored_files(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    database = data_dir / "harvest.sqlite3"
    args = ["--port", "0", "--data-dir", str(data_dir)]
    acked: dict[str, int] = {}
    rng = random.Random(13)
    for round_ in range(ROUNDS):
        with running(args) as process:
            if round_ == 0:
                await enable_files(process.base_url)
            load = asyncio.create_task(upload_until_killed(process.base_url, round_, acked, rng))
            await asyncio.sleep(rng.uniform(0.3, 1.2))
            process.popen.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.popen.wait)
            await load
        files = stored_files(database)
        assert not set(acked) - set(files), "answered uploads were lost"
        size = sum(files.values())
        expected = {"file_upload": len(files), "file_upload_bytes": size, "file_stored_bytes": size}
        assert ledger_totals(database) == expected, f"after kill {round_ + 1}"
    assert len(acked) > ROUNDS * UPLOADERS  # the kills landed during uploads, not before

    # what the emulator reads back after a restart: the same counts (its reads fold first)
    files = stored_files(database)
    with running(args) as process:
        meter = f"{process.base_url}/_emulator/operators/{OP}/meter"
        async with aiohttp.ClientSession() as session, session.get(meter) as reply:
            usage = (await reply.json())["harvestFiles"]
    assert (usage["uploads"], usage["uploadedBytes"], usage["peakStoredBytes"]) == (
        len(files),
        sum(files.values()),
        sum(files.values()),
    )
