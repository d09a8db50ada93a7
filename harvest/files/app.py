"""How Harvest Files plugs into the application: its service in a cleanup context (after the
store and housekeeping it uses), the ``/v1/files`` operations, and the download URLs on the
edge. The device side (``harvest-files.soracom.io``) is the gateway's (``gateway/files.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from harvest.context import API_APP, CLOCK, METRICS, SETTINGS, STATEFUL, STORE
from harvest.files import api
from harvest.files.blobs import BlobStore, DiskBlobs, MemoryBlobs
from harvest.files.index import FileIndex, MemoryFileIndex, SqliteFileIndex
from harvest.files.service import FileService, FilesMetrics
from harvest.settings import Settings
from harvest.wire import FILES_DOWNLOAD_PATH
from quotas.housekeeping import HOUSEKEEPING


async def files_context(app: web.Application) -> AsyncIterator[None]:
    """Open the index beside the database (the store made its table) and the bodies beside
    it, or both in memory; retention and the daily stored-bytes peak follow housekeeping."""
    settings = app[SETTINGS]
    database = settings.database_path
    index: FileIndex
    blobs: BlobStore
    if database is None:
        index, blobs = MemoryFileIndex(app[STORE]), MemoryBlobs()
    else:
        index, blobs = SqliteFileIndex(database), DiskBlobs(settings.data_dir / "files")
    service = FileService(
        index=index,
        blobs=blobs,
        store=app[STORE],
        clock=app[CLOCK],
        metrics=FilesMetrics(app[METRICS].registry),
    )
    await service.start()
    try:
        housekeeping = app[HOUSEKEEPING]
        stateful = app[STATEFUL]
        # reset before housekeeping, which reloads from what the others left
        stateful.insert(stateful.index(housekeeping), service)
        housekeeping.chores.append(service)
        await service.day_started(housekeeping.day)
        await service.expire()
        app[api.FILES] = service
        yield
    finally:
        await service.close()


def add_routes(router: web.UrlDispatcher) -> None:
    """The ``/v1/files`` operations, named after their operationIds. A directory's route (a
    trailing ``/``) comes before a file's, which would match it too."""
    router.add_get("/files", api.find_files, name="findFiles")
    router.add_get(
        "/files/exported/{exported_file_id}", api.get_exported_file, name="getExportedFile"
    )
    router.add_get("/files/{scope}/{path:.*}/", api.list_files, name="listFiles")
    router.add_route(
        "DELETE", "/files/{scope}/{path:.*}/", api.delete_directory, name="deleteDirectory"
    )
    router.add_get("/files/{scope}/{path:.+}", api.get_file, name="getFile", allow_head=False)
    router.add_route(
        "HEAD", "/files/{scope}/{path:.+}", api.get_file_metadata, name="getFileMetadata"
    )
    router.add_route("PUT", "/files/{scope}/{path:.+}", api.put_file, name="putFile")
    router.add_route("DELETE", "/files/{scope}/{path:.+}", api.delete_file, name="deleteFile")


def setup_files(app: web.Application, settings: Settings) -> None:
    """After ``setup_quotas`` (housekeeping) and before the ``/v1`` app is mounted."""
    app.cleanup_ctx.append(files_context)
    app[api.URL_KEY] = api.new_url_key()
    add_routes(app[API_APP].router)
    app.router.add_get(FILES_DOWNLOAD_PATH + "/{rest:.*}", api.download)
