"""The Harvest Files service: every operation of the device side and the API, on the index
(metadata) and the blob store (bodies), with metering and retention. It knows nothing of HTTP.

Uploads stream into the blob store first, outside any lock; the metadata commit that makes the
new version visible, the bookkeeping of bytes stored and the removal of the version it replaced
follow under one lock, so two uploads to one path leave one of them, whole. The upload's ledger
rows commit in the index's transaction with its metadata (:meth:`FileIndex.put`), so the
ledger counts exactly the uploads that are stored, whenever the emulator stops.

Metering (docs/files.md): every upload and download, and its bytes, go to the usage ledger for
the SIM that made it (or the account, through the API), and each UTC day records the most bytes
the operator had stored that day. No fee reads these rows: the seeds give Harvest Files no fee.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, replace

from prometheus_client import CollectorRegistry, Counter, Gauge

from harvest.clock import Clock
from harvest.files.blobs import BlobReader, BlobStore
from harvest.files.domain import FileRecord, ancestors, directory_record
from harvest.files.index import FileIndex
from harvest.storage.base import ACCOUNT_WIDE, RecordUsage, Store, Usage, UsageKind
from quotas.calendar import utc_day
from quotas.limits import FILES_MAX_BYTES, FILES_RETENTION_DAYS

#: Files one retention pass deletes at most per query.
EXPIRE_BATCH = 500
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class FilesMetrics:
    """The Harvest Files series of ``/metrics`` (docs/metrics.md)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.uploads = Counter(
            "harvest_files_uploads_total",
            "Harvest Files uploads stored, by side (device, api).",
            ["side"],
            registry=registry,
        )
        self.uploaded_bytes = Counter(
            "harvest_files_uploaded_bytes_total", "Bytes of Harvest Files uploads stored.",
            registry=registry,
        )  # fmt: skip
        self.downloads = Counter(
            "harvest_files_downloads_total",
            "Harvest Files downloads answered, by side (device, api).",
            ["side"],
            registry=registry,
        )
        self.downloaded_bytes = Counter(
            "harvest_files_downloaded_bytes_total", "Bytes of Harvest Files downloads sent.",
            registry=registry,
        )  # fmt: skip
        self.stored_bytes = Gauge(
            "harvest_files_stored_bytes", "Bytes of Harvest Files stored now.", registry=registry
        )
        self.expired = Counter(
            "harvest_files_expired_total",
            "Harvest Files deleted because they passed their 731 days of retention.",
            registry=registry,
        )


@dataclass(frozen=True, slots=True)
class Stored:
    """An upload, once committed: the file and whether it replaced one (``200``, else
    ``201``)."""

    record: FileRecord
    replaced: bool


