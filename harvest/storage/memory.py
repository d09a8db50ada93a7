"""The in-memory store (``--memory``): the same contract as SQLite, nothing on disk.

It is also the oracle of the property test that checks both stores agree.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from harvest.domain import (
    DataEntry,
    ResourceMetadata,
    ResourceType,
)
from harvest.storage.base import (
    AppendWrites,
    CategoryQuery,
    DeleteEntry,
    DeleteEverything,
    DeleteResourceData,
    DeviceWrites,
    EntryQuery,
    ExpireEntries,
    Mutation,
    PutEntries,
    PutResource,
    RecordUsage,
    Replaced,
    SnapshotReader,
    StateSnapshot,
    StoreStats,
    Usage,
    UsageKind,
    weight,
)
from harvest.storage.state import StateTables

_ResourceKey = tuple[str, ResourceType, str]
_WRITE = UsageKind.WRITE
_SUBSCRIBER = ResourceType.SUBSCRIBER
_WRITE_5MIN = UsageKind.WRITE_5MIN


@dataclass(slots=True)
class _Series:
    """One resource's entries: times kept sorted beside a map from time to entry."""

    times: list[int] = field(default_factory=list)
    by_time: dict[int, DataEntry] = field(default_factory=dict)
    last_modified: int = 0
    attribute_names: set[str] = field(default_factory=set)

    def put(self, entry: DataEntry) -> bool:
        """Store ``entry``; whether it replaced one at the same time."""
        replaced = entry.time in self.by_time
        if not replaced:
            bisect.insort(self.times, entry.time)
        self.by_time[entry.time] = entry
        return replaced

    def delete(self, time: int) -> None:
        if self.by_time.pop(time, None) is not None:
            del self.times[bisect.bisect_left(self.times, time)]


@dataclass(frozen=True, slots=True)
class _FrozenSeries:
    """A copy of one :class:`_Series` taken for a snapshot."""

    key: _ResourceKey
    times: list[int]
    by_time: dict[int, DataEntry]
    last_modified: int
    attribute_names: tuple[str, ...]


class _MemorySnapshot:
    """The memory store's :class:`~harvest.storage.base.SnapshotReader`: shallow copies taken
    at once (entries are immutable), read lazily page by page."""

    def __init__(
        self,
        state: StateSnapshot,
        series: list[_FrozenSeries],
        usage: dict[tuple[str, str, str, UsageKind], int],
    ) -> None:
        self._state = state
        self._series = series
        self._usage = usage

    async def load_state(self) -> StateSnapshot:
        return self._state

    async def entries(self, page: int) -> AsyncGenerator[list[DataEntry], None]:
        batch: list[DataEntry] = []
        for series in self._series:
            for time in series.times:
                batch.append(series.by_time[time])
                if len(batch) >= page:
                    yield batch
                    batch = []
        if batch:
            yield batch

    async def resources(self, page: int) -> AsyncGenerator[list[ResourceMetadata], None]:
        rows = [ResourceMetadata(*s.key, s.last_modified, s.attribute_names) for s in self._series]
        for start in range(0, len(rows), page):
            yield rows[start : start + page]

    async def ledger(self, page: int) -> AsyncGenerator[list[Usage], None]:
        rows = [
            Usage(op, imsi, day, kind, count)
            for (op, day, imsi, kind), count in sorted(self._usage.items())
        ]
        for start in range(0, len(rows), page):
            yield rows[start : start + page]


