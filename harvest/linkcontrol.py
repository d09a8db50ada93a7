"""The control plane's link profile calls (issue 12, item 4; docs/link-profiles.md).

``GET /_emulator/links``: the built-in profiles and who has which. ``PUT`` and ``DELETE``
``/_emulator/sims/{imsi}/link`` and ``/_emulator/groups/{group_id}/link``: give a SIM or a
group a profile, or take it away. The body names a built-in (``{"profile": "nb-iot"}``),
optionally with figures that override it (``{"profile": "nb-iot", "loss": 0.05}``), or gives a
custom profile's figures (``{"rttMs": 300, "jitterMs": 80, "loss": 0.02, "uplinkKbps": 50}``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from harvest import errors
from harvest.context import REGISTRY
from harvest.errors import HarvestError
from harvest.links import BUILTIN, LinkProfile, LinkProfileError, LinkTable, profile_named
from harvest.web import json_response, read_json_object

#: The link profiles in force (a state holder: a reset clears them).
LINKS = web.AppKey("links", LinkTable)


def parse_profile(body: dict[str, Any]) -> LinkProfile:
    """A profile from a control-plane body; raises ``400 HEM1002`` naming the problem."""
    try:
        name = body.get("profile")
        if name is None:
            return LinkProfile.from_view(body)
        if not isinstance(name, str):
            raise LinkProfileError("profile must be the name of a built-in profile")
        base = profile_named(name)
        overrides = {k: v for k, v in body.items() if k != "profile"}
        if not overrides:
            return base
        return LinkProfile.from_view({**base.view(), **overrides})
    except LinkProfileError as error:
        raise HarvestError(errors.INVALID_BODY, f"Link profile: {error}.") from None


async def get_links(request: web.Request) -> web.Response:
    """The built-in profiles, the SIMs' and the groups' profiles, and the seed."""
    table = request.config_dict[LINKS]
    return json_response(
        {
            "builtin": {name: p.view() for name, p in BUILTIN.items()},
            "sims": {imsi: p.view() for imsi, p in sorted(table.by_imsi.items())},
            "groups": {gid: p.view() for gid, p in sorted(table.by_group.items())},
            "seed": table.seed,
        }
    )


def _imsi(request: web.Request) -> str:
    imsi = request.match_info["imsi"]
    if not any(s.imsi == imsi for s in request.config_dict[REGISTRY].all_sims()):
        raise HarvestError(errors.NOT_FOUND, f"No such SIM: {imsi}")
    return imsi


def _group_id(request: web.Request) -> str:
    group_id = request.match_info["group_id"]
    if request.config_dict[REGISTRY].group_by_id(group_id) is None:
        raise HarvestError(errors.NOT_FOUND, f"No such group: {group_id}")
    return group_id


async def put_sim_link(request: web.Request) -> web.Response:
    imsi = _imsi(request)
    profile = parse_profile(await read_json_object(request))
    request.config_dict[LINKS].set_sim(imsi, profile)
    return json_response({"imsi": imsi, "link": profile.view()})


async def delete_sim_link(request: web.Request) -> web.Response:
    imsi = _imsi(request)
    request.config_dict[LINKS].set_sim(imsi, None)
    return web.Response(status=204)


async def put_group_link(request: web.Request) -> web.Response:
    group_id = _group_id(request)
    profile = parse_profile(await read_json_object(request))
    request.config_dict[LINKS].set_group(group_id, profile)
    return json_response({"groupId": group_id, "link": profile.view()})


async def delete_group_link(request: web.Request) -> web.Response:
    group_id = _group_id(request)
    request.config_dict[LINKS].set_group(group_id, None)
    return web.Response(status=204)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/links", get_links)
    router.add_put("/sims/{imsi}/link", put_sim_link)
    router.add_delete("/sims/{imsi}/link", delete_sim_link)
    router.add_put("/groups/{group_id}/link", put_group_link)
    router.add_delete("/groups/{group_id}/link", delete_group_link)
