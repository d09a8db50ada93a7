"""Snapshots: the whole emulator (state and data) in one file, exported and imported again.

A snapshot is a stream of msgpack objects, read and written a record at a time, so ten million
entries never sit in memory at once:

1. a header map: ``{"format": "harvest-emulator-snapshot", "version": 1, "created_ms": <wall
   clock>, "store": "sqlite"|"memory", "clock_ms": <emulator clock>|nil, "emulator": <version>}``;
2. records, each an array whose first item names it, in this order and each kind in ascending
   key order (an import refuses anything else, so it needs no memory to find duplicates):

   - ``["operator", {...}]``, ``["auth_key", {...}]``, ``["token", {...}]``, ``["group",
     {...}]``, ``["sim", {...}]``: the state records as maps (the fields of
     :mod:`harvest.storage.codec`'s documents);
   - ``["provisioned", true|false]``: whether first-start provisioning has run (exactly once);
   - ``["entry", operator, resourceType, resourceId, time, contentType, content, category|nil]``;
   - ``["resource", operator, resourceType, resourceId, lastModifiedMs, [attributeNames]]``;
   - ``["usage", operator, day, imsi, kind, count]``: the usage ledger, bills' only source;

3. ``["end", {<counts by kind>}, "<sha256 hex of every byte before this record>"]``: a file cut
   short or changed anywhere is refused.

An export reads one consistent view of the store (see :meth:`Store.snapshot`) while writes go
on, and is written to ``FILE.tmp-<random>``, fsynced and renamed over ``FILE``: a failure half
way leaves the previous ``FILE`` as it was. An import reads the whole file once to check it, so
a bad file is refused before anything changes, then wipes the store and applies the file in
batches. That second pass is not one transaction: if the store fails half way (a full disk),
the state is partly imported, and the error says so.
"""

from __future__ import annotations

import argparse
import asyncio
import collections.abc
import contextlib
import hashlib
import importlib
import json
import logging
import os
import secrets
import sqlite3
import sys
import tempfile
import time
import types
import typing
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from aiohttp import web

from harvest import __version__, errors
from harvest.context import CLOCK, REGISTRY, SETTINGS, STORE
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
from harvest.errors import HarvestError
from harvest.storage import codec
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
    UsageKind,
)
from harvest.storage.sqlite import SqliteStore, StoreError
from harvest.web import json_response
from quotas.housekeeping import HOUSEKEEPING

log = logging.getLogger(__name__)

# msgpack ships no type information: it is used through ``Any``.
msgpack: Any = importlib.import_module("msgpack")

T = TypeVar("T")

FORMAT = "harvest-emulator-snapshot"
VERSION = 1
MEDIA_TYPE = "application/x-msgpack"
#: Rows per read from the store while exporting.
PAGE = 2000
#: Records per ``store.apply`` while importing.
BATCH = 5000
#: Bytes per write or read of the file.
CHUNK = 1 << 20
#: Largest single record (an entry's content is at most 16 MiB of payload, base64-encoded).
MAX_RECORD_BYTES = 100 << 20
#: Largest snapshot ``PUT /_emulator/snapshot`` accepts (it is spooled to disk first).
MAX_UPLOAD_BYTES = 64 << 30

_STATE_KINDS = ("operator", "auth_key", "token", "group", "sim")
_KINDS = (*_STATE_KINDS, "provisioned", "entry", "resource", "usage", "end")
_RANK = {kind: rank for rank, kind in enumerate(_KINDS)}
#: Counted kinds and their names in the end record, the answers and the messages.
COUNTS = {
    "operator": "operators",
    "auth_key": "auth_keys",
    "token": "tokens",
    "group": "groups",
    "sim": "sims",
    "entry": "entries",
    "resource": "resources",
    "usage": "ledger",
}
_INT64 = range(-(2**63), 2**63)
_RESOURCE_TYPES = {t.value: t for t in ResourceType}
_USAGE_KINDS = {k.value: k for k in UsageKind}


class SnapshotError(ValueError):
    """The file is not a snapshot this emulator can import; nothing has been changed."""


