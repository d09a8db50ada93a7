"""Operation names are SORACOM's; every ``/v1`` answer carries the rate-limit headers; ``405``
carries ``Allow`` (issue 8, item 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from harvest.app import create_app
from harvest.context import API_APP
from harvest.settings import Settings
from tests.conftest import Emulator
from tests.harvest.test_metrics import scrape, value

SUBSET = Path(__file__).parents[1] / "support" / "harvest-subset.yaml"
RATE_HEADERS = (
    "X-Soracom-Ratelimit-Limit",
    "X-Soracom-Ratelimit-Remaining",
    "X-Soracom-Ratelimit-Seconds-Before-Refresh",
)
#: Operations served outside the OpenAPI subset: SORACOM's operationIds for the SIM lifecycle,
#: as in SORACOM's full API document (soracom-cli generators/assets/soracom-api.en.yaml).
LIFECYCLE = {
    ("POST", "/subscribers/{imsi}/activate"): "activateSubscriber",
    ("POST", "/subscribers/{imsi}/deactivate"): "deactivateSubscriber",
    ("POST", "/subscribers/{imsi}/suspend"): "suspendSubscriber",
    ("POST", "/subscribers/{imsi}/set_to_standby"): "setSubscriberToStandby",
    ("POST", "/subscribers/{imsi}/terminate"): "terminateSubscriber",
    ("POST", "/subscribers/{imsi}/enable_termination"): "enableTermination",
    ("POST", "/subscribers/{imsi}/disable_termination"): "disableTermination",
}


def document_operations() -> dict[tuple[str, str], str]:
    spec = yaml.safe_load(SUBSET.read_text())
    return {
        (method.upper(), path): operation["operationId"]
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "operationId" in operation
    }


def test_every_route_is_named_after_its_soracom_operation_id(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    known = {**document_operations(), **LIFECYCLE}
    served = {}
    for resource in app[API_APP].router.resources():
        for route in resource:
            if route.method == "HEAD":
                continue
            path = resource.canonical.removeprefix("/v1")  # the document's paths are relative
            served[(route.method, path)] = resource.name
    assert served, "no routes"
    for (method, path), name in served.items():
        assert known.get((method, path)) == name, f"{method} {path} is named {name!r}"
    assert len(set(served.values())) == len(served)  # one operation, one route


async def api_headers(emulator: Emulator) -> dict[str, str]:
    api = await emulator.api()
    return {"X-Soracom-API-Key": api.api_key or "", "X-Soracom-Token": api.token or ""}


@pytest.mark.parametrize(
    ("method", "path", "authenticated", "status"),
    [
        pytest.param("GET", "/v1/subscribers", True, 200, id="ok"),
        pytest.param("GET", "/v1/subscribers", False, 401, id="no-token"),
        pytest.param("POST", "/v1/auth", False, 400, id="auth-without-body"),
        pytest.param("GET", "/v1/nothing/here", True, 404, id="no-such-api"),
        pytest.param("PATCH", "/v1/groups", True, 405, id="wrong-method"),
        pytest.param("GET", "/v1/subscribers/999999999999999", True, 404, id="no-such-sim"),
        pytest.param("GET", "/v1/subscribers?limit=0", True, 400, id="bad-parameter"),
        pytest.param("GET", "/v1/bills/209901", True, 404, id="no-bill"),
    ],
)
async def test_every_api_answer_carries_the_rate_limit_headers(
    emulator: Emulator, method: str, path: str, authenticated: bool, status: int
) -> None:
    headers = await api_headers(emulator) if authenticated else {}
    async with emulator.client.request(method, path, headers=headers) as reply:
        assert reply.status == status
        for name in RATE_HEADERS:
            assert name in reply.headers, name
        if status == 405:
            assert set(reply.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}


async def test_a_fault_and_a_rate_refusal_carry_them_too(emulator: Emulator) -> None:
    status, _ = await emulator.control(
        "POST", "/faults", {"effect": "status", "status": 503, "operation": "listGroups"}
    )
    assert status == 201
    async with emulator.client.get("/v1/groups", headers=await api_headers(emulator)) as reply:
        assert reply.status == 503
        assert all(name in reply.headers for name in RATE_HEADERS)


async def test_the_device_405_says_allow_post(emulator: Emulator) -> None:
    status, body = await emulator.device().send("", method="GET")
    assert (status, json.loads(body)["code"]) == (405, "HEM4008")
    async with emulator.device().session.put(emulator.base_url + "/") as reply:
        assert reply.headers["Allow"] == "POST"


async def test_metrics_the_request_log_and_faults_use_the_operation_id(
    emulator: Emulator,
) -> None:
    """``getBillingHistory`` (a route the quotas package adds) was labelled ``handler``."""
    rule: dict[str, Any] = {"effect": "status", "status": 500, "count": 1}
    for name in ("getBillingHistory", "get_billing_history"):  # snake_case is taken too
        status, added = await emulator.control("POST", "/faults", {**rule, "operation": name})
        assert (status, added["operation"]) == (201, "getBillingHistory")
    status, error = await emulator.control("POST", "/faults", {**rule, "operation": "nope"})
    assert status == 400
    assert "getBillingHistory" in error["message"]  # the list of what may be named

    headers = await api_headers(emulator)
    async with aiohttp.ClientSession(headers=headers) as session:
        for expected in (500, 200):  # both rules matched the first call, and are spent
            async with session.get(f"{emulator.base_url}/v1/bills") as reply:
                assert reply.status == expected
    samples, _ = await scrape(emulator)
    for status_text, count in (("500", 1), ("200", 1)):
        assert (
            value(samples, "harvest_api_requests_total", operation="getBillingHistory",
                  status=status_text)
            == count
        )  # fmt: skip
    assert not any(
        dict(labels).get("operation") in ("handler", "unknown")
        for name, labels in samples
        if name == "harvest_api_requests_total"
    )
    _, logged = await emulator.control("GET", "/requests?protocol=api&limit=2")
    assert [entry["target"] for entry in logged] == ["getBillingHistory"] * 2