class FileService:
    """See the module docstring."""

    def __init__(
        self,
        *,
        index: FileIndex,
        blobs: BlobStore,
        store: Store,
        clock: Clock,
        metrics: FilesMetrics | None = None,
    ) -> None:
        self.index = index
        self.blobs = blobs
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._lock = asyncio.Lock()
        #: Bytes stored per operator.
        self._stored: dict[str, int] = {}
        #: (operator, day) -> the stored-bytes peak the ledger holds for that day.
        self._peaks: dict[tuple[str, str], int] = {}

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> int:
        """Open the index, count what is stored, and remove bodies nothing points to; how many
        were removed."""
        await self.index.open()
        referenced: set[str] = set()
        self._stored.clear()
        async for page in self.index.pages(1000):
            for record in page:
                if record.blob is not None:
                    referenced.add(record.blob)
                    self._add(record.operator_id, record.size)
        return await self.blobs.prepare(referenced)

    async def close(self) -> None:
        await self.index.close()

    async def reset(self) -> None:
        """Every file and directory gone (control-plane reset)."""
        async with self._lock:
            await self.index.clear()
            await self.blobs.clear()
            self._stored.clear()
            self._peaks.clear()
            self._gauge()

    # --- snapshots -----------------------------------------------------------------------
    def pages(self, page: int) -> AsyncIterator[list[FileRecord]]:
        """Every file and directory, by (operator, path): what an export reads."""
        return self.index.pages(page)

    async def open_blob(self, name: str) -> BlobReader:
        return await self.blobs.open_blob(name)

    async def restore(self, record: FileRecord, chunks: AsyncIterable[bytes]) -> None:
        """Put a file (or directory) of an import back as it was exported."""
        async with self._lock:
            if record.is_directory:
                await self.index.put([record])
                return
            blob = await self.blobs.write(chunks, FILES_MAX_BYTES)
            try:
                await self.index.put([replace(record, blob=blob.name)])
            except BaseException:
                await self.blobs.delete([blob.name])
                raise
            self._add(record.operator_id, blob.size)
            self._gauge()

    def stored_bytes(self, operator_id: str | None = None) -> int:
        if operator_id is None:
            return sum(self._stored.values())
        return self._stored.get(operator_id, 0)

    def _add(self, operator_id: str, size: int) -> None:
        self._stored[operator_id] = self._stored.get(operator_id, 0) + size

    def _gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.stored_bytes.set(self.stored_bytes())

    # --- metering -------------------------------------------------------------------------------
    async def _peak_row(self, operator_id: str, day: str, stored: int) -> Usage | None:
        """The ledger row that raises the day's stored-bytes peak to ``stored`` bytes, if it
        is higher; the caller notes the new peak (:meth:`_noted`) once the row is committed."""
        peak = self._peaks.get((operator_id, day))
        if peak is None:
            peak = await self._store.usage_count(
                operator_id, ACCOUNT_WIDE, day, UsageKind.FILE_STORED_BYTES
            )
            self._peaks[(operator_id, day)] = peak
        if stored <= peak:
            return None
        return Usage(operator_id, ACCOUNT_WIDE, day, UsageKind.FILE_STORED_BYTES, stored - peak)

    def _noted(self, row: Usage | None) -> None:
        if row is not None:
            key = (row.operator_id, row.day)
            self._peaks[key] = self._peaks.get(key, 0) + row.count

    async def day_started(self, day: str) -> None:
        """A UTC day began (or the clock moved to it): its peak starts at what is stored."""
        async with self._lock:
            rows = [
                row
                for operator_id in sorted(self._stored)
                if (row := await self._peak_row(operator_id, day, self._stored[operator_id]))
                is not None
            ]
            self._peaks = {k: v for k, v in self._peaks.items() if k[1] >= day}
            if rows:
                await self._store.apply([RecordUsage(tuple(rows))])
                for row in rows:
                    self._noted(row)

    def _usage(
        self, operator_id: str, imsi: str | None, kinds: tuple[UsageKind, UsageKind], size: int
    ) -> list[Usage]:
        day = utc_day(self._clock.now_ms())
        who = ACCOUNT_WIDE if imsi is None else imsi
        count, volume = kinds
        rows = [Usage(operator_id, who, day, count, 1)]
        if size:
            rows.append(Usage(operator_id, who, day, volume, size))
        return rows

    async def downloaded(self, operator_id: str, imsi: str | None, size: int) -> None:
        """Meter one download of ``size`` bytes, by a SIM or (``None``) through the API."""
        kinds = (UsageKind.FILE_DOWNLOAD, UsageKind.FILE_DOWNLOAD_BYTES)
        await self._store.apply([RecordUsage(tuple(self._usage(operator_id, imsi, kinds, size)))])
        if self._metrics is not None:
            self._metrics.downloads.labels("api" if imsi is None else "device").inc()
            self._metrics.downloaded_bytes.inc(size)

    # --- operations ------------------------------------------------------------------------------
    async def put(
        self,
        operator_id: str,
        path: str,
        content_type: str | None,
        chunks: AsyncIterable[bytes],
        *,
        limit: int,
        imsi: str | None = None,
    ) -> Stored:
        """Store a body at ``path`` (a normalised file path), replacing any file there; durable
        when this returns. Raises :class:`~harvest.files.blobs.BlobTooLarge` past ``limit``."""
        blob = await self.blobs.write(chunks, limit)
        try:
            async with self._lock:
                now = self._clock.now_ms()
                old = await self.index.get(operator_id, path)
                created = [
                    directory_record(operator_id, directory, now)
                    for directory in ancestors(path)
                    if await self.index.get(operator_id, directory) is None
                ]
                record = FileRecord(
                    operator_id,
                    path,
                    content_type or DEFAULT_CONTENT_TYPE,
                    blob.size,
                    blob.md5,
                    now if old is None else old.created_ms,
                    now,
                    blob.name,
                )
                rows = self._usage(
                    operator_id, imsi, (UsageKind.FILE_UPLOAD, UsageKind.FILE_UPLOAD_BYTES),
                    blob.size,
                )  # fmt: skip
                change = blob.size - (0 if old is None else old.size)
                stored = self.stored_bytes(operator_id) + change
                peak = await self._peak_row(operator_id, utc_day(now), stored)
                # the file and the ledger rows that count it: one transaction
                await self.index.put([*created, record], rows if peak is None else [*rows, peak])
                self._add(operator_id, change)
                self._noted(peak)
        except BaseException:
            await self.blobs.delete([blob.name])
            raise
        if old is not None and old.blob is not None:
            await self.blobs.delete([old.blob])
        if self._metrics is not None:
            self._metrics.uploads.labels("api" if imsi is None else "device").inc()
            self._metrics.uploaded_bytes.inc(blob.size)
            self._gauge()
        return Stored(record, old is not None)

    async def get(self, operator_id: str, path: str) -> FileRecord | None:
        """The file or directory at ``path``; the root always exists."""
        if path == "/":
            return directory_record(operator_id, "/", 0)
        return await self.index.get(operator_id, path)

    async def open(self, operator_id: str, path: str) -> tuple[FileRecord, BlobReader] | None:
        """The file at ``path`` and its body, opened (it stays readable whatever happens to
        the file meanwhile); ``None`` if there is no such file."""
        for _ in range(3):  # an overwrite may remove the body between the two reads
            record = await self.index.get(operator_id, path)
            if record is None or record.blob is None:
                return None
            with contextlib.suppress(FileNotFoundError):
                return record, await self.blobs.open_blob(record.blob)
        return None

    async def delete_file(self, operator_id: str, path: str) -> bool:
        """Delete the file at ``path``; whether there was one. Its directory stays."""
        async with self._lock:
            record = await self.index.get(operator_id, path)
            if record is None or record.is_directory:
                return False
            await self.index.delete(operator_id, [path])
            self._add(operator_id, -record.size)
            self._gauge()
        if record.blob is not None:
            await self.blobs.delete([record.blob])
        return True

    async def delete_directory(self, operator_id: str, path: str) -> bool | None:
        """Delete the empty directory ``path``: ``True``; ``False`` when it is not empty;
        ``None`` when there is no such directory (the root is never deleted)."""
        async with self._lock:
            if path == "/" or await self.index.get(operator_id, path) is None:
                return None
            if await self.index.children(operator_id, path, 1, None):
                return False
            await self.index.delete(operator_id, [path])
            return True

    async def list_directory(
        self, operator_id: str, path: str, limit: int, after: str | None
    ) -> list[FileRecord] | None:
        """Up to ``limit`` entries of the directory ``path`` after the one named ``after``;
        ``None`` if there is no such directory."""
        if await self.get(operator_id, path) is None:
            return None
        return await self.index.children(
            operator_id, path, limit, None if after is None else path + after
        )

    async def find(
        self, operator_id: str, prefix: str, limit: int, after: str | None
    ) -> list[FileRecord]:
        return await self.index.find(operator_id, prefix, limit, after)

    # --- retention -------------------------------------------------------------------------------
    async def expire(self, now_ms: int | None = None) -> int:
        """Delete every file last written more than 731 days ago (notes section 2); how many."""
        now = self._clock.now_ms() if now_ms is None else now_ms
        cutoff = now - FILES_RETENTION_DAYS * 86_400_000
        deleted = 0
        while True:
            async with self._lock:
                expired = await self.index.expired(cutoff, EXPIRE_BATCH)
                by_operator: dict[str, list[str]] = {}
                for record in expired:
                    by_operator.setdefault(record.operator_id, []).append(record.path)
                    self._add(record.operator_id, -record.size)
                for operator_id, paths in by_operator.items():
                    await self.index.delete(operator_id, paths)
            if not expired:
                break
            await self.blobs.delete(r.blob for r in expired if r.blob is not None)
            deleted += len(expired)
        if deleted and self._metrics is not None:
            self._metrics.expired.inc(deleted)
            self._gauge()
        return deleted