class ImportFailed(RuntimeError):
    """The store failed while a checked snapshot was being applied."""


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A snapshot's header and how many records of each kind it holds."""

    created_ms: int
    store: str
    clock_ms: int | None
    counts: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """``2 operators, 1 auth key, ...`` for the command line."""
        words = {
            "operators": ("operator", "operators"),
            "auth_keys": ("auth key", "auth keys"),
            "tokens": ("token", "tokens"),
            "groups": ("group", "groups"),
            "sims": ("SIM", "SIMs"),
            "entries": ("entry", "entries"),
            "resources": ("resource", "resources"),
            "ledger": ("ledger row", "ledger rows"),
        }
        return ", ".join(
            f"{n} {one if n == 1 else many}"
            for name, (one, many) in words.items()
            for n in [self.counts.get(name, 0)]
        )

    def view(self) -> dict[str, Any]:
        """The JSON shape of the control plane's answers."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "createdMs": self.created_ms,
            "store": self.store,
            "clockMs": self.clock_ms,
            "counts": {_camel(name): n for name, n in self.counts.items()},
        }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# --- export ------------------------------------------------------------------------------------
def _doc(record: Operator | AuthKey | ApiToken | Group | Sim) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(codec.dump(record))
    return doc


class Export:
    """One export of ``store``: :meth:`chunks` yields the file's bytes; :attr:`info` is set
    once the last chunk is out."""

    def __init__(self, store: Store, *, clock_ms: int | None = None, page: int = PAGE) -> None:
        self._store = store
        self._clock_ms = clock_ms
        self._page = page
        self.info: SnapshotInfo | None = None

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        pack = msgpack.Packer(use_bin_type=True).pack
        digest = hashlib.sha256()
        counts = dict.fromkeys(COUNTS.values(), 0)
        buffer = bytearray()
        created_ms = time.time_ns() // 1_000_000
        kind = self._store.stats().kind
        async with self._store.snapshot() as reader:
            state = await reader.load_state()
            buffer += pack(
                {
                    "format": FORMAT,
                    "version": VERSION,
                    "created_ms": created_ms,
                    "store": kind,
                    "clock_ms": self._clock_ms,
                    "emulator": __version__,
                }
            )
            for name, records in (
                ("operator", sorted(state.operators, key=lambda r: r.operator_id)),
                ("auth_key", sorted(state.auth_keys, key=lambda r: r.key_id)),
                ("token", sorted(state.tokens, key=lambda r: r.token)),
                ("group", sorted(state.groups, key=lambda r: r.group_id)),
                ("sim", sorted(state.sims, key=lambda r: r.imsi)),
            ):
                for record in records:
                    buffer += pack([name, _doc(record)])
                counts[COUNTS[name]] = len(records)
            buffer += pack(["provisioned", state.provisioned])

            async with contextlib.aclosing(reader.entries(self._page)) as entry_pages:
                async for entries in entry_pages:
                    for e in entries:
                        buffer += pack(
                            [
                                "entry",
                                e.operator_id,
                                e.resource_type.value,
                                e.resource_id,
                                e.time,
                                e.content_type,
                                e.content,
                                e.category,
                            ]
                        )
                    counts["entries"] += len(entries)
                    if len(buffer) >= CHUNK:
                        digest.update(buffer)
                        yield bytes(buffer)
                        buffer.clear()
            async with contextlib.aclosing(reader.resources(self._page)) as resource_pages:
                async for resources in resource_pages:
                    for r in resources:
                        buffer += pack(
                            [
                                "resource",
                                r.operator_id,
                                r.resource_type.value,
                                r.resource_id,
                                r.last_modified_ms,
                                list(r.attribute_names),
                            ]
                        )
                    counts["resources"] += len(resources)
                    if len(buffer) >= CHUNK:
                        digest.update(buffer)
                        yield bytes(buffer)
                        buffer.clear()
            async with contextlib.aclosing(reader.ledger(self._page)) as ledger_pages:
                async for rows in ledger_pages:
                    for u in rows:
                        buffer += pack(
                            ["usage", u.operator_id, u.day, u.imsi, u.kind.value, u.count]
                        )
                    counts["ledger"] += len(rows)
                    if len(buffer) >= CHUNK:
                        digest.update(buffer)
                        yield bytes(buffer)
                        buffer.clear()
        digest.update(buffer)
        buffer += pack(["end", counts, digest.hexdigest()])
        self.info = SnapshotInfo(created_ms, kind, self._clock_ms, counts)
        yield bytes(buffer)


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


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


async def write_atomically(
    path: Path, chunks: AsyncIterable[bytes], check: Callable[[Path], T] | None = None
) -> T | None:
    """Write ``chunks`` to ``path`` so that it is whole or untouched: into a temporary file
    beside it, fsynced, optionally ``check``-ed, then renamed over it (and the directory
    fsynced). On any failure the temporary file is removed and ``path`` is as it was."""
    temporary = _temporary_name(path)
    handle: BinaryIO = await asyncio.to_thread(open, temporary, "xb")
    try:
        try:
            async for chunk in chunks:
                await asyncio.to_thread(handle.write, chunk)
        except BaseException:
            handle.close()
            raise
        await asyncio.to_thread(_sync_and_close, handle)
        result = None if check is None else await asyncio.to_thread(check, temporary)
        await asyncio.to_thread(os.replace, temporary, path)
    except BaseException:
        await asyncio.to_thread(_discard, temporary)
        raise
    await asyncio.to_thread(_sync_directory, path.parent)
    return result


async def export_to_file(store: Store, path: Path, *, clock_ms: int | None = None) -> SnapshotInfo:
    """Export ``store`` to ``path`` atomically (see :func:`write_atomically`)."""
    export = Export(store, clock_ms=clock_ms)
    async with contextlib.aclosing(export.chunks()) as chunks:
        await write_atomically(path, chunks)
    assert export.info is not None
    return export.info


# --- reading and checking ----------------------------------------------------------------------
_HINTS: dict[type, dict[str, Any]] = {}


def _matches(value: Any, hint: Any) -> bool:
    """Whether a decoded value fits a domain field's annotation (the few kinds they use)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is collections.abc.Mapping:
        key_hint, value_hint = typing.get_args(hint)
        return isinstance(value, dict) and all(
            _matches(k, key_hint) and _matches(v, value_hint) for k, v in value.items()
        )
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and value in _INT64
    return isinstance(hint, type) and isinstance(value, hint)


