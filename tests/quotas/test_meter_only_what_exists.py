"""Meter only what exists; a bill never fails on a ledger row it did not expect; a start-up
migration repairs the rows a past version wrote wrongly (issue 9, item 1).

The reproducer: ``GET /v1/subscribers/8900001010000000001/data`` (the default SIM's *SIM id*
where an IMSI belongs) answered ``200 []`` but metered a read under that string; from then on
every bill of the month answered ``500`` ("SIM ... has two usages"), also after a restart.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from harvest.app import create_app
from harvest.settings import Settings
from harvest.storage import SqliteStore
from harvest.storage.base import RecordUsage, Usage, UsageKind
from harvest.storage.sqlite import SCHEMA_VERSION
from quotas.bills import month_bill
from quotas.service import fee_usages
from tests.conftest import AiohttpClient, Emulator

IMSI = "001010000000001"
SIM_ID = "8900001010000000001"
OP = "OP0000000000"
BILLS = (
    "/v1/bills/latest",
    "/v1/bills/summaries/bill_items",
    "/v1/bills/summaries/sims",
    "/v1/bills",
)


async def test_reading_a_sim_id_as_an_imsi_meters_nothing_and_bills_still_work(
    emulator: Emulator,
) -> None:
    api = await emulator.api()
    assert (await emulator.device().send('{"a":1}'))[0] == 201
    for path in (f"/v1/subscribers/{SIM_ID}/data", "/v1/subscribers/999999/data"):
        reply = await api.get(path)
        assert (reply.status, reply.json) == (200, [])
    other = await emulator.new_operator()
    assert (await other.get(f"/v1/subscribers/{IMSI}/data")).json == []  # not theirs
    assert (await api.get(f"/v1/subscribers/{IMSI}/data")).status == 200  # theirs: metered
    for path in BILLS:
        assert (await api.get(path)).status == 200, path  # each bill flushes the reads first
    rows = ledger(emulator.settings.data_dir / "harvest.sqlite3", "read")
    assert rows == [(OP, IMSI, 1)]


def ledger(path: Path, kind: str) -> list[tuple[str, str, int]]:
    with sqlite3.connect(path) as db:
        return list(
            db.execute("SELECT operator_id, imsi, count FROM ledger WHERE kind = ?", (kind,))
        )


def test_fees_skip_every_odd_row_a_past_version_could_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = [
        Usage(OP, IMSI, "2026-11-02", UsageKind.HARVEST_DAY, 1),
        Usage(OP, IMSI, "2026-11-02", UsageKind.WRITE, 2250),
        Usage(OP, IMSI, "2026-11-02", UsageKind.READ, 3),
    ]
    odd = [
        Usage(OP, SIM_ID, "2026-11-02", UsageKind.READ, 1),  # the reproducer
        Usage(OP, "999999", "2026-11-02", UsageKind.READ, 4),  # no such SIM
        Usage(OP, "001010000000077", "2026-11-02", UsageKind.WRITE, 9),  # another operator's
        Usage(OP, "", "2026-11-02", UsageKind.READ, 1),  # no IMSI at all
        Usage(OP, IMSI, "2026-13-45", UsageKind.WRITE, 5),  # not a day
        Usage(OP, IMSI, "", UsageKind.WRITE, 5),
        Usage(OP, IMSI, "2026-11-03", UsageKind.WRITE, -7),  # negative
        Usage(OP, "-", "2026-11-02", UsageKind.UNAVAILABLE_DAYS, 1),  # not a usage
        Usage(OP, IMSI, "2026-11-02T00:05", UsageKind.WRITE_5MIN, 2250),
    ]
    sims = {IMSI: SIM_ID}
    expected = month_bill(fee_usages(good, sims), 2026, 11, closed=False)
    got = month_bill(fee_usages(odd + good + odd, sims), 2026, 11, closed=False)
    assert got == expected
    assert (got.writes, got.reads, got.overage_writes, got.harvest_days) == (2250, 3, 250, 1)
    assert "skipped" in caplog.text
    # without the SIM list (the meter's reload) nothing raises either
    assert [u.day for u in fee_usages(odd + good)] == [date(2026, 11, 2)] * 4  # one per IMSI


async def test_a_version_2_ledger_is_repaired_at_start(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    """A database as the previous release left it after the reproducer: the read of the SIM id
    in its ledger, schema version 2. Opening it removes that row and keeps every other."""
    settings = Settings(data_dir=tmp_path, port=0, harvest_port=0, unified_port=0)
    path = tmp_path / "harvest.sqlite3"
    client = await aiohttp_client(create_app(settings))  # provisions the default SIM
    await client.close()
    store = SqliteStore(path)
    await store.open()
    await store.apply(
        [
            RecordUsage(
                (
                    Usage(OP, SIM_ID, "2026-11-02", UsageKind.READ, 1),
                    Usage(OP, SIM_ID, "2026-11-02", UsageKind.READ_BYTES, 0),
                    Usage("OP0000000009", IMSI, "2026-11-02", UsageKind.READ, 2),
                    Usage(OP, IMSI, "2026-11-02", UsageKind.READ, 3),
                    Usage(OP, IMSI, "2026-11-02", UsageKind.WRITE, 4),
                )
            )
        ]
    )
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 2")

    client = await aiohttp_client(create_app(settings))
    try:
        login = {"authKeyId": "keyId-harvest-emulator", "authKey": "secret-harvest-emulator"}
        async with client.post("/v1/auth", json=login) as reply:
            token = await reply.json()
        headers = {"X-Soracom-API-Key": token["apiKey"], "X-Soracom-Token": token["token"]}
        for bill in (*BILLS, "/v1/bills/202611"):
            async with client.get(bill, headers=headers) as reply:
                assert reply.status in (200, 404), bill  # 404: no November bill yet, not 500
    finally:
        await client.close()
    assert ledger(path, "read") == [(OP, IMSI, 3)]
    assert ledger(path, "read_bytes") == []
    assert ledger(path, "write") == [(OP, IMSI, 4)]
    with sqlite3.connect(path) as db:
        # 3 repaired the ledger; 4 added the write journal, 5 Harvest Files
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
