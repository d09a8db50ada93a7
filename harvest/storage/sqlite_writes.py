"""How a group commit's mutations become SQL: the statements, the plan that merges a batch into
as few ``executemany`` steps as it can, and the commit run on aiosqlite's writer thread."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harvest.domain import ResourceType, content_keys
from harvest.storage import codec
from harvest.storage.base import (
    AppendWrites,
    DeleteEntry,
    DeleteEverything,
    DeleteGroup,
    DeleteResourceData,
    DeleteTokens,
    ExpireEntries,
    MarkProvisioned,
    Mutation,
    PutAuthKey,
    PutEntries,
    PutGroup,
    PutOperator,
    PutResource,
    PutSim,
    PutToken,
    RecordUsage,
    Replaced,
    Usage,
    UsageKind,
    weight,
)
from harvest.storage.sqlite_journal import (
    KnownNames,
    Newest,
    add_usage,
    fold,
    note_written,
    try_journal,
)

# An entry is keyed by (resource, time): a later write at the key replaces it (spec A1). The
# update calls harvest_replaced(), a function of the store's, only for the rows it replaces,
# with the row's place in the transaction (the 8th parameter): how the store tells each writer
# what it replaced, at no cost to the writes that replace nothing.
_PUT_ENTRY = """
INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (operator_id, resource_type, resource_id, time) DO UPDATE SET
    content_type = harvest_replaced(?, excluded.content_type),
    content = excluded.content,
    category = excluded.category
"""
# attributeNames accumulate: the union of the stored names and the batch's names.
_PUT_RESOURCE = """
INSERT INTO resources VALUES (?, ?, ?, ?, ?)
ON CONFLICT (operator_id, resource_type, resource_id) DO UPDATE SET
    last_modified = max(last_modified, excluded.last_modified),
    attribute_names = CASE
        WHEN excluded.attribute_names = '[]' THEN attribute_names
        ELSE (SELECT json_group_array(value) FROM (
            SELECT value FROM json_each(resources.attribute_names)
            UNION SELECT value FROM json_each(excluded.attribute_names)))
    END
"""
# A Harvest-enabled day counts once however often it is recorded; other kinds add up.
_RECORD_USAGE = """
INSERT INTO ledger VALUES (?, ?, ?, ?, ?)
ON CONFLICT (operator_id, day, imsi, kind) DO UPDATE SET count = CASE
    WHEN kind = 'harvest_day' THEN 1 ELSE count + excluded.count END
