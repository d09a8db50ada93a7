"""SIM status changes through the API, as SORACOM names them (issue 3, item 5)."""

from __future__ import annotations

import pytest

from tests.conftest import Emulator
from tests.support.clients import NO_REPLY
from tests.support.openapi import validate_schema

IMSI = "001010000000001"


@pytest.mark.parametrize(
    ("operation", "status", "writes"),
    [
        pytest.param("activate", "active", 201, id="activate"),
        pytest.param("deactivate", "inactive", NO_REPLY, id="deactivate"),
        pytest.param("suspend", "suspended", NO_REPLY, id="suspend"),
        pytest.param("set_to_standby", "standby", 201, id="standby"),
    ],
)
async def test_status_changes_take_effect_on_the_device_side(
    emulator: Emulator, operation: str, status: str, writes: int
) -> None:
    api = await emulator.api()
    reply = await api.call("POST", f"/v1/subscribers/{IMSI}/{operation}")
    assert reply.status == 200
    validate_schema("Subscriber", reply.json)
    assert reply.json["status"] == status
    assert (await emulator.device().send('{"a":1}'))[0] == writes


async def test_a_sim_can_be_reactivated_after_suspension(emulator: Emulator) -> None:
    api = await emulator.api()
    await api.call("POST", f"/v1/subscribers/{IMSI}/suspend")
    assert (await emulator.device().send('{"a":1}'))[0] == NO_REPLY
    await api.call("POST", f"/v1/subscribers/{IMSI}/activate")
    assert (await emulator.device().send('{"a":1}'))[0] == 201


async def test_termination_needs_protection_off_and_is_final(emulator: Emulator) -> None:
    api = await emulator.api()
    refused = await api.call("POST", f"/v1/subscribers/{IMSI}/terminate")
    assert (refused.status, refused.json["code"]) == (400, "HEM1006")
    assert "termination protection" in refused.json["message"]
    enabled = await api.call("POST", f"/v1/subscribers/{IMSI}/enable_termination")
    assert enabled.json["terminationEnabled"] is True
    done = await api.call("POST", f"/v1/subscribers/{IMSI}/terminate")
    assert (done.status, done.json["status"]) == (200, "terminated")
    assert (await emulator.device().send('{"a":1}'))[0] == NO_REPLY
    again = await api.call("POST", f"/v1/subscribers/{IMSI}/activate")
    assert (again.status, again.json["code"]) == (400, "HEM1006")
    # the data of a terminated SIM stays readable (notes real-service.md 8.9)
    assert (await api.get(f"/v1/subscribers/{IMSI}/data")).status == 200


async def test_disable_termination_protects_again(emulator: Emulator) -> None:
    api = await emulator.api()
    await api.call("POST", f"/v1/subscribers/{IMSI}/enable_termination")
    reply = await api.call("POST", f"/v1/subscribers/{IMSI}/disable_termination")
    assert reply.json["terminationEnabled"] is False
    assert (await api.call("POST", f"/v1/subscribers/{IMSI}/terminate")).status == 400


@pytest.mark.parametrize(
    "operation",
    [
        "activate",
        "deactivate",
        "suspend",
        "set_to_standby",
        "terminate",
        "enable_termination",
        "disable_termination",
    ],
)
async def test_another_operators_sim_is_404(emulator: Emulator, operation: str) -> None:
    other = await emulator.new_operator()
    reply = await other.call("POST", f"/v1/subscribers/{IMSI}/{operation}")
    assert reply.status == 404
    api = await emulator.api()
    assert (await api.get(f"/v1/subscribers/{IMSI}")).json["status"] == "ready"
