"""Snapshots: export and import of the whole state and data (issue 5, item 6)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harvest import snapshot
from harvest.app import create_app
from harvest.context import STORE
from harvest.domain import (
    ApiToken,
    AuthKey,
    DataEntry,
    Group,
    Operator,
    ResourceMetadata,
    ResourceType,
    Sim,
    SimStatus,
)
from harvest.settings import Settings
from harvest.snapshot import Export, ImportFailed, SnapshotError, handlers, import_file, msgpack
from harvest.storage import MemoryStore, SqliteStore, Store, codec
from harvest.storage.base import (
    ACCOUNT_WIDE,
    EntryQuery,
    ExpireEntries,
    MarkProvisioned,
    Mutation,
    PutAuthKey,
    PutEntries,
    PutGroup,
    PutOperator,
    PutSim,
    PutToken,
    RecordUsage,
    Replaced,
    SnapshotReader,
    StateSnapshot,
    Usage,
    UsageKind,
)
from tests.conftest import AiohttpClient, Emulator
from tests.support.clients import ApiClient
from tests.support.process import running

OP = "OP0000000001"
OP2 = "OP0000000002"
IMSI1 = "001010000000001"
IMSI2 = "001010000000002"
IMSI3 = "001020000000003"
SUB = ResourceType.SUBSCRIBER
T0 = 1_794_300_000_000  # 2026-11-10 (UTC)
DAY = "2026-11-10"


# --- a store with one of everything ---------------------------------------------------------------
def sim(imsi: str, operator_id: str, **fields: Any) -> Sim:
    values: dict[str, Any] = {
        "sim_id": "8900" + imsi,
        "iccid": "8900" + imsi,
        "msisdn": "999" + imsi[-10:],
        "operator_id": operator_id,
        "status": SimStatus.READY,
        "group_id": None,
        "tags": {},
        "session_address": None,
        "created_ms": T0,
        "modified_ms": T0,
    }
    values.update(fields)
    return Sim(imsi=imsi, **values)


def state_mutations() -> list[Mutation]:
    return [
        PutOperator(Operator(OP, "a@example.com", "s$h1", "first", T0, T0 + 1)),
        PutOperator(
            Operator(OP2, "b@example.com", "s$h2", "", T0, T0, {"harvest": {"plan": "long"}})
        ),
        PutAuthKey(AuthKey("keyId-a", "s$k1", OP)),
        PutAuthKey(AuthKey("keyId-b", "s$k2", OP2)),
        PutToken(ApiToken("token-1", "api-key-1", OP, T0 + 86_400_000)),
        PutGroup(
            Group(
                "group-1",
                OP,
                {"name": "one"},
                {
                    "SoracomHarvest": {"enabled": True},
                    "SoracomAir": {"binaryParserEnabled": False, "nested": {"x": [1, 2.5]}},
                },
                T0,
                T0 + 5,
            )
        ),
        PutGroup(Group("group-2", OP2, {}, {}, T0, T0)),
        PutSim(
            sim(
                IMSI1,
                OP,
                status=SimStatus.ACTIVE,
                group_id="group-1",
                tags={"name": "default"},
                session_address="127.0.0.1",
            )
        ),
        PutSim(sim(IMSI2, OP, status=SimStatus.SUSPENDED, barred=True, termination_enabled=True)),
        PutSim(sim(IMSI3, OP2, group_id="group-2", tags={"name": "ü"}, session_address="::1")),
        MarkProvisioned(),
    ]


def entry(resource_id: str, time: int, content: str, **fields: Any) -> DataEntry:
    values: dict[str, Any] = {
        "operator_id": OP,
        "resource_type": SUB,
        "content_type": "application/json",
        "category": None,
    }
    values.update(fields)
    return DataEntry(resource_id=resource_id, time=time, content=content, **values)


async def populate(store: Store) -> None:
    await store.apply(state_mutations())
    await store.apply(
        [
            PutEntries(
                tuple(
                    entry(IMSI1, T0 + i, json.dumps({"n": i, f"k{i % 3}": "v"}), category=None)
                    for i in range(300)
                ),
                T0 + 300,
                (Usage(OP, IMSI1, DAY, UsageKind.WRITE, 300),),
            ),
            PutEntries(
                (
                    entry(IMSI2, T0, "héllo wörld ✓", content_type="text/plain", category="c1"),
                    entry(IMSI2, T0 + 7, '{"payload":"AAEC"}', category="c1"),
                ),
                T0 + 9,
                (Usage(OP, IMSI2, DAY, UsageKind.WRITE, 3),),
            ),
            PutEntries(
                (
                    entry(
                        "device-1",
                        T0,
                        '{"d":1}',
                        operator_id=OP2,
                        resource_type=ResourceType.DEVICE,
                    ),
                ),
                T0 + 1,
            ),
            # a resource whose entries have all expired: only its metadata is left
            PutEntries((entry("expired", 5, '{"old":true}'),), 6),
            ExpireEntries(OP, SUB, "expired", 100, 10),
            RecordUsage(
                (
                    Usage(OP, IMSI1, DAY, UsageKind.READ, 4),
                    Usage(OP, IMSI1, DAY, UsageKind.READ_BYTES, 1234),
                    Usage(OP, IMSI1, DAY, UsageKind.HARVEST_DAY, 1),
                    Usage(OP, IMSI1, "2026-11-11", UsageKind.HARVEST_DAY, 1),
                    Usage(OP, IMSI1, "2026-11-10T12:05", UsageKind.WRITE_5MIN, 300),
                    Usage(OP2, IMSI3, DAY, UsageKind.WRITE, 1),
                    # an account's unavailable days: the row of no SIM
                    Usage(OP, ACCOUNT_WIDE, DAY, UsageKind.UNAVAILABLE_DAYS, 2),
                )
            ),
        ]
    )


async def dump(store: Store) -> dict[str, Any]:
    """Everything in ``store``, read through the ordinary read methods (not the snapshot)."""
    state = await store.load_state()
    operators = sorted(o.operator_id for o in state.operators)
    resources = [r for op in operators for r in await store.list_resources(op, None, 10**6, None)]
    entries = [
        e
        for r in resources
        for e in await store.query_entries(
            EntryQuery(r.operator_id, r.resource_type, r.resource_id, 0, 2**62, True, 10**6)
        )
    ]
    ledger = [u for op in operators for u in await store.usage_rows(op, "0000", "9999")]
    return {
        "provisioned": state.provisioned,
        "operators": sorted(state.operators, key=lambda o: o.operator_id),
        "auth_keys": sorted(state.auth_keys, key=lambda k: k.key_id),
        "tokens": sorted(state.tokens, key=lambda t: t.token),
        "groups": sorted(state.groups, key=lambda g: g.group_id),
        "sims": sorted(state.sims, key=lambda s: s.imsi),
        "resources": resources,
        "entries": entries,
        "ledger": ledger,
    }


@asynccontextmanager
async def opened(store: Store) -> AsyncIterator[Store]:
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def records(path: Path) -> list[Any]:
    with path.open("rb") as handle:
        return list(msgpack.Unpacker(handle, raw=False))


def build(objects: Sequence[Any], *, seal: bool = True) -> bytes:
    """Pack ``objects``; with ``seal``, the end record's counts and checksum are made right."""
    body = b"".join(msgpack.packb(o, use_bin_type=True) for o in objects[:-1])
    last = objects[-1]
    if seal and isinstance(last, list) and last[:1] == ["end"]:
        counts = dict.fromkeys(snapshot.COUNTS.values(), 0)
        if objects[0].get("version") == 1:  # version 1 had no Harvest Files
            del counts["files"]
        for record in objects[1:-1]:
            if isinstance(record, list) and record[0] in snapshot.COUNTS:
                if record[0] == "file" and record[3] != 0:
                    continue  # a file's later parts
                counts[snapshot.COUNTS[record[0]]] += 1
        last = ["end", counts, hashlib.sha256(body).hexdigest()]
    return body + bytes(msgpack.packb(last, use_bin_type=True))


