"""The device side of Harvest Files: every request to ``harvest-files.soracom.io``
(notes real-service.md section 5.1; docs/files.md).

``PUT`` or ``POST /<path>`` stores the body as a file with its ``Content-Type`` (``201`` new,
``200`` replaced; no path: the group's default path); ``GET`` downloads it, ``Range``
honoured; ``HEAD`` gives its headers. The SIM is identified as for every device write (its
session address, the private core's map, or a verified Beam signature) and its group must
switch Harvest Files on. A SIM without a data session gets what it gets on Harvest's own host
(spec B12). Files belong to the SIM's operator; every request goes to the request log.
"""

from __future__ import annotations

import time

from aiohttp import web

from gateway import http
from harvest import errors
from harvest.context import CLOCK, INGEST, REGISTRY, SETTINGS
from harvest.domain import Sim, SimStatus, Transport, Upload
from harvest.errors import Dropped, HarvestError
from harvest.files.api import FILES, checked, decoded, send_body, store_body
from harvest.files.domain import expand_default_path, file_path, files_settings
from harvest.requestlog import REQUEST_LOG

#: What a device may do on the Harvest Files host.
METHODS = ("GET", "HEAD", "PUT", "POST")


def _identify(request: web.Request) -> tuple[Sim, str]:
    """The SIM (as for a Harvest write) and its group's default path; the refusals of a
    write: no such SIM, no session, no group, Harvest Files off."""
    ingest = request.config_dict[INGEST]
    sim = ingest.identify(
        Upload(Transport.HTTP, request.remote or "", b"", imsi=http.beam_identity(request))
    )
    refusal = ingest.session_refusal(sim)
    if refusal is not None:
        raise Dropped(refusal) if ingest.drop_sessionless else refusal
    group = (
        None if sim.group_id is None else request.config_dict[REGISTRY].group_by_id(sim.group_id)
    )
    if group is None:
        raise HarvestError(errors.NO_GROUP, f"SIM {sim.imsi} does not belong to a group.")
    enabled, default_path = files_settings(group.configuration)
    if not enabled:
        raise HarvestError(
            errors.FILES_DISABLED, f"Harvest Files is not enabled for group {group.group_id}."
        )
    return sim, default_path


async def _serve(request: web.Request) -> tuple[web.StreamResponse, Sim | None]:
    if request.method not in METHODS:
        raise HarvestError(
            errors.DEVICE_METHOD_NOT_ALLOWED,
            f"{request.method} is not a Harvest Files request; devices send {', '.join(METHODS)}.",
            headers={"Allow": ", ".join(METHODS)},
        )
    sim, default_path = _identify(request)
    raw = decoded(request.rel_url.raw_path)
    service = request.config_dict[FILES]
    if sim.status is not SimStatus.ACTIVE:
        await request.config_dict[REGISTRY].activate_on_traffic(sim.imsi)
    if request.method in ("PUT", "POST"):
        if not raw.strip("/"):
            expanded = expand_default_path(
                default_path, sim.imsi, request.config_dict[CLOCK].now_ms()
            )
            if expanded is None:
                raise HarvestError(
                    errors.FILES_DEFAULT_PATH,
                    f"The group's default path {default_path!r} does not start with /.",
                )
            raw = expanded
        path = checked(file_path, raw)
        limit = request.config_dict[SETTINGS].files_device_max_bytes
        reply = await store_body(
            request, sim.operator_id, path, limit=limit, too_large=errors.PAYLOAD_TOO_LARGE,
            imsi=sim.imsi,
        )  # fmt: skip
        return reply, sim
    opened = (
        None if not raw.strip("/") else await service.open(sim.operator_id, checked(file_path, raw))
    )
    if opened is None:
        raise HarvestError(errors.DEVICE_NO_SUCH_FILE, f"No such file: {raw}")
    record, reader = opened

    async def meter(sent: int) -> None:
        await service.downloaded(sim.operator_id, sim.imsi, sent)

    return await send_body(request, record, reader, meter), sim


async def files_request(request: web.Request) -> web.StreamResponse:
    """One device request to ``harvest-files.soracom.io``; see the module docstring."""
    if http.hung_up(request):
        return web.Response(status=http.UNSENT)
    started = time.perf_counter()
    peer = request.remote or ""
    status, sim, reason = 500, None, None
    try:
        response, sim = await _serve(request)
        status = response.status
        return response
    except HarvestError as error:
        status, reason = error.status, error.code
        return http.refusal(request, error)
    except Dropped as dropped:
        status, reason = 0, dropped.code
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=http.UNSENT)
    finally:
        if sim is None:
            sim = request.config_dict[INGEST].sim_of(Upload(Transport.HTTP, peer, b""))
        request.config_dict[REQUEST_LOG].record(
            "http", peer, None if sim is None else sim.imsi, status,
            request.content_length or 0, time.perf_counter() - started, request.path, reason,
        )  # fmt: skip
