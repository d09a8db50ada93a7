"""Reading a SQLite store whole: the state at start, and the snapshot reader that pages through
the data in one read transaction (docs/storage.md, "Snapshots")."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

import aiosqlite

from harvest.domain import DataEntry, ResourceMetadata, ResourceType
from harvest.storage import codec
from harvest.storage.base import StateSnapshot, Usage, UsageKind


async def read_state(db: aiosqlite.Connection) -> StateSnapshot:
    async def docs(table: str) -> list[str]:
        return [row[0] for row in await db.execute_fetchall(f"SELECT doc FROM {table}", ())]

    provisioned = bool(
        list(await db.execute_fetchall("SELECT 1 FROM meta WHERE key = 'provisioned'", ()))
    )
    return StateSnapshot(
        provisioned=provisioned,
        operators=tuple(codec.load_operator(d) for d in await docs("operators")),
        auth_keys=tuple(codec.load_auth_key(d) for d in await docs("auth_keys")),
        tokens=tuple(codec.load_token(d) for d in await docs("tokens")),
        groups=tuple(codec.load_group(d) for d in await docs("groups")),
        sims=tuple(codec.load_sim(d) for d in await docs("sims")),
    )


class SqliteSnapshot:
    """The SQLite store's :class:`~harvest.storage.base.SnapshotReader`: one read transaction on
    a connection of its own. WAL keeps that transaction's view of the database (from its first
    read) however long it lasts, while the writer goes on committing; each table is read in
    primary-key order by one statement, a page per trip to aiosqlite's thread."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def load_state(self) -> StateSnapshot:
        return await read_state(self._db)

    async def entries(self, page: int) -> AsyncGenerator[list[DataEntry], None]:
        async with self._db.execute(
            "SELECT operator_id, resource_type, resource_id, time, content_type, content, "
            "category FROM entries ORDER BY operator_id, resource_type, resource_id, time"
        ) as cursor:
            while rows := await cursor.fetchmany(page):
                yield [
                    DataEntry(op, ResourceType(rt), rid, time, ctype, content, category)
                    for op, rt, rid, time, ctype, content, category in rows
                ]

    async def resources(self, page: int) -> AsyncGenerator[list[ResourceMetadata], None]:
        async with self._db.execute(
            "SELECT operator_id, resource_type, resource_id, last_modified, attribute_names "
            "FROM resources ORDER BY operator_id, resource_type, resource_id"
        ) as cursor:
            while rows := await cursor.fetchmany(page):
                yield [
                    ResourceMetadata(op, ResourceType(rt), rid, last, tuple(json.loads(names)))
                    for op, rt, rid, last, names in rows
                ]

    async def ledger(self, page: int) -> AsyncGenerator[list[Usage], None]:
        async with self._db.execute(
            "SELECT operator_id, day, imsi, kind, count FROM ledger "
            "ORDER BY operator_id, day, imsi, kind"
        ) as cursor:
            while rows := await cursor.fetchmany(page):
                yield [
                    Usage(op, imsi, day, UsageKind(kind), count)
                    for op, day, imsi, kind, count in rows
                ]
