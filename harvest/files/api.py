"""The ``/v1/files`` operations (SORACOM operationIds ``findFiles``, ``getFile``,
``getFileMetadata``, ``putFile``, ``deleteFile``, ``listFiles``, ``deleteDirectory``,
``getExportedFile``), the signed download URL ``getFile`` redirects to, and the streaming of a
file's body with ``Range`` that the device side shares.

Paths are read from the raw request path and percent-decoded once, so every encoding the notes
list arrives at the same file: soracom-cli's (each segment escaped, ``//`` for the root),
the generated clients' (``a%2Fb.txt``) and soracom-lib's (``/`` kept). A decoded path that
ends with ``/`` names a directory, whichever route matched (notes real-service.md section 5.2).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate
from urllib.parse import quote, unquote

from aiohttp import web

from harvest import errors
from harvest.api.params import LAST_EVALUATED_KEY, int_param, page, query_value
from harvest.context import CLOCK, SETTINGS, TOKEN
from harvest.errors import ErrorSpec, HarvestError
from harvest.files.blobs import BlobReader, BlobTooLarge
from harvest.files.domain import (
    FilePathError,
    FileRecord,
    Scope,
    directory_path,
    file_path,
)
from harvest.files.ranges import RangeNotSatisfiable, parse_range
from harvest.files.service import FileService
from harvest.wire import API_PATH, FILES_DOWNLOAD_PATH
from quotas.limits import FILES_PAGE_DEFAULT, PAGE_LIMIT_MAX

FILES = web.AppKey("files", FileService)
#: The key that signs download URLs: new at each start, so a URL outlives no restart.
URL_KEY: web.AppKey[bytes] = web.AppKey("files_url_key", bytes)
#: Bytes per read of an upload's body from the connection.
READ_CHUNK = 1 << 16


# --- paths -----------------------------------------------------------------------------------
def decoded(raw: str) -> str:
    """A raw path, percent-decoded once (``%2F`` included), or ``400``."""
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise HarvestError(errors.INVALID_FILE_PATH, "The path is not UTF-8.") from None


def scope_and_path(request: web.Request) -> tuple[Scope, str]:
    """The scope and the decoded path after it (``""`` for the root: ``/files/private/``)."""
    raw = request.rel_url.raw_path.removeprefix(API_PATH + "/files/")
    raw_scope, _, raw_path = raw.partition("/")
    try:
        scope = Scope(decoded(raw_scope))
    except ValueError:
        raise HarvestError(errors.NO_SUCH_SCOPE, f"No such scope: {raw_scope!r}.") from None
    return scope, decoded(raw_path)


def caller(request: web.Request) -> str:
    """The operator whose API token made the request: every file operation is on its files."""
    return request[TOKEN].operator_id


def checked(normalise: Callable[[str], str], raw: str) -> str:
    """``raw`` through :func:`file_path` or :func:`directory_path`, ``400`` if refused."""
    try:
        return normalise(raw)
    except FilePathError as error:
        raise HarvestError(errors.INVALID_FILE_PATH, f"Invalid file path: {error}.") from None


def private(scope: Scope) -> None:
    if scope is not Scope.PRIVATE:
        raise HarvestError(errors.READ_ONLY_SCOPE, "Only the private scope can be changed.")


def _limit(request: web.Request) -> int:
    limit = int_param(
        request, "limit", default=FILES_PAGE_DEFAULT, minimum=1, maximum=PAGE_LIMIT_MAX
    )
    assert limit is not None
    return limit


# --- streaming a body ------------------------------------------------------------------------
def file_headers(record: FileRecord) -> dict[str, str]:
    return {
        "Content-Type": record.content_type,
        "ETag": record.quoted_etag(),
        "Last-Modified": formatdate(record.modified_ms / 1000, usegmt=True),
        "Accept-Ranges": "bytes",
    }


Meter = Callable[[int], Awaitable[None]]


async def send_body(
    request: web.Request, record: FileRecord, reader: BlobReader, meter: Meter
) -> web.StreamResponse:
    """The body (or the ``Range`` of it) of an opened file, streamed; ``HEAD`` gets the headers
    alone. ``416`` for a range with no byte in the file. ``meter`` is told the bytes sent
    before the last of them goes out, so the ledger has the download when the client has it
    (or, if the client leaves, what it got)."""
    try:
        wanted = parse_range(request.headers.get("Range"), record.size)
    except RangeNotSatisfiable as error:
        await reader.close()
        raise HarvestError(
            errors.RANGE_NOT_SATISFIABLE,
            f"The range ({error}) asks for no byte of the file.",
            headers={"Content-Range": f"bytes */{record.size}"},
        ) from None
    headers = file_headers(record)
    start, length, status = 0, record.size, 200
    if wanted is not None:
        start, length, status = wanted.start, wanted.length, 206
        headers["Content-Range"] = wanted.content_range()
    try:
        if request.method == "HEAD":
            headers["Content-Length"] = str(length)
            return web.Response(status=status, headers=headers)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = length
        await response.prepare(request)
        sent = 0
        try:
            async for chunk in reader.chunks(start, length):
                if sent + len(chunk) == length:
                    await meter(length)
                await response.write(chunk)
                sent += len(chunk)
            if length == 0:
                await meter(0)
            await response.write_eof()
        except ConnectionError:
            if sent < length:  # the client left; what it got is what counts
                await meter(sent)
        return response
    finally:
        await reader.close()


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        yield chunk


async def store_body(
    request: web.Request,
    operator_id: str,
    path: str,
    *,
    limit: int,
    too_large: ErrorSpec,
    imsi: str | None = None,
) -> web.Response:
    """Stream the request's body into the file at ``path``: ``201`` for a new file, ``200``
    for one replaced; ``413`` past ``limit`` (at once when ``Content-Length`` says so)."""
    service = request.config_dict[FILES]
    message = f"The file is larger than the limit of {limit} bytes."
    length = request.content_length
    if length is not None and length > limit:
        raise HarvestError(too_large, message)
    try:
        stored = await service.put(
            operator_id,
            path,
            request.headers.get("Content-Type"),
            body_chunks(request),
            limit=limit,
            imsi=imsi,
        )
    except BlobTooLarge:
        raise HarvestError(too_large, message) from None
    return web.Response(status=200 if stored.replaced else 201)


# --- download URLs ---------------------------------------------------------------------------
def _signature(key: bytes, operator_id: str, path: str, expires: int) -> str:
    message = f"{operator_id}\n{path}\n{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def download_url(request: web.Request, operator_id: str, path: str) -> str:
    """A URL on the edge, as the client reached it, that downloads ``path`` until it expires
    (``files_url_seconds``, by the emulator clock)."""
    expires = (
        request.config_dict[CLOCK].now_ms() + request.config_dict[SETTINGS].files_url_seconds * 1000
    )
    signature = _signature(request.config_dict[URL_KEY], operator_id, path, expires)
    target = f"{FILES_DOWNLOAD_PATH}/{quote(operator_id, safe='')}{quote(path)}"
    return f"{request.scheme}://{request.host}{target}?expires={expires}&signature={signature}"


async def download(request: web.Request) -> web.StreamResponse:
    """``GET`` (or ``HEAD``) of a URL :func:`download_url` made: the file, ``Range`` honoured;
    ``403`` once expired or when the signature does not verify."""
    raw = request.rel_url.raw_path.removeprefix(FILES_DOWNLOAD_PATH + "/")
    raw_operator, _, raw_path = raw.partition("/")
    operator_id, path = decoded(raw_operator), "/" + decoded(raw_path)
    expires_text = request.query.get("expires", "")
    expires = int(expires_text) if expires_text.isascii() and expires_text.isdigit() else -1
    expected = _signature(request.config_dict[URL_KEY], operator_id, path, expires)
    if not hmac.compare_digest(expected, request.query.get("signature", "")) or (
        expires < request.config_dict[CLOCK].now_ms()
    ):
        raise HarvestError(errors.DOWNLOAD_URL_INVALID)
    service = request.config_dict[FILES]
    opened = await service.open(operator_id, path)
    if opened is None:
        raise HarvestError(errors.NO_SUCH_FILE, f"No such file: {path}")
    record, reader = opened

    async def meter(sent: int) -> None:
        await service.downloaded(operator_id, None, sent)

    return await send_body(request, record, reader, meter)


# --- the operations --------------------------------------------------------------------------
async def find_files(request: web.Request) -> web.Response:
    """``findFiles``: files whose path starts with ``prefix``, in UTF-8 byte order."""
    operator_id = caller(request)
    raw_scope = query_value(request, "scope")
    prefix = query_value(request, "prefix")
    limit = _limit(request)
    after = query_value(request, LAST_EVALUATED_KEY)
    if raw_scope is None or prefix is None:
        raise HarvestError(errors.INVALID_PARAMETER, "'scope' and 'prefix' are required.")
    try:
        scope = Scope(raw_scope)
    except ValueError:
        raise HarvestError(errors.NO_SUCH_SCOPE, f"No such scope: {raw_scope!r}.") from None
    if scope is Scope.PUBLIC:
        return page(request, [], None)
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    found = await request.config_dict[FILES].find(operator_id, prefix, limit + 1, after)
    more = len(found) > limit
    found = found[:limit]
    return page(request, [r.to_wire() for r in found], found[-1].path if more else None)


async def list_files(request: web.Request) -> web.Response:
    """``listFiles``: one page of a directory's entries, by ``filename``."""
    operator_id = caller(request)
    scope, raw = scope_and_path(request)
    path = checked(directory_path, raw)
    limit = _limit(request)
    after = query_value(request, LAST_EVALUATED_KEY)
    if scope is Scope.PUBLIC:
        if path != "/":
            raise HarvestError(errors.NO_SUCH_DIRECTORY, f"No such directory: {path}")
        return page(request, [], None)
    found = await request.config_dict[FILES].list_directory(operator_id, path, limit + 1, after)
    if found is None:
        raise HarvestError(errors.NO_SUCH_DIRECTORY, f"No such directory: {path}")
    more = len(found) > limit
    found = found[:limit]
    return page(
        request, [r.to_wire() for r in found], found[-1].to_wire()["filename"] if more else None
    )