def _state(record: list[Any], load: Callable[[str], T], what: str) -> T:
    if len(record) != 2 or not isinstance(record[1], dict):
        raise SnapshotError(f"a {what} record must be [{what!r}, {{...}}]")
    try:
        value = load(json.dumps(record[1]))
    except (TypeError, ValueError, KeyError) as error:
        raise SnapshotError(f"a bad {what}: {error}") from None
    cls = type(value)
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    for name, hint in hints.items():
        if not _matches(getattr(value, name), hint):
            raise SnapshotError(f"a bad {what}: {name} is {getattr(value, name)!r}")
    return value


def _fields(record: list[Any], shape: tuple[Any, ...], what: str) -> list[Any]:
    """The record's fields after its kind, each checked against ``shape``."""
    if len(record) != len(shape) + 1:
        raise SnapshotError(f"a {what} record must have {len(shape)} fields")
    values = record[1:]
    for index, (value, hint) in enumerate(zip(values, shape, strict=True), 1):
        if not _matches(value, hint):
            raise SnapshotError(f"a bad {what}: field {index} is {value!r}")
    return values


def _resource_type(value: str, what: str) -> ResourceType:
    try:
        return ResourceType(value)
    except ValueError:
        raise SnapshotError(f"a bad {what}: unknown resource type {value!r}") from None


#: State record kinds: how each is loaded, and the field its records are ordered by.
_STATE_LOADERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "operator": (codec.load_operator, "operator_id"),
    "auth_key": (codec.load_auth_key, "key_id"),
    "token": (codec.load_token, "token"),
    "group": (codec.load_group, "group_id"),
    "sim": (codec.load_sim, "imsi"),
}


