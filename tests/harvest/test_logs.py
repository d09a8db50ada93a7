"""GET /v1/logs: refusals per SIM, for the operator to read (issue 3, item 5)."""

from __future__ import annotations

import pytest

from tests.conftest import Emulator

IMSI = "001010000000001"


async def test_refusals_are_logged_for_the_sims_operator(emulator: Emulator) -> None:
    api = await emulator.api()
    await emulator.control("POST", f"/sims/{IMSI}/block")
    await emulator.device().send('{"a":1}')  # no reply, but logged
    await emulator.control("POST", f"/sims/{IMSI}/unblock")
    await emulator.device().send("{broken", "application/json")
    reply = await api.get(
        "/v1/logs", service="Harvest", resource_type="Subscriber", resource_id=IMSI
    )
    assert reply.status == 200
    invalid, barred = reply.json  # newest first
    assert barred["body"]["code"] == "HEM4009"
    assert invalid["body"]["code"] == "HEM4006"
    assert invalid["resourceId"] == IMSI
    assert invalid["operatorId"] == "OP0000000000"
    assert invalid["logLevel"] == "error"
    assert invalid["body"]["protocol"] == "http"
    # another operator sees none of it
    other = await emulator.new_operator()
    assert (await other.get("/v1/logs")).json == []


async def test_writes_from_unknown_addresses_are_not_anyones_log(emulator: Emulator) -> None:
    await emulator.device("127.0.0.250").send('{"a":1}')
    api = await emulator.api()
    assert (await api.get("/v1/logs")).json == []


async def test_logs_page_newest_first(emulator: Emulator) -> None:
    sim = await emulator.new_sim(groupId=None)
    device = emulator.device(sim["sessionAddress"])
    for _ in range(5):
        await device.send('{"a":1}')
    api = await emulator.api()
    seen = await api.all_pages("/v1/logs", limit=2, resource_id=sim["imsi"])
    assert len(seen) == 5
    assert [e["time"] for e in seen] == sorted((e["time"] for e in seen), reverse=True)
    assert all(e["body"]["code"] == "HEM4002" for e in seen)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"service": "Nope"}, id="service"),
        pytest.param({"resource_type": "Sim"}, id="resource-type"),
        pytest.param({"limit": 0}, id="limit"),
        pytest.param({"from": 5, "to": 4}, id="from-after-to"),
        pytest.param({"last_evaluated_key": "x"}, id="key"),
    ],
)
async def test_bad_log_queries_are_400(emulator: Emulator, params: dict[str, object]) -> None:
    api = await emulator.api()
    reply = await api.get("/v1/logs", **params)
    assert reply.status == 400
    assert reply.json["code"] == "HEM1001"


async def test_reset_clears_the_log(emulator: Emulator) -> None:
    await emulator.control("POST", f"/sims/{IMSI}/block")
    await emulator.device().send('{"a":1}')
    await emulator.control("POST", "/reset")
    api = await emulator.api()
    assert (await api.get("/v1/logs")).json == []


async def test_a_key_of_odd_digits_is_400(emulator: Emulator) -> None:
    api = await emulator.api()
    reply = await api.get("/v1/logs", last_evaluated_key="²")
    assert reply.status == 400
