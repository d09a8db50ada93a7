"""The ``/v1`` surface against SORACOM's OpenAPI document (spec A4, notes section 7).

``ApiClient`` validates every answer against the document (and every error against
``{code, message}``). These tests make sure that validation reaches every operation the emulator
serves: a scripted tour calls each one successfully, and each one refuses a call without a token.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from harvest import errors
from harvest.app import api_app
from tests.conftest import Emulator
from tests.harvest.api_helpers import (
    DEFAULT_IMSI,
    NOW,
    expect_error,
    group_of,
    set_clock,
    sim_id_of,
    write,
)
from tests.support import openapi
from tests.support.clients import ApiClient

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD")
_PARAM = re.compile(r"\{[^}]+\}")

Operation = tuple[str, str]  # (method, "/v1/..." template with every parameter as "{}")


def shape(template: str) -> str:
    """A path template with its parameter names dropped: ``/a/{x}`` and ``/a/{y}`` are one."""
    return _PARAM.sub("{}", template)


def served() -> set[Operation]:
    """Every (method, template) the ``/v1`` application routes (HEAD twins of GET left out)."""
    return {
        (route.method, "/v1" + shape(route.resource.canonical))
        for route in api_app().router.routes()
        if route.resource is not None and route.method in METHODS and route.method != "HEAD"
    }


def declared() -> set[Operation]:
    """Every (method, template) of the OpenAPI subset."""
    return {
        (method.upper(), "/v1" + shape(path))
        for path, item in openapi.spec_dict()["paths"].items()
        for method in item
        if method.upper() in METHODS
    }


def _pattern(template: str) -> re.Pattern[str]:
    parts = (r"[^/]+" if part == "{}" else re.escape(part) for part in template.split("/"))
    return re.compile("/".join(parts) + r"\Z")


def template_of(method: str, path: str) -> Operation | None:
    """The declared operation a concrete call hit; literal segments beat parameters, as in
    OpenAPI (``/data/metadata/resources`` is not ``/data/{resource_type}/{resource_id}``)."""
    candidates = sorted(
        (t for m, t in declared() if m == method and _pattern(t).match(path)),
        key=lambda t: t.count("{}"),
    )
    return (method, candidates[0]) if candidates else None


SERVED = sorted(served())
SERVED_AND_DECLARED = sorted(served() & declared())


def concrete(template: str) -> str:
    """A path for ``template`` with plausible parameter values."""
    values = iter(["Subscriber", "x", "1"]) if template.startswith("/v1/data/{}") else None
    filled = template
    while "{}" in filled:
        filled = filled.replace("{}", next(values) if values else "x", 1)
    return filled


# --- the surface -----------------------------------------------------------------------------
#: SORACOM operations the emulator serves that the Harvest subset of the document leaves out:
#: the SIM lifecycle an emulated SIM needs (issue 3). Each is SORACOM's own path and name.
OUTSIDE_THE_SUBSET = {
    ("POST", "/v1/subscribers/{}/" + name)
    for name in (
        "activate",
        "deactivate",
        "suspend",
        "set_to_standby",
        "terminate",
        "enable_termination",
        "disable_termination",
    )
}


def test_the_emulator_serves_only_operations_soracom_declares() -> None:
    assert served() - declared() == OUTSIDE_THE_SUBSET


def test_the_template_matcher_prefers_literal_segments() -> None:
    assert template_of("GET", "/v1/data/metadata/resources") == (
        "GET",
        "/v1/data/metadata/resources",
    )
    assert template_of("GET", "/v1/data/categories/weather") == (
        "GET",
        "/v1/data/categories/{}",
    )
    assert template_of("GET", "/v1/data/Sim/123") == ("GET", "/v1/data/{}/{}")
    assert template_of("DELETE", "/v1/data/Sim/123/5") == ("DELETE", "/v1/data/{}/{}/{}")
    assert template_of("PATCH", "/v1/groups") is None


async def tour(emulator: Emulator, api: ApiClient) -> None:
    """Every operation the emulator serves, each answered with a success."""

    async def ok(method: str, path: str, body: Any = None, **params: Any) -> Any:
        reply = await api.call(method, path, json_body=body, params=params)
        assert 200 <= reply.status < 300, (method, path, reply.status, reply.raw)
        return reply.json if reply.raw else None

    operator = api.operator_id
    await ok("GET", f"/v1/operators/{operator}")
    await ok("POST", f"/v1/operators/{operator}/token", {"tokenTimeoutSeconds": 3600})
    harvest = {"contractName": "harvest", "contractDetail": {"plan": "extended", "ttl": 731}}
    await ok("POST", f"/v1/operators/{operator}/contracts", harvest)
    await ok("DELETE", f"/v1/operators/{operator}/contracts/harvest")

    await ok("GET", "/v1/subscribers", limit=1)
    await ok("GET", f"/v1/subscribers/{DEFAULT_IMSI}")
    sim_id = await sim_id_of(api, DEFAULT_IMSI)
    await ok("GET", "/v1/sims")
    await ok("GET", f"/v1/sims/{sim_id}")

    home = await group_of(api, DEFAULT_IMSI)
    group = await ok(
        "POST",
        "/v1/groups",
        {"tags": {"name": "tour"}, "configuration": {"SoracomHarvest": {"enabled": True}}},
    )
    group_id = group["groupId"]
    await ok("GET", "/v1/groups")
    await ok("GET", f"/v1/groups/{group_id}")
    config = f"/v1/groups/{group_id}/configuration"
    await ok("PUT", f"{config}/SoracomAir", [{"key": "a", "value": 1}, {"key": "b", "value": 2}])
    await ok("DELETE", f"{config}/SoracomAir/a")
    await ok("DELETE", f"{config}/SoracomAir")

    await ok("POST", f"/v1/subscribers/{DEFAULT_IMSI}/set_group", {"groupId": group_id})
    await ok("GET", f"/v1/groups/{group_id}/subscribers")
    await ok("POST", f"/v1/subscribers/{DEFAULT_IMSI}/unset_group")
    await ok("POST", f"/v1/subscribers/{DEFAULT_IMSI}/set_group", {"groupId": home})

    await write(emulator, '{"tour":1}', at=NOW - 1_000)
    await ok("GET", f"/v1/data/Subscriber/{DEFAULT_IMSI}")
    await ok("GET", f"/v1/subscribers/{DEFAULT_IMSI}/data")
    await ok("GET", f"/v1/sims/{sim_id}/data")
    await ok("GET", "/v1/devices/d-1/data")
    await ok("GET", "/v1/lora_devices/0123456789abcdef/data")
    await ok("GET", "/v1/sigfox_devices/ABCDEF/data")
    await ok("GET", "/v1/data/categories/weather")
    await ok("GET", "/v1/data/metadata/resources")
    await ok("GET", "/v1/data/resources")
    await ok("GET", f"/v1/data/Sim/{sim_id}/{NOW - 1_000}")
    await ok("DELETE", f"/v1/data/Subscriber/{DEFAULT_IMSI}/{NOW - 1_000}")

    await ok("GET", "/v1/logs", service="Harvest", resource_type="Subscriber")

    await ok("DELETE", f"/v1/groups/{group_id}")
    await ok("POST", "/v1/auth/logout")


async def test_a_tour_exercises_every_served_operation_of_the_document(
    emulator: Emulator,
) -> None:
    await set_clock(emulator, NOW)
    api = await emulator.api()
    await tour(emulator, api)
    hits = [
        (method, path, template_of(method, path), status) for method, path, status in api.checked
    ]
    assert [h for h in hits if h[2] is None] == [], "a call outside the document"
    exercised = {operation for _, _, operation, status in hits if operation and status < 300}
    missing = sorted(set(SERVED_AND_DECLARED) - exercised)
    assert missing == [], f"operations the tour never exercised: {missing}"
    assert len(SERVED_AND_DECLARED) >= 29


# --- every operation but /auth wants a token -------------------------------------------------
@pytest.mark.parametrize(
    ("method", "template"),
    [pytest.param(m, t, id=f"{m} {t}") for m, t in SERVED if t != "/v1/auth"],
)
async def test_every_operation_but_auth_is_401_without_a_token(
    emulator: Emulator, method: str, template: str
) -> None:
    api = emulator.api_client()
    body: list[Any] | dict[str, Any] | None = (
        [] if method == "PUT" else {} if method == "POST" else None
    )
    reply = await api.call(method, concrete(template), json_body=body)
    expect_error(reply, errors.TOKEN_REQUIRED)
    assert api.checked == [(method, concrete(template), 401)]


async def test_auth_needs_no_token(emulator: Emulator) -> None:
    api = emulator.api_client()
    reply = await api.call(
        "POST",
        "/v1/auth",
        json_body={"authKeyId": "keyId-harvest-emulator", "authKey": "secret-harvest-emulator"},
    )
    assert reply.status == 200


# --- errors outside the document still have SORACOM's shape ----------------------------------
async def raw(api: ApiClient, method: str, path: str) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = {"X-Soracom-API-Key": api.api_key or "", "X-Soracom-Token": api.token or ""}
    async with api.session.request(method, api.base_url + path, headers=headers) as response:
        return response.status, await response.json(), response


async def test_an_unknown_v1_path_is_404_in_soracoms_error_shape(emulator: Emulator) -> None:
    api = await emulator.api()
    status, body, _ = await raw(api, "GET", "/v1/no/such/api")
    assert status == 404
    assert body == {"code": errors.NO_SUCH_API.code, "message": errors.NO_SUCH_API.message}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("PATCH", "/v1/groups", id="patch-groups"),
        pytest.param("DELETE", "/v1/subscribers", id="delete-subscribers"),
        pytest.param("PUT", "/v1/auth", id="put-auth"),
    ],
)
async def test_a_wrong_method_is_405_in_soracoms_error_shape(
    emulator: Emulator, method: str, path: str
) -> None:
    api = await emulator.api()
    status, body, response = await raw(api, method, path)
    assert status == 405
    assert body["code"] == errors.METHOD_NOT_ALLOWED.code
    assert method not in response.headers.get("Allow", "")