def _parse(kind: str, record: list[Any]) -> tuple[Any, tuple[Any, ...]]:
    """The record's value and its sort key (keys ascend strictly within a kind)."""
    state = _STATE_LOADERS.get(kind)
    if state is not None:
        load, key = state
        value = _state(record, load, kind)
        return value, (getattr(value, key),)
    if kind == "provisioned":
        (flag,) = _fields(record, (bool,), kind)
        return flag, ()
    if kind == "entry":
        # the usual, valid, record is checked inline (ten million of them); anything else
        # takes the slow path, which says what is wrong
        if len(record) == 8:
            _, op, rt, rid, when, ctype, content, category = record
            if (
                type(op) is str
                and type(rt) is str
                and rt in _RESOURCE_TYPES
                and type(rid) is str
                and type(when) is int
                and when in _INT64
                and type(ctype) is str
                and type(content) is str
                and (category is None or type(category) is str)
            ):
                entry = DataEntry(op, _RESOURCE_TYPES[rt], rid, when, ctype, content, category)
                return entry, (op, rt, rid, when)
        op, rt, rid, when, ctype, content, category = _fields(
            record, (str, str, str, int, str, str, str | None), kind
        )
        entry = DataEntry(op, _resource_type(rt, kind), rid, when, ctype, content, category)
        return entry, (op, rt, rid, when)
    if kind == "resource":
        op, rt, rid, modified, names = _fields(record, (str, str, str, int, list), kind)
        if not all(isinstance(name, str) for name in names):
            raise SnapshotError("a bad resource: attribute names must be strings")
        meta = ResourceMetadata(op, _resource_type(rt, kind), rid, modified, tuple(names))
        return meta, (op, rt, rid)
    # usage
    if len(record) == 6:
        _, op, day, imsi, raw_kind, count = record
        if (
            type(op) is str
            and type(day) is str
            and type(imsi) is str
            and type(raw_kind) is str
            and raw_kind in _USAGE_KINDS
            and type(count) is int
            and 0 <= count < 2**63
        ):
            return Usage(op, imsi, day, _USAGE_KINDS[raw_kind], count), (op, day, imsi, raw_kind)
    op, day, imsi, raw_kind, count = _fields(record, (str, str, str, str, int), kind)
    try:
        usage_kind = UsageKind(raw_kind)
    except ValueError:
        raise SnapshotError(f"a bad ledger row: unknown kind {raw_kind!r}") from None
    if count < 0:
        raise SnapshotError(f"a bad ledger row: count {count} is negative")
    return Usage(op, imsi, day, usage_kind, count), (op, day, imsi, raw_kind)