class MemoryStore:
    """:class:`~harvest.storage.base.Store` in dictionaries."""

    def __init__(self) -> None:
        self._state = StateTables()
        self._clear_data()
        self._applied = 0

    def _clear_data(self) -> None:
        self._series: dict[_ResourceKey, _Series] = {}
        self._usage: dict[tuple[str, str, str, UsageKind], int] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def load_state(self) -> StateSnapshot:
        return self._state.snapshot()

    async def apply(self, mutations: Sequence[Mutation]) -> Replaced:
        # Nothing here awaits, so the whole sequence is applied atomically on the loop.
        replaced = tuple(self._apply(mutation) for mutation in mutations)
        self._applied += weight(mutations)
        return replaced

    def _add_usage(self, usage: tuple[Usage, ...]) -> None:
        for row in usage:
            key = (row.operator_id, row.day, row.imsi, row.kind)
            if row.kind is UsageKind.HARVEST_DAY:
                self._usage[key] = 1  # a day is charged once
            else:
                self._usage[key] = self._usage.get(key, 0) + row.count

    def _add_writes(self, counted: DeviceWrites | None) -> None:
        """A device write's usage, added without building its ledger rows (one per write)."""
        if counted is None:
            return
        usage = self._usage
        for period, kind in ((counted.day, _WRITE), (counted.bucket, _WRITE_5MIN)):
            key = (counted.operator_id, period, counted.imsi, kind)
            usage[key] = usage.get(key, 0) + counted.count

    def _apply(self, mutation: Mutation) -> int:
        """Apply one mutation; the entries it replaced."""
        replaced = 0
        if self._state.apply(mutation):
            if isinstance(mutation, DeleteEverything):
                self._clear_data()
        elif isinstance(mutation, PutEntries):
            for entry in mutation.entries:
                key = (entry.operator_id, entry.resource_type, entry.resource_id)
                series = self._series.setdefault(key, _Series())
                replaced += series.put(entry)
                series.last_modified = max(series.last_modified, mutation.written_ms)
                series.attribute_names.update(entry.attribute_names())
            self._add_usage(mutation.usage)
            self._add_writes(mutation.writes)
        elif isinstance(mutation, AppendWrites):
            replaced = self._append(mutation)
        elif isinstance(mutation, RecordUsage):
            self._add_usage(mutation.usage)
        elif isinstance(mutation, DeleteEntry):
            found = self._series.get(
                (mutation.operator_id, mutation.resource_type, mutation.resource_id)
            )
            if found is not None:
                found.delete(mutation.time)
        elif isinstance(mutation, ExpireEntries):
            expiring = self._series.get(
                (mutation.operator_id, mutation.resource_type, mutation.resource_id)
            )
            if expiring is not None:
                cut = min(bisect.bisect_left(expiring.times, mutation.before_ms), mutation.limit)
                for time in expiring.times[:cut]:
                    del expiring.by_time[time]
                del expiring.times[:cut]
        elif isinstance(mutation, DeleteResourceData):
            self._series.pop(
                (mutation.operator_id, mutation.resource_type, mutation.resource_id), None
            )
        elif isinstance(mutation, PutResource):
            meta = mutation.resource
            series = self._series.setdefault(
                (meta.operator_id, meta.resource_type, meta.resource_id), _Series()
            )
            series.last_modified = meta.last_modified_ms
            series.attribute_names = set(meta.attribute_names)
        else:  # pragma: no cover - the union is exhaustive
            raise TypeError(f"unknown mutation {mutation!r}")
        return replaced

    def _append(self, mutation: AppendWrites) -> int:
        """Each row as a ``PutEntries`` of one entry counted as one write of its SIM."""
        mutation.replaced.clear()
        usage = self._usage
        for index, row in enumerate(mutation.rows):
            operator_id, imsi, time, content_type, content, category, keys, written = row[:8]
            entry = DataEntry(
                operator_id, _SUBSCRIBER, imsi, time, content_type, content, category, keys
            )
            series = self._series.setdefault((operator_id, _SUBSCRIBER, imsi), _Series())
            if series.put(entry):
                mutation.replaced.append(index)
            series.last_modified = max(series.last_modified, written)
            series.attribute_names.update(entry.attribute_names())
            for key in (
                (operator_id, row[8], imsi, _WRITE),
                (operator_id, row[9], imsi, _WRITE_5MIN),
            ):
                usage[key] = usage.get(key, 0) + 1
        return len(mutation.replaced)

    async def query_entries(self, query: EntryQuery) -> list[DataEntry]:
        series = self._series.get((query.operator_id, query.resource_type, query.resource_id))
        if series is None:
            return []
        low, high = query.from_ms, query.to_ms
        if query.after is not None:
            if query.ascending:
                low = max(low, query.after + 1)
            else:
                high = min(high, query.after - 1)
        start = bisect.bisect_left(series.times, low)
        stop = bisect.bisect_right(series.times, high)
        if query.ascending:
            times = series.times[start : min(stop, start + query.limit)]
        else:
            times = series.times[max(start, stop - query.limit) : stop][::-1]
        return [series.by_time[t] for t in times]

    async def query_category(self, query: CategoryQuery) -> list[DataEntry]:
        matches = sorted(
            (
                (entry.time, entry.resource_type.value, entry.resource_id, entry)
                for (operator_id, _, _), series in self._series.items()
                if operator_id == query.operator_id
                for entry in series.by_time.values()
                if entry.category == query.category and query.from_ms <= entry.time <= query.to_ms
            ),
            key=lambda row: row[:3],
            reverse=not query.ascending,
        )
        if query.after is not None:
            after = query.after
            matches = [m for m in matches if (m[:3] > after if query.ascending else m[:3] < after)]
        return [m[3] for m in matches[: query.limit]]

    async def get_entry(
        self, operator_id: str, resource_type: ResourceType, resource_id: str, time: int
    ) -> DataEntry | None:
        series = self._series.get((operator_id, resource_type, resource_id))
        return None if series is None else series.by_time.get(time)

    async def list_resources(
        self,
        operator_id: str,
        resource_type: ResourceType | None,
        limit: int,
        after: tuple[str, str] | None,
    ) -> list[ResourceMetadata]:
        rows = sorted(
            (
                (rt.value, rid, series)
                for (op, rt, rid), series in self._series.items()
                if op == operator_id
                and (resource_type is None or rt == resource_type)
                and (after is None or (rt.value, rid) > after)
            ),
            key=lambda row: (row[0], row[1]),
        )
        return [
            ResourceMetadata(
                operator_id,
                ResourceType(rt),
                rid,
                series.last_modified,
                tuple(sorted(series.attribute_names)),
            )
            for rt, rid, series in rows[:limit]
        ]

    async def usage_count(self, operator_id: str, imsi: str, day: str, kind: UsageKind) -> int:
        return self._usage.get((operator_id, day, imsi, kind), 0)

    async def usage_rows(self, operator_id: str, first_day: str, last_day: str) -> list[Usage]:
        return [
            Usage(op, imsi, day, kind, count)
            for (op, day, imsi, kind), count in sorted(self._usage.items())
            if op == operator_id and first_day <= day <= last_day
        ]

    async def day_counts(self, day: str, kind: UsageKind) -> dict[str, int]:
        counts: dict[str, int] = {}
        for (_, row_day, imsi, row_kind), count in self._usage.items():
            if row_day == day and row_kind is kind:
                counts[imsi] = counts.get(imsi, 0) + count
        return counts

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[SnapshotReader]:
        # Nothing here suspends (load_state never does): the copies are of one instant. Lists
        # and dicts are copied in C loops; the immutable entries themselves are shared.
        state = await self.load_state()
        series = [
            _FrozenSeries(
                key,
                list(s.times),
                dict(s.by_time),
                s.last_modified,
                tuple(sorted(s.attribute_names)),
            )
            for key, s in sorted(self._series.items(), key=lambda item: item[0])
        ]
        yield _MemorySnapshot(state, series, dict(self._usage))

    def stats(self) -> StoreStats:
        return StoreStats(kind="memory", mutations=self._applied)
