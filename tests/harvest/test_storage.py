"""The stores: SQLite and in-memory keep the same contract (issue 2, item 7)."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harvest.domain import DataEntry, Group, ResourceType
from harvest.storage import MemoryStore, SqliteStore, Store
from harvest.storage.base import (
    AppendWrites,
    CategoryQuery,
    DeleteEntry,
    DeleteEverything,
    DeleteResourceData,
    DeviceWrites,
    EntryQuery,
    MarkProvisioned,
    Mutation,
    PutEntries,
    PutGroup,
    RecordUsage,
    Usage,
    UsageKind,
    WriteRow,
)
from harvest.storage.sqlite import SCHEMA_VERSION, StoreError

OP = "OP0000000001"
JSON = "application/json"
SUB = ResourceType.SUBSCRIBER


def entry(
    resource_id: str,
    time: int,
    content: str = '{"v":1}',
    category: str | None = None,
    operator_id: str = OP,
) -> DataEntry:
    return DataEntry(operator_id, SUB, resource_id, time, "application/json", content, category)


def put(*entries: DataEntry, written: int = 1) -> PutEntries:
    return PutEntries(tuple(entries), written)


def query(
    resource_id: str,
    *,
    ascending: bool = False,
    limit: int = 1000,
    after: int | None = None,
    low: int = 0,
    high: int = 10**15,
) -> EntryQuery:
    return EntryQuery(OP, SUB, resource_id, low, high, ascending, limit, after)


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store = (
        SqliteStore(tmp_path / "h.sqlite3") if request.param == "sqlite" else MemoryStore()
    )
    await opened.open()
    yield opened
    await opened.close()


async def test_entries_overwrite_at_the_same_millisecond(store: Store) -> None:
    await store.apply([put(entry("1", 5, '{"n":1}'))])
    await store.apply([put(entry("1", 5, '{"n":2}'))])
    assert [e.content for e in await store.query_entries(query("1"))] == ['{"n":2}']


async def test_pages_follow_the_order_and_the_key(store: Store) -> None:
    await store.apply([put(*(entry("1", t) for t in range(1, 11)))])
    first = await store.query_entries(query("1", limit=4))
    assert [e.time for e in first] == [10, 9, 8, 7]
    rest = await store.query_entries(query("1", limit=4, after=7))
    assert [e.time for e in rest] == [6, 5, 4, 3]
    ascending = await store.query_entries(query("1", ascending=True, limit=3, after=3, high=6))
    assert [e.time for e in ascending] == [4, 5, 6]


def writes(imsi: str, n: int = 1, day: str = "2026-01-01") -> tuple[Usage, ...]:
    return (Usage(OP, imsi, day, UsageKind.WRITE, n),)


async def test_write_counts_add_up_even_when_entries_overwrite(store: Store) -> None:
    counted = PutEntries((entry("1", 5),), 1, writes("1"))
    await store.apply([counted, counted])
    await store.apply([counted])
    assert await store.usage_count(OP, "1", "2026-01-01", UsageKind.WRITE) == 3
    assert await store.usage_count(OP, "1", "2026-01-02", UsageKind.WRITE) == 0


async def test_the_ledger_counts_kinds_and_a_harvest_day_once(store: Store) -> None:
    day = "2026-11-30"
    harvest_day = Usage(OP, "1", day, UsageKind.HARVEST_DAY, 1)
    await store.apply([RecordUsage((harvest_day, harvest_day)), RecordUsage((harvest_day,))])
    await store.apply(
        [
            RecordUsage((Usage(OP, "1", day, UsageKind.READ, 2),)),
            PutEntries((entry("1", 1),), 1, writes("1", 3, day)),
            RecordUsage((Usage("OP9", "9", day, UsageKind.WRITE, 4),)),
        ]
    )
    assert await store.usage_count(OP, "1", day, UsageKind.HARVEST_DAY) == 1
    assert await store.usage_rows(OP, "2026-11-01", "2026-11-30") == [
        Usage(OP, "1", day, UsageKind.HARVEST_DAY, 1),
        Usage(OP, "1", day, UsageKind.READ, 2),
        Usage(OP, "1", day, UsageKind.WRITE, 3),
    ]
    assert await store.usage_rows(OP, "2026-12-01", "2026-12-31") == []
    assert await store.day_counts(day, UsageKind.WRITE) == {"1": 3, "9": 4}


async def test_resource_metadata_accumulates_attribute_names(store: Store) -> None:
    await store.apply([PutEntries((entry("1", 1, '{"a":1}'),), 100)])
    await store.apply([PutEntries((entry("1", 2, '{"b":2}'), entry("2", 1, "[1]")), 200)])
    [one, two] = await store.list_resources(OP, None, 10, None)
    assert (one.resource_id, one.attribute_names, one.last_modified_ms) == ("1", ("a", "b"), 200)
    assert (two.resource_id, two.attribute_names) == ("2", ())
    assert [
        m.resource_id for m in await store.list_resources(OP, SUB, 10, ("Subscriber", "1"))
    ] == ["2"]


async def test_category_pages(store: Store) -> None:
    await store.apply(
        [
            put(
                entry("1", 1, category="c"),
                entry("2", 1, category="c"),
                entry("1", 2, category="d"),
                entry("1", 3, category="c"),
            )
        ]
    )
    page = await store.query_category(CategoryQuery(OP, "c", 0, 10, True, 2))
    assert [(e.time, e.resource_id) for e in page] == [(1, "1"), (1, "2")]
    rest = await store.query_category(
        CategoryQuery(OP, "c", 0, 10, True, 2, (1, "Subscriber", "2"))
    )
    assert [(e.time, e.resource_id) for e in rest] == [(3, "1")]


async def test_delete_and_reset_of_one_resource(store: Store) -> None:
    await store.apply([put(entry("1", 1), entry("1", 2), entry("2", 1))])
    await store.apply([DeleteEntry(OP, SUB, "1", 1)])
    assert await store.get_entry(OP, SUB, "1", 1) is None
    assert await store.get_entry(OP, SUB, "1", 2) is not None
    await store.apply([DeleteResourceData(OP, SUB, "1")])
    assert await store.query_entries(query("1")) == []
    assert len(await store.query_entries(query("2"))) == 1


async def test_state_survives_and_delete_everything_wipes_it(store: Store) -> None:
    group = Group("g1", OP, {"name": "x"}, {"SoracomHarvest": {"enabled": True}}, 1, 1)
    await store.apply([PutGroup(group), MarkProvisioned(), put(entry("1", 1))])
    snapshot = await store.load_state()
    assert snapshot.provisioned
    assert snapshot.groups == (group,)
    await store.apply([DeleteEverything()])
    snapshot = await store.load_state()
    assert not snapshot.provisioned
    assert snapshot.groups == ()
    assert await store.query_entries(query("1")) == []


# --- SQLite specifics ------------------------------------------------------------------------
async def test_concurrent_writers_share_commits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.sqlite3")
    await store.open()
    try:
        await asyncio.gather(*(store.apply([put(entry("1", t))]) for t in range(500)))
        stats = store.stats()
        assert stats.mutations == 500
        # group commit: far fewer transactions than writers
        assert stats.batches < 100, stats
        assert len(await store.query_entries(query("1"))) == 500
    finally:
        await store.close()


async def test_one_failing_writer_does_not_fail_its_batch(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.sqlite3")
    await store.open()
    broken = DataEntry(OP, SUB, "1", 99, "text/plain", None)  # type: ignore[arg-type]
    try:
        results = await asyncio.gather(
            *(store.apply([put(entry("1", t))]) for t in range(20)),
            store.apply([put(broken)]),
            return_exceptions=True,
        )
        assert results[:20] == [(0,)] * 20  # each stored, replacing nothing
        assert isinstance(results[20], sqlite3.IntegrityError)
        assert len(await store.query_entries(query("1"))) == 20
    finally:
        await store.close()


async def test_reopening_keeps_everything_committed(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.apply([put(*(entry("1", t) for t in range(100))), MarkProvisioned()])
    await store.close()
    again = SqliteStore(path)
    await again.open()
    try:
        assert len(await again.query_entries(query("1"))) == 100
        assert (await again.load_state()).provisioned
    finally:
        await again.close()


async def test_the_file_is_wal_with_full_synchronous_writes(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer emulator"):
        await SqliteStore(path).open()


async def test_a_version_1_database_is_migrated_keeping_its_write_counts(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE write_counts (operator_id TEXT NOT NULL, imsi TEXT NOT NULL, "
            "day TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (operator_id, imsi, day)) "
            "WITHOUT ROWID;"
            "INSERT INTO write_counts VALUES ('OP0000000001', '1', '2026-01-01', 7);"
            "PRAGMA user_version = 1;"
        )
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.usage_count(OP, "1", "2026-01-01", UsageKind.WRITE) == 7
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "write_counts" not in tables


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        await SqliteStore(path).open()


async def test_apply_after_close_is_an_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.sqlite3")
    await store.open()
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.apply([put(entry("1", 1))])


# --- property: both stores agree on any sequence of writes and paged reads ------------------
resources = st.sampled_from(["1", "2", "3"])
times = st.integers(min_value=0, max_value=40)
contents = st.sampled_from(['{"a":1}', '{"b":2}', '{"a":3,"c":4}', "[1]", "x"])
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"),
            resources,
            times,
            contents,
            st.sampled_from([None, "c"]),
        ),
        st.tuples(st.just("delete"), resources, times),
        st.tuples(st.just("reset"), resources),
        st.tuples(
            st.just("append"),
            st.lists(
                st.tuples(resources, times, contents, st.sampled_from([None, "c"])),
                min_size=1,
                max_size=6,
            ),
        ),
    ),
    max_size=40,
)
reads = st.tuples(resources, st.booleans(), st.integers(1, 7), times, times)


def appended(
    resource_id: str, time: int, content: str = '{"v":1}', category: str | None = None
) -> WriteRow:
    """A row of :class:`AppendWrites`: one write of SIM ``resource_id`` on 2026-01-01."""
    keys = DataEntry(OP, SUB, resource_id, time, JSON, content).attribute_names()
    return (
        OP, resource_id, time, JSON, content, category, keys if time % 2 else None, time,
        "2026-01-01", "2026-01-01T00:00",
    )  # fmt: skip


def to_mutation(op: tuple[Any, ...]) -> Mutation:
    if op[0] == "put":
        if op[2] % 2:  # a device write's own form (the SQLite journal keeps it on its rows)
            counted = DeviceWrites(OP, op[1], "2026-01-01", "2026-01-01T00:00", 1)
            return PutEntries((entry(op[1], op[2], op[3], op[4]),), op[2], writes=counted)
        return PutEntries((entry(op[1], op[2], op[3], op[4]),), op[2], writes(op[1]))
    if op[0] == "append":  # the raw listeners' rows; keys given for some, read for others
        return AppendWrites([appended(*row) for row in op[1]])
    if op[0] == "delete":
        return DeleteEntry(OP, SUB, op[1], op[2])
    return DeleteResourceData(OP, SUB, op[1])


def rows_replaced(mutations: list[Mutation]) -> list[list[int]]:
    return [m.replaced for m in mutations if isinstance(m, AppendWrites)]


async def read_everything(store: Store, read: tuple[str, bool, int, int, int]) -> list[Any]:
    """Page through one resource with the read's order and page size, as a client would."""
    resource_id, ascending, limit, low, high = read
    seen: list[Any] = []
    after = None
    for _ in range(100):
        page = await store.query_entries(
            query(
                resource_id,
                ascending=ascending,
                limit=limit,
                after=after,
                low=min(low, high),
                high=max(low, high),
            )
        )
        seen.extend((e.time, e.content, e.category) for e in page)
        if len(page) < limit:
            break
        after = page[-1].time
    category = await store.query_category(CategoryQuery(OP, "c", 0, 100, ascending, 1000))
    metadata = await store.list_resources(OP, None, 10, None)
    counts = [await store.usage_count(OP, r, "2026-01-01", UsageKind.WRITE) for r in "123"]
    return [
        seen,
        [(e.resource_id, e.time) for e in category],
        [(m.resource_id, m.last_modified_ms, m.attribute_names) for m in metadata],
        counts,
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(operations, max_size=4), read=reads)
def test_sqlite_and_memory_stores_agree(
    batches: list[list[tuple[Any, ...]]], read: tuple[str, bool, int, int, int]
) -> None:
    async def scenario() -> tuple[list[Any], list[Any]]:
        with tempfile.TemporaryDirectory() as directory:
            sqlite_store = SqliteStore(Path(directory) / "h.sqlite3")
            memory_store = MemoryStore()
            for store in (sqlite_store, memory_store):
                await store.open()
            try:
                replaced: tuple[list[Any], list[Any]] = ([], [])
                for batch in batches:
                    # each store its own mutations: an AppendWrites says which rows replaced
                    mutations = [to_mutation(op) for op in batch]
                    # concurrent calls exercise the group commit's batching
                    answers = await asyncio.gather(*(sqlite_store.apply([m]) for m in mutations))
                    replaced[0].extend(count for (count,) in answers)
                    replaced[0].extend(rows_replaced(mutations))
                    mutations = [to_mutation(op) for op in batch]
                    replaced[1].extend(await memory_store.apply(mutations))
                    replaced[1].extend(rows_replaced(mutations))
                return (
                    [*await read_everything(sqlite_store, read), replaced[0]],
                    [*await read_everything(memory_store, read), replaced[1]],
                )
            finally:
                for store in (sqlite_store, memory_store):
                    await store.close()

    from_sqlite, from_memory = asyncio.run(scenario())
    assert from_sqlite == from_memory


