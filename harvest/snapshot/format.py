"""The snapshot file format: what a snapshot holds, record by record, and how a file is read
and checked.

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
   - ``["file", operator, path, part, meta|nil, bytes]`` (version 2): Harvest Files, each file
     (or directory, whose path ends with ``/``) as parts 0, 1, ... of at most :data:`CHUNK`
     bytes of its body; part 0 carries ``meta``, ``{"contentType", "size", "etag",
     "createdMs", "modifiedMs"}``, and the parts' bytes must add up to ``size`` and ``etag``
     (their MD5);

3. ``["end", {<counts by kind>}, "<sha256 hex of every byte before this record>"]``: a file cut
   short or changed anywhere is refused.

This module encodes each record and reads a file back into domain values, checking everything
(:func:`check_file`); :mod:`harvest.snapshot.transfer` moves them between a store and a file.
"""

from __future__ import annotations

import collections.abc
import hashlib
import importlib
import json
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from harvest import __version__
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
from harvest.files.domain import FileRecord
from harvest.storage import codec
from harvest.storage.base import Usage, UsageKind

# msgpack ships no type information: it is used through ``Any``.
msgpack: Any = importlib.import_module("msgpack")

T = TypeVar("T")

FORMAT = "harvest-emulator-snapshot"
VERSION = 2
#: Version 1 had no Harvest Files: it is read as a snapshot without files.
FIRST_VERSION_WITH_FILES = 2
MEDIA_TYPE = "application/x-msgpack"
#: Bytes per write or read of the file.
CHUNK = 1 << 20
#: Largest single record (an entry's content is at most 16 MiB of payload, base64-encoded).
MAX_RECORD_BYTES = 100 << 20

_STATE_KINDS = ("operator", "auth_key", "token", "group", "sim")
_KINDS = (*_STATE_KINDS, "provisioned", "entry", "resource", "usage", "file", "end")
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
    "file": "files",
}
_INT64 = range(-(2**63), 2**63)
_RESOURCE_TYPES = {t.value: t for t in ResourceType}
_USAGE_KINDS = {k.value: k for k in UsageKind}


class SnapshotError(ValueError):
    """The file is not a snapshot this emulator can import; nothing has been changed."""


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A snapshot's header and how many records of each kind it holds."""

    created_ms: int
    store: str
    clock_ms: int | None
    counts: dict[str, int] = field(default_factory=dict)
    version: int = VERSION

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
            "files": ("file", "files"),
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
            "version": self.version,
            "createdMs": self.created_ms,
            "store": self.store,
            "clockMs": self.clock_ms,
            "counts": {_camel(name): n for name, n in self.counts.items()},
        }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# --- writing -----------------------------------------------------------------------------------
def packer() -> Callable[[Any], bytes]:
    """A msgpack encoder of records (bytes stay binary)."""
    pack: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack
    return pack


def header_map(created_ms: int, store: str, clock_ms: int | None) -> dict[str, Any]:
    """The header map, the file's first object."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "created_ms": created_ms,
        "store": store,
        "clock_ms": clock_ms,
        "emulator": __version__,
    }


def state_record(kind: str, record: Operator | AuthKey | ApiToken | Group | Sim) -> list[Any]:
    """``[kind, {...}]``: a state record as the storage codec's document."""
    doc: dict[str, Any] = json.loads(codec.dump(record))
    return [kind, doc]


def entry_record(e: DataEntry) -> list[Any]:
    return [
        "entry",
        e.operator_id,
        e.resource_type.value,
        e.resource_id,
        e.time,
        e.content_type,
        e.content,
        e.category,
    ]


def resource_record(r: ResourceMetadata) -> list[Any]:
    return [
        "resource",
        r.operator_id,
        r.resource_type.value,
        r.resource_id,
        r.last_modified_ms,
        list(r.attribute_names),
    ]


def usage_record(u: Usage) -> list[Any]:
    return ["usage", u.operator_id, u.day, u.imsi, u.kind.value, u.count]


def file_record(record: FileRecord, part: int, data: bytes) -> list[Any]:
    """Part ``part`` of one file (or directory); part 0 carries its metadata."""
    meta = None
    if part == 0:
        meta = {
            "contentType": record.content_type,
            "size": record.size,
            "etag": record.etag,
            "createdMs": record.created_ms,
            "modifiedMs": record.modified_ms,
        }
    return ["file", record.operator_id, record.path, part, meta, data]


@dataclass(frozen=True, slots=True)
class FilePart:
    """One ``file`` record: part 0 has the file's metadata (``record``, without a blob)."""

    operator_id: str
    path: str
    part: int
    record: FileRecord | None
    data: bytes


_FILE_META = {"contentType": str, "size": int, "etag": str, "createdMs": int, "modifiedMs": int}


