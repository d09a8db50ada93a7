"""The file index commits a file's metadata and the ledger rows that count it together
(docs/files.md, "Storage and durability"), in SQLite beside the store's journal and in memory."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from harvest.files.domain import FileRecord
from harvest.files.index import FileIndex, MemoryFileIndex, SqliteFileIndex
from harvest.storage.base import RecordUsage, Store, Usage, UsageKind
from harvest.storage.memory import MemoryStore
from harvest.storage.sqlite import SqliteStore

OP = "OP0000000001"
IMSI = "001010000000001"
DAY = "2025-03-01"


def upload(path: str, size: int) -> tuple[FileRecord, tuple[Usage, ...]]:
    record = FileRecord(OP, path, "text/plain", size, "0" * 32, 1, 1, "blob-" + path[1:])
    return record, (
        Usage(OP, IMSI, DAY, UsageKind.FILE_UPLOAD, 1),
        Usage(OP, IMSI, DAY, UsageKind.FILE_UPLOAD_BYTES, size),
    )


@pytest.fixture(params=["sqlite", "memory"])
async def stored(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, FileIndex]]:
    store: Store
    index: FileIndex
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "harvest.sqlite3")
        await store.open()
        index = SqliteFileIndex(tmp_path / "harvest.sqlite3")
    else:
        store = MemoryStore()
        index = MemoryFileIndex(store)
    await index.open()
    try:
        yield store, index
    finally:
        await index.close()
        await store.close()


async def count(store: Store, kind: UsageKind) -> int:
    return await store.usage_count(OP, IMSI, DAY, kind)


async def test_a_files_usage_is_added_to_the_ledger_with_its_metadata(
    stored: tuple[Store, FileIndex],
) -> None:
    store, index = stored
    # usage the store journalled and has not folded yet: the index's rows add to it
    await store.apply([RecordUsage((Usage(OP, IMSI, DAY, UsageKind.FILE_UPLOAD, 1),))])
    for path, size in (("/a.txt", 10), ("/b.txt", 32)):
        record, usage = upload(path, size)
        await index.put([record], usage)
    assert await index.get(OP, "/b.txt") is not None
    assert await count(store, UsageKind.FILE_UPLOAD) == 3
    assert await count(store, UsageKind.FILE_UPLOAD_BYTES) == 42
    # a restore (snapshot import) puts metadata without usage
    await index.put([upload("/c.txt", 5)[0]])
    assert await count(store, UsageKind.FILE_UPLOAD) == 3


async def test_a_failed_ledger_row_leaves_no_metadata(tmp_path: Path) -> None:
    database = tmp_path / "harvest.sqlite3"
    store = SqliteStore(database)
    await store.open()
    index = SqliteFileIndex(database)
    await index.open()
    try:
        record, usage = upload("/a.txt", 10)
        broken = Usage(OP, None, DAY, UsageKind.FILE_UPLOAD, 1)  # type: ignore[arg-type]
        with pytest.raises(sqlite3.IntegrityError):
            await index.put([record], (*usage, broken))  # its imsi is NOT NULL
        assert await index.get(OP, "/a.txt") is None
        assert await count(store, UsageKind.FILE_UPLOAD_BYTES) == 0
    finally:
        await index.close()
        await store.close()
