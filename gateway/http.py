"""The device HTTP adapter: ``POST`` to any path of a device host (or of the edge's other paths)
is a Harvest write (spec A1).

It turns the request into an :class:`~harvest.domain.Upload` for the ingest service and shapes
the reply; it decides nothing else. Three entry points share it:

* ``harvest.soracom.io`` (and the edge's own address, on every path the API and the control
  plane do not claim): ``201`` with an empty body, ``X-Soracom-Timestamp`` honoured;
* the Unified Endpoint (``Host: uni.soracom.io`` or ``unified.soracom.io``, or the path prefix
  ``/_unified`` for clients that cannot set Host): ``X-Soracom-Timestamp`` is not honoured
  (notes 2.2, H6) and the group may ask for the Unified reply format;
* writes forwarded by SORACOM Beam: with a pre-shared key configured, ``X-Soracom-IMSI`` and
  ``X-Soracom-Signature`` identify the SIM once the signature verifies (notes 3.4), and Beam's
  ``{"payload": "<base64>"}`` wrapping of TCP/UDP data is unwrapped.
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.beam import BeamSignatureError, unwrap_payload, verify_http
from gateway.unified import PATH_PREFIX, answers_unified, unified_reply
from harvest import errors
from harvest.console.app import PATH as CONSOLE_PATH
from harvest.console.app import wants_console
from harvest.context import CLOCK, INGEST, SETTINGS
from harvest.domain import Transport, Upload
from harvest.errors import Dropped, HarvestError
from harvest.web import dumps, error_response, json_response
from harvest.wire import INT64_MAX, TIMESTAMP_HEADER

log = logging.getLogger(__name__)

#: Headers that mark a request as forwarded by Beam (notes 3.1).
BEAM_MARKERS = ("X-Soracom-Signature", "X-Soracom-Signature-Version", "X-Soracom-IMSI")


async def read_bounded(request: web.Request, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the body: enough to tell the ingest it is too large,
    without buffering whatever a broken client may send."""
    length = request.content_length
    if length is not None and length <= limit:
        return await request.read()  # the usual case: one call
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
    # ASCII digits only (str.isdigit also takes "²"), and a time an int64 can hold.
    if not (raw.isascii() and raw.isdigit()) or int(raw) > INT64_MAX:
        raise HarvestError(
            errors.INVALID_TIMESTAMP, f"X-Soracom-Timestamp must be UNIX milliseconds, not {raw!r}."
        )
    return int(raw)


#: Which device endpoint an application of device routes stands for: ``harvest`` or
#: ``unified`` on the device hosts' applications; unset on the main edge, where the path
#: decides (``/_unified`` for clients that cannot set ``Host``).
ENDPOINT = web.AppKey("device_endpoint", str)


def is_unified(request: web.Request) -> bool:
    """Whether the request came to the Unified Endpoint: by host (``uni.soracom.io``), or on
    the main edge by the path prefix."""
    endpoint = request.app.get(ENDPOINT)
    if endpoint is not None:
        return endpoint == "unified"
    path = request.path
    return path == PATH_PREFIX or path.startswith(PATH_PREFIX + "/")


def beam_identity(request: web.Request) -> str | None:
    """The Beam-signed IMSI, when a pre-shared key is configured and Beam headers are present.

    Without a key the headers are ignored and the session address decides, as for any device.
    """
    settings = request.config_dict[SETTINGS]
    if not settings.beam_psk or not any(h in request.headers for h in BEAM_MARKERS):
        return None
    try:
        identity = verify_http(
            settings.beam_psk,
            request.headers,
            max_skew_ms=settings.beam_max_skew_ms or None,
            now_ms=request.config_dict[CLOCK].now_ms() if settings.beam_max_skew_ms else None,
        )
    except BeamSignatureError as error:
        raise HarvestError(errors.BEAM_SIGNATURE_INVALID, f"Beam signature: {error}.") from None
    if identity.imsi is None:
        raise HarvestError(
            errors.BEAM_SIGNATURE_INVALID, "Beam signature: the request names no IMSI."
        )
    return identity.imsi


