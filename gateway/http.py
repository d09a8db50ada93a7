"""The device HTTP adapter: ``POST`` to any path of the edge port is a Harvest write (spec A1).

It only turns the request into an :class:`~harvest.domain.Upload`; the ingest service decides.
"""

from __future__ import annotations

from aiohttp import web

from harvest import errors
from harvest.context import INGEST
from harvest.domain import Transport, Upload
from harvest.errors import HarvestError

TIMESTAMP_HEADER = "X-Soracom-Timestamp"


async def read_bounded(request: web.Request, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the body: enough to tell the ingest it is too large,
    without buffering whatever a broken client may send."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def parse_timestamp(raw: str | None) -> int | None:
    """``X-Soracom-Timestamp``: UNIX milliseconds, honoured on direct HTTP only (spec A1)."""
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isdigit():
        raise HarvestError(
            errors.INVALID_TIMESTAMP, f"X-Soracom-Timestamp must be UNIX milliseconds, not {raw!r}."
        )
    return int(raw)


async def write_data(request: web.Request) -> web.Response:
    """Store the body as one entry for the SIM whose session sent it; ``201``, empty body."""
    ingest = request.app[INGEST]
    body = await read_bounded(request, ingest.max_payload_bytes)
    await ingest.ingest(
        Upload(
            transport=Transport.HTTP,
            peer=request.remote or "",
            body=body,
            content_type=request.headers.get("Content-Type"),
            timestamp_ms=parse_timestamp(request.headers.get(TIMESTAMP_HEADER)),
        )
    )
    return web.Response(status=201)


async def wrong_method(request: web.Request) -> web.Response:
    raise HarvestError(
        errors.DEVICE_METHOD_NOT_ALLOWED,
        f"{request.method} is not a Harvest write; devices send POST.",
    )