async def test_a_write_at_an_existing_key_says_it_replaced_the_entry(store: Store) -> None:
    """The real service keys an entry on (resource, time in ms): a second write replaces the
    first (spec A1). The store tells each call how many entries it replaced (issue 9, item 7)."""
    assert await store.apply([put(entry("1", 1))]) == (0,)
    assert await store.apply([put(entry("1", 1, "again")), MarkProvisioned()]) == (1, 0)
    assert await store.apply([put(entry("1", 2), entry("1", 2, "twice"))]) == (1,)
    assert await store.apply([put(entry("1", 3)), put(entry("1", 3, "b"))]) == (0, 1)
    assert await store.apply([DeleteEntry(OP, SUB, "1", 3), put(entry("1", 3, "c"))]) == (0, 0)
    [stored] = [e for e in await store.query_entries(query("1")) if e.time == 1]
    assert stored.content == "again"
    # concurrent writers at one key (the group commit puts them in one transaction)
    answers = await asyncio.gather(*(store.apply([put(entry("2", 7, str(n)))]) for n in range(10)))
    assert sorted(count for (count,) in answers) == [0] + [1] * 9


async def test_attribute_names_survive_a_resource_reset_and_rewrite(store: Store) -> None:
    """The SQLite store remembers which names a resource row holds, to skip the JSON union on
    later writes; a reset (or a wipe) must forget that, or a re-created row would lose them."""
    for wipe in (DeleteResourceData(OP, SUB, "1"), DeleteEverything()):
        await store.apply([PutEntries((entry("1", 1, '{"a":1}'),), 10)])
        await store.apply([wipe])
        await store.apply([PutEntries((entry("1", 2, '{"a":2}'),), 20)])
        [meta] = await store.list_resources(OP, None, 10, None)
        assert meta.attribute_names == ("a",)
        # and in one transaction: reset and write again
        await store.apply([wipe, PutEntries((entry("1", 3, '{"a":3}'),), 30)])
        [meta] = await store.list_resources(OP, None, 10, None)
        assert meta.attribute_names == ("a",)