"""
#: The ledger upsert for other connections to the database: Harvest Files' index commits a
#: file's metadata and its usage with it (docs/files.md, "Storage and durability").
RECORD_USAGE_SQL = _RECORD_USAGE
_SUBSCRIBER = ResourceType.SUBSCRIBER.value
_WRITE = UsageKind.WRITE.value
_WRITE_5MIN = UsageKind.WRITE_5MIN.value
_WIPE = (
    "journal",
    "journal_usage",
    "meta",
    "operators",
    "auth_keys",
    "tokens",
    "groups",
    "sims",
    "entries",
    "resources",
    "ledger",
)


class _Plan:
    """Turns mutations into ordered ``executemany`` steps, merging runs of the same statement.

    Entry writes commute with each other, so consecutive ``PutEntries`` are gathered into one
    step per table; any other mutation flushes them first, which keeps the order that matters
    (a reset followed by provisioning in the same batch).
    """

    def __init__(self, known: KnownNames | None = None) -> None:
        self.steps: list[tuple[str, list[tuple[Any, ...]]]] = []
        #: Attribute names already stored per resource (the store's cache, writer thread only):
        #: a resource whose names are all known is upserted without the JSON union.
        self.known = known if known is not None else {}
        #: This plan deletes or replaces resource rows: the cache is stale after it.
        self.invalidates = False
        self.touched: dict[tuple[str, str, str], set[str]] = {}
        self._entries: list[tuple[Any, ...]] = []
        #: For each entry row of the transaction, in order, the mutation that wrote it, and
        #: its row in that mutation when it is an :class:`AppendWrites` (else -1).
        self.entry_owner: list[int] = []
        self.entry_row: list[int] = []
        self._added = 0
        self._resources: dict[tuple[str, str, str], tuple[int, set[str]]] = {}
        self._usage: dict[tuple[str, str, str, str], int] = {}

    def _step(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        if self.steps and self.steps[-1][0] == sql:
            self.steps[-1][1].extend(rows)
        else:
            self.steps.append((sql, list(rows)))

    def _flush_data(self) -> None:
        if self._entries:
            self._step(_PUT_ENTRY, self._entries)
            self._entries = []
        if self._resources:
            rows = []
            for key, (modified, names) in self._resources.items():
                known = self.known.get(key)
                if known is not None and names <= known:
                    rows.append((*key, modified, "[]"))  # the row exists with these names
                else:
                    rows.append((*key, modified, json.dumps(sorted(names))))
                    self.touched[key] = names
            self._step(_PUT_RESOURCE, rows)
            self._resources = {}
        if self._usage:
            self._step(_RECORD_USAGE, ((*key, n) for key, n in self._usage.items()))
            self._usage = {}

    def _add_usage(self, usage: tuple[Usage, ...]) -> None:
        for row in usage:
            add_usage(self._usage, row)

    def _add_entry(
        self,
        position: int,
        index: int,
        key: tuple[str, str, str],
        values: tuple[int, str, str, str | None],
        written_ms: int,
        names: tuple[str, ...],
    ) -> None:
        """One entry row of mutation ``position`` (row ``index`` of an ``AppendWrites``)."""
        self._entries.append((*key, *values, len(self.entry_owner)))
        self.entry_owner.append(position)
        self.entry_row.append(index)
        modified, known = self._resources.get(key, (0, set()))
        known.update(names)
        self._resources[key] = (max(modified, written_ms), known)

    def add(self, mutation: Mutation) -> None:
        position = self._added
        self._added += 1
        if isinstance(mutation, PutEntries):
            for entry in mutation.entries:
                key = (entry.operator_id, entry.resource_type.value, entry.resource_id)
                self._add_entry(
                    position, -1, key, (entry.time, entry.content_type, entry.content,
                    entry.category), mutation.written_ms, entry.attribute_names(),
                )  # fmt: skip
            self._add_usage(mutation.ledger())
            return
        if isinstance(mutation, AppendWrites):
            for index, row in enumerate(mutation.rows):
                operator_id, imsi, time, content_type, content, category, keys, written = row[:8]
                names = content_keys(content_type, content) if keys is None else keys
                key = (operator_id, _SUBSCRIBER, imsi)
                self._add_entry(
                    position, index, key, (time, content_type, content, category), written, names
                )
                for period, kind in ((row[8], _WRITE), (row[9], _WRITE_5MIN)):
                    usage_key = (operator_id, period, imsi, kind)
                    self._usage[usage_key] = self._usage.get(usage_key, 0) + 1
            return
        if isinstance(mutation, RecordUsage):
            self._add_usage(mutation.usage)
            return
        self._flush_data()
        if isinstance(mutation, DeleteResourceData | DeleteEverything | PutResource):
            self.invalidates = True
            self.known = {}  # rows may be gone from here on in this very transaction
        if isinstance(mutation, DeleteEntry):
            self._step(
                "DELETE FROM entries WHERE operator_id = ? AND resource_type = ? "
                "AND resource_id = ? AND time = ?",
                [
                    (
                        mutation.operator_id,
                        mutation.resource_type.value,
                        mutation.resource_id,
                        mutation.time,
                    )
                ],
            )
        elif isinstance(mutation, ExpireEntries):
            key = (mutation.operator_id, mutation.resource_type.value, mutation.resource_id)
            where = "operator_id = ? AND resource_type = ? AND resource_id = ?"
            self._step(
                f"DELETE FROM entries WHERE {where} AND time IN (SELECT time FROM entries "
                f"WHERE {where} AND time < ? ORDER BY time LIMIT ?)",
                [(*key, *key, mutation.before_ms, mutation.limit)],
            )
        elif isinstance(mutation, DeleteResourceData):
            key = (mutation.operator_id, mutation.resource_type.value, mutation.resource_id)
            where = "WHERE operator_id = ? AND resource_type = ? AND resource_id = ?"
            self._step(f"DELETE FROM entries {where}", [key])
            self._step(f"DELETE FROM resources {where}", [key])
        elif isinstance(mutation, PutResource):
            meta = mutation.resource
            self._step(
                "INSERT OR REPLACE INTO resources VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        meta.operator_id,
                        meta.resource_type.value,
                        meta.resource_id,
                        meta.last_modified_ms,
                        json.dumps(list(meta.attribute_names)),
                    )
                ],
            )
        elif isinstance(mutation, PutOperator):
            self._step(
                "INSERT OR REPLACE INTO operators VALUES (?, ?)",
                [(mutation.operator.operator_id, codec.dump(mutation.operator))],
            )
        elif isinstance(mutation, PutAuthKey):
            self._step(
                "INSERT OR REPLACE INTO auth_keys VALUES (?, ?)",
                [(mutation.auth_key.key_id, codec.dump(mutation.auth_key))],
            )
        elif isinstance(mutation, PutToken):
            self._step(
                "INSERT OR REPLACE INTO tokens VALUES (?, ?)",
                [(mutation.token.token, codec.dump(mutation.token))],
            )
        elif isinstance(mutation, DeleteTokens):
            self._step("DELETE FROM tokens WHERE token = ?", [(t,) for t in mutation.tokens])
        elif isinstance(mutation, PutGroup):
            self._step(
                "INSERT OR REPLACE INTO groups VALUES (?, ?)",
                [(mutation.group.group_id, codec.dump(mutation.group))],
            )
        elif isinstance(mutation, DeleteGroup):
            self._step("DELETE FROM groups WHERE group_id = ?", [(mutation.group_id,)])
        elif isinstance(mutation, PutSim):
            self._step(
                "INSERT OR REPLACE INTO sims VALUES (?, ?)",
                [(mutation.sim.imsi, codec.dump(mutation.sim))],
            )
        elif isinstance(mutation, DeleteEverything):
            for table in _WIPE:
                self._step(f"DELETE FROM {table}", [()])
        elif isinstance(mutation, MarkProvisioned):
            self._step("INSERT OR REPLACE INTO meta VALUES ('provisioned', '1')", [()])
        else:  # pragma: no cover - the union is exhaustive
            raise TypeError(f"unknown mutation {mutation!r}")

    def finish(self) -> list[tuple[str, list[tuple[Any, ...]]]]:
        self._flush_data()
        return self.steps


def commit_on_writer_thread(
    db: sqlite3.Connection,
    mutations: Sequence[Mutation],
    caches: WriterCaches,
    replaced: list[int],
) -> Replaced:
    """Run on aiosqlite's thread: commit ``mutations`` in one transaction, or roll back.

    Writes that replace nothing are appended to the journal (:mod:`.sqlite_journal`); any
    other batch folds the journal and runs the full plan. ``replaced`` is where
    ``harvest_replaced()`` notes the entry rows that replaced one; ``caches`` are the writer
    thread's (attribute names and newest times per resource), dropped on a failure."""
    replaced.clear()
    for mutation in mutations:
        if isinstance(mutation, AppendWrites):
            mutation.replaced.clear()  # a retry of a failed group commit fills it anew
    db.execute("BEGIN IMMEDIATE")
    try:
        journalled = try_journal(db, mutations, caches.newest, caches.names)
        if journalled is not None:
            db.execute("COMMIT")
            caches.unfolded += weight(mutations)
            return journalled
        plan = _Plan(caches.names)
        for mutation in mutations:
            plan.add(mutation)
        steps = plan.finish()
        fold(db, _PUT_RESOURCE)
        caches.unfolded = 0
        for sql, rows in steps:
            db.executemany(sql, rows)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        caches.names.clear()  # both may hold what was not committed
        caches.newest.clear()
        raise
    note_written(mutations, caches.newest)
    if plan.invalidates:
        caches.names.clear()
    else:
        for key, names in plan.touched.items():
            caches.names[key] = caches.names.get(key, frozenset()) | names
    counts = [0] * len(mutations)
    for row in replaced:
        owner = plan.entry_owner[row]
        counts[owner] += 1
        mutation = mutations[owner]
        if isinstance(mutation, AppendWrites):
            mutation.replaced.append(plan.entry_row[row])
    return tuple(counts)


def fold_on_writer_thread(db: sqlite3.Connection, caches: WriterCaches) -> int:
    """Run on aiosqlite's thread: fold the journal in a transaction of its own; the rows
    folded."""
    db.execute("BEGIN IMMEDIATE")
    try:
        count = fold(db, _PUT_RESOURCE)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    caches.unfolded = 0
    return count


@dataclass(slots=True)
class WriterCaches:
    """What the writer thread remembers between transactions (see :mod:`.sqlite_journal`)."""

    names: KnownNames = field(default_factory=dict)
    newest: Newest = field(default_factory=dict)
    #: Mutations appended to the journal and not folded yet (0: nothing to fold). Written on
    #: the writer thread before the writes are answered, so a reader after an answer sees it.
    unfolded: int = 0
