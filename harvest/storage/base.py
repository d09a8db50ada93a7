"""The storage seam: one ``typing.Protocol`` and the typed mutations it applies.

A store keeps two kinds of things. The *state* (operators, credentials, tokens, groups, SIMs) is
small, loaded whole at start and mutated rarely. The *data* (Harvest Data entries, their
per-resource metadata and per-SIM daily write counts) grows without bound and is read by pages.

Every change goes through :meth:`Store.apply` as a sequence of mutations that is applied
atomically and is durable when the call returns: a device gets ``201`` only after that.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Final, Protocol

from harvest.domain import (
    ApiToken,
    AuthKey,
    DataEntry,
    Group,
    Operator,
    ResourceMetadata,
    ResourceType,
    Sim,
)


# --- the usage ledger -------------------------------------------------------------------------
class UsageKind(enum.StrEnum):
    """What the ledger counts per operator, SIM and UTC day (issue 4; seeds' fee schedules)."""

    #: Write requests (a batch element is one); the daily bundle and the write fee read these.
    WRITE = "write"
    #: Data read requests through the API (free, logging-service-terms Schedule 2(2)).
    READ = "read"
    #: The SIM's group had Harvest Data enabled on that day: 0 or 1, never more
    #: (the 0.05 USD daily option fee, air-global-terms Schedule (12)(a)).
    HARVEST_DAY = "harvest_day"
    #: Write requests per 5-minute bucket: ``day`` holds the bucket as ``YYYY-MM-DDTHH:MM``
    #: (``getHarvestStats`` ``period=minutes``, "about 5-minute" buckets).
    WRITE_5MIN = "write_5min"
    #: Bytes of content read through the API (``getHarvestExportedDataStats``).
    READ_BYTES = "read_bytes"
    #: Whole days of complete unavailability of the service, of the windows that ended on
    #: ``day`` (logging-service-terms 14.2(c): hours / 24, rounded down). The row is the
    #: operator's, not a SIM's: its ``imsi`` is :data:`ACCOUNT_WIDE`.
    UNAVAILABLE_DAYS = "unavailable_days"
    #: Harvest Files (docs/files.md): uploads and downloads, and their bytes, by the SIM that
    #: made them, or :data:`ACCOUNT_WIDE` through the API. No fee reads them: the seeds give
    #: Harvest Files no fee.
    FILE_UPLOAD = "file_upload"
    FILE_UPLOAD_BYTES = "file_upload_bytes"
    FILE_DOWNLOAD = "file_download"
    FILE_DOWNLOAD_BYTES = "file_download_bytes"
    #: The most bytes of files the operator had stored during the day (:data:`ACCOUNT_WIDE`).
    FILE_STORED_BYTES = "file_stored_bytes"


#: The ``imsi`` of a ledger row that counts for the operator as a whole (``UNAVAILABLE_DAYS``).
#: An IMSI is 6 to 15 digits (:class:`harvest.domain.Sim`), so no SIM's rows can ever share it;
#: both stores keep any text there.
ACCOUNT_WIDE: Final = "-"


@dataclass(frozen=True, slots=True)
class Usage:
    """One ledger increment: ``count`` more of ``kind`` for one SIM on one UTC day."""

    operator_id: str
    imsi: str
    day: str
    kind: UsageKind
    count: int


# --- mutations -------------------------------------------------------------------------------
# Not frozen: one is made per device write, and a frozen dataclass costs several times as much
# to build (tests/bench/ingest_stages.py); nothing changes one once made.
@dataclass(slots=True)
class PutEntries:
    """Store entries (overwriting any at the same key) and record their usage.

    The usage is committed with the entries, so the ledger is exact: a write that overwrites an
    entry at the same millisecond is still counted (spec A1), so counts and entries may differ.
    """

    entries: tuple[DataEntry, ...]
    #: When the write happened (emulator clock): the resources' ``lastModifiedTime``.
    written_ms: int
    usage: tuple[Usage, ...] = ()
    #: A device write's own usage: its first ``count`` entries are that many writes of the SIM
    #: on its day and 5-minute bucket (what the daily bundle and the stats count). A store may
    #: keep it with the entries themselves (the SQLite journal does) rather than as ledger rows.
    writes: DeviceWrites | None = None

    def ledger(self) -> tuple[Usage, ...]:
        """Every ledger increment of this mutation: ``usage`` and those of ``writes``."""
        if self.writes is None:
            return self.usage
        return (*self.usage, *self.writes.usage())


@dataclass(slots=True)
class DeviceWrites:
    """``count`` write requests of SIM ``imsi`` on UTC day ``day`` and in 5-minute bucket
    ``bucket`` (:class:`UsageKind` ``WRITE`` and ``WRITE_5MIN``)."""

    operator_id: str
    imsi: str
    day: str
    bucket: str
    count: int

    def usage(self) -> tuple[Usage, Usage]:
        return (
            Usage(self.operator_id, self.imsi, self.day, UsageKind.WRITE, self.count),
            Usage(self.operator_id, self.imsi, self.bucket, UsageKind.WRITE_5MIN, self.count),
        )


#: One device write as a row of :class:`AppendWrites`: (operator, IMSI, time, content type,
#: content, category, the content's top-level keys when known (``None``: the store parses JSON
#: content for them, as :meth:`DataEntry.attribute_names` does), ``lastModifiedTime``, UTC day,
#: 5-minute bucket).
WriteRow = tuple[str, str, int, str, str, str | None, tuple[str, ...] | None, int, str, str]


@dataclass(slots=True)
class AppendWrites:
    """Entries of SIMs' own Subscriber resources, each row one write of its SIM on its day and
    5-minute bucket: what a :class:`PutEntries` with :class:`DeviceWrites` of its one SIM says of
    each entry, for a whole batch of device writes without an object per write (the raw
    listeners' path, tests/bench/ingest_stages.py). A store treats it exactly as that sequence
    of ``PutEntries``: overwriting, metadata and usage alike.
    """

    rows: list[WriteRow]
    #: Filled in by :meth:`Store.apply`: the indexes of the rows that replaced a stored entry
    #: (same resource and millisecond, spec A1), in order; its :data:`Replaced` count is their
    #: number.
    replaced: list[int] = field(default_factory=list)


def weight(mutations: Sequence[Mutation]) -> int:
    """How many mutations ``mutations`` stand for, as a store counts and caps its batches: an
    :class:`AppendWrites` counts as the ``PutEntries`` its rows are, anything else as one."""
    return sum(len(m.rows) if isinstance(m, AppendWrites) else 1 for m in mutations)


#: What :meth:`Store.apply` answers: for each mutation, in order, how many entries it wrote at
#: the key of an entry that already existed, replacing it (a second write of a resource at the
#: same millisecond, spec A1); 0 for a mutation that writes no entries.
Replaced = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RecordUsage:
    """Add to the ledger without storing entries (reads, Harvest-enabled days)."""

    usage: tuple[Usage, ...]


@dataclass(frozen=True, slots=True)
class DeleteEntry:
    operator_id: str
    resource_type: ResourceType
    resource_id: str
    time: int


@dataclass(frozen=True, slots=True)
class ExpireEntries:
    """Delete the oldest entries of one resource older than ``before_ms``, at most ``limit``
    (the retention sweep's bounded step)."""

    operator_id: str
    resource_type: ResourceType
    resource_id: str
    before_ms: int
    limit: int


@dataclass(frozen=True, slots=True)
class DeleteResourceData:
    """Delete every entry and the metadata of one resource (control-plane reset of one SIM)."""

    operator_id: str
    resource_type: ResourceType
    resource_id: str


@dataclass(frozen=True, slots=True)
class PutResource:
    """Set one resource's metadata exactly, creating it if need be (a snapshot import).

    :class:`PutEntries` merges metadata (the latest write time, the union of attribute names);
    this replaces it, so an imported store has the metadata the exported one had, also for a
    resource whose entries have all expired.
    """

    resource: ResourceMetadata


@dataclass(frozen=True, slots=True)
class PutOperator:
    operator: Operator


@dataclass(frozen=True, slots=True)
class PutAuthKey:
    auth_key: AuthKey


@dataclass(frozen=True, slots=True)
class PutToken:
    token: ApiToken


@dataclass(frozen=True, slots=True)
class DeleteTokens:
    tokens: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PutGroup:
    group: Group


@dataclass(frozen=True, slots=True)
class DeleteGroup:
    group_id: str


@dataclass(frozen=True, slots=True)
class PutSim:
    sim: Sim


@dataclass(frozen=True, slots=True)
class DeleteEverything:
    """Wipe state and data alike (control-plane reset)."""


@dataclass(frozen=True, slots=True)
class MarkProvisioned:
    """Remember that first-start provisioning has run, so it never runs again."""


Mutation = (
    PutEntries
    | AppendWrites
    | RecordUsage
    | DeleteEntry
    | ExpireEntries
    | DeleteResourceData
    | PutResource
    | PutOperator
    | PutAuthKey
    | PutToken
    | DeleteTokens
    | PutGroup
    | DeleteGroup
    | PutSim
    | DeleteEverything
    | MarkProvisioned
)


# --- reads -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EntryQuery:
    """One page of one resource's entries, ``from_ms <= time <= to_ms`` (spec B7).

    ``after`` is the time of the last entry of the previous page: the page continues strictly
    below it (descending) or above it (ascending).
    """

    operator_id: str
    resource_type: ResourceType
    resource_id: str
    from_ms: int
    to_ms: int
    ascending: bool
    limit: int
    after: int | None = None


@dataclass(frozen=True, slots=True)
class CategoryQuery:
    """One page of one operator's entries in a category, ordered by (time, resource)."""

    operator_id: str
    category: str
    from_ms: int
    to_ms: int
    ascending: bool
    limit: int
    after: tuple[int, str, str] | None = None


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    provisioned: bool
    operators: tuple[Operator, ...] = ()
    auth_keys: tuple[AuthKey, ...] = ()
    tokens: tuple[ApiToken, ...] = ()
    groups: tuple[Group, ...] = ()
    sims: tuple[Sim, ...] = ()


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What a store reports about itself (control plane and, later, metrics)."""

    kind: str
    path: str | None = None
    batches: int = 0
    mutations: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class SnapshotReader(Protocol):
    """Everything in a store as of one instant (an export): the store's writes go on meanwhile
    and are not seen. Each iterator yields pages of at most ``page`` items, in key order."""

    async def load_state(self) -> StateSnapshot: ...

    def entries(self, page: int) -> AsyncGenerator[list[DataEntry], None]:
        """Every entry, ordered by (operator, resource type, resource id, time)."""

    def resources(self, page: int) -> AsyncGenerator[list[ResourceMetadata], None]:
        """Every resource's metadata, ordered by (operator, resource type, resource id)."""

    def ledger(self, page: int) -> AsyncGenerator[list[Usage], None]:
        """Every ledger row, ordered by (operator, day, IMSI, kind)."""


class Store(Protocol):
    """Where the emulator keeps everything. Implementations: SQLite and in-memory."""

    async def open(self) -> None:
        """Create or upgrade the schema and start any background work."""

    async def close(self) -> None:
        """Finish pending writes and release every resource."""

    async def load_state(self) -> StateSnapshot: ...

    async def apply(self, mutations: Sequence[Mutation]) -> Replaced:
        """Apply ``mutations`` atomically; durable once this returns. For each mutation, how
        many stored entries its writes replaced (:data:`Replaced`)."""

    async def query_entries(self, query: EntryQuery) -> list[DataEntry]:
        """At most ``query.limit`` entries, in the query's order."""

    async def query_category(self, query: CategoryQuery) -> list[DataEntry]: ...

    async def get_entry(
        self, operator_id: str, resource_type: ResourceType, resource_id: str, time: int
    ) -> DataEntry | None: ...

    async def list_resources(
        self,
        operator_id: str,
        resource_type: ResourceType | None,
        limit: int,
        after: tuple[str, str] | None,
    ) -> list[ResourceMetadata]:
        """Resources with data, ordered by (type, id), strictly after ``after``."""

    async def usage_count(self, operator_id: str, imsi: str, day: str, kind: UsageKind) -> int:
        """The ledger's count of ``kind`` for one SIM on one UTC day (``YYYY-MM-DD``)."""

    async def usage_rows(self, operator_id: str, first_day: str, last_day: str) -> list[Usage]:
        """Every ledger row of the operator for the days ``first_day..last_day`` (inclusive),
        ordered by (day, IMSI, kind)."""

    async def day_counts(self, day: str, kind: UsageKind) -> dict[str, int]:
        """Every SIM's count of ``kind`` on ``day``, across operators (IMSIs are unique)."""

    def snapshot(self) -> AbstractAsyncContextManager[SnapshotReader]:
        """A consistent read-only view of everything as of now, for an export; writes are not
        held up while it is open."""

    def stats(self) -> StoreStats: ...