async def test_appended_rows_say_which_replaced_an_entry(store: Store) -> None:
    """An :class:`AppendWrites` is the sequence of one-entry device writes its rows are: each
    row counts one write, a row at a stored key replaces that entry and says so by its index,
    also when it is before the resource's newest entry (the SQLite store's full path)."""
    first = AppendWrites([appended("1", 5), appended("2", 5, '{"b":1}'), appended("1", 5, "x")])
    assert await store.apply([first]) == (1,)
    assert first.replaced == [2]
    later = AppendWrites([appended("1", 9), appended("1", 5, '{"c":2}', "c"), appended("3", 1)])
    assert await store.apply([put(entry("2", 6)), later]) == (0, 1)
    assert later.replaced == [1]
    assert [(e.time, e.content, e.category) for e in await store.query_entries(query("1"))] == [
        (9, '{"v":1}', None),
        (5, '{"c":2}', "c"),
    ]
    assert await store.usage_count(OP, "1", "2026-01-01", UsageKind.WRITE) == 4
    assert await store.usage_count(OP, "1", "2026-01-01T00:00", UsageKind.WRITE_5MIN) == 4
    meta = {m.resource_id: m for m in await store.list_resources(OP, None, 10, None)}
    assert (meta["1"].last_modified_ms, meta["1"].attribute_names) == (9, ("c", "v"))
    assert meta["2"].attribute_names == ("b", "v")