def _file(record: list[Any]) -> FilePart:
    op, path, part, meta, data = _fields(record, (str, str, int, dict | None, bytes), "file")
    if part < 0 or (part == 0) != (meta is not None):
        raise SnapshotError("a bad file: part 0, and only part 0, carries the metadata")
    parsed = None
    if meta is not None:
        if set(meta) != set(_FILE_META) or not all(
            _matches(meta[k], hint) for k, hint in _FILE_META.items()
        ):
            raise SnapshotError(f"a bad file: metadata {meta!r}")
        try:
            parsed = FileRecord(
                op, path, meta["contentType"], meta["size"], meta["etag"], meta["createdMs"],
                meta["modifiedMs"],
            )  # fmt: skip
        except ValueError as error:
            raise SnapshotError(f"a bad file: {error}") from None
    return FilePart(op, path, part, parsed, data)


class _FileCheck:
    """That each file's parts follow each other and add up to its size and MD5."""

    def __init__(self) -> None:
        self._current: FileRecord | None = None
        self._next = 0
        self._size = 0
        self._digest: Any = None

    def add(self, part: FilePart) -> None:
        if part.record is not None:
            self.finish()
            self._current, self._next, self._size = part.record, 1, len(part.data)
            self._digest = hashlib.md5(part.data, usedforsecurity=False)
            return
        current = self._current
        if current is None or (part.operator_id, part.path, part.part) != (
            current.operator_id, current.path, self._next,
        ):  # fmt: skip
            raise SnapshotError(f"a bad file: part {part.part} of {part.path} is out of place")
        self._next += 1
        self._size += len(part.data)
        self._digest.update(part.data)

    def finish(self) -> None:
        current = self._current
        if current is None:
            return
        self._current = None
        if self._size != current.size:
            raise SnapshotError(
                f"the file {current.path} holds {self._size} bytes, not {current.size}"
            )
        if not current.is_directory and self._digest.hexdigest() != current.etag:
            raise SnapshotError(f"the file {current.path} does not match its etag")


def end_record(counts: dict[str, int], sha256_hex: str) -> list[Any]:
    """The last record: the counts by kind and the digest of every byte before it."""
    return ["end", counts, sha256_hex]


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
    if kind == "file":
        part = _file(record)
        return part, (part.operator_id, part.path, part.part)
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
class Record:
    """One checked record: its kind (``header`` and ``end`` included) and its value."""

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
    return SnapshotInfo(created, store, clock, version=version)


def records(handle: BinaryIO) -> Iterator[Record]:
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
    yield Record("header", header)
    counts = dict.fromkeys(COUNTS.values(), 0)
    if header.version < FIRST_VERSION_WITH_FILES:
        del counts["files"]
    files = _FileCheck()
    rank = -1
    last_key: tuple[Any, ...] | None = None
    seen_provisioned = False
    for number, obj in enumerate(objects, 1):
        if not (isinstance(obj, list) and obj and obj[0] in _RANK):
            raise SnapshotError(f"record {number} is not a snapshot record")
        kind: str = obj[0]
        if kind == "file" and "files" not in counts:
            raise SnapshotError(f"record {number}: a file record in a version 1 snapshot")
        if _RANK[kind] < rank:
            raise SnapshotError(
                f"record {number}: a {kind} record after the {_KINDS[rank]} records"
            )
        if _RANK[kind] > rank:
            rank, last_key = _RANK[kind], None
            if rank > _RANK["provisioned"] and not seen_provisioned:
                raise SnapshotError("the provisioned record is missing")
        if kind == "end":
            files.finish()
            if len(obj) != 3 or obj[1] != counts or obj[2] != digest.hexdigest():
                if len(obj) == 3 and isinstance(obj[1], dict) and obj[1] != counts:
                    raise SnapshotError(
                        f"its end record counts {obj[1]} but it holds {counts}: it is damaged"
                    )
                raise SnapshotError("its checksum does not match: it is damaged")
            if next(objects, None) is not None:
                raise SnapshotError("there is more after its end record")
            yield Record(
                "end",
                SnapshotInfo(
                    header.created_ms, header.store, header.clock_ms, counts, header.version
                ),
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
        elif kind == "file":
            try:
                files.add(value)
            except SnapshotError as error:
                raise SnapshotError(f"record {number}: {error}") from None
            if value.record is not None:
                counts["files"] += 1
        else:
            counts[COUNTS[kind]] += 1
        yield Record(kind, value)
    raise SnapshotError("it ends before its end record: it is cut short")


def check_file(path: Path) -> SnapshotInfo:
    """Read the whole snapshot at ``path`` and check everything; its header and counts.

    Raises :class:`SnapshotError` (``OSError`` if it cannot be read)."""
    with path.open("rb") as handle:
        for record in records(handle):
            if record.kind == "end":
                info: SnapshotInfo = record.value
                return info
    raise AssertionError("unreachable: records() ends with the end record or raises")
