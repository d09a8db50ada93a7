"""The metadata of Harvest Files: one row per file and per directory, in the emulator's SQLite
database (table ``files``, schema version 5 of :mod:`harvest.storage.sqlite`) or in memory.

Rows are keyed by (operator, path) and read in the order of the paths' UTF-8 bytes, which is
``findFiles``' order (OpenAPI) and SQLite's ``BINARY`` collation. Each change is one
transaction, committed with ``synchronous=FULL`` before it returns.

An upload's metadata and its usage (the ledger rows that count it) commit together: in SQLite
the same transaction upserts ``ledger`` with the store's own statement, which adds to what is
there, as the fold of the store's journal does (docs/storage.md, "The journal"); so a crash
leaves both or neither (docs/files.md, "Storage and durability"). In memory the rows go to the
store in the same step of the loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from harvest.files.domain import FileRecord
from harvest.storage.base import RecordUsage, Store, Usage
from harvest.storage.sqlite_journal import add_usage
from harvest.storage.sqlite_writes import RECORD_USAGE_SQL


class FileIndex(Protocol):
    """Where the metadata is. ``after`` keys are exclusive; pages come in path order."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def get(self, operator_id: str, path: str) -> FileRecord | None: ...

    async def put(self, records: Sequence[FileRecord], usage: Sequence[Usage] = ()) -> None:
        """Insert or replace ``records`` and add ``usage`` to the ledger, in one transaction."""

    async def delete(self, operator_id: str, paths: Sequence[str]) -> None: ...

    async def children(
        self, operator_id: str, directory: str, limit: int, after: str | None
    ) -> list[FileRecord]:
        """Entries directly in ``directory``, after the one whose path is ``after``."""

    async def find(
        self, operator_id: str, prefix: str, limit: int, after: str | None
    ) -> list[FileRecord]:
        """Files (not directories) whose path starts with ``prefix``."""

    async def expired(self, before_ms: int, limit: int) -> list[FileRecord]:
        """Files last written before ``before_ms``, oldest first."""

    def pages(self, page: int) -> AsyncIterator[list[FileRecord]]:
        """Every row, ordered by (operator, path)."""

    async def clear(self, operator_id: str | None = None) -> list[str]:
        """Delete every row (of one operator); the blobs they pointed to."""


_COLUMNS = "operator_id, path, content_type, size, etag, created, modified, blob"


def _record(row: Any) -> FileRecord:
    return FileRecord(*row)


def _row(record: FileRecord) -> tuple[Any, ...]:
    return (
        record.operator_id,
        record.path,
        record.parent,
        record.content_type,
        record.size,
        record.etag,
        record.created_ms,
        record.modified_ms,
        record.blob,
    )


