"""The SQLite store's append-only journal: how a group commit of device writes costs two
statements, and how the journal is folded into the entries, the resources and the ledger.

A group commit of writes at or after the newest stored time of their resource (a write at
that very time replaces that one entry) appends its entries to ``journal`` and its usage,
summed per ledger key, to ``journal_usage``: rows in commit order at the end of two B-trees, a
few pages of WAL per batch whatever the number of SIMs. Any other batch (a delete, a
provisioning change, a write before a time already stored, which may replace any entry and
must say which) first folds the journal and then runs the full plan of
:mod:`harvest.storage.sqlite_writes`, in the same transaction.

The fold moves every journal row into ``entries``, ``resources`` and ``ledger`` and empties
the journal, in one transaction: a crash at any point leaves either the journal or its fold,
never half of each (docs/storage.md, "The journal"). Reads fold first, so an acknowledged
write is visible at once.

Knowing that an entry replaces nothing needs the newest stored time of its resource:
``newest`` keeps it per resource on the writer thread, filled by one indexed look-up the first
time a resource is written after start, and names an entry that exists: every write of an
entry raises it (:func:`try_journal`, :func:`note_written`), a delete drops it (looked up again
next time), a failed transaction empties it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from harvest.domain import ResourceType, content_keys
from harvest.storage.base import (
    AppendWrites,
    DeleteEntry,
    DeleteEverything,
    DeleteResourceData,
    DeviceWrites,
    ExpireEntries,
    Mutation,
    PutEntries,
    RecordUsage,
    Replaced,
    Usage,
    UsageKind,
)

JOURNAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    operator_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    time INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    content TEXT NOT NULL,
    category TEXT,
    written INTEGER NOT NULL,
    names TEXT,
    usage_day TEXT,
    usage_bucket TEXT,
    weight INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS journal_usage (
    seq INTEGER PRIMARY KEY,
    operator_id TEXT NOT NULL,
    day TEXT NOT NULL,
    imsi TEXT NOT NULL,
    kind TEXT NOT NULL,
    count INTEGER NOT NULL
);
"""

_APPEND_ROW = "(NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#: Rows per statement of an append: one statement carries many rows, one step instead of one
#: per row (0.87-0.96x ``executemany``'s CPU per row in batches of 150, ``python -m
#: tests.bench.journal``, docs/benchmarks.md); a few fixed sizes keep the statements few and in
#: the connection's statement cache. 256 rows bind 3,072 parameters, under SQLite's limit of
#: 32,766 (https://www.sqlite.org/limits.html, item 9). The last rows, fewer than 16, go in one
#: ``executemany``: below 16 rows a multi-row statement costs more than it saves (a batch of
#: one: ~9 against ~8 us).
_APPEND_SIZES = (256, 64, 16)
_APPEND = {n: "INSERT INTO journal VALUES " + ", ".join([_APPEND_ROW] * n) for n in _APPEND_SIZES}
#: One row: what ``executemany`` runs for the last rows (and tests.bench.journal's baseline).
APPEND_ONE = f"INSERT INTO journal VALUES {_APPEND_ROW}"
#: Journal tables of schema 5 gain the per-row usage (``MIGRATIONS[5]``).
ADD_ROW_USAGE = """
ALTER TABLE journal ADD COLUMN usage_day TEXT;
ALTER TABLE journal ADD COLUMN usage_bucket TEXT;
ALTER TABLE journal ADD COLUMN weight INTEGER NOT NULL DEFAULT 0;
"""
_APPEND_USAGE = "INSERT INTO journal_usage VALUES (NULL, ?, ?, ?, ?, ?)"

# Rows in key order, so each resource's B-tree pages are written once per fold; seq last, so a
# later row at the same key (none is journalled, but the fold does not rely on it) wins.
_FOLD_ENTRIES = """
INSERT INTO entries
SELECT operator_id, resource_type, resource_id, time, content_type, content, category
FROM journal WHERE true ORDER BY operator_id, resource_type, resource_id, time, seq
ON CONFLICT (operator_id, resource_type, resource_id, time) DO UPDATE SET
    content_type = excluded.content_type,
    content = excluded.content,
    category = excluded.category
"""
# One scan of the journal gives both what the resources and what the ledger need: per resource
# and usage period, the latest write, the names rows added (JSON lists joined by char(31)) and
# the device writes that rode on the rows (one write of its day and of its 5-minute bucket per
# row of weight 1, PutEntries.writes). A GROUP BY sorts the journal; one sort instead of three.
_FOLD_GROUPS = """
SELECT operator_id, resource_type, resource_id, usage_day, usage_bucket, sum(weight),
       max(written), group_concat(names, char(31))
FROM journal GROUP BY operator_id, resource_type, resource_id, usage_day, usage_bucket
"""
_FOLD_LEDGER = """
INSERT INTO ledger
SELECT operator_id, day, imsi, kind,
       CASE WHEN kind = 'harvest_day' THEN 1 ELSE sum(count) END
FROM journal_usage WHERE true GROUP BY operator_id, day, imsi, kind
ON CONFLICT (operator_id, day, imsi, kind) DO UPDATE SET count = CASE
    WHEN kind = 'harvest_day' THEN 1 ELSE count + excluded.count END
"""
_ADD_USAGE = """
INSERT INTO ledger VALUES (?, ?, ?, ?, ?)
ON CONFLICT (operator_id, day, imsi, kind) DO UPDATE SET count = count + excluded.count
"""
_WRITE = UsageKind.WRITE.value
_WRITE_5MIN = UsageKind.WRITE_5MIN.value
_NEWEST = (
    "SELECT max(time) FROM entries WHERE operator_id = ? AND resource_type = ? AND resource_id = ?"
)