# --- round trips ----------------------------------------------------------------------------------
async def test_round_trip_sqlite_to_file_to_memory_and_back(tmp_path: Path) -> None:
    async with opened(SqliteStore(tmp_path / "a.sqlite3")) as source:
        await populate(source)
        original = await dump(source)
        info = await snapshot.export_to_file(source, tmp_path / "one.msgpack")
    assert info.store == "sqlite"
    assert info.counts == {
        "operators": 2,
        "auth_keys": 2,
        "tokens": 1,
        "groups": 2,
        "sims": 3,
        "entries": 303,
        "resources": 4,
        "ledger": 9,
        "files": 0,  # a store alone: no Harvest Files (tests/harvest/files/test_snapshot.py)
    }
    assert snapshot.check_file(tmp_path / "one.msgpack") == info

    memory = MemoryStore()
    await memory.apply([PutOperator(Operator("OP9", "x@example.com", "h", "", 1, 1))])  # replaced
    assert await import_file(memory, tmp_path / "one.msgpack") == info
    assert await dump(memory) == original
    await snapshot.export_to_file(memory, tmp_path / "two.msgpack")

    async with opened(SqliteStore(tmp_path / "b.sqlite3")) as again:
        await import_file(again, tmp_path / "two.msgpack")
        assert await dump(again) == original

    # the same records in the same order, whichever store wrote them
    one, two = records(tmp_path / "one.msgpack"), records(tmp_path / "two.msgpack")
    assert one[0]["store"] == "sqlite"
    assert two[0]["store"] == "memory"
    assert one[1:-1] == two[1:-1]
    assert one[-1][:2] == two[-1][:2]


