"""Fault injection at /_emulator/faults and the request log at /_emulator/requests
(issue 5, items 3 and 4)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from gateway.app import RAW_LISTENERS
from harvest.faults import parse_rule
from tests.conftest import Emulator
from tests.gateway.test_raw_listeners import tcp_exchange, udp_exchange

IMSI = "001010000000001"


async def add(emulator: Emulator, **rule: Any) -> dict[str, Any]:
    status, body = await emulator.control("POST", "/faults", rule)
    assert status == 201, body
    return dict(body)


async def stored(emulator: Emulator) -> int:
    _, sim = await emulator.control("GET", f"/sims/{IMSI}")
    return int(sim["writesToday"])


async def test_a_status_fault_fires_for_the_next_n_matches(emulator: Emulator) -> None:
    rule = await add(emulator, effect="status", status=500, count=2, protocol="http")
    device = emulator.device()
    first, second, third = [await device.send('{"a":1}') for _ in range(3)]
    assert first[0] == second[0] == 500
    assert json.loads(first[1])["code"] == "HEM9004"
    assert third[0] == 201
    assert await stored(emulator) == 1  # a refused write stores nothing
    _, rules = await emulator.control("GET", "/faults")
    assert [(r["id"], r["hits"], r["remaining"]) for r in rules] == [(rule["id"], 2, 0)]


async def test_faults_match_by_sim_and_protocol(emulator: Emulator) -> None:
    other = await emulator.new_sim()
    await add(emulator, effect="status", status=429, imsi=other["imsi"], protocol="udp")
    assert await udp_exchange(emulator, [b"x"], source=other["sessionAddress"]) == [b"429"]
    assert await udp_exchange(emulator, [b"x"]) == [b"201"]  # another SIM
    assert await tcp_exchange(emulator, [b"x"], source=other["sessionAddress"]) == [b"201"]


async def test_a_delay_fault_slows_the_answer(emulator: Emulator) -> None:
    await add(emulator, effect="delay", delayMs=300, count=1)
    started = time.monotonic()
    assert (await emulator.device().send('{"a":1}'))[0] == 201
    assert time.monotonic() - started >= 0.3


async def test_drop_closes_tcp_and_silences_udp(emulator: Emulator) -> None:
    await add(emulator, effect="drop", protocol="udp", count=1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(udp_exchange(emulator, [b"lost"]), 1.0)
    await add(emulator, effect="drop", protocol="tcp", count=1)
    port = emulator.app[RAW_LISTENERS].ports["harvest"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"lost too")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed without an answer
    writer.close()
    assert await stored(emulator) == 0


async def test_duplicate_stores_the_entry_twice(emulator: Emulator) -> None:
    await emulator.control("PUT", "/clock", {"now": 1_800_000_000_000, "frozen": True})
    await add(emulator, effect="duplicate", count=1)
    assert (await emulator.device().send('{"d":1}'))[0] == 201
    api = await emulator.api()
    # the copy is one millisecond later: past a frozen "now", so ask for it explicitly
    entries = (await api.get(f"/v1/subscribers/{IMSI}/data", to=1_800_000_000_001)).json
    assert [(e["time"], e["content"]) for e in entries] == [
        (1_800_000_000_001, '{"d":1}'),
        (1_800_000_000_000, '{"d":1}'),
    ]


async def test_maintenance_answers_503_everywhere_in_its_window(emulator: Emulator) -> None:
    await emulator.control("PUT", "/clock", {"now": 1_800_000_000_000, "frozen": True})
    await add(
        emulator, effect="maintenance", **{"from": 1_800_000_000_000, "until": 1_800_000_060_000}
    )
    status, body = await emulator.device().send('{"a":1}')
    assert (status, json.loads(body)["code"]) == (503, "HEM9005")
    assert await udp_exchange(emulator, [b"x"]) == [b"503"]
    reply = await emulator.api_client().call(
        "POST",
        "/v1/auth",
        json_body={"authKeyId": "keyId-harvest-emulator", "authKey": "secret-harvest-emulator"},
        authenticated=False,
    )
    assert reply.status == 503
    # the control plane is never subject to faults, and the window ends
    await emulator.control("POST", "/clock/advance", {"seconds": 61})
    assert (await emulator.device().send('{"a":1}'))[0] == 201


@pytest.mark.parametrize(
    ("rule", "now", "deleted", "end"),
    [
        # the window ends once the clock is past until (the rule matches up to it inclusive)
        pytest.param({"until": 500}, 500, False, None, id="at-until-still-down"),
        pytest.param({"until": 500}, 501, False, 500, id="past-until"),
        pytest.param({}, 10**12, False, None, id="no-until-lasts"),
        # deleted: now, or the earlier until
        pytest.param({}, 700, True, 700, id="deleted"),
        pytest.param({"until": 500}, 700, True, 500, id="deleted-after-until"),
        pytest.param({"until": 900}, 700, True, 700, id="deleted-before-until"),
        # anything short of the whole service is no outage of the service
        pytest.param({"until": 500, "imsi": "001010000000001"}, 501, False, None, id="one-sim"),
        pytest.param({"until": 500, "groupId": "g"}, 501, False, None, id="one-group"),
        pytest.param({"until": 500, "protocol": "udp"}, 501, False, None, id="one-protocol"),
        pytest.param({"until": 500, "operation": "get_billing"}, 501, True, None, id="one-op"),
        pytest.param({"until": 500, "count": 3}, 501, False, None, id="counted"),
        pytest.param({"until": 500, "probability": 0.9}, 501, False, None, id="probable"),
        pytest.param({"until": 500, "effect": "status", "status": 503}, 501, False, None, id="503"),
    ],
)
def test_a_whole_service_maintenance_window_and_its_end(
    rule: dict[str, Any], now: int, deleted: bool, end: int | None
) -> None:
    parsed = parse_rule({"effect": "maintenance", **rule})
    parsed.created_ms = 100
    assert parsed.start_ms == 100  # no from: from its creation
    assert parsed.outage_end(now, deleted=deleted) == end
    assert parse_rule({"effect": "maintenance", "from": 50}).start_ms == 50


async def test_api_faults_match_by_operation(emulator: Emulator) -> None:
    api = await emulator.api()
    await add(emulator, effect="status", status=500, operation="list_subscribers", count=1)
    failed = await api.get("/v1/subscribers")
    assert (failed.status, failed.json["code"]) == (500, "HEM9004")
    assert (await api.get("/v1/groups")).status == 200
    assert (await api.get("/v1/subscribers")).status == 200


async def test_a_seeded_probability_is_reproducible(emulator: Emulator) -> None:
    async def outcomes() -> list[int]:
        await emulator.control("DELETE", "/faults")
        await add(emulator, effect="status", status=500, probability=0.5, seed=42)
        device = emulator.device()
        return [(await device.send('{"a":1}'))[0] for _ in range(20)]

    first, second = await outcomes(), await outcomes()
    assert first == second
    assert 0 < first.count(500) < 20


async def test_rules_can_be_deleted(emulator: Emulator) -> None:
    rule = await add(emulator, effect="status", status=500)
    assert (await emulator.control("DELETE", f"/faults/{rule['id']}"))[0] == 204
    assert (await emulator.control("DELETE", f"/faults/{rule['id']}"))[0] == 404
    assert (await emulator.device().send('{"a":1}'))[0] == 201
    await add(emulator, effect="status", status=500)
    await emulator.control("POST", "/reset")  # a reset clears the rules too
    assert (await emulator.control("GET", "/faults"))[1] == []


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param({"effect": "explode"}, id="effect"),
        pytest.param({"effect": "status"}, id="status-missing"),
        pytest.param({"effect": "status", "status": 200}, id="status-range"),
        pytest.param({"effect": "delay"}, id="delay-missing"),
        pytest.param({"effect": "drop", "probability": 2}, id="probability"),
        pytest.param({"effect": "drop", "protocol": "smtp"}, id="protocol"),
        pytest.param({"effect": "drop", "colour": "red"}, id="unknown-field"),
        pytest.param({"effect": "drop", "count": 0}, id="count"),
    ],
)
async def test_bad_rules_are_400(emulator: Emulator, rule: dict[str, Any]) -> None:
    status, body = await emulator.control("POST", "/faults", rule)
    assert (status, body["code"]) == (400, "HEM1002")
    assert (await emulator.control("GET", "/faults"))[1] == []


# --- the request log -----------------------------------------------------------------------------
async def test_the_request_log_keeps_every_request_with_its_sim(emulator: Emulator) -> None:
    other = await emulator.new_sim()
    await emulator.device().send('{"a":1}')
    await udp_exchange(emulator, [b"u"], source=other["sessionAddress"])
    await tcp_exchange(emulator, [b"t"])
    await emulator.device("127.0.0.99").send('{"a":1}')
    api = await emulator.api()
    await api.get("/v1/subscribers")
    _, everything = await emulator.control("GET", "/requests")
    assert [(r["protocol"], r["status"]) for r in everything][:5] == [
        ("api", 200),
        ("api", 200),
        ("http", 403),
        ("tcp", 201),
        ("udp", 201),
    ]
    _, mine = await emulator.control("GET", f"/requests?imsi={IMSI}")
    assert {r["protocol"] for r in mine} == {"http", "tcp"}
    assert all(r["imsi"] == IMSI for r in mine)
    _, udp = await emulator.control("GET", "/requests?protocol=udp")
    [record] = udp
    assert (record["imsi"], record["bytes"], record["target"]) == (
        other["imsi"],
        1,  # the bytes received, as TCP and HTTP count them (not the stored form's)
        "harvest-udp",
    )
    assert record["latencyMs"] >= 0
    assert (await emulator.control("GET", "/requests?protocol=smtp"))[0] == 400


@pytest.mark.settings(request_log="json")
async def test_json_log_lines(emulator: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="harvest.requests")
    await emulator.device().send('{"a":1}')
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "harvest.requests"]
    assert lines[-1]["protocol"] == "http"
    assert lines[-1]["status"] == 201
    assert lines[-1]["imsi"] == IMSI