_SUBSCRIBER = ResourceType.SUBSCRIBER.value
#: The usage columns of a journal row that counts no write.
_NOT_COUNTED: tuple[Any, ...] = (None, None, 0)

Key = tuple[str, str, str]
#: Per resource, the newest entry time stored (or journalled); see the module docstring.
Newest = dict[Key, int]
#: Per resource, the attribute names stored (the store's cache, writer thread only).
KnownNames = dict[Key, frozenset[str]]


def _newest(db: sqlite3.Connection, newest: Newest, key: Key) -> int:
    found = newest.get(key)
    if found is None:
        (found,) = db.execute(_NEWEST, key).fetchone()
        found = -1 if found is None else int(found)
        newest[key] = found
    return found


def _replaces(
    db: sqlite3.Connection, newest: Newest, seen: dict[Key, int], key: Key, time: int
) -> bool | None:
    """Whether an entry of ``key`` at ``time`` replaces the resource's newest entry (it is at
    its very time), noting it as the newest; ``None`` when it is before it: it may replace
    any entry, which only the full path can say."""
    last = seen.get(key)
    if last is None:
        last = _newest(db, newest, key)
    if time < last:
        return None
    seen[key] = time
    return time == last


_NO_NAMES: frozenset[str] = frozenset()


def _names(
    key: Key, names: tuple[str, ...], known: KnownNames, touched: dict[Key, set[str]]
) -> str | None:
    """The resource's attribute names as the journal row stores them (JSON) when ``names``
    adds to those known (``touched`` collects this batch's), else ``None``."""
    if not names:
        return None
    had = touched.get(key) or known.get(key, _NO_NAMES)
    if had.issuperset(names):
        return None
    touched.setdefault(key, set(had)).update(names)
    return json.dumps(sorted(touched[key]))


def try_journal(
    db: sqlite3.Connection,
    mutations: Sequence[Mutation],
    newest: Newest,
    known: KnownNames,
) -> Replaced | None:
    """Append ``mutations`` to the journal if they are all usage and writes at or after their
    resource's newest entry, and answer what each replaced; ``None`` (nothing done) otherwise.
    A write at the newest entry's very time replaces exactly that entry (the fold keeps the
    later row); one before it may replace any, which only the full path can say. Runs inside
    the caller's transaction (see the module docstring)."""
    seen: dict[Key, int] = {}
    replaced = [0] * len(mutations)
    rows: list[tuple[Any, ...]] = []
    usage: dict[tuple[str, str, str, str], int] = {}
    touched: dict[Key, set[str]] = {}
    appended: list[tuple[AppendWrites, list[int]]] = []
    # One pass: the rows are built as the batch is checked, and dropped if it cannot be
    # journalled (a full-path batch is the rare one).
    for position, mutation in enumerate(mutations):
        if isinstance(mutation, PutEntries):
            written = mutation.written_ms
            counted = mutation.writes
            weighted = 0 if counted is None else counted.count
            for index, entry in enumerate(mutation.entries):
                key = (entry.operator_id, entry.resource_type.value, entry.resource_id)
                time = entry.time
                replaces = _replaces(db, newest, seen, key, time)
                if replaces is None:
                    return None
                replaced[position] += replaces
                stored = _names(key, entry.attribute_names(), known, touched)
                usage_row: tuple[Any, ...] = _NOT_COUNTED
                if counted is not None and index < weighted:
                    if (entry.resource_id, entry.operator_id) == (
                        counted.imsi,
                        counted.operator_id,
                    ):
                        # on its row: the fold sums rows per resource, which is the SIM
                        usage_row = (counted.day, counted.bucket, 1)
                    else:  # an entry of another resource counted for the SIM: as a ledger row
                        for row in DeviceWrites(
                            counted.operator_id, counted.imsi, counted.day, counted.bucket, 1
                        ).usage():
                            add_usage(usage, row)
                rows.append(
                    (*key, time, entry.content_type, entry.content, entry.category, written,
                     stored, *usage_row)
                )  # fmt: skip
            for row in mutation.usage:
                add_usage(usage, row)
        elif isinstance(mutation, AppendWrites):
            found = _append_rows(db, mutation, newest, known, seen, touched, rows)
            if found is None:
                return None
            appended.append((mutation, found))
            replaced[position] = len(found)
        elif isinstance(mutation, RecordUsage):
            for row in mutation.usage:
                add_usage(usage, row)
        else:
            return None
    append(db, rows)
    if usage:
        db.executemany(_APPEND_USAGE, [(*key, n) for key, n in usage.items()])
    newest.update(seen)
    for key, added in touched.items():
        known[key] = frozenset(added)
    for mutation, found in appended:
        mutation.replaced[:] = found
    return tuple(replaced)