def _objects(handle: BinaryIO, digest: Any) -> Iterator[Any]:
    """The msgpack objects of ``handle`` in turn. Each object's bytes go into ``digest`` when
    the next one is asked for, so when the end record is yielded the digest covers exactly the
    bytes before it."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=MAX_RECORD_BYTES)
    pending = bytearray()
    consumed = 0
    while chunk := handle.read(CHUNK):
        pending += chunk
        try:
            unpacker.feed(chunk)
        except Exception as error:  # BufferFull: one record over the limit
            raise SnapshotError(f"at byte {consumed}: a record is too large ({error})") from None
        while True:
            try:
                obj = unpacker.unpack()
            except msgpack.OutOfData:
                break
            except Exception as error:
                raise SnapshotError(f"at byte {consumed}: not msgpack ({error})") from None
            yield obj
            end = unpacker.tell()
            with memoryview(pending) as view:
                digest.update(view[: end - consumed])
            del pending[: end - consumed]
            consumed = end
    if pending:
        raise SnapshotError(f"the file ends in the middle of a record at byte {consumed}")


@dataclass(frozen=True, slots=True)
class _Record:
    kind: str
    value: Any


def _header(obj: Any) -> SnapshotInfo:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise SnapshotError(f"it is not a {FORMAT} (no snapshot header)")
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SnapshotError(f"its header has no valid version: {version!r}")
    if version > VERSION:
        raise SnapshotError(
            f"it was written by a newer emulator (snapshot version {version}; this one reads "
            f"version {VERSION}): import it with that emulator, or export again from it"
        )
    created: Any = obj.get("created_ms")
    store: Any = obj.get("store")
    clock: Any = obj.get("clock_ms")
    if not _matches(created, int) or not isinstance(store, str) or not _matches(clock, int | None):
        raise SnapshotError("its header is damaged")
    return SnapshotInfo(created, store, clock)


def _records(handle: BinaryIO) -> Iterator[_Record]:
    """Every record of a snapshot, checked; the first is ``header`` with a
    :class:`SnapshotInfo`, the last ``end`` with the complete one. Raises
    :class:`SnapshotError` at the first thing wrong."""
    digest = hashlib.sha256()
    objects = _objects(handle, digest)
    try:
        first = next(objects, None)
    except SnapshotError as error:
        raise SnapshotError(f"it is not a {FORMAT} ({error})") from None
    if first is None:
        raise SnapshotError(f"it is empty, not a {FORMAT}")
    header = _header(first)
    yield _Record("header", header)
    counts = dict.fromkeys(COUNTS.values(), 0)
    rank = -1
    last_key: tuple[Any, ...] | None = None
    seen_provisioned = False
    for number, obj in enumerate(objects, 1):
        if not (isinstance(obj, list) and obj and obj[0] in _RANK):
            raise SnapshotError(f"record {number} is not a snapshot record")
        kind: str = obj[0]
        if _RANK[kind] < rank:
            raise SnapshotError(
                f"record {number}: a {kind} record after the {_KINDS[rank]} records"
            )
        if _RANK[kind] > rank:
            rank, last_key = _RANK[kind], None
            if rank > _RANK["provisioned"] and not seen_provisioned:
                raise SnapshotError("the provisioned record is missing")
        if kind == "end":
            if len(obj) != 3 or obj[1] != counts or obj[2] != digest.hexdigest():
                if len(obj) == 3 and isinstance(obj[1], dict) and obj[1] != counts:
                    raise SnapshotError(
                        f"its end record counts {obj[1]} but it holds {counts}: it is damaged"
                    )
                raise SnapshotError("its checksum does not match: it is damaged")
            if next(objects, None) is not None:
                raise SnapshotError("there is more after its end record")
            yield _Record(
                "end", SnapshotInfo(header.created_ms, header.store, header.clock_ms, counts)
            )
            return
        try:
            value, key = _parse(kind, obj)
        except SnapshotError as error:
            raise SnapshotError(f"record {number}: {error}") from None
        if last_key is not None and key <= last_key:
            raise SnapshotError(f"record {number}: {kind} {key} is repeated or out of order")
        last_key = key
        if kind == "provisioned":
            seen_provisioned = True
        else:
            counts[COUNTS[kind]] += 1
        yield _Record(kind, value)
    raise SnapshotError("it ends before its end record: it is cut short")


def check_file(path: Path) -> SnapshotInfo:
    """Read the whole snapshot at ``path`` and check everything; its header and counts.

    Raises :class:`SnapshotError` (``OSError`` if it cannot be read)."""
    with path.open("rb") as handle:
        for record in _records(handle):
            if record.kind == "end":
                info: SnapshotInfo = record.value
                return info
    raise AssertionError("unreachable: _records ends with the end record or raises")


# --- import ------------------------------------------------------------------------------------
def _take(records: Iterator[_Record], count: int) -> list[_Record]:
    taken: list[_Record] = []
    for record in records:
        taken.append(record)
        if len(taken) >= count:
            break
    return taken


def _state_mutation(record: _Record) -> Mutation | None:
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


async def _apply_file(store: Store, path: Path, batch: int) -> None:
    """Wipe ``store`` and apply the (checked) snapshot at ``path``, ``batch`` records a call."""
    handle: BinaryIO = await asyncio.to_thread(path.open, "rb")
    started = False
    try:
        records = _records(handle)
        # The wipe and the whole state (small) go in the first call, atomically.
        mutations: list[Mutation] = [DeleteEverything()]
        in_state = True
        while True:
            taken = await asyncio.to_thread(_take, records, batch)
            entries: list[DataEntry] = []
            usage: list[Usage] = []
            for record in taken:
                if record.kind in ("header", "end"):
                    continue
                if record.kind == "entry":
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
    await _apply_file(store, path, batch)
    return info


# --- the control plane ---------------------------------------------------------------------------
SNAPSHOT_LOCK = web.AppKey("snapshot_lock", asyncio.Lock)


async def get_snapshot(request: web.Request) -> web.StreamResponse:
    """``GET /_emulator/snapshot``: an export of everything, streamed as it is read (never of
    an import half applied: the two take turns)."""
    async with request.config_dict[SNAPSHOT_LOCK]:
        return await _stream_export(request)


async def _stream_export(request: web.Request) -> web.StreamResponse:
    await request.config_dict[HOUSEKEEPING].flush_reads()  # noted reads belong in the ledger
    export = Export(request.config_dict[STORE], clock_ms=request.config_dict[CLOCK].now_ms())
    async with contextlib.aclosing(export.chunks()) as chunks:
        first = await anext(chunks)  # a failure this early is still an error answer
        response = web.StreamResponse(
            headers={
                "Content-Type": MEDIA_TYPE,
                "Content-Disposition": 'attachment; filename="harvest-snapshot.msgpack"',
            }
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await response.write(first)
            async for chunk in chunks:
                await response.write(chunk)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            # The status is sent: cut the body short, so the client sees no end record.
            log.exception("the snapshot export failed half way")
            if request.transport is not None:
                request.transport.close()
            return response
    await response.write_eof()
    return response


def _spool_file(directory: Path | None) -> Path:
    fd, name = tempfile.mkstemp(prefix=".snapshot-upload-", suffix=".msgpack", dir=directory)
    os.close(fd)
    return Path(name)


def _too_large() -> HarvestError:
    return HarvestError(
        errors.PAYLOAD_TOO_LARGE, f"A snapshot upload is limited to {MAX_UPLOAD_BYTES} bytes."
    )


async def _receive(request: web.Request, path: Path) -> None:
    handle: BinaryIO = await asyncio.to_thread(path.open, "wb")
    try:
        size = 0
        buffer = bytearray()
        async for chunk in request.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise _too_large()
            buffer += chunk
            if len(buffer) >= CHUNK:
                await asyncio.to_thread(handle.write, bytes(buffer))
                buffer.clear()
        await asyncio.to_thread(handle.write, bytes(buffer))
    finally:
        await asyncio.to_thread(handle.close)


async def put_snapshot(request: web.Request) -> web.Response:
    """``PUT /_emulator/snapshot``: replace everything with the uploaded snapshot.

    The body is spooled to a file beside the database (the system's temporary directory with
    ``--memory``), checked in full (``400``, nothing changed, if it is not a snapshot this
    emulator reads), then applied; the state and the quota counters are reloaded from it.
    """
    if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
        raise _too_large()
    database = request.config_dict[SETTINGS].database_path
    store = request.config_dict[STORE]
    housekeeping = request.config_dict[HOUSEKEEPING]
    async with request.config_dict[SNAPSHOT_LOCK]:
        spool = await asyncio.to_thread(_spool_file, None if database is None else database.parent)
        try:
            await _receive(request, spool)
            try:
                # reads noted before the import go to the old ledger, which the import replaces
                info = await import_file(store, spool, before=housekeeping.flush_reads)
            except SnapshotError as error:
                raise HarvestError(
                    errors.INVALID_BODY,
                    f"The body is not a snapshot this emulator can import: {error}. "
                    "Nothing was changed.",
                ) from None
            except ImportFailed as error:
                await request.config_dict[REGISTRY].load()
                await housekeeping.reload()
                raise HarvestError(errors.INTERNAL, str(error)) from None
        finally:
            await asyncio.to_thread(_discard, spool)
        await request.config_dict[REGISTRY].load()
        await housekeeping.reload()
    return json_response({"imported": info.view()})


def add_routes(app: web.Application) -> None:
    """The snapshot routes of the control plane (``app`` is the ``/_emulator`` sub-app)."""
    app[SNAPSHOT_LOCK] = asyncio.Lock()
    app.router.add_get("/snapshot", get_snapshot)
    app.router.add_put("/snapshot", put_snapshot)


# --- the command line ----------------------------------------------------------------------------
DEFAULT_DATA_DIR = ".harvest"
DATABASE_NAME = "harvest.sqlite3"
DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
SNAPSHOT_PATH = "/_emulator/snapshot"
TOKEN_HEADER = "X-Emulator-Token"


class _CommandError(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``export FILE`` and ``import FILE``, offline on a data dir or through a running emulator."""
    for name, summary in (
        ("export", "write the whole state and data to a snapshot FILE"),
        ("import", "replace the whole state and data with the snapshot in FILE"),
    ):
        command = subparsers.add_parser(
            name,
            help=summary,
            description=summary
            + ". Offline on a data directory (the default), or through a running emulator's "
            "control plane with --endpoint.",
        )
        command.add_argument("file", metavar="FILE", type=Path, help="the snapshot file")
        where = command.add_mutually_exclusive_group()
        where.add_argument(
            "--data-dir",
            metavar="DIR",
            type=Path,
            help="the emulator's data directory, used directly (default: $HARVEST_DATA_DIR or "
            f"{DEFAULT_DATA_DIR}); "
            + (
                "safe while an emulator runs on it"
                if name == "export"
                else "refused while an emulator runs on it"
            ),
        )
        where.add_argument(
            "--endpoint",
            metavar="URL",
            help=f"a running emulator's HTTP edge, e.g. {DEFAULT_ENDPOINT}",
        )
        command.add_argument(
            "--control-token",
            metavar="TOKEN",
            help="the control plane's token, if it has one (default: $HARVEST_CONTROL_TOKEN)",
        )


