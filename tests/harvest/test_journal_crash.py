"""The SQLite store's journal survives a crash at any point of a fold (issue 11, item 1): the
emulator is killed with SIGKILL while it folds, restarted on the same file, and the entries, the
usage ledger and the bill are checked against the writes that were acknowledged.

Two ways of being mid-fold: under load with a journal folded every few writes (most of the
writer's time is folding; several kills at random moments), and during the start-up fold of a
large journal a crash left behind (the kill lands inside that one long transaction)."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.harvest.test_restart import start_load, stored_times
from tests.support.clients import ApiClient
from tests.support.process import running

pytestmark = pytest.mark.timeout(240)

OP = "OP0000000000"
IMSI = "001010000000001"


def ledger_writes(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT imsi, sum(count) FROM ledger WHERE kind = 'write' GROUP BY imsi"
        ).fetchall()
    db.close()
    return {imsi: int(count) for imsi, count in rows}


def journal_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT count(*) FROM journal").fetchone()
    db.close()
    return int(count)


async def test_kills_while_folding_under_load_lose_nothing_acknowledged(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    args = ["--port", "0", "--data-dir", str(data_dir), "--journal-fold-rows", "3"]
    acked: dict[str, list[int]] = {}
    rng = random.Random(11)
    for _ in range(4):
        with running(args) as process:
            load = await start_load(process.base_url, sims=4)
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            process.popen.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.popen.wait)
            await load.finish()
            for imsi, times in load.acked.items():
                acked.setdefault(imsi, []).extend(times)

    database = data_dir / "harvest.sqlite3"
    with running(["--port", "0", "--data-dir", str(data_dir)]) as process:
        for imsi, times in acked.items():
            stored = await stored_times(process.base_url, imsi)
            assert not set(times) - stored, f"acknowledged writes of {imsi} were lost"
            # Distinct timestamps: nothing overwrites, so the ledger counts exactly the
            # entries (an unanswered write in flight at a kill may be stored: it is in both).
            assert ledger_writes(database)[imsi] == len(stored)
    assert journal_rows(database) == 0  # the restart folded what the last kill left


def crash_journal(path: Path, rows: int, start_ms: int) -> None:
    """What a crash under load leaves: ``rows`` journalled writes of the default SIM, with their
    usage, not folded: two thirds of them carrying their usage on their rows (device writes),
    the rest with it in ``journal_usage`` (the general form), which also says the day had
    Harvest on, as any day with device writes has (the SIM may have been provisioned on a
    later day: the test's hour before now crosses UTC midnight in the first hour of a day)."""
    day = time.strftime("%Y-%m-%d", time.gmtime(start_ms / 1000))
    bucket = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(start_ms / 1000))
    on_rows = rows * 2 // 3
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO journal (operator_id, resource_type, resource_id, time, content_type,"
            " content, category, written, names, usage_day, usage_bucket, weight)"
            " VALUES (?, 'Subscriber', ?, ?, 'application/json', ?, NULL, ?, ?, ?, ?, ?)",
            (
                (
                    OP, IMSI, start_ms + i, f'{{"n":{i}}}', start_ms + i,
                    '["n"]' if i == 0 else None,
                    *((day, bucket, 1) if i < on_rows else (None, None, 0)),
                )
                for i in range(rows)
            ),
        )  # fmt: skip
        db.execute(
            "INSERT INTO journal_usage VALUES (NULL, ?, ?, ?, 'write', ?)",
            (OP, day, IMSI, rows - on_rows),
        )
        db.execute(
            "INSERT INTO journal_usage VALUES (NULL, ?, ?, ?, 'harvest_day', 1)", (OP, day, IMSI)
        )
    db.close()


async def test_a_kill_during_the_start_up_fold_leaves_the_journal_whole(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    database = data_dir / "harvest.sqlite3"
    with running(["--port", "0", "--data-dir", str(data_dir)]):
        pass  # create and provision the file
    rows, start_ms = 150_000, int(time.time() * 1000) - 3_600_000
    crash_journal(database, rows, start_ms)

    process = start_killed_in_fold(data_dir)
    # The fold never committed: the whole journal is still there, the tables untouched.
    assert journal_rows(database) == rows
    assert ledger_writes(database).get(IMSI, 0) == 0
    assert process.returncode == -signal.SIGKILL

    with running(["--port", "0", "--data-dir", str(data_dir)]) as emulator:
        times = await stored_times(emulator.base_url, IMSI)
        assert times == {start_ms + i for i in range(rows)}
        async with aiohttp.ClientSession() as session:
            api = await ApiClient(session, emulator.base_url).login()
            month = time.strftime("%Y%m", time.gmtime(start_ms / 1000))
            bill = await api.get(f"/v1/bills/{month}")
            assert bill.status == 200  # the month's bill reads the folded ledger
            # 150,000 writes of one SIM on one day: 2,000 in the bundle, 148,000 at 0.00004 USD
            # (logging-service-terms Schedule 2(1); docs/billing.md) = 5.92 USD, counted once;
            # the day's 0.05 USD option fee (once, however often its day is recorded) is within
            # the month's free tier
            assert bill.json["amount"] == 5.92
    assert journal_rows(database) == 0
    assert ledger_writes(database)[IMSI] == rows


def start_killed_in_fold(data_dir: Path) -> subprocess.Popen[str]:
    """Start the emulator on ``data_dir`` and SIGKILL it as soon as it says it is folding."""
    popen = subprocess.Popen(
        [sys.executable, "-m", "harvest", "serve", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert popen.stdout is not None
    for line in popen.stdout:
        if "folding 150000 journal rows" in line:
            time.sleep(0.1)  # inside the fold, which takes about a second
            popen.send_signal(signal.SIGKILL)
            break
    popen.wait()
    popen.stdout.close()
    return popen


async def test_a_schema_5_journal_left_by_a_crash_is_upgraded_and_folded(tmp_path: Path) -> None:
    """Schema 6 moved a device write's usage onto its journal rows. A file an older emulator
    left with a journal of the old shape (a crash) gets the new columns and is folded whole."""
    from harvest.storage.sqlite import SqliteStore

    path = tmp_path / "harvest.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            DROP TABLE journal;
            CREATE TABLE journal (
                seq INTEGER PRIMARY KEY, operator_id TEXT NOT NULL, resource_type TEXT NOT NULL,
                resource_id TEXT NOT NULL, time INTEGER NOT NULL, content_type TEXT NOT NULL,
                content TEXT NOT NULL, category TEXT, written INTEGER NOT NULL, names TEXT);
            INSERT INTO journal VALUES
                (NULL, 'OP0000000000', 'Subscriber', '001010000000001', 1, 'text/plain', 'a',
                 NULL, 1, NULL),
                (NULL, 'OP0000000000', 'Subscriber', '001010000000001', 2, 'text/plain', 'b',
                 NULL, 2, NULL);
            INSERT INTO journal_usage VALUES
                (NULL, 'OP0000000000', '1970-01-01', '001010000000001', 'write', 2);
            PRAGMA user_version = 5;
            """
        )
    db.close()
    store = SqliteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:
        entries = db.execute("SELECT time, content FROM entries ORDER BY time").fetchall()
        columns = [row[1] for row in db.execute("PRAGMA table_info(journal)")]
        version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    assert entries == [(1, "a"), (2, "b")]
    assert ledger_writes(path) == {IMSI: 2}
    assert {"usage_day", "usage_bucket", "weight"} <= set(columns)
    assert version == 6
    assert journal_rows(path) == 0
