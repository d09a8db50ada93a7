"""Groups and their configuration (SORACOM operationIds ``createGroup``, ``listGroups``,
``getGroup``, ``deleteGroup``, ``putConfigurationParameters``, ``deleteConfigurationNamespace``,
``deleteConfigurationParameter``, ``listSubscribersInGroup``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from harvest import errors
from harvest.api import views
from harvest.api.listing import keyset_page, matches_tag, tag_filter
from harvest.context import REGISTRY, SESSIONS, TOKEN
from harvest.domain import CONFIGURATION_NAMESPACES, HARVEST_NAMESPACE, Group
from harvest.errors import HarvestError
from harvest.payload.binary_parser import BinaryParserError, parser_for
from harvest.payload.decode import AIR_NAMESPACE
from harvest.payload.options import OptionError, options_from_config
from harvest.web import json_response, read_json, read_json_object

GROUP_PAGE_MAX = 1000
GROUP_PAGE_DEFAULT = 100


def _namespace(request: web.Request) -> str:
    namespace = request.match_info["namespace"]
    if namespace not in CONFIGURATION_NAMESPACES:
        raise HarvestError(
            errors.INVALID_PARAMETER,
            f"'namespace' must be one of {', '.join(sorted(CONFIGURATION_NAMESPACES))}, "
            f"not {namespace!r}.",
        )
    return namespace


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise HarvestError(errors.INVALID_BODY, "tags must be an object of strings.")
    return {str(k): v for k, v in value.items()}


def _configuration(value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise HarvestError(errors.INVALID_BODY, "configuration must map namespaces to objects.")
    unknown = set(value) - CONFIGURATION_NAMESPACES
    if unknown:
        raise HarvestError(
            errors.INVALID_BODY,
            f"Unknown configuration namespace(s): {', '.join(sorted(unknown))}.",
        )
    return {str(ns): dict(v) for ns, v in value.items()}


def check_options(configuration: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """400 when the Harvest options or the Binary Parser format cannot work.

    A mistake is reported when it is made, not later as refused or unparsed device writes.
    """
    harvest = configuration.get(HARVEST_NAMESPACE)
    if harvest is not None:
        try:
            options_from_config(harvest)
        except OptionError as error:
            raise HarvestError(errors.INVALID_BODY, str(error)) from None
    air = configuration.get(AIR_NAMESPACE, {})
    fmt = air.get("binaryParserFormat")
    if air.get("binaryParserEnabled") is True and isinstance(fmt, str) and fmt:
        try:
            parser_for(fmt)
        except BinaryParserError as error:
            raise HarvestError(errors.INVALID_BODY, f"binaryParserFormat: {error}") from None
    return configuration


async def create_group(request: web.Request) -> web.Response:
    """201 with the new group; the body is required (OpenAPI ``createGroup``), ``{}`` will do."""
    body = await read_json_object(request)
    group = await request.config_dict[REGISTRY].create_group(
        request[TOKEN].operator_id,
        _tags(body.get("tags")),
        check_options(_configuration(body.get("configuration"))),
    )
    return json_response(views.group(group), status=201)


async def list_groups(request: web.Request) -> web.Response:
    tag = tag_filter(request)
    groups = [
        g
        for g in request.config_dict[REGISTRY].groups(request[TOKEN].operator_id)
        if matches_tag(dict(g.tags), tag)
    ]
    return keyset_page(
        request,
        groups,
        lambda g: g.group_id,
        views.group,
        default_limit=GROUP_PAGE_DEFAULT,
        max_limit=GROUP_PAGE_MAX,
    )


def _group(request: web.Request) -> Group:
    return request.config_dict[REGISTRY].group(
        request[TOKEN].operator_id, request.match_info["group_id"]
    )


async def get_group(request: web.Request) -> web.Response:
    return json_response(views.group(_group(request)))


async def delete_group(request: web.Request) -> web.Response:
    await request.config_dict[REGISTRY].delete_group(
        request[TOKEN].operator_id, request.match_info["group_id"]
    )
    return web.Response(status=204)


async def put_configuration_parameters(request: web.Request) -> web.Response:
    """Merge a JSON array of ``{"key", "value"}`` into one namespace; answers the group."""
    namespace = _namespace(request)
    _group(request)
    body = await read_json(request)
    if not isinstance(body, list) or not all(
        isinstance(item, dict)
        and isinstance(item.get("key"), str)
        and item["key"]
        and "value" in item
        for item in body
    ):
        raise HarvestError(
            errors.INVALID_BODY, 'The body must be a JSON array of {"key": ..., "value": ...}.'
        )

    def change(group: Group) -> dict[str, dict[str, Any]]:
        configuration = {ns: dict(v) for ns, v in group.configuration.items()}
        values = configuration.setdefault(namespace, {})
        for item in body:
            values[item["key"]] = item["value"]
        return check_options(configuration)

    group = await request.config_dict[REGISTRY].update_group(
        request[TOKEN].operator_id, request.match_info["group_id"], change
    )
    return json_response(views.group(group))


async def delete_configuration_namespace(request: web.Request) -> web.Response:
    """204; 400 when the group has no such namespace (checked under the registry's lock, so
    of two concurrent deletes one is refused)."""
    namespace = _namespace(request)

    def change(group: Group) -> dict[str, dict[str, Any]]:
        if namespace not in group.configuration:
            raise HarvestError(
                errors.NAMESPACE_NOT_SET, f"The group has no configuration in {namespace}."
            )
        return {ns: dict(v) for ns, v in group.configuration.items() if ns != namespace}

    await request.config_dict[REGISTRY].update_group(
        request[TOKEN].operator_id, request.match_info["group_id"], change
    )
    return web.Response(status=204)


async def delete_configuration_parameter(request: web.Request) -> web.Response:
    """204; 404 when the parameter is absent (checked under the registry's lock, so a
    namespace deleted meanwhile is a 404, not a failure)."""
    namespace = _namespace(request)
    # aiohttp has already percent-decoded the segment (``%2F`` included); decoding it again
    # would turn a name holding ``%41`` into ``A``.
    name = request.match_info["name"]

    def change(group: Group) -> dict[str, dict[str, Any]]:
        if name not in group.configuration.get(namespace, {}):
            raise HarvestError(errors.NOT_FOUND, f"The group has no parameter {namespace}.{name}.")
        configuration = {ns: dict(v) for ns, v in group.configuration.items()}
        del configuration[namespace][name]
        return configuration

    await request.config_dict[REGISTRY].update_group(
        request[TOKEN].operator_id, request.match_info["group_id"], change
    )
    return web.Response(status=204)


async def list_subscribers_in_group(request: web.Request) -> web.Response:
    """The group's SIMs, as OpenAPI declares them (``Sim``), paged by SIM id."""
    group = _group(request)
    sims = sorted(
        (
            s
            for s in request.config_dict[REGISTRY].sims(group.operator_id)
            if s.group_id == group.group_id
        ),
        key=lambda s: s.sim_id,
    )
    return keyset_page(
        request,
        sims,
        lambda s: s.sim_id,
        lambda s: views.sim(s, request.config_dict[SESSIONS].state(s)),
        default_limit=GROUP_PAGE_DEFAULT,
        max_limit=GROUP_PAGE_MAX,
    )
