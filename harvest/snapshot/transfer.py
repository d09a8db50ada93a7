"""Snapshots to and from a store: an export streams one consistent view of the store as a
snapshot file's bytes; an import checks a whole file, then replaces everything in the store.

An export reads one consistent view of the store (see :meth:`Store.snapshot`) while writes go
on, and is written to ``FILE.tmp-<random>``, fsynced and renamed over ``FILE``: a failure half
way leaves the previous ``FILE`` as it was. An import reads the whole file once to check it, so
a bad file is refused before anything changes, then wipes the store and applies the file in
batches. That second pass is not one transaction: if the store fails half way (a full disk),
the state is partly imported, and the error says so.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from harvest.domain import ApiToken, AuthKey, DataEntry, Group, Operator, Sim
from harvest.files.blobs import BlobReader
from harvest.files.domain import FileRecord
from harvest.snapshot.format import (
    CHUNK,
    COUNTS,
    FilePart,
    Record,
    SnapshotInfo,
    check_file,
    end_record,
    entry_record,
    file_record,
    header_map,
    packer,
    records,
    resource_record,
    state_record,
    usage_record,
)
from harvest.storage.base import (
    DeleteEverything,
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
    Store,
    Usage,
)

T = TypeVar("T")

#: Rows per read from the store while exporting.
PAGE = 2000
#: Records per ``store.apply`` while importing.
BATCH = 5000


#: One paged section of an export: how to page it from the read view, how to encode one item,
#: and the name it is counted under in the end record.
_Section = tuple[
    Callable[[int], AsyncGenerator[Sequence[Any], None]], Callable[[Any], list[Any]], str
]


class FileSource(Protocol):
    """Where an export reads Harvest Files from (the file service)."""

    def pages(self, page: int) -> AsyncIterator[list[FileRecord]]: ...

    async def open_blob(self, name: str) -> BlobReader: ...


class FileSink(Protocol):
    """Where an import puts Harvest Files (the file service): wiped, then file by file."""

    async def reset(self) -> None: ...

    async def restore(self, record: FileRecord, chunks: AsyncIterable[bytes]) -> None: ...


class ImportFailed(RuntimeError):
    """The store failed while a checked snapshot was being applied."""


# --- export ------------------------------------------------------------------------------------
class Export:
    """One export of ``store``: :meth:`chunks` yields the file's bytes; :attr:`info` is set
    once the last chunk is out."""

    def __init__(
        self,
        store: Store,
        *,
        clock_ms: int | None = None,
        page: int = PAGE,
        files: FileSource | None = None,
    ) -> None:
        self._store = store
        self._files = files
        self._clock_ms = clock_ms
        self._page = page
        self.info: SnapshotInfo | None = None

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        pack = packer()
        digest = hashlib.sha256()
        counts = dict.fromkeys(COUNTS.values(), 0)
        buffer = bytearray()
        created_ms = time.time_ns() // 1_000_000
        kind = self._store.stats().kind
        async with self._store.snapshot() as reader:
            state = await reader.load_state()
            buffer += pack(header_map(created_ms, kind, self._clock_ms))
            for name, records in (
                ("operator", sorted(state.operators, key=lambda r: r.operator_id)),
                ("auth_key", sorted(state.auth_keys, key=lambda r: r.key_id)),
                ("token", sorted(state.tokens, key=lambda r: r.token)),
                ("group", sorted(state.groups, key=lambda r: r.group_id)),
                ("sim", sorted(state.sims, key=lambda r: r.imsi)),
            ):
                for record in records:
                    buffer += pack(state_record(name, record))
                counts[COUNTS[name]] = len(records)
            buffer += pack(["provisioned", state.provisioned])

            # Data, resource metadata and the ledger, each paged from the one read view.
            sections: tuple[_Section, ...] = (
                (reader.entries, entry_record, "entries"),
                (reader.resources, resource_record, "resources"),
                (reader.ledger, usage_record, "ledger"),
            )
            for pages_of, record_of, counted in sections:
                async with contextlib.aclosing(pages_of(self._page)) as pages:
                    async for items in pages:
                        for item in items:
                            buffer += pack(record_of(item))
                        counts[counted] += len(items)
                        if len(buffer) >= CHUNK:
                            digest.update(buffer)
                            yield bytes(buffer)
                            buffer.clear()
        # Harvest Files, as of the moment each is read (they are not in the store's view).
        if self._files is not None:
            async for stored in self._files.pages(self._page):
                for one in stored:
                    async with contextlib.aclosing(self._file(one)) as parts:
                        async for part in parts:
                            buffer += pack(part)
                            if len(buffer) >= CHUNK:
                                digest.update(buffer)
                                yield bytes(buffer)
                                buffer.clear()
                            if part[3] == 0:
                                counts["files"] += 1
        digest.update(buffer)
        buffer += pack(end_record(counts, digest.hexdigest()))
        self.info = SnapshotInfo(created_ms, kind, self._clock_ms, counts)
        yield bytes(buffer)

    async def _file(self, record: FileRecord) -> AsyncGenerator[list[Any], None]:
        """One file's records, its body read part by part from one opened version (an
        overwrite meanwhile cannot mix two); none if it was deleted since it was listed."""
        if record.blob is None or self._files is None:
            yield file_record(record, 0, b"")
            return
        try:
            reader = await self._files.open_blob(record.blob)
        except FileNotFoundError:
            return
        try:
            part = 0
            async for data in reader.chunks(0, record.size):
                yield file_record(record, part, data)
                part += 1
            if part == 0:  # an empty file: part 0 alone
                yield file_record(record, 0, b"")
        finally:
            await reader.close()


def _temporary_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{secrets.token_hex(6)}")


def _sync_and_close(handle: BinaryIO) -> None:
    try:
        handle.flush()
        os.fsync(handle.fileno())
    finally:
        handle.close()


def _sync_directory(directory: Path) -> None:
    """Make a rename durable; some systems (Windows) cannot open a directory, and need not."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