class SqliteFileIndex:
    """:class:`FileIndex` on the emulator's database file, on a connection of its own (WAL
    lets it commit beside the store's group commit; ``busy_timeout`` makes one wait for the
    other)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        db = await aiosqlite.connect(self._path, isolation_level=None)
        await db.execute("PRAGMA busy_timeout = 10000")
        await db.execute("PRAGMA synchronous = FULL")
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        assert self._db is not None, "the file index is not open"
        return self._db

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[FileRecord]:
        rows = await self.db.execute_fetchall(f"SELECT {_COLUMNS} FROM files {sql}", params)
        return [_record(row) for row in rows]

    async def _transaction(self, steps: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        db = self.db
        await db.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in steps:
                await db.executemany(sql, rows)
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def get(self, operator_id: str, path: str) -> FileRecord | None:
        found = await self._fetch("WHERE operator_id = ? AND path = ?", (operator_id, path))
        return found[0] if found else None

    async def put(self, records: Sequence[FileRecord], usage: Sequence[Usage] = ()) -> None:
        totals: dict[tuple[str, str, str, str], int] = {}
        for row in usage:
            add_usage(totals, row)
        steps: list[tuple[str, Sequence[Sequence[Any]]]] = [
            (
                "INSERT OR REPLACE INTO files (operator_id, path, parent, content_type, size,"
                " etag, created, modified, blob) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [_row(r) for r in records],
            )
        ]
        if totals:
            steps.append((RECORD_USAGE_SQL, [(*key, n) for key, n in totals.items()]))
        await self._transaction(steps)

    async def delete(self, operator_id: str, paths: Sequence[str]) -> None:
        await self._transaction(
            [
                (
                    "DELETE FROM files WHERE operator_id = ? AND path = ?",
                    [(operator_id, p) for p in paths],
                )
            ]
        )

    async def children(
        self, operator_id: str, directory: str, limit: int, after: str | None
    ) -> list[FileRecord]:
        return await self._fetch(
            "WHERE operator_id = ? AND parent = ? AND path > ? ORDER BY path LIMIT ?",
            (operator_id, directory, after or "", limit),
        )

    async def find(
        self, operator_id: str, prefix: str, limit: int, after: str | None
    ) -> list[FileRecord]:
        low = max(prefix, after + "\x00") if after is not None else prefix
        return await self._fetch(
            "WHERE operator_id = ? AND path >= ? AND substr(path, 1, ?) = ? "
            "AND substr(path, -1) != '/' ORDER BY path LIMIT ?",
            (operator_id, low, len(prefix), prefix, limit),
        )

    async def expired(self, before_ms: int, limit: int) -> list[FileRecord]:
        return await self._fetch(
            "WHERE modified < ? AND blob IS NOT NULL ORDER BY modified LIMIT ?", (before_ms, limit)
        )

    async def pages(self, page: int) -> AsyncIterator[list[FileRecord]]:
        after: tuple[str, str] = ("", "")
        while True:
            found = await self._fetch(
                "WHERE (operator_id, path) > (?, ?) ORDER BY operator_id, path LIMIT ?",
                (*after, page),
            )
            if not found:
                return
            yield found
            after = (found[-1].operator_id, found[-1].path)

    async def clear(self, operator_id: str | None = None) -> list[str]:
        where, params = (
            ("", ()) if operator_id is None else ("WHERE operator_id = ?", (operator_id,))
        )
        rows = await self.db.execute_fetchall(
            f"SELECT blob FROM files {where} {'AND' if where else 'WHERE'} blob IS NOT NULL",
            params,
        )
        await self._transaction([(f"DELETE FROM files {where}", [params])])
        return [row[0] for row in rows]


class MemoryFileIndex:
    """:class:`FileIndex` in dictionaries (``--memory``); usage goes to ``store`` (the
    in-memory store, whose ``apply`` awaits nothing) in the same step of the loop."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._rows: dict[str, dict[str, FileRecord]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _sorted(self, operator_id: str) -> list[FileRecord]:
        rows = self._rows.get(operator_id, {})
        return [rows[p] for p in sorted(rows)]  # code point order is UTF-8 byte order

    async def get(self, operator_id: str, path: str) -> FileRecord | None:
        return self._rows.get(operator_id, {}).get(path)

    async def put(self, records: Sequence[FileRecord], usage: Sequence[Usage] = ()) -> None:
        if usage:
            await self._store.apply([RecordUsage(tuple(usage))])
        for record in records:
            self._rows.setdefault(record.operator_id, {})[record.path] = record

    async def delete(self, operator_id: str, paths: Sequence[str]) -> None:
        rows = self._rows.get(operator_id, {})
        for path in paths:
            rows.pop(path, None)

    async def children(
        self, operator_id: str, directory: str, limit: int, after: str | None
    ) -> list[FileRecord]:
        found = [
            r
            for r in self._sorted(operator_id)
            if r.parent == directory and (after is None or r.path > after)
        ]
        return found[:limit]

    async def find(
        self, operator_id: str, prefix: str, limit: int, after: str | None
    ) -> list[FileRecord]:
        found = [
            r
            for r in self._sorted(operator_id)
            if r.path.startswith(prefix)
            and not r.is_directory
            and (after is None or r.path > after)
        ]
        return found[:limit]

    async def expired(self, before_ms: int, limit: int) -> list[FileRecord]:
        found = [
            r
            for rows in self._rows.values()
            for r in rows.values()
            if r.blob is not None and r.modified_ms < before_ms
        ]
        return sorted(found, key=lambda r: r.modified_ms)[:limit]

    async def pages(self, page: int) -> AsyncIterator[list[FileRecord]]:
        rows = [r for operator_id in sorted(self._rows) for r in self._sorted(operator_id)]
        for start in range(0, len(rows), page):
            yield rows[start : start + page]

    async def clear(self, operator_id: str | None = None) -> list[str]:
        operators = list(self._rows) if operator_id is None else [operator_id]
        blobs = []
        for op in operators:
            blobs += [r.blob for r in self._rows.pop(op, {}).values() if r.blob is not None]
        return blobs