def device_upload(request: web.Request, body: bytes = b"") -> Upload:
    """The device request as the ingest sees it, before its headers are read."""
    return Upload(
        transport=Transport.HTTP,
        peer=request.remote or "",
        body=body,
        content_type=request.headers.get("Content-Type"),
        target=request.path,
        size=request.content_length,
    )


async def write_data(request: web.Request) -> web.Response:
    """Store the body as one entry for the SIM that sent it; see the module docstring.

    The ingest reports every write (request log, metrics); a ``drop`` fault, or a SIM the
    network gives no data session (spec B12), gets the connection closed without an answer.
    """
    if hung_up(request):  # before anything is read or checked: the network carries nothing
        return web.Response(status=UNSENT)
    try:
        return await _write(request)
    except HarvestError as error:
        return refusal(request, error)
    except Dropped:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=UNSENT)  # the connection is gone


async def _write(request: web.Request) -> web.Response:
    """The reply to a device write; refusals raise."""
    ingest = request.config_dict[INGEST]
    unified = is_unified(request)
    body = await read_bounded(request, ingest.max_payload_bytes)
    headers = request.headers
    try:
        imsi = beam_identity(request)
        timestamp = None if unified else parse_timestamp(headers.get(TIMESTAMP_HEADER))
    except HarvestError as error:
        ingest.refuse(device_upload(request, body), error)
        raise
    content_type = headers.get("Content-Type")
    if imsi is not None:
        unwrapped = unwrap_payload(body, headers.get("User-Agent"))
        if unwrapped is not None:  # Beam's TCP/UDP-to-HTTP conversion: raw bytes inside
            body, content_type = unwrapped, None
    # Built once (dataclasses.replace costs a few microseconds a call, per write).
    upload = Upload(
        Transport.HTTP, request.remote or "", body, content_type, timestamp, imsi,
        request.path, request.content_length,
    )  # fmt: skip
    try:
        accepted = await ingest.ingest(upload)
    except HarvestError as error:
        group = ingest.group_of(request.remote or "") if unified else None
        if answers_unified(unified, group):
            status, reply = unified_reply(error.status, _error_text(request, error))
            return json_response(reply, status=status)
        raise
    if answers_unified(unified, accepted.group):
        created = request.config_dict[SETTINGS].unified_harvest_status
        status, reply = unified_reply(created, "")
        return json_response(reply, status=status)
    return web.Response(status=201)


def _bare(request: web.Request) -> bool:
    """Whether device refusals carry no body (setting ``device_error_body``: ``empty``)."""
    return request.config_dict[SETTINGS].device_error_body == "empty"


def _error_text(request: web.Request, error: HarvestError) -> str:
    return "" if _bare(request) else dumps(error.body())


def refusal(request: web.Request, error: HarvestError) -> web.Response:
    """A device refusal: the status with SORACOM's ``{"code","message"}`` body (the emulator's
    default; the real service documents only the status), or the status alone."""
    if _bare(request):
        return web.Response(status=error.status, headers=error.headers or None)
    return error_response(error)


def hung_up(request: web.Request) -> bool:
    """Whether a device request came from a SIM without a data session, which the network
    would not have carried (spec B12): then the connection is closed without an answer, and
    the request log and the metrics say why. Writes are screened by the ingest itself."""
    if request.config_dict[INGEST].screen(device_upload(request)):
        return False
    if request.transport is not None:
        request.transport.close()
    return True


#: The answer to a request whose connection :func:`hung_up`: never sent.
UNSENT = 503


async def wrong_method(request: web.Request) -> web.Response:
    """Anything but ``POST`` on a device path: ``405`` with ``Allow: POST``; a browser that
    opens the edge's own root (not a device host's) is sent to the web console."""
    if request.app.get(ENDPOINT) is None and wants_console(request):
        raise web.HTTPFound(CONSOLE_PATH)
    if hung_up(request):
        return web.Response(status=UNSENT)
    error = HarvestError(
        errors.DEVICE_METHOD_NOT_ALLOWED,
        f"{request.method} is not a Harvest write; devices send POST.",
        headers={"Allow": "POST"},
    )
    request.config_dict[INGEST].refuse(device_upload(request), error)
    return refusal(request, error)
