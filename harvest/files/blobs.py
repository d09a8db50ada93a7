"""File bodies: on disk beside the database, or in memory with ``--memory``.

A body is written to a temporary file, fsynced, renamed to its final name and the directory
fsynced, all before the upload is answered; the metadata that points to it is committed after
that (:mod:`harvest.files.index`). A crash therefore never leaves a half file visible: at worst
a body nobody points to, which the next start removes. Every version of a file gets a new name,
so a download that has opened the old body reads it to the end while an overwrite goes on.

Bodies stream in and out in chunks of :data:`CHUNK` bytes, the file work on a worker thread:
a 100 MiB upload never sits in memory whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

#: Bytes per write to disk, per read from it, and per chunk of a download.
CHUNK = 1 << 20


class BlobTooLarge(Exception):
    """The body passed the size limit; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Blob:
    """A stored body: its name, size and MD5 (hex)."""

    name: str
    size: int
    md5: str


class BlobReader(Protocol):
    """An opened body: it stays readable until closed, whatever happens to its name."""

    def chunks(self, start: int, length: int) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


class BlobStore(Protocol):
    """Where the bodies are. :meth:`open_blob` raises ``FileNotFoundError`` for a body that is
    gone (deleted by an overwrite since its metadata was read)."""

    kind: str

    async def prepare(self, referenced: Collection[str]) -> int:
        """Create what is needed and remove bodies no metadata points to (a crash between the
        rename and the commit); how many were removed."""

    async def write(self, chunks: AsyncIterable[bytes], limit: int) -> Blob: ...

    async def open_blob(self, name: str) -> BlobReader: ...

    async def delete(self, names: Iterable[str]) -> None: ...

    async def clear(self) -> None: ...


async def _gather(chunks: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    """``chunks`` regrouped into pieces of about :data:`CHUNK` bytes; :class:`BlobTooLarge`
    as soon as more than ``limit`` bytes have come."""
    buffer = bytearray()
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BlobTooLarge(limit)
        buffer += chunk
        if len(buffer) >= CHUNK:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


# --- in memory -----------------------------------------------------------------------------------
class _MemoryReader:
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def chunks(self, start: int, length: int) -> AsyncIterator[bytes]:
        end = start + length
        for offset in range(start, end, CHUNK):
            yield self._body[offset : min(offset + CHUNK, end)]

    async def close(self) -> None:
        return None


class MemoryBlobs:
    """Bodies in a dictionary (``--memory``): nothing touches the disk."""

    kind = "memory"

    def __init__(self) -> None:
        self._bodies: dict[str, bytes] = {}

    async def prepare(self, referenced: Collection[str]) -> int:
        return 0

    async def write(self, chunks: AsyncIterable[bytes], limit: int) -> Blob:
        digest = hashlib.md5(usedforsecurity=False)
        parts: list[bytes] = []
        async for piece in _gather(chunks, limit):
            digest.update(piece)
            parts.append(piece)
        body = b"".join(parts)
        name = uuid.uuid4().hex
        self._bodies[name] = body
        return Blob(name, len(body), digest.hexdigest())

    async def open_blob(self, name: str) -> BlobReader:
        body = self._bodies.get(name)
        if body is None:
            raise FileNotFoundError(name)
        return _MemoryReader(body)

    async def delete(self, names: Iterable[str]) -> None:
        for name in names:
            self._bodies.pop(name, None)

    async def clear(self) -> None:
        self._bodies.clear()


# --- on disk -------------------------------------------------------------------------------------
def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _DiskReader:
    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def _read(self, start: int, size: int) -> bytes:
        self._handle.seek(start)
        return self._handle.read(size)

    async def chunks(self, start: int, length: int) -> AsyncIterator[bytes]:
        end = start + length
        offset = start
        while offset < end:
            piece = await asyncio.to_thread(self._read, offset, min(CHUNK, end - offset))
            if not piece:
                raise OSError(f"the body ends at byte {offset}, before {end}")
            offset += len(piece)
            yield piece

    async def close(self) -> None:
        # On the loop, not a thread: a read-only close has nothing to flush, and a handler
        # cancelled at shutdown must still close it.
        self._handle.close()


class DiskBlobs:
    """Bodies as files under ``root``: ``root/blobs/<2 hex>/<name>``, written through
    ``root/tmp``."""

    kind = "disk"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "blobs"
        self._tmp = root / "tmp"

    def _path(self, name: str) -> Path:
        return self._blobs / name[:2] / name

    def _prepare(self, referenced: Collection[str]) -> int:
        shutil.rmtree(self._tmp, ignore_errors=True)  # uploads a crash cut short
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._blobs.mkdir(parents=True, exist_ok=True)
        removed = 0
        for path in self._blobs.glob("*/*"):
            if path.name not in referenced:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    async def prepare(self, referenced: Collection[str]) -> int:
        return await asyncio.to_thread(self._prepare, referenced)

    def _commit(self, handle: BinaryIO, temporary: Path, name: str) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        final = self._path(name)
        final.parent.mkdir(exist_ok=True)
        os.replace(temporary, final)
        _sync_directory(final.parent)

    async def write(self, chunks: AsyncIterable[bytes], limit: int) -> Blob:
        name = uuid.uuid4().hex
        temporary = self._tmp / f"{name}.part"
        handle: BinaryIO = await asyncio.to_thread(temporary.open, "xb")
        digest = hashlib.md5(usedforsecurity=False)
        size = 0

        def put(piece: bytes) -> None:
            digest.update(piece)
            handle.write(piece)

        try:
            async for piece in _gather(chunks, limit):
                size += len(piece)
                await asyncio.to_thread(put, piece)
            await asyncio.to_thread(self._commit, handle, temporary, name)
        except BaseException:
            await asyncio.to_thread(self._discard, handle, temporary)
            raise
        return Blob(name, size, digest.hexdigest())

    @staticmethod
    def _discard(handle: BinaryIO, temporary: Path) -> None:
        handle.close()
        temporary.unlink(missing_ok=True)

    async def open_blob(self, name: str) -> BlobReader:
        handle: BinaryIO = await asyncio.to_thread(self._path(name).open, "rb")
        return _DiskReader(handle)

    def _delete(self, names: Iterable[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                self._path(name).unlink()

    async def delete(self, names: Iterable[str]) -> None:
        await asyncio.to_thread(self._delete, list(names))

    def _clear(self) -> None:
        shutil.rmtree(self._blobs, ignore_errors=True)
        self._blobs.mkdir(parents=True, exist_ok=True)

    async def clear(self) -> None:
        await asyncio.to_thread(self._clear)