async def test_a_group_commit_counts_appended_rows_as_the_writes_they_are(tmp_path: Path) -> None:
    """``harvest_group_commit_batch_size`` and the store's stats count mutations; the rows of
    an :class:`AppendWrites` are one-entry ``PutEntries`` each, and count as such (and against
    the batch cap), whichever path built them."""
    store = SqliteStore(tmp_path / "h.sqlite3")
    await store.open()
    sizes: list[int] = []
    store.on_batch = lambda size, _: sizes.append(size)
    try:
        await store.apply([AppendWrites([appended("1", 1), appended("2", 1), appended("1", 2)])])
        await store.apply([put(entry("3", 1)), AppendWrites([appended("3", 2)])])
    finally:
        await store.close()
    assert sizes == [3, 2]
    assert store.stats().mutations == 5
    memory = MemoryStore()
    await memory.apply([AppendWrites([appended("1", 1), appended("2", 1)]), MarkProvisioned()])
    assert memory.stats().mutations == 3


async def test_the_journal_folds_after_so_many_appended_rows(tmp_path: Path) -> None:
    """``fold_after`` (setting ``journal_fold_rows``) counts writes: the rows of an
    :class:`AppendWrites` each count, as the ``PutEntries`` they stand for."""
    store = SqliteStore(tmp_path / "h.sqlite3", fold_after=5)
    await store.open()
    try:
        await store.apply([AppendWrites([appended("1", t) for t in range(4)])])
        assert store.stats().extra["unfolded"] == 4
        folds = store.stats().extra["folds"]
        await store.apply([AppendWrites([appended("2", 1)])])
        for _ in range(100):  # the batch that crossed it is folded right after its answer
            if store.stats().extra["folds"] > folds:
                break
            await asyncio.sleep(0.005)
        assert (store.stats().extra["folds"], store.stats().extra["unfolded"]) == (folds + 1, 0)
    finally:
        await store.close()


