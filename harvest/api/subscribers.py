"""Subscribers and SIMs (SORACOM operationIds ``listSubscribers``, ``getSubscriber``,
``setGroup``, ``unsetGroup``, ``listSims``, ``getSim``)."""

from __future__ import annotations

from aiohttp import web

from harvest import errors
from harvest.api import views
from harvest.api.listing import keyset_page, matches_tag, tag_filter
from harvest.api.params import enum_value, query_value
from harvest.context import REGISTRY, SESSIONS, TOKEN
from harvest.domain import Sim, SimStatus
from harvest.errors import HarvestError
from harvest.sessions import SessionState
from harvest.web import Handler, json_response, read_json_object
from quotas.limits import SUBSCRIBER_PAGE_MAX


async def list_subscribers(request: web.Request) -> web.Response:
    """Paged by IMSI; ``status_filter`` and ``speed_class_filter`` take ``a|b`` lists.

    ``serial_number_filter`` is checked like every parameter and otherwise ignored: an emulated
    SIM has no serial number to compare it with.
    """
    statuses: set[SimStatus] | None = None
    raw_status = query_value(request, "status_filter")
    if raw_status is not None:
        statuses = {enum_value(SimStatus, s, "status_filter") for s in raw_status.split("|")}
    raw_speed = query_value(request, "speed_class_filter")
    speeds = set(raw_speed.split("|")) if raw_speed is not None else None
    query_value(request, "serial_number_filter")
    tag = tag_filter(request)
    sims = [
        sim
        for sim in request.config_dict[REGISTRY].sims(request[TOKEN].operator_id)
        if (statuses is None or sim.status in statuses)
        and (speeds is None or sim.speed_class in speeds)
        and matches_tag(dict(sim.tags), tag)
    ]
    return keyset_page(
        request,
        sims,
        lambda s: s.imsi,
        lambda sim: views.subscriber(sim, _session(request, sim)),
        default_limit=SUBSCRIBER_PAGE_MAX,
        max_limit=SUBSCRIBER_PAGE_MAX,
    )


def _session(request: web.Request, sim: Sim) -> SessionState:
    return request.config_dict[SESSIONS].state(sim)


def _sim(request: web.Request) -> Sim:
    return request.config_dict[REGISTRY].sim(request[TOKEN].operator_id, request.match_info["imsi"])


async def get_subscriber(request: web.Request) -> web.Response:
    sim = _sim(request)
    return json_response(views.subscriber(sim, _session(request, sim)))


async def set_group(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    group_id = body.get("groupId")
    if not isinstance(group_id, str) or not group_id:
        raise HarvestError(errors.INVALID_BODY, "groupId must be a non-empty string.")
    _sim(request)
    sim = await request.config_dict[REGISTRY].set_group(
        request[TOKEN].operator_id, request.match_info["imsi"], group_id
    )
    return json_response(views.subscriber(sim, _session(request, sim)))


async def unset_group(request: web.Request) -> web.Response:
    sim = await request.config_dict[REGISTRY].unset_group(
        request[TOKEN].operator_id, request.match_info["imsi"]
    )
    return json_response(views.subscriber(sim, _session(request, sim)))


async def list_sims(request: web.Request) -> web.Response:
    sims = sorted(
        request.config_dict[REGISTRY].sims(request[TOKEN].operator_id), key=lambda s: s.sim_id
    )
    return keyset_page(
        request,
        sims,
        lambda s: s.sim_id,
        lambda sim: views.sim(sim, _session(request, sim)),
        default_limit=SUBSCRIBER_PAGE_MAX,
        max_limit=SUBSCRIBER_PAGE_MAX,
    )


async def get_sim(request: web.Request) -> web.Response:
    sim = request.config_dict[REGISTRY].sim_by_id(
        request[TOKEN].operator_id, request.match_info["sim_id"]
    )
    if sim is None:
        raise HarvestError(errors.NOT_FOUND, f"No such SIM: {request.match_info['sim_id']}")
    return json_response(views.sim(sim, _session(request, sim)))


def _status_change(status: SimStatus) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        sim = await request.config_dict[REGISTRY].set_status(
            request[TOKEN].operator_id, request.match_info["imsi"], status
        )
        return json_response(views.subscriber(sim, _session(request, sim)))

    handler.__doc__ = f"``POST /subscribers/{{imsi}}/...``: the SIM becomes ``{status}``."
    return handler


activate = _status_change(SimStatus.ACTIVE)
deactivate = _status_change(SimStatus.INACTIVE)
suspend = _status_change(SimStatus.SUSPENDED)
set_to_standby = _status_change(SimStatus.STANDBY)
terminate = _status_change(SimStatus.TERMINATED)


def _termination(enabled: bool) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        _sim(request)
        sim = await request.config_dict[REGISTRY].update_sim(
            request[TOKEN].operator_id, request.match_info["imsi"], termination_enabled=enabled
        )
        return json_response(views.subscriber(sim, _session(request, sim)))

    return handler


enable_termination = _termination(True)
disable_termination = _termination(False)