def append(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` into the journal in order: statements of :data:`_APPEND_SIZES` rows,
    then the rest one by one."""
    start, left = 0, len(rows)
    for size in _APPEND_SIZES:
        sql = _APPEND[size]
        while left >= size:
            db.execute(sql, [value for row in rows[start : start + size] for value in row])
            start += size
            left -= size
    if left:
        db.executemany(APPEND_ONE, rows[start:])


def _append_rows(
    db: sqlite3.Connection,
    mutation: AppendWrites,
    newest: Newest,
    known: KnownNames,
    seen: dict[Key, int],
    touched: dict[Key, set[str]],
    rows: list[tuple[Any, ...]],
) -> list[int] | None:
    """:func:`try_journal` for the rows of ``mutation`` (each one counted write of its SIM, so
    its usage always rides on its row): the indexes of the rows that replace the newest entry,
    or ``None`` when one is before it."""
    found: list[int] = []
    for index, row in enumerate(mutation.rows):
        operator_id, imsi, time, content_type, content, category, keys, written = row[:8]
        key = (operator_id, _SUBSCRIBER, imsi)
        replaces = _replaces(db, newest, seen, key, time)
        if replaces is None:
            return None
        if replaces:
            found.append(index)
        names = content_keys(content_type, content) if keys is None else keys
        stored = _names(key, names, known, touched)
        rows.append(
            (operator_id, _SUBSCRIBER, imsi, time, content_type, content, category, written,
             stored, row[8], row[9], 1)
        )  # fmt: skip
    return found


def add_usage(totals: dict[tuple[str, str, str, str], int], row: Usage) -> None:
    """Sum ``row`` into ``totals`` by ledger key; a Harvest-enabled day counts once."""
    key = (row.operator_id, row.day, row.imsi, row.kind.value)
    if row.kind is UsageKind.HARVEST_DAY:
        totals[key] = 1
    else:
        totals[key] = totals.get(key, 0) + row.count


def note_written(mutations: Sequence[Mutation], newest: Newest) -> None:
    """After the full path committed: the entries it wrote raise their resources' newest, and
    a resource whose entries were deleted is looked up again when next written (``newest``
    must name an entry that exists: a write at that time replaces it)."""
    for mutation in mutations:
        if isinstance(mutation, PutEntries):
            for entry in mutation.entries:
                key = (entry.operator_id, entry.resource_type.value, entry.resource_id)
                if entry.time > newest.get(key, -1):
                    newest[key] = entry.time
        elif isinstance(mutation, AppendWrites):
            for row in mutation.rows:
                key = (row[0], _SUBSCRIBER, row[1])
                if row[2] > newest.get(key, -1):
                    newest[key] = row[2]
        elif isinstance(mutation, DeleteEntry | ExpireEntries | DeleteResourceData):
            newest.pop(
                (mutation.operator_id, mutation.resource_type.value, mutation.resource_id), None
            )
        elif isinstance(mutation, DeleteEverything):
            newest.clear()


def fold(db: sqlite3.Connection, resource_sql: str) -> int:
    """Move every journal row into the tables and empty the journal, inside the caller's
    transaction; how many entry rows it moved. ``resource_sql`` is the store's upsert of a
    resource's metadata (``last_modified`` the max, attribute names the union)."""
    (count,) = db.execute("SELECT count(*) FROM journal").fetchone()
    if count:
        db.execute(_FOLD_ENTRIES)
        resources: dict[Key, tuple[int, set[str]]] = {}
        usage: dict[tuple[str, str, str, str], int] = {}
        for operator_id, rtype, rid, day, bucket, weight, written, joined in db.execute(
            _FOLD_GROUPS
        ).fetchall():
            key = (operator_id, rtype, rid)
            latest, union = resources.get(key, (written, set()))
            for part in (joined or "").split("\x1f"):
                if part:
                    union.update(json.loads(part))
            resources[key] = (max(latest, written), union)
            if weight:  # the rows' resource is their SIM (see try_journal)
                for period, kind in ((day, _WRITE), (bucket, _WRITE_5MIN)):
                    usage[(operator_id, period, rid, kind)] = (
                        usage.get((operator_id, period, rid, kind), 0) + weight
                    )
        db.executemany(
            resource_sql,
            [
                (*key, written, json.dumps(sorted(union)) if union else "[]")
                for key, (written, union) in resources.items()
            ],
        )
        db.executemany(_ADD_USAGE, [(*key, n) for key, n in usage.items()])
        db.execute("DELETE FROM journal")
    db.execute(_FOLD_LEDGER)
    db.execute("DELETE FROM journal_usage")
    return int(count)