async def get_file(request: web.Request) -> web.Response:
    """``getFile``: ``302`` to a download URL; to ``listFiles`` for a directory."""
    operator_id = caller(request)
    scope, raw = scope_and_path(request)
    if raw.endswith("/"):  # an encoded trailing slash (``a%2F``): a directory
        raise web.HTTPFound(listing_url(scope, checked(directory_path, raw)))
    path = checked(file_path, raw)
    service = request.config_dict[FILES]
    record = None if scope is Scope.PUBLIC else await service.get(operator_id, path)
    if record is not None:
        raise web.HTTPFound(download_url(request, operator_id, path))
    if scope is Scope.PRIVATE and await service.get(operator_id, path + "/") is not None:
        raise web.HTTPFound(listing_url(scope, path + "/"))
    raise HarvestError(errors.NO_SUCH_FILE, f"No such file: {path}")


def listing_url(scope: Scope, directory: str) -> str:
    """``listFiles``' path for a directory (``//`` for the root, as soracom-cli sends it)."""
    return f"{API_PATH}/files/{scope}/{quote(directory[1:]) or '/'}"


async def get_file_metadata(request: web.Request) -> web.Response:
    """``getFileMetadata`` (``HEAD``): ``Content-Length``, ``Content-Type`` and ``ETag``."""
    operator_id = caller(request)
    scope, raw = scope_and_path(request)
    path = checked(file_path, raw)
    record = None
    if scope is Scope.PRIVATE:
        record = await request.config_dict[FILES].get(operator_id, path)
    if record is None:
        raise HarvestError(errors.NO_SUCH_FILE, f"No such file: {path}")
    headers = file_headers(record)
    headers["Content-Length"] = str(record.size)
    return web.Response(headers=headers)


