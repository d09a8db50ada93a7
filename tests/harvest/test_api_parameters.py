"""Every ``/v1`` query parameter is checked the same way before anything runs (issue 9, item 2):
given once, never empty, and a number within what the code after it can represent. A bad one is
``400 HEM1001`` naming it. A body is required exactly where the document requires one.

The operations, their parameters and their bodies come from SORACOM's OpenAPI document, so
nothing the document declares can escape the rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harvest import errors
from harvest.app import create_app
from harvest.context import API_APP
from harvest.settings import Settings
from tests.conftest import Emulator
from tests.harvest.api_helpers import DEFAULT_IMSI, expect_error, group_of, sim_id_of
from tests.harvest.test_api_contract import METHODS, shape
from tests.support import openapi
from tests.support.clients import ApiClient

ROOT = Path(__file__).resolve().parents[2]
INT64_MAX = 2**63 - 1


def served() -> set[tuple[str, str]]:
    """Every (method, template) of the whole ``/v1`` application, bills and stats included
    (once mounted, its routes carry the ``/v1`` prefix)."""
    api = create_app(Settings(port=0, harvest_port=0, unified_port=0, memory=True))[API_APP]
    return {
        (route.method, shape(route.resource.canonical))
        for route in api.router.routes()
        if route.resource is not None and route.method in METHODS
    }


def query_parameters() -> list[tuple[str, str, str]]:
    """(operationId, path template, parameter) for every query parameter of every operation the
    emulator serves."""
    serving = served()
    found = []
    for path, item in openapi.spec_dict()["paths"].items():
        for method, operation in item.items():
            if (method.upper(), "/v1" + shape(path)) not in serving:
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query":
                    found.append((operation["operationId"], path, parameter["name"]))
    return found


QUERY_PARAMETERS = query_parameters()


def test_the_document_gives_the_served_operations_their_query_parameters() -> None:
    operations = {operation for operation, _, _ in QUERY_PARAMETERS}
    assert {"getDataEntries", "getHarvestStats", "listSubscribers", "getLogs"} <= operations
    assert len(QUERY_PARAMETERS) >= 60


async def concrete(api: ApiClient, template: str) -> str:
    """``template`` with values that name the default operator's own resources, so a call gets
    past every lookup to its parameters."""
    values = {
        "imsi": DEFAULT_IMSI,
        "sim_id": await sim_id_of(api, DEFAULT_IMSI),
        "group_id": await group_of(api, DEFAULT_IMSI),
        "operator_id": api.operator_id,
        "resource_type": "Subscriber",
        "resource_id": DEFAULT_IMSI,
        "category": "weather",
        "device_id": "d-1",
        "namespace": "SoracomAir",
        "scope": "private",
        "path": "logs",
    }
    return "/v1" + template.format_map(values)


@pytest.mark.parametrize(
    ("operation", "template", "name"),
    [pytest.param(*p, id=f"{p[0]}-{p[2]}") for p in QUERY_PARAMETERS],
)
async def test_a_repeated_query_parameter_is_400_naming_it(
    emulator: Emulator, operation: str, template: str, name: str
) -> None:
    api = await emulator.api()
    path = await concrete(api, template)
    async with api.session.get(
        api.base_url + path,
        params=[(name, "1"), (name, "2")],
        headers={"X-Soracom-API-Key": api.api_key or "", "X-Soracom-Token": api.token or ""},
    ) as response:
        status, body = response.status, await response.json()
    assert (status, body["code"]) == (400, errors.INVALID_PARAMETER.code), (operation, body)
    assert f"'{name}' must be given once" in body["message"], body


@pytest.mark.parametrize(
    ("operation", "template", "name"),
    [pytest.param(*p, id=f"{p[0]}-{p[2]}") for p in QUERY_PARAMETERS],
)
async def test_an_empty_query_parameter_is_400_naming_it(
    emulator: Emulator, operation: str, template: str, name: str
) -> None:
    api = await emulator.api()
    reply = await api.get(await concrete(api, template), **{name: ""})
    expect_error(reply, errors.INVALID_PARAMETER, f"'{name}' must not be empty")


async def test_the_reported_repeated_limit_is_400(emulator: Emulator) -> None:
    # The reproducer: this was a 200, with one of the three values silently chosen.
    api = await emulator.api()
    async with api.session.get(
        api.base_url + f"/v1/data/Subscriber/{DEFAULT_IMSI}?limit=&limit=x&limit=y",
        headers={"X-Soracom-API-Key": api.api_key or "", "X-Soracom-Token": api.token or ""},
    ) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 400
    assert body == {"code": "HEM1001", "message": "'limit' must be given once, not 3 times."}


async def test_the_reported_empty_sort_is_400(emulator: Emulator) -> None:
    # The reproducer: ``?sort=`` was a 200 sorted by the default.
    api = await emulator.api()
    reply = await api.get(f"/v1/data/Subscriber/{DEFAULT_IMSI}", sort="")
    assert reply.json == {"code": "HEM1001", "message": "'sort' must not be empty."}


async def test_a_parameter_the_operation_does_not_take_is_ignored(emulator: Emulator) -> None:
    # The rule is about the operation's own parameters; an unknown one changes nothing.
    api = await emulator.api()
    reply = await api.get(f"/v1/data/Subscriber/{DEFAULT_IMSI}", unknown="")
    assert (reply.status, reply.json) == (200, [])


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"from": INT64_MAX + 1}, id="from"),
        pytest.param({"to": INT64_MAX + 1}, id="to"),
        pytest.param({"last_evaluated_key": INT64_MAX + 1}, id="key"),
    ],
)
async def test_log_times_and_keys_stop_at_int64(emulator: Emulator, params: dict[str, Any]) -> None:
    api = await emulator.api()
    [name] = params
    expect_error(await api.get("/v1/logs", **params), errors.INVALID_PARAMETER, f"'{name}'")


async def test_log_times_up_to_int64_answer(emulator: Emulator) -> None:
    api = await emulator.api()
    reply = await api.get("/v1/logs", **{"from": INT64_MAX, "to": INT64_MAX})
    assert (reply.status, reply.json) == (200, [])


def test_no_handler_reads_the_query_but_through_the_parameter_helpers() -> None:
    # harvest.api.params is where the rules live; a handler that read ``request.query`` itself
    # would let a repeated or empty parameter through.
    handlers = [*sorted((ROOT / "harvest" / "api").glob("*.py")), ROOT / "quotas" / "api.py"]
    readers = [
        path.relative_to(ROOT).as_posix()
        for path in handlers
        if path.name != "params.py" and "request.query" in path.read_text(encoding="utf-8")
    ]
    assert readers == []


# --- bodies ----------------------------------------------------------------------------------
def body_operations() -> list[tuple[str, str, str, bool]]:
    """(operationId, method, path template, body required) for every served operation that
    sends a body (POST and PUT), as the document declares its ``requestBody``."""
    serving = served()
    found = []
    for path, item in openapi.spec_dict()["paths"].items():
        for method, operation in item.items():
            if (
                method not in ("post", "put")
                or (method.upper(), "/v1" + shape(path)) not in serving
            ):
                continue
            required = bool(operation.get("requestBody", {}).get("required", False))
            found.append((operation["operationId"], method.upper(), path, required))
    return found


BODY_OPERATIONS = body_operations()


def test_the_document_requires_the_bodies_of_these_operations() -> None:
    assert {name for name, _, _, required in BODY_OPERATIONS if required} == {
        "auth",
        "generateAuthToken",
        "addOperatorContract",
        "createGroup",
        "setGroup",
        "putConfigurationParameters",
        "putFile",
    }
    assert {name for name, _, _, required in BODY_OPERATIONS if not required} == {
        "logout",
        "unsetGroup",
    }


@pytest.mark.parametrize(
    ("operation", "method", "template", "required"),
    [pytest.param(*op, id=op[0]) for op in BODY_OPERATIONS],
)
async def test_a_body_is_required_where_the_document_requires_one(
    emulator: Emulator, operation: str, method: str, template: str, required: bool
) -> None:
    api = await emulator.api()
    reply = await api.call(method, await concrete(api, template))
    if operation == "putFile":
        assert reply.status == 201, reply.raw  # no body is an empty file, not a missing one
    elif required:
        expect_error(reply, errors.INVALID_BODY, "needs a JSON body")
    else:
        assert 200 <= reply.status < 300, (operation, reply.status, reply.raw)