def _database(namespace: argparse.Namespace) -> Path:
    data_dir = namespace.data_dir or Path(os.environ.get("HARVEST_DATA_DIR") or DEFAULT_DATA_DIR)
    return Path(data_dir) / DATABASE_NAME


def _in_use(database: Path) -> bool:
    """Whether another connection (a running emulator) has the database open.

    A connection in exclusive locking mode cannot take its lock while any other connection to
    a WAL database is open, even an idle one; the probe lets go at once.
    """
    if not database.exists():
        return False
    db = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        db.execute("PRAGMA locking_mode = EXCLUSIVE")
        db.execute("BEGIN EXCLUSIVE")
        db.execute("COMMIT")
    except sqlite3.OperationalError as error:
        return "locked" in str(error) or "busy" in str(error)
    except sqlite3.DatabaseError:
        return False  # not a database: opening the store says so
    finally:
        db.close()
    return False


async def _offline(command: str, file: Path, database: Path) -> SnapshotInfo:
    if command == "export":
        if not await asyncio.to_thread(database.exists):
            raise _CommandError(f"there is no emulator database at {database}")
        info = None
    else:
        # check the file before the database is even opened (or created)
        info = await asyncio.to_thread(check_file, file)
        if await asyncio.to_thread(_in_use, database):
            raise _CommandError(
                f"{database} is in use: is an emulator running on it? Stop it first, or "
                "import through it with --endpoint URL"
            )
    store = SqliteStore(database)
    await store.open()
    try:
        if info is None:
            return await export_to_file(store, file)
        await _apply_file(store, file, BATCH)
        return info
    finally:
        await store.close()


