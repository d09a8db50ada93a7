"""The control plane's snapshot routes, ``GET`` and ``PUT /_emulator/snapshot``, which the
server mounts: an export streamed as it is read, and an upload checked in full, then imported.

Server side only: nothing here imports the command line or a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from harvest import errors
from harvest.context import CLOCK, REGISTRY, SETTINGS, STORE
from harvest.errors import HarvestError
from harvest.files.api import FILES
from harvest.snapshot.format import CHUNK, MEDIA_TYPE, SnapshotError
from harvest.snapshot.transfer import Export, ImportFailed, discard, import_file
from harvest.web import json_response
from quotas.housekeeping import HOUSEKEEPING

log = logging.getLogger(__name__)

#: Largest snapshot ``PUT /_emulator/snapshot`` accepts (it is spooled to disk first).
MAX_UPLOAD_BYTES = 64 << 30

SNAPSHOT_LOCK = web.AppKey("snapshot_lock", asyncio.Lock)


async def get_snapshot(request: web.Request) -> web.StreamResponse:
    """``GET /_emulator/snapshot``: an export of everything, streamed as it is read (never of
    an import half applied: the two take turns)."""
    async with request.config_dict[SNAPSHOT_LOCK]:
        return await _stream_export(request)


async def _stream_export(request: web.Request) -> web.StreamResponse:
    await request.config_dict[HOUSEKEEPING].flush_reads()  # noted reads belong in the ledger
    export = Export(
        request.config_dict[STORE],
        clock_ms=request.config_dict[CLOCK].now_ms(),
        files=request.config_dict[FILES],
    )
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
                info = await import_file(
                    store, spool, before=housekeeping.flush_reads, files=request.config_dict[FILES]
                )
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
            await asyncio.to_thread(discard, spool)
        await request.config_dict[REGISTRY].load()
        await housekeeping.reload()
    return json_response({"imported": info.view()})


def add_routes(app: web.Application) -> None:
    """The snapshot routes of the control plane (``app`` is the ``/_emulator`` sub-app)."""
    app[SNAPSHOT_LOCK] = asyncio.Lock()
    app.router.add_get("/snapshot", get_snapshot)
    app.router.add_put("/snapshot", put_snapshot)