@pytest.mark.parametrize("rows", [1, 3, 4, 5, 21, 255, 256, 257, 341, 600])
async def test_an_append_of_any_size_keeps_every_row_in_order(store: Store, rows: int) -> None:
    """The SQLite journal appends a batch in statements of several fixed sizes: whatever the
    batch's size, every row is stored, and of two rows at one key (one SIM, one millisecond)
    the later wins and says it replaced the earlier, as its writes came in that order."""

    def key(n: int) -> tuple[str, int]:  # seven SIMs, each a millisecond later every 7 rows
        return str(n % 7), 10 + n // 7

    batch = [appended(*key(n), f'{{"n":{n}}}') for n in range(rows)]
    last = rows - 1  # its key again, at its SIM's newest time: the journal's path
    batch.append(appended(*key(last), '{"again":1}'))
    mutation = AppendWrites(batch)
    assert await store.apply([mutation]) == (1,)
    assert mutation.replaced == [rows]
    stored = {
        (e.resource_id, e.time): e.content
        for sim in map(str, range(7))
        for e in await store.query_entries(query(sim))
    }
    expected = {key(n): f'{{"n":{n}}}' for n in range(rows)}
    expected[key(last)] = '{"again":1}'
    assert stored == expected
    counted = [await store.usage_count(OP, str(s), "2026-01-01", UsageKind.WRITE) for s in range(7)]
    assert sum(counted) == rows + 1