def _control_error(status: int, body: bytes) -> _CommandError:
    try:
        message = json.loads(body)["message"]
    except (ValueError, KeyError, TypeError):
        message = body.decode("utf-8", "replace").strip() or "no message"
    return _CommandError(f"the emulator answered {status}: {message}")


async def _online(command: str, file: Path, endpoint: str, token: str | None) -> SnapshotInfo:
    import aiohttp

    url = endpoint.rstrip("/") + SNAPSHOT_PATH
    if not url.startswith(("http://", "https://")):
        raise _CommandError(f"endpoint {endpoint!r}: the scheme must be http or https", 2)
    headers = {TOKEN_HEADER: token} if token else {}
    # no read timeout: a large import is answered only once it is applied
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            if command == "export":
                async with session.get(url, headers=headers) as response:
                    if response.status != 200:
                        raise _control_error(response.status, await response.read())
                    info = await write_atomically(
                        file, response.content.iter_chunked(CHUNK), check_file
                    )
                    assert info is not None
                    return info
            info = await asyncio.to_thread(check_file, file)  # a bad file is refused here
            handle = await asyncio.to_thread(file.open, "rb")
            try:
                async with session.put(
                    url, data=handle, headers={**headers, "Content-Type": MEDIA_TYPE}
                ) as response:
                    body = await response.read()
            finally:
                await asyncio.to_thread(handle.close)
            if response.status != 200:
                raise _control_error(response.status, body)
            return info
    except aiohttp.ClientPayloadError as error:
        raise _CommandError(f"the export from {endpoint} broke off: {error}") from None
    except aiohttp.ClientError as error:
        raise _CommandError(f"cannot reach the emulator at {endpoint}: {error}", 2) from None


def run(namespace: argparse.Namespace) -> int:
    """Run ``export`` or ``import`` as parsed by :func:`add_commands`; the exit status."""
    command: str = namespace.command
    file: Path = namespace.file
    try:
        if namespace.endpoint:
            token = namespace.control_token or os.environ.get("HARVEST_CONTROL_TOKEN")
            info = asyncio.run(_online(command, file, namespace.endpoint, token))
        else:
            info = asyncio.run(_offline(command, file, _database(namespace)))
    except SnapshotError as error:
        print(f"harvest-emulator: error: {file}: {error}", file=sys.stderr)
        return 1
    except (_CommandError, ImportFailed, StoreError, sqlite3.Error, OSError) as error:
        print(f"harvest-emulator: error: {error}", file=sys.stderr)
        return error.status if isinstance(error, _CommandError) else 1
    verb = "exported to" if command == "export" else "imported from"
    print(f"{verb} {file}: {info.describe()}")
    return 0