class _AtomicFile:
    """A temporary file beside ``path``, renamed over it once written, synced and checked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.temporary = _temporary_name(path)
        self.handle: BinaryIO = open(self.temporary, "xb")  # noqa: SIM115 - closed in commit/abort

    def commit(self, check: Callable[[Path], T] | None) -> T | None:
        _sync_and_close(self.handle)
        result = None if check is None else check(self.temporary)
        os.replace(self.temporary, self.path)
        _sync_directory(self.path.parent)
        return result

    def abort(self) -> None:
        self.handle.close()
        discard(self.temporary)


async def write_atomically(
    path: Path, chunks: AsyncIterable[bytes], check: Callable[[Path], T] | None = None
) -> T | None:
    """Write ``chunks`` to ``path`` so that it is whole or untouched: into a temporary file
    beside it, fsynced, optionally ``check``-ed, then renamed over it (and the directory
    fsynced). On any failure the temporary file is removed and ``path`` is as it was."""
    atomic = await asyncio.to_thread(_AtomicFile, path)
    try:
        async for chunk in chunks:
            await asyncio.to_thread(atomic.handle.write, chunk)
        return await asyncio.to_thread(atomic.commit, check)
    except BaseException:
        await asyncio.to_thread(atomic.abort)
        raise


def write_atomically_sync(
    path: Path, chunks: Iterable[bytes], check: Callable[[Path], T] | None = None
) -> T | None:
    """:func:`write_atomically` for a blocking source, such as a download."""
    atomic = _AtomicFile(path)
    try:
        for chunk in chunks:
            atomic.handle.write(chunk)
        return atomic.commit(check)
    except BaseException:
        atomic.abort()
        raise


async def export_to_file(
    store: Store, path: Path, *, clock_ms: int | None = None, files: FileSource | None = None
) -> SnapshotInfo:
    """Export ``store`` (and ``files``) to ``path`` atomically (see :func:`write_atomically`)."""
    export = Export(store, clock_ms=clock_ms, files=files)
    async with contextlib.aclosing(export.chunks()) as chunks:
        await write_atomically(path, chunks)
    assert export.info is not None
    return export.info


# --- import ------------------------------------------------------------------------------------
def _take(stream: Iterator[Record], count: int) -> list[Record]:
    taken: list[Record] = []
    for record in stream:
        taken.append(record)
        if len(taken) >= count:
            break
    return taken


def _state_mutation(record: Record) -> Mutation | None:
    value = record.value
    if isinstance(value, Operator):
        return PutOperator(value)
    if isinstance(value, AuthKey):
        return PutAuthKey(value)
    if isinstance(value, ApiToken):
        return PutToken(value)
    if isinstance(value, Group):
        return PutGroup(value)
    if isinstance(value, Sim):
        return PutSim(value)
    if record.kind == "provisioned":
        return MarkProvisioned() if value else None
    raise AssertionError(f"not a state record: {record.kind}")


async def _restore_files(
    files: FileSink | None, queued: list[FilePart], stream: Iterator[Record]
) -> None:
    """The file records: ``queued`` ones first, then the rest of ``stream`` (files come last,
    before the end record), each file's parts streamed into ``files`` as they are read."""
    waiting = collections.deque(queued)

    async def pull() -> FilePart | None:
        if waiting:
            return waiting.popleft()
        while (record := await asyncio.to_thread(next, stream, None)) is not None:
            if record.kind == "file":
                value: FilePart = record.value
                return value
        return None

    part = await pull()
    while part is not None:
        head = part
        following: list[FilePart | None] = []

        async def body(
            first: FilePart = head, after: list[FilePart | None] = following
        ) -> AsyncIterator[bytes]:
            yield first.data
            while True:
                more = await pull()
                if more is None or more.record is not None:
                    after.append(more)
                    return
                yield more.data

        chunks = body()
        assert head.record is not None, "checked: part 0 opens every file"
        if files is not None:
            await files.restore(head.record, chunks)
        async for _ in chunks:  # what restore did not read (a directory's empty body)
            pass
        part = following[0] if following else None


