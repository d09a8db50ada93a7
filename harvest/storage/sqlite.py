"""The SQLite store: WAL, ``synchronous=FULL``, group commit off the event loop.

Writers call :meth:`SqliteStore.apply` and wait. One background task drains every waiting call
into one transaction on the writer connection (aiosqlite runs it on its own thread), commits it
with one fsync, and only then answers each waiter: a ``201`` is sent after the entry is on disk,
and a thousand concurrent writers cost one commit instead of a thousand. Reads use a second
connection, so a page read never waits behind a commit (WAL lets them run side by side).

Entries live in a ``WITHOUT ROWID`` table clustered on (operator, resource type, resource id,
time): a page read is one index range scan whose cost follows the page size, not the data size.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from harvest.domain import DataEntry, ResourceMetadata, ResourceType
from harvest.storage.base import (
    CategoryQuery,
    EntryQuery,
    Mutation,
    Replaced,
    SnapshotReader,
    StateSnapshot,
    StoreStats,
    Usage,
    UsageKind,
    weight,
)
from harvest.storage.sqlite_journal import ADD_ROW_USAGE
from harvest.storage.sqlite_reads import SqliteSnapshot, read_state
from harvest.storage.sqlite_schema import MIGRATIONS as MIGRATIONS
from harvest.storage.sqlite_schema import SCHEMA as SCHEMA
from harvest.storage.sqlite_schema import SCHEMA_VERSION as SCHEMA_VERSION
from harvest.storage.sqlite_writes import (
    WriterCaches,
    commit_on_writer_thread,
    fold_on_writer_thread,
)

log = logging.getLogger(__name__)

#: Below ``fold_after`` journalled writes (setting ``journal_fold_rows``), the journal is folded
#: when the writer has been idle this long, or when a read needs it.
FOLD_IDLE_S = 0.05


class StoreError(RuntimeError):
    """The database cannot be used (newer schema, not a database, disk failure)."""


@dataclass(slots=True)
class _Waiter:
    mutations: Sequence[Mutation]
    future: asyncio.Future[Replaced]
    #: A read waits for the journal to be folded (:meth:`SqliteStore._folded`).
    fold: bool = False
    #: The mutations' :func:`~harvest.storage.base.weight`.
    size: int = 0


class SqliteStore:
    """:class:`~harvest.storage.base.Store` on one SQLite file."""

    def __init__(self, path: Path, *, max_batch: int = 2048, fold_after: int = 20_000) -> None:
        """``fold_after``: journalled writes past which the journal is folded right after the
        batch that crossed it (larger folds write each resource's pages less often)."""
        self._path = path
        self._fold_after = fold_after
        self._max_batch = max_batch
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[_Waiter | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        #: Attribute names and newest times per resource, touched only on the writer thread.
        self._caches = WriterCaches()
        #: Entry rows of the transaction being committed that replaced one (writer thread only).
        self._replaced: list[int] = []
        #: Told (mutations, seconds) after each committed transaction (metrics).
        self.on_batch: Callable[[int, float], None] | None = None
        self._batches = 0
        self._folds = 0
        self._mutations = 0
        self._largest_batch = 0

    # --- lifecycle ----------------------------------------------------------------------------
    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        writer = await aiosqlite.connect(self._path, isolation_level=None)
        try:
            await self._prepare(writer)
        except BaseException:
            await writer.close()
            raise
        await writer.create_function("harvest_replaced", 2, self._note_replaced)
        self._writer = writer
        left = await self._one(writer, "SELECT count(*) FROM journal")
        if left[0]:
            log.info("folding %d journal rows left by the last run", left[0])
        await self._fold()  # what a crash left in the journal, before anything reads
        self._reader = await aiosqlite.connect(self._path, isolation_level=None)
        await self._reader.execute("PRAGMA busy_timeout = 5000")
        await self._reader.execute("PRAGMA query_only = 1")
        self._task = asyncio.create_task(self._commit_loop(), name="sqlite-group-commit")

    def _note_replaced(self, row: int, kept: str) -> str:
        """``harvest_replaced()`` in the entry upsert (:mod:`harvest.storage.sqlite_writes`):
        note the row, keep the value."""
        self._replaced.append(row)
        return kept

    async def _prepare(self, db: aiosqlite.Connection) -> None:
        try:
            (version,) = await self._one(db, "PRAGMA user_version")
            mode = (await self._one(db, "PRAGMA journal_mode = WAL"))[0]
        except aiosqlite.DatabaseError as error:
            raise StoreError(f"{self._path} is not a usable SQLite database: {error}") from None
        if mode != "wal":
            raise StoreError(f"{self._path}: cannot switch to WAL (journal mode {mode})")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self._path} was written by a newer emulator (schema {version}, "
                f"this one knows {SCHEMA_VERSION})"
            )
        await db.execute("PRAGMA synchronous = FULL")
        await db.execute("PRAGMA busy_timeout = 5000")
        await db.executescript(SCHEMA)
        if version:
            script = "".join(MIGRATIONS[v] for v in range(version, SCHEMA_VERSION))
            columns = [row[1] for row in await db.execute_fetchall("PRAGMA table_info(journal)")]
            if "usage_day" not in columns:  # a journal of schema 4 or 5 (MIGRATIONS[5])
                script += ADD_ROW_USAGE
            if script:
                await db.executescript(f"BEGIN;\n{script}\nCOMMIT;")
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @staticmethod
    async def _one(db: aiosqlite.Connection, sql: str) -> tuple[Any, ...]:
        async with db.execute(sql) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return tuple(row)

    async def close(self) -> None:
        """Finish the queued writes and fold the journal: a closed database has none."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None
            await self._fold_safely()
        for db in (self._reader, self._writer):
            if db is not None:
                await db.close()
        self._reader = self._writer = None

    # --- writes -------------------------------------------------------------------------------
    async def apply(self, mutations: Sequence[Mutation]) -> Replaced:
        if self._task is None or self._task.done():
            raise StoreError("the store is closed")
        future: asyncio.Future[Replaced] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Waiter(mutations, future, size=weight(mutations)))
        return await future

    async def _commit_loop(self) -> None:
        stopping = False
        while not stopping:
            if self._caches.unfolded:  # fold once the writer has been idle a moment
                try:
                    first = await asyncio.wait_for(self._queue.get(), FOLD_IDLE_S)
                except TimeoutError:
                    await self._fold_safely()
                    continue
            else:
                first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            size = first.size
            while size < self._max_batch and not self._queue.empty():
                waiter = self._queue.get_nowait()
                if waiter is None:
                    stopping = True
                    break
                batch.append(waiter)
                size += waiter.size
            writes = [waiter for waiter in batch if not waiter.fold]
            if writes:
                await self._commit_batch(writes)
            if len(writes) < len(batch) or self._caches.unfolded >= self._fold_after:
                error = await self._fold_safely()
                for waiter in batch:
                    if waiter.fold:
                        self._settle(waiter, () if error is None else error)
        # Answer anything that raced with close().
        while not self._queue.empty():
            waiter = self._queue.get_nowait()
            if waiter is not None and not waiter.future.done():
                waiter.future.set_exception(StoreError("the store is closed"))

    async def _fold(self) -> None:
        """Fold the journal now, on the writer thread (see :mod:`.sqlite_journal`)."""
        db = self._writer
        assert db is not None
        started = time.perf_counter()
        rows = await db._execute(fold_on_writer_thread, db._conn, self._caches)  # type: ignore[no-untyped-call]
        self._folds += 1
        if rows:
            log.debug(
                "folded %d journal rows in %.1f ms", rows, (time.perf_counter() - started) * 1e3
            )

    async def _fold_safely(self) -> Exception | None:
        """:meth:`_fold`, logging a failure (the journal stays, and is folded later)."""
        try:
            await self._fold()
        except Exception as error:
            log.warning("folding the journal failed (%s); it stays for the next fold", error)
            return error
        return None

    async def _folded(self) -> None:
        """Wait until what was acknowledged is folded into the tables reads look at."""
        if not self._caches.unfolded:
            return
        if self._task is None or self._task.done():
            raise StoreError("the store is closed")
        future: asyncio.Future[Replaced] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Waiter((), future, fold=True))
        await future

    async def _commit_batch(self, batch: list[_Waiter]) -> None:
        try:
            replaced = await self._transaction(
                [m for waiter in batch for m in waiter.mutations], sum(w.size for w in batch)
            )
        except Exception as error:
            if len(batch) == 1:
                self._settle(batch[0], error)
                return
            # Isolate the failure: one bad call must not fail its neighbours.
            log.warning(
                "group commit of %d calls failed (%s); retrying one by one", len(batch), error
            )
            for waiter in batch:
                try:
                    alone = await self._transaction(waiter.mutations, waiter.size)
                except Exception as single_error:
                    self._settle(waiter, single_error)
                else:
                    self._settle(waiter, alone)
            return
        start = 0
        for waiter in batch:
            end = start + len(waiter.mutations)
            self._settle(waiter, replaced[start:end])
            start = end

    @staticmethod
    def _settle(waiter: _Waiter, outcome: Replaced | Exception) -> None:
        if waiter.future.done():  # the caller was cancelled; the data is committed anyway
            return
        if isinstance(outcome, Exception):
            waiter.future.set_exception(outcome)
        else:
            waiter.future.set_result(outcome)

    async def _transaction(self, mutations: Sequence[Mutation], size: int) -> Replaced:
        """Plan and commit ``mutations`` (of :func:`~harvest.storage.base.weight` ``size``) in
        one transaction, in one trip to the writer thread.

        aiosqlite's public calls each cost a round trip between the event loop and its thread;
        a batch would take five. ``Connection._execute`` (what every aiosqlite call uses
        underneath) runs one function on that thread instead, so the plan is built and the whole
        transaction committed there, with the loop free meanwhile. It is private: checked
        against aiosqlite 0.20 to 0.22, the range pyproject.toml pins.
        """
        db = self._writer
        assert db is not None
        started = time.perf_counter()
        replaced: Replaced = await db._execute(  # type: ignore[no-untyped-call]
            commit_on_writer_thread, db._conn, mutations, self._caches, self._replaced
        )
        if self.on_batch is not None:
            self.on_batch(size, time.perf_counter() - started)
        self._batches += 1
        self._mutations += size
        self._largest_batch = max(self._largest_batch, size)
        return replaced

    # --- reads --------------------------------------------------------------------------------
    async def _fetch(self, sql: str, params: Sequence[Any]) -> Iterable[Any]:
        assert self._reader is not None, "the store is not open"
        await self._folded()
        return await self._reader.execute_fetchall(sql, params)

    async def load_state(self) -> StateSnapshot:
        assert self._reader is not None, "the store is not open"
        return await read_state(self._reader)  # the state is never journalled

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[SnapshotReader]:
        if self._writer is None:
            raise StoreError("the store is closed")
        await self._folded()
        db = await aiosqlite.connect(self._path, isolation_level=None)
        try:
            await db.execute("PRAGMA busy_timeout = 5000")
            await db.execute("PRAGMA query_only = 1")
            await db.execute("BEGIN")
            reader = SqliteSnapshot(db)
            await reader.load_state()  # the first read fixes the transaction's view
            yield reader
        finally:
            await db.close()

    async def query_entries(self, query: EntryQuery) -> list[DataEntry]:
        low, high = query.from_ms, query.to_ms
        if query.after is not None:
            if query.ascending:
                low = max(low, query.after + 1)
            else:
                high = min(high, query.after - 1)
        order = "ASC" if query.ascending else "DESC"
        rows = await self._fetch(
            "SELECT time, content_type, content, category FROM entries "
            "WHERE operator_id = ? AND resource_type = ? AND resource_id = ? "
            f"AND time >= ? AND time <= ? ORDER BY time {order} LIMIT ?",
            (
                query.operator_id,
                query.resource_type.value,
                query.resource_id,
                low,
                high,
                query.limit,
            ),
        )
        return [
            DataEntry(
                query.operator_id,
                query.resource_type,
                query.resource_id,
                time,
                content_type,
                content,
                category,
            )
            for time, content_type, content, category in rows
        ]

    async def query_category(self, query: CategoryQuery) -> list[DataEntry]:
        order = "ASC" if query.ascending else "DESC"
        params: list[Any] = [query.operator_id, query.category, query.from_ms, query.to_ms]
        keyset = ""
        if query.after is not None:
            keyset = (
                f"AND (time, resource_type, resource_id) {'>' if query.ascending else '<'} "
                "(?, ?, ?)"
            )
            params.extend(query.after)
        params.append(query.limit)
        rows = await self._fetch(
            "SELECT resource_type, resource_id, time, content_type, content FROM entries "
            "WHERE operator_id = ? AND category = ? AND time >= ? AND time <= ? "
            f"{keyset} ORDER BY time {order}, resource_type {order}, resource_id {order} "
            "LIMIT ?",
            params,
        )
        return [
            DataEntry(
                query.operator_id, ResourceType(rt), rid, time, ctype, content, query.category
            )
            for rt, rid, time, ctype, content in rows
        ]

    async def get_entry(
        self, operator_id: str, resource_type: ResourceType, resource_id: str, time: int
    ) -> DataEntry | None:
        rows = list(
            await self._fetch(
                "SELECT content_type, content, category FROM entries WHERE operator_id = ? "
                "AND resource_type = ? AND resource_id = ? AND time = ?",
                (operator_id, resource_type.value, resource_id, time),
            )
        )
        if not rows:
            return None
        content_type, content, category = rows[0]
        return DataEntry(
            operator_id, resource_type, resource_id, time, content_type, content, category
        )

    async def list_resources(
        self,
        operator_id: str,
        resource_type: ResourceType | None,
        limit: int,
        after: tuple[str, str] | None,
    ) -> list[ResourceMetadata]:
        params: list[Any] = [operator_id]
        where = "operator_id = ?"
        if resource_type is not None:
            where += " AND resource_type = ?"
            params.append(resource_type.value)
        if after is not None:
            where += " AND (resource_type, resource_id) > (?, ?)"
            params.extend(after)
        params.append(limit)
        rows = await self._fetch(
            "SELECT resource_type, resource_id, last_modified, attribute_names FROM resources "
            f"WHERE {where} ORDER BY resource_type, resource_id LIMIT ?",
            params,
        )
        return [
            ResourceMetadata(operator_id, ResourceType(rt), rid, modified, tuple(json.loads(names)))
            for rt, rid, modified, names in rows
        ]

    async def usage_count(self, operator_id: str, imsi: str, day: str, kind: UsageKind) -> int:
        rows = list(
            await self._fetch(
                "SELECT count FROM ledger WHERE operator_id = ? AND day = ? AND imsi = ? "
                "AND kind = ?",
                (operator_id, day, imsi, kind.value),
            )
        )
        return int(rows[0][0]) if rows else 0

    async def usage_rows(self, operator_id: str, first_day: str, last_day: str) -> list[Usage]:
        rows = await self._fetch(
            "SELECT day, imsi, kind, count FROM ledger WHERE operator_id = ? "
            "AND day >= ? AND day <= ? ORDER BY day, imsi, kind",
            (operator_id, first_day, last_day),
        )
        return [
            Usage(operator_id, imsi, day, UsageKind(kind), count) for day, imsi, kind, count in rows
        ]

    async def day_counts(self, day: str, kind: UsageKind) -> dict[str, int]:
        rows = await self._fetch(
            "SELECT imsi, sum(count) FROM ledger WHERE day = ? AND kind = ? GROUP BY imsi",
            (day, kind.value),
        )
        return {imsi: int(count) for imsi, count in rows}

    def stats(self) -> StoreStats:
        return StoreStats(
            kind="sqlite",
            path=str(self._path),
            batches=self._batches,
            mutations=self._mutations,
            extra={
                "largest_batch": self._largest_batch,
                "queued": self._queue.qsize(),
                "folds": self._folds,
                "unfolded": self._caches.unfolded,
            },
        )
