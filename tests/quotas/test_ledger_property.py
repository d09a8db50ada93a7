"""The usage ledger and the bundle counter agree with a naive model under random writes, reads
and clock jumps (issue 4, item 10). Real components (store, registry, ingest, quota service,
housekeeping) wired as the app wires them, driven without HTTP so hypothesis can run many
sequences."""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harvest.clock import EmulatorClock
from harvest.domain import Transport, Upload
from harvest.errorlog import ErrorLog
from harvest.identity import SessionTable
from harvest.ingest import IngestService
from harvest.provisioning import Provisioning
from harvest.registry import Registry
from harvest.storage import MemoryStore, SqliteStore, Store
from harvest.storage.base import UsageKind
from quotas.calendar import DAY_MS, utc_day
from quotas.housekeeping import Housekeeping
from quotas.ratelimit import RateSettings
from quotas.service import QuotaService

START = 1_800_000_000_000  # 2027-01-15T08:00:00Z
ADDRESSES = ("127.0.0.1", "127.0.0.2")

operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from([0, 1]), st.integers(1, 3)),
        st.tuples(st.just("read"), st.sampled_from([0, 1]), st.just(0)),
        st.tuples(st.just("jump"), st.just(0), st.integers(1, 3 * DAY_MS // 1000)),
    ),
    max_size=30,
)


async def scenario(store: Store, ops: list[tuple[str, int, int]]) -> None:
    clock = EmulatorClock()
    clock.set(START, frozen=True)
    await store.open()
    try:
        registry = Registry(
            store,
            clock,
            Provisioning(
                "OP0000000000",
                "keyId-x",
                "secret",
                "e@example.com",
                "pw",
                "001010000000001",
                ADDRESSES[0],
            ),
        )
        await registry.load()
        group = registry.default_group("OP0000000000")
        assert group is not None
        second = await registry.create_sim(
            "OP0000000000",
            imsi="001010000000002",
            session_address=ADDRESSES[1],
            group_id=group.group_id,
        )
        imsis = ["001010000000001", second.imsi]
        quotas = QuotaService(clock, rates=RateSettings(enabled=False))
        housekeeping = Housekeeping(
            clock=clock,
            store=store,
            registry=registry,
            quotas=quotas,
            sweep_rows=1000,
            sweep_interval_s=60,
        )
        registry.listeners.append(housekeeping.state_changed)
        await housekeeping.reload()
        ingest = IngestService(
            registry=registry,
            store=store,
            clock=clock,
            resolve=SessionTable(registry).resolve,
            max_payload_bytes=1024,
            error_log=ErrorLog(clock),
            quotas=quotas,
        )

        writes: Counter[tuple[str, str]] = Counter()
        reads: Counter[tuple[str, str]] = Counter()
        days = {utc_day(START)}
        for kind, sim, amount in ops:
            day = utc_day(clock.now_ms())
            if kind == "write":
                for _ in range(amount):
                    await ingest.ingest(Upload(Transport.HTTP, ADDRESSES[sim], b"x", "text/plain"))
                    clock.advance(1)  # distinct entry times; the day is what counts
                    writes[(imsis[sim], day)] += 1
            elif kind == "read":
                quotas.note_read("OP0000000000", imsis[sim], 10)
                reads[(imsis[sim], day)] += 1
            else:
                await housekeeping.advance(amount * 1000)
                now = clock.now_ms()
                day_ms = START - START % DAY_MS
                while day_ms <= now:
                    days.add(utc_day(day_ms))
                    day_ms += DAY_MS
        await housekeeping.flush_reads()

        today = utc_day(clock.now_ms())
        for imsi in imsis:
            # the bundle counts what the ledger holds for today
            assert quotas.quota(imsi).used == writes[(imsi, today)]
            for day in days:
                assert (
                    await store.usage_count("OP0000000000", imsi, day, UsageKind.WRITE)
                    == writes[(imsi, day)]
                )
                assert (
                    await store.usage_count("OP0000000000", imsi, day, UsageKind.READ)
                    == reads[(imsi, day)]
                )
                # both SIMs sit in a Harvest-enabled group every day the clock passed
                assert (
                    await store.usage_count("OP0000000000", imsi, day, UsageKind.HARVEST_DAY) == 1
                )
        # a reload from the ledger (as after a restart) gives the same bundle counts
        await housekeeping.reload()
        for imsi in imsis:
            assert quotas.quota(imsi).used == writes[(imsi, today)]
    finally:
        await store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, on_disk=st.booleans())
def test_ledger_and_bundle_agree_with_a_naive_model(
    ops: list[tuple[str, int, int]], on_disk: bool
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store: Any = SqliteStore(Path(directory) / "h.sqlite3") if on_disk else MemoryStore()
        asyncio.run(scenario(store, ops))