async def test_the_file_is_the_documented_stream(tmp_path: Path) -> None:
    store = MemoryStore()
    await populate(store)
    await snapshot.export_to_file(store, tmp_path / "s.msgpack", clock_ms=T0)
    objects = records(tmp_path / "s.msgpack")
    header = objects[0]
    assert header["format"] == "harvest-emulator-snapshot"
    assert header["version"] == 2
    assert header["clock_ms"] == T0
    assert header["store"] == "memory"
    order = ["operator", "auth_key", "token", "group", "sim", "provisioned", "entry"]
    order += ["resource", "usage", "end"]
    kinds = [o[0] for o in objects[1:]]
    assert kinds == sorted(kinds, key=order.index)
    assert kinds.count("provisioned") == 1
    assert objects[1] == [
        "operator",
        {
            "operator_id": OP,
            "email": "a@example.com",
            "password_hash": "s$h1",
            "description": "first",
            "created_ms": T0,
            "updated_ms": T0 + 1,
            "contracts": {},
        },
    ]
    assert ["entry", OP, "Subscriber", IMSI2, T0, "text/plain", "héllo wörld ✓", "c1"] in objects
    assert ["resource", OP, "Subscriber", "expired", 6, ["old"]] in objects
    assert ["usage", OP, DAY, IMSI1, "harvest_day", 1] in objects
    end = objects[-1]
    raw = (tmp_path / "s.msgpack").read_bytes()
    assert end[2] == hashlib.sha256(raw[: len(raw) - len(msgpack.packb(end))]).hexdigest()


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_an_export_during_writes_is_one_consistent_instant(kind: str, tmp_path: Path) -> None:
    """Every write commits its entry and its ledger count together: in a consistent view the
    two agree, however the writes interleave with the pages of the export."""
    store: Store = SqliteStore(tmp_path / "w.sqlite3") if kind == "sqlite" else MemoryStore()
    async with opened(store):
        await store.apply(state_mutations())
        bulk = "x" * 1000
        await store.apply(
            [
                PutEntries(
                    tuple(entry(IMSI1, i, json.dumps({"b": bulk})) for i in range(3000)),
                    3000,
                    (Usage(OP, IMSI1, DAY, UsageKind.WRITE, 3000),),
                )
            ]
        )
        written = 3000

        async def writer() -> None:
            nonlocal written
            while True:
                await store.apply(
                    [
                        PutEntries(
                            (entry(IMSI1, written, '{"live":1}'),),
                            written,
                            (Usage(OP, IMSI1, DAY, UsageKind.WRITE, 1),),
                        )
                    ]
                )
                written += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.01)
        before = written
        export = Export(store, page=100)
        async with contextlib.aclosing(export.chunks()) as chunks:
            await snapshot.write_atomically(tmp_path / "live.msgpack", chunks)
        during = written - before
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert during > 0, "no write happened during the export"

    target = MemoryStore()
    info = await import_file(target, tmp_path / "live.msgpack")
    content = await dump(target)
    entries = [e for e in content["entries"] if e.resource_id == IMSI1]
    [writes] = [u.count for u in content["ledger"] if u.kind is UsageKind.WRITE and u.imsi == IMSI1]
    assert writes == len(entries) == info.counts["entries"]
    assert [e.time for e in entries] == list(range(len(entries)))
    [meta] = [r for r in content["resources"] if r.resource_id == IMSI1]
    assert meta.last_modified_ms == len(entries) - 1