async def apply_file(store: Store, path: Path, batch: int, files: FileSink | None = None) -> None:
    """Wipe ``store`` and apply the (checked) snapshot at ``path``, ``batch`` records a call;
    its Harvest Files into ``files`` (wiped by the caller)."""
    handle: BinaryIO = await asyncio.to_thread(path.open, "rb")
    started = False
    try:
        stream = records(handle)
        # The wipe and the whole state (small) go in the first call, atomically.
        mutations: list[Mutation] = [DeleteEverything()]
        in_state = True
        while True:
            taken = await asyncio.to_thread(_take, stream, batch)
            entries: list[DataEntry] = []
            usage: list[Usage] = []
            file_parts: list[FilePart] = []
            for record in taken:
                if record.kind in ("header", "end"):
                    continue
                if record.kind == "file":
                    file_parts.append(record.value)
                elif record.kind == "entry":
                    entries.append(record.value)
                elif record.kind == "resource":
                    if entries:  # the entries first: the metadata replaces what they merged
                        mutations.append(PutEntries(tuple(entries), written_ms=0))
                        entries = []
                    mutations.append(PutResource(record.value))
                elif record.kind == "usage":
                    usage.append(record.value)
                else:
                    mutation = _state_mutation(record)
                    if mutation is not None:
                        mutations.append(mutation)
                    continue
                in_state = False
            if entries:
                mutations.append(PutEntries(tuple(entries), written_ms=0))
            if usage:
                mutations.append(RecordUsage(tuple(usage)))
            if in_state and taken:
                continue
            if mutations:
                await store.apply(mutations)
                started = True
            if file_parts:  # the last section: the rest of the file is files
                await _restore_files(files, file_parts, stream)
                return
            if not taken:
                return
            mutations = []
    except Exception as error:
        changed = (
            "the state is partly imported: import again, or reset"
            if started
            else "nothing was changed"
        )
        raise ImportFailed(f"the import failed ({error}); {changed}") from error
    finally:
        await asyncio.to_thread(handle.close)


async def import_file(
    store: Store,
    path: Path,
    *,
    batch: int = BATCH,
    before: Callable[[], Awaitable[None]] | None = None,
    files: FileSink | None = None,
) -> SnapshotInfo:
    """Replace everything in ``store`` with the snapshot at ``path``.

    The file is read and checked in full first: a bad one raises :class:`SnapshotError` with
    nothing changed. Then ``before`` runs (if given), the store is wiped and the file applied;
    a store failure on the way raises :class:`ImportFailed`. The caller reloads whatever it
    caches (the registry, the quota counters).
    """
    info = await asyncio.to_thread(check_file, path)
    if before is not None:
        await before()
    if files is not None:
        await files.reset()
    await apply_file(store, path, batch, files)
    return info