async def put_file(request: web.Request) -> web.Response:
    """``putFile``: ``201`` for a new file, ``200`` for one replaced (OpenAPI)."""
    operator_id = caller(request)
    scope, raw = scope_and_path(request)
    private(scope)
    if raw.endswith("/"):
        raise HarvestError(errors.INVALID_FILE_PATH, "A file's path cannot end with /.")
    path = checked(file_path, raw)
    limit = request.config_dict[SETTINGS].files_max_bytes
    return await store_body(
        request, operator_id, path, limit=limit, too_large=errors.FILE_TOO_LARGE
    )


async def delete_file(request: web.Request) -> web.Response:
    """``deleteFile``: ``204``, or ``404``."""
    operator_id = caller(request)
    scope, raw = scope_and_path(request)
    private(scope)
    if raw.endswith("/"):
        return await delete_directory(request)
    path = checked(file_path, raw)
    if not await request.config_dict[FILES].delete_file(operator_id, path):
        raise HarvestError(errors.NO_SUCH_FILE, f"No such file: {path}")
    return web.Response(status=204)


async def delete_directory(request: web.Request) -> web.Response:
    """``deleteDirectory``: ``204``; ``400`` when it is not empty; ``404``."""
    operator_id = caller(request)
    scope, raw = scope_and_path(request)
    private(scope)
    path = checked(directory_path, raw)
    deleted = await request.config_dict[FILES].delete_directory(operator_id, path)
    if deleted is None:
        raise HarvestError(errors.NO_SUCH_DIRECTORY, f"No such directory: {path}")
    if not deleted:
        raise HarvestError(errors.DIRECTORY_NOT_EMPTY, f"The directory {path} is not empty.")
    return web.Response(status=204)


async def get_exported_file(request: web.Request) -> web.Response:
    """``getExportedFile``: the emulator exports nothing asynchronously, so no id is known."""
    caller(request)
    exported = request.match_info["exported_file_id"]
    raise HarvestError(errors.NO_SUCH_EXPORT, f"No such exported file: {exported}")


def new_url_key() -> bytes:
    return secrets.token_bytes(32)