# --- a failed export keeps the previous snapshot --------------------------------------------------
class _BreakingReader:
    def __init__(self, inner: SnapshotReader, after: int) -> None:
        self._inner = inner
        self._after = after

    async def load_state(self) -> StateSnapshot:
        return await self._inner.load_state()

    async def entries(self, page: int) -> AsyncGenerator[list[DataEntry], None]:
        given = 0
        async with contextlib.aclosing(self._inner.entries(page)) as pages:
            async for rows in pages:
                if given + len(rows) > self._after:
                    raise OSError(errno.EIO, "the disk went away")
                given += len(rows)
                yield rows

    def resources(self, page: int) -> AsyncGenerator[list[ResourceMetadata], None]:
        return self._inner.resources(page)

    def ledger(self, page: int) -> AsyncGenerator[list[Usage], None]:
        return self._inner.ledger(page)


class BreaksMidExport(MemoryStore):
    """A memory store whose snapshot fails after ``after`` entries."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[SnapshotReader]:
        async with super().snapshot() as reader:
            yield _BreakingReader(reader, self.after)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


async def test_a_store_failure_half_way_keeps_the_previous_snapshot(tmp_path: Path) -> None:
    good = MemoryStore()
    await populate(good)
    target = tmp_path / "snap.msgpack"
    await snapshot.export_to_file(good, target)
    previous = target.read_bytes()

    broken = BreaksMidExport(after=2000)
    await populate(broken)
    await broken.apply(
        [PutEntries(tuple(entry(IMSI1, 10**6 + i, "x" * 900) for i in range(5000)), 1)]
    )
    with pytest.raises(OSError, match="the disk went away"):
        await snapshot.export_to_file(broken, target)
    assert target.read_bytes() == previous
    assert leftovers(tmp_path) == []


async def test_a_full_disk_at_the_end_keeps_the_previous_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryStore()
    await populate(store)
    target = tmp_path / "snap.msgpack"
    target.write_bytes(b"the previous snapshot")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        await snapshot.export_to_file(store, target)
    monkeypatch.undo()
    assert target.read_bytes() == b"the previous snapshot"
    assert leftovers(tmp_path) == []


async def test_an_export_into_a_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await snapshot.export_to_file(MemoryStore(), tmp_path / "nowhere" / "snap.msgpack")


# --- bad files are refused before anything changes ------------------------------------------------
def _valid_objects() -> list[Any]:
    """A hand-built snapshot of version 1 (before Harvest Files), which still imports."""
    header = {
        "format": "harvest-emulator-snapshot",
        "version": 1,
        "created_ms": T0,
        "store": "memory",
        "clock_ms": None,
        "emulator": "0.1.0",
    }
    return [
        header,
        ["sim", json.loads(codec.dump(sim(IMSI1, OP)))],
        ["sim", json.loads(codec.dump(sim(IMSI2, OP)))],
        ["provisioned", True],
        ["entry", OP, "Subscriber", IMSI1, 1, "text/plain", "MARKER-one", None],
        ["entry", OP, "Subscriber", IMSI1, 2, "text/plain", "MARKER-two", None],
        ["resource", OP, "Subscriber", IMSI1, 2, []],
        ["usage", OP, DAY, IMSI1, "write", 2],
        ["end"],
    ]


def _edit(change: Callable[[list[Any]], None]) -> bytes:
    objects = _valid_objects()
    change(objects)
    return build(objects)


def _swap(objects: list[Any]) -> None:
    objects[4], objects[5] = objects[5], objects[4]


BAD_FILES: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "it is empty"),
    "garbage": (lambda: b"garbage, not a snapshot", "it is not a harvest-emulator-snapshot"),
    "json": (lambda: b'{"format": "harvest-emulator-snapshot"}', "not a harvest-emulator"),
    "another format": (
        lambda: _edit(lambda o: o[0].update(format="something-else")),
        "not a harvest-emulator-snapshot",
    ),
    "newer version": (
        lambda: _edit(lambda o: o[0].update(version=3)),
        r"written by a newer emulator \(snapshot version 3; this one reads version 2\)",
    ),
    "cut in a record": (lambda: build(_valid_objects())[:-30], "ends in the middle of a record"),
    "cut at a record": (lambda: build(_valid_objects()[:-1], seal=False), "cut short"),
    "changed byte": (
        lambda: build(_valid_objects()).replace(b"MARKER-one", b"MARKER-ONE"),
        "checksum does not match",
    ),
    "wrong counts": (
        lambda: build([*_valid_objects()[:-1], ["end", {"entries": 9}, "0"]], seal=False),
        "end record counts",
    ),
    "more after the end": (
        lambda: build(_valid_objects()) + msgpack.packb(["entry"]),
        "more after its end record",
    ),
    "out of order": (lambda: _edit(_swap), "repeated or out of order"),
    "repeated": (lambda: _edit(lambda o: o.insert(2, o[1])), "repeated or out of order"),
    "kinds out of order": (
        lambda: _edit(lambda o: o.insert(7, o[1])),
        "a sim record after the resource records",
    ),
    "unknown kind": (lambda: _edit(lambda o: o.insert(1, ["virus", 1])), "not a snapshot record"),
    "no provisioned": (lambda: _edit(lambda o: o.pop(3)), "provisioned record is missing"),
    "bad entry field": (
        lambda: _edit(lambda o: o[4].__setitem__(4, "1")),
        "record 4: a bad entry: field 4",
    ),
    "time past int64": (lambda: _edit(lambda o: o[5].__setitem__(4, 2**64 - 1)), "a bad entry"),
    "bad resource type": (
        lambda: _edit(lambda o: o[6].__setitem__(2, "Toaster")),
        "unknown resource type 'Toaster'",
    ),
    "bad sim": (lambda: _edit(lambda o: o[1][1].update(status="lost")), "a bad sim"),
    "sim field of the wrong type": (
        lambda: _edit(lambda o: o[1][1].update(barred="yes")),
        "a bad sim: barred",
    ),
    "bad ledger kind": (lambda: _edit(lambda o: o[7].__setitem__(4, "mine")), "unknown kind"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
async def test_a_bad_file_is_refused_and_nothing_changes(case: str, tmp_path: Path) -> None:
    make, message = BAD_FILES[case]
    path = tmp_path / "bad.msgpack"
    path.write_bytes(make())
    store = MemoryStore()
    await populate(store)
    before = await dump(store)
    with pytest.raises(SnapshotError, match=message):
        snapshot.check_file(path)
    with pytest.raises(SnapshotError, match=message):
        await import_file(store, path)
    assert await dump(store) == before


async def test_the_valid_hand_built_file_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "ok.msgpack").write_bytes(build(_valid_objects()))
    store = MemoryStore()
    info = await import_file(store, tmp_path / "ok.msgpack")
    assert (info.counts["sims"], info.counts["entries"]) == (2, 2)
    [meta] = await store.list_resources(OP, None, 10, None)
    assert meta.last_modified_ms == 2


class FailsOnApply(MemoryStore):
    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.calls = 0
        self.fail_at = fail_at

    async def apply(self, mutations: Sequence[Mutation]) -> Replaced:
        self.calls += 1
        if self.calls == self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await super().apply(mutations)


async def test_a_store_failure_during_an_import_says_what_is_left(tmp_path: Path) -> None:
    source = MemoryStore()
    await populate(source)
    await source.apply([PutEntries(tuple(entry(IMSI1, 10**6 + i, "{}") for i in range(50)), T0)])
    await snapshot.export_to_file(source, tmp_path / "s.msgpack")

    first = FailsOnApply(fail_at=2)
    await first.apply(state_mutations())
    before = await dump(first)
    with pytest.raises(ImportFailed, match="nothing was changed"):
        await import_file(first, tmp_path / "s.msgpack", batch=100)
    assert await dump(first) == before

    later = FailsOnApply(fail_at=3)
    with pytest.raises(ImportFailed, match="partly imported"):
        await import_file(later, tmp_path / "s.msgpack", batch=100)


# --- the control plane ----------------------------------------------------------------------------
NOV_10 = 1_794_312_000_000  # 2026-11-10T12:00:00Z
DEFAULT_OP = "OP0000000000"


async def _write(emulator: Emulator, address: str, body: str, at: int) -> None:
    status, reply = await emulator.device(address).send(
        body, headers={"X-Soracom-Timestamp": str(at)}
    )
    assert status == 201, reply


async def _billing(emulator: Emulator, api: ApiClient, imsis: Sequence[str]) -> dict[str, Any]:
    """Everything derived from the ledger and the state, read without reading any data."""
    start = NOV_10 // 1000 - 43_200
    views: dict[str, Any] = {
        "bill": (await api.get("/v1/bills/202611")).json,
        "daily": (await api.get("/v1/bills/202611/daily")).json,
        # without sessionStatus: what the emulator has seen of the network is not state a
        # snapshot carries (a SIM is online where it sends, harvest/sessions.py)
        "subscribers": [
            {k: v for k, v in s.items() if k != "sessionStatus"}
            for s in (await api.get("/v1/subscribers")).json
        ],
        "groups": (await api.get("/v1/groups")).json,
        "exported": (
            await api.get(f"/v1/stats/harvest/operators/{api.operator_id}", year_month="202611")
        ).json,
        "meter": (await emulator.control("GET", "/operators/OP0000000000/meter"))[1],
    }
    for imsi in imsis:
        views[f"stats {imsi}"] = (
            await api.get(
                f"/v1/stats/harvest/subscribers/{imsi}",
                **{"from": start, "to": start + 3 * 86_400, "period": "day"},
            )
        ).json
        views[f"quota {imsi}"] = (await emulator.control("GET", f"/sims/{imsi}/quota"))[1]
    return views


async def _data(api: ApiClient, imsis: Sequence[str]) -> dict[str, Any]:
    views: dict[str, Any] = {"resources": (await api.get("/v1/data/resources")).json}
    for imsi in imsis:
        views[imsi] = await api.all_pages(
            f"/v1/subscribers/{imsi}/data", sort="asc", limit=100, **{"from": 0}
        )
    return views


@asynccontextmanager
async def memory_emulator(aiohttp_client: AiohttpClient, tmp_path: Path) -> AsyncIterator[Emulator]:
    settings = Settings(
        port=0, harvest_port=0, unified_port=0, memory=True, data_dir=tmp_path / "unused"
    )
    other = Emulator(await aiohttp_client(create_app(settings)), settings)
    try:
        yield other
    finally:
        await other.close()


async def _get_snapshot(emulator: Emulator) -> bytes:
    async with emulator.client.get("/_emulator/snapshot") as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "application/x-msgpack"
        return await response.read()


async def _put_snapshot(emulator: Emulator, body: bytes) -> tuple[int, Any]:
    async with emulator.client.put(
        "/_emulator/snapshot",
        data=io.BytesIO(body),
        headers={"Content-Type": "application/x-msgpack"},
    ) as response:
        return response.status, await response.json()


async def test_control_plane_round_trip_keeps_data_state_and_bills(
    emulator: Emulator, aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    await emulator.control("PUT", "/clock", {"now": NOV_10, "frozen": True})
    second = await emulator.new_sim()
    status, other = await emulator.control("POST", "/operators", {"operatorId": "OP0000000077"})
    assert status == 201
    imsis = ["001010000000001", second["imsi"]]
    for i in range(120):
        await _write(emulator, "127.0.0.1", json.dumps({"i": i}), NOV_10 - 1000 + i)
    await _write(emulator, second["sessionAddress"], '{"other":true}', NOV_10 - 5)
    await emulator.control("POST", "/clock/advance", {"seconds": 86_400})
    await _write(emulator, "127.0.0.1", '{"next":"day"}', NOV_10 + 86_400_000)
    api = await emulator.api()
    await api.get("/v1/subscribers/001010000000001/data")  # a read: in the ledger at export

    exported = await _get_snapshot(emulator)
    billing = await _billing(emulator, api, imsis)
    data = await _data(api, imsis)

    async with memory_emulator(aiohttp_client, tmp_path) as copy:
        status, _ = await copy.control("PUT", "/clock", {"now": NOV_10 + 86_400_000})
        assert status == 200
        credentials = {"authKeyId": other["authKeyId"], "authKey": other["authKey"]}
        login = await copy.api_client().call(
            "POST", "/v1/auth", json_body=credentials, authenticated=False
        )
        assert login.status == 401  # the second operator is not there before the import
        status, answer = await _put_snapshot(copy, exported)
        assert status == 200, answer
        counts = answer["imported"]["counts"]
        assert counts["entries"] == 122
        assert counts["operators"] == 2
        assert answer["imported"]["store"] == "sqlite"
        assert answer["imported"]["clockMs"] == NOV_10 + 86_400_000

        # the token the first emulator issued works on the copy: tokens are state too
        same_login = ApiClient(copy.api_client().session, copy.base_url)
        same_login.api_key, same_login.token = api.api_key, api.token
        same_login.operator_id = api.operator_id
        assert await _billing(copy, same_login, imsis) == billing
        assert await _data(same_login, imsis) == data
        await copy.api(other["authKeyId"], other["authKey"])  # the second operator logs in


async def test_an_export_through_the_control_plane_during_writes_is_consistent(
    emulator: Emulator, tmp_path: Path
) -> None:
    await emulator.control("PUT", "/clock", {"now": NOV_10, "frozen": True})
    store = emulator.app[STORE]
    bulk = json.dumps({"b": "x" * 900})
    await store.apply(
        [
            PutEntries(
                tuple(
                    DataEntry(DEFAULT_OP, SUB, IMSI1, NOV_10 - 10**6 + i, "application/json", bulk)
                    for i in range(3000)
                ),
                NOV_10,
                (Usage(DEFAULT_OP, IMSI1, DAY, UsageKind.WRITE, 3000),),
            )
        ]
    )
    sent = 0
    stop = asyncio.Event()
    going = asyncio.Event()

    async def device() -> None:
        nonlocal sent
        while not stop.is_set():
            await _write(emulator, "127.0.0.1", '{"live":1}', NOV_10 + sent)
            sent += 1
            if sent == 3:
                going.set()

    task = asyncio.create_task(device())
    await going.wait()
    before = sent
    exported = await _get_snapshot(emulator)
    during = sent - before
    stop.set()
    await task
    assert during > 0
    (tmp_path / "live.msgpack").write_bytes(exported)
    target = MemoryStore()
    await import_file(target, tmp_path / "live.msgpack")
    entries = await target.query_entries(
        EntryQuery("OP0000000000", SUB, "001010000000001", 0, 2**62, True, 10**6)
    )
    rows = await target.usage_rows("OP0000000000", "0000", "9999")
    writes = sum(u.count for u in rows if u.kind is UsageKind.WRITE and u.imsi == IMSI1)
    assert writes == len(entries)


async def test_a_bad_upload_is_400_and_changes_nothing(emulator: Emulator) -> None:
    await _write(emulator, "127.0.0.1", '{"keep":"me"}', NOV_10)
    before = await _get_snapshot(emulator)
    status, body = await _put_snapshot(emulator, before[:-40])
    assert status == 400
    assert body["code"] == "HEM1002"
    assert "not a snapshot this emulator can import" in body["message"]
    assert "Nothing was changed" in body["message"]
    status, body = await _put_snapshot(emulator, _edit(lambda o: o[0].update(version=9)))
    assert (status, "newer emulator" in body["message"]) == (400, True)
    after = await _get_snapshot(emulator)
    assert records_of_bytes(after)[1:-1] == records_of_bytes(before)[1:-1]
    api = await emulator.api()
    [stored] = (await api.get("/v1/subscribers/001010000000001/data")).json
    assert stored["content"] == '{"keep":"me"}'
    data_dir = emulator.settings.data_dir
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".snapshot-upload-")]


def records_of_bytes(raw: bytes) -> list[Any]:
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(raw)
    return list(unpacker)


async def test_an_upload_over_the_limit_is_413(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported = await _get_snapshot(emulator)
    monkeypatch.setattr(handlers, "MAX_UPLOAD_BYTES", len(exported) - 1)
    status, body = await _put_snapshot(emulator, exported)
    assert status == 413
    assert str(len(exported) - 1) in body["message"]


@pytest.mark.settings(control_token="sesame")
async def test_the_snapshot_routes_need_the_control_token(emulator: Emulator) -> None:
    async with emulator.client.get("/_emulator/snapshot") as response:
        assert response.status == 401
    async with emulator.client.put("/_emulator/snapshot", data=b"x") as response:
        assert response.status == 401
    async with emulator.client.get(
        "/_emulator/snapshot", headers={"X-Emulator-Token": "sesame"}
    ) as response:
        assert response.status == 200


# --- the command line -----------------------------------------------------------------------------
def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARVEST_")}
    return subprocess.run(
        [sys.executable, "-m", "harvest", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


async def _send(base_url: str, body: str, at: int) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            base_url + "/",
            data=body,
            headers={"Content-Type": "application/json", "X-Soracom-Timestamp": str(at)},
        ) as reply,
    ):
        assert reply.status == 201


async def _entries(base_url: str) -> list[Any]:
    async with aiohttp.ClientSession() as session:
        api = await ApiClient(session, base_url).login()
        return await api.all_pages(
            "/v1/subscribers/001010000000001/data", sort="asc", **{"from": 0}
        )


@pytest.mark.timeout(120)
async def test_cli_offline_round_trip_and_through_a_running_emulator(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    file = tmp_path / "snap.msgpack"
    with running(["--port", "0", "--data-dir", str(first)]) as process:
        for i in range(25):
            await _send(process.base_url, json.dumps({"i": i}), T0 + i)
        expected = await _entries(process.base_url)
        # exporting offline is safe while the emulator runs (a read-only view)
        exported = cli("export", str(file), "--data-dir", str(first))
        assert exported.returncode == 0, exported.stderr
        assert f"exported to {file}: 1 operator, 1 auth key" in exported.stdout
        assert "25 entries" in exported.stdout
        # importing offline is not
        refused = cli("import", str(file), "--data-dir", str(first))
        assert refused.returncode == 1
        assert "is in use: is an emulator running on it?" in refused.stderr
        process.popen.terminate()
        process.popen.wait()

    imported = cli("import", str(file), "--data-dir", str(second))
    assert imported.returncode == 0, imported.stderr
    assert "imported from" in imported.stdout
    with running(["--port", "0", "--data-dir", str(second), "--control-token", "t0k"]) as process:
        assert await _entries(process.base_url) == expected
        await _send(process.base_url, '{"after":"import"}', T0 + 1000)

        # the same through the control plane
        again = tmp_path / "again.msgpack"
        no_token = cli("export", str(again), "--endpoint", process.base_url)
        assert no_token.returncode == 1
        assert "401" in no_token.stderr
        assert not again.exists()
        online = cli("export", str(again), "--endpoint", process.base_url, "--control-token", "t0k")
        assert online.returncode == 0, online.stderr
        assert "26 entries" in online.stdout
        back = cli("import", str(file), "--endpoint", process.base_url, "--control-token", "t0k")
        assert back.returncode == 0, back.stderr
        assert await _entries(process.base_url) == expected

    garbage = tmp_path / "garbage.msgpack"
    garbage.write_bytes(b"\x93\x01\x02")
    bad = cli("import", str(garbage), "--data-dir", str(tmp_path / "third"))
    assert bad.returncode == 1
    assert f"{garbage}: it is not a harvest-emulator-snapshot" in bad.stderr
    assert not (tmp_path / "third").exists()  # nothing was created
    missing = cli("export", str(tmp_path / "x.msgpack"), "--data-dir", str(tmp_path / "none"))
    assert missing.returncode == 1
    assert "there is no emulator database" in missing.stderr
    unreachable = cli("export", str(tmp_path / "x.msgpack"), "--endpoint", "http://127.0.0.1:9")
    assert unreachable.returncode == 2
    assert "cannot reach the emulator" in unreachable.stderr
