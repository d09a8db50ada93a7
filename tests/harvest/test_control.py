"""The emulator control plane under /_emulator (issue 2, item 8)."""

from __future__ import annotations

import pytest

from harvest.context import LISTENERS
from tests.conftest import Emulator
from tests.harvest.test_metrics import scrape, value
from tests.support.clients import NO_REPLY

IMSI = "001010000000001"


async def test_health_is_ok_once_listeners_are_up(emulator: Emulator) -> None:
    status, body = await emulator.control("GET", "/health")
    assert status == 200
    assert body["status"] == "ok"
    assert body["store"] == "sqlite"


@pytest.mark.settings(memory=True)
async def test_health_names_the_memory_store(emulator: Emulator) -> None:
    assert (await emulator.control("GET", "/health"))[1]["store"] == "memory"


async def test_create_sim_with_defaults(emulator: Emulator) -> None:
    sim = await emulator.new_sim()
    assert sim["imsi"] == "001010000000002"
    assert sim["status"] == "ready"
    assert sim["sessionAddress"].startswith("127.")
    assert sim["sessionAddress"] != "127.0.0.1"
    # the operator's Harvest-enabled group, so the SIM can write at once
    assert sim["groupId"]
    assert (await emulator.device(sim["sessionAddress"]).send('{"a":1}'))[0] == 201


async def test_create_sim_with_every_field(emulator: Emulator) -> None:
    api = await emulator.api()
    group = (await api.call("POST", "/v1/groups", json_body={})).json
    sim = await emulator.new_sim(
        imsi="440101234567890",
        groupId=group["groupId"],
        status="active",
        sessionAddress="127.9.9.9",
        tags={"name": "meter-7"},
    )
    assert (sim["imsi"], sim["groupId"], sim["status"], sim["sessionAddress"]) == (
        "440101234567890",
        group["groupId"],
        "active",
        "127.9.9.9",
    )
    assert sim["tags"]["name"] == "meter-7"
    assert (await api.get("/v1/subscribers/440101234567890")).json["ipAddress"] == "127.9.9.9"


async def test_a_sim_created_with_no_group_cannot_write(emulator: Emulator) -> None:
    sim = await emulator.new_sim(groupId=None)
    assert "groupId" not in sim
    assert (await emulator.device(sim["sessionAddress"]).send('{"a":1}'))[0] == 400


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        pytest.param({"imsi": "abc"}, 400, "imsi", id="bad-imsi"),
        pytest.param({"imsi": IMSI}, 409, "already exists", id="taken-imsi"),
        pytest.param({"sessionAddress": "127.0.0.1"}, 409, "belongs to SIM", id="taken-address"),
        pytest.param({"sessionAddress": "my-laptop"}, 400, "not an IP", id="bad-address"),
        pytest.param({"status": "sleeping"}, 400, "status must be one of", id="bad-status"),
        pytest.param({"groupId": "no-such-group"}, 404, "No such group", id="unknown-group"),
        pytest.param({"operatorId": "OP9999999999"}, 404, "No such operator", id="operator"),
        pytest.param({"colour": "red"}, 400, "Unknown field", id="unknown-field"),
        pytest.param({"tags": ["a"]}, 400, "tags", id="bad-tags"),
    ],
)
async def test_bad_sim_requests_are_refused_and_change_nothing(
    emulator: Emulator, body: dict[str, object], status: int, fragment: str
) -> None:
    got, error = await emulator.control("POST", "/sims", body)
    assert got == status
    assert fragment in error["message"]
    api = await emulator.api()
    assert [s["imsi"] for s in (await api.get("/v1/subscribers")).json] == [IMSI]


async def test_an_array_creates_every_sim_in_one_call(emulator: Emulator) -> None:
    """A fleet is provisioned in chunks (issue 11, item 4): one commit per call, not per SIM."""
    before = value((await scrape(emulator))[0], "harvest_group_commit_batch_size_count")
    status, sims = await emulator.control("POST", "/sims", [{}] * 2_000)
    assert status == 201
    assert [s["imsi"] for s in sims] == [f"{1010000000002 + i:015d}" for i in range(2_000)]
    assert len({s["sessionAddress"] for s in sims}) == 2_000
    after = value((await scrape(emulator))[0], "harvest_group_commit_batch_size_count")
    assert after - before == 2  # the SIMs, then their Harvest-enabled day (billing.md)
    assert (await emulator.device(sims[-1]["sessionAddress"]).send('{"a":1}'))[0] == 201
    # the next SIM without an IMSI follows the largest, without a scan of every SIM
    assert (await emulator.new_sim())["imsi"] == "001010000002002"


async def test_an_array_is_all_or_nothing_unless_existing_sims_are_kept(
    emulator: Emulator,
) -> None:
    fleet = [{"imsi": "001019900000001"}, {"imsi": IMSI}]
    status, error = await emulator.control("POST", "/sims", fleet)
    assert status == 409
    assert IMSI in error["message"]
    assert (await emulator.control("GET", "/sims/001019900000001"))[0] == 404
    status, sims = await emulator.control("POST", "/sims?existing=keep", fleet)
    assert status == 201
    assert [s["imsi"] for s in sims] == ["001019900000001", IMSI]
    assert sims[1]["sessionAddress"] == "127.0.0.1"  # the existing SIM, untouched
    for body in ([{"imsi": "001019900000002"}, {"imsi": "001019900000002"}], [{}, {"colour": 1}]):
        assert (await emulator.control("POST", "/sims", body))[0] in (400, 409)
    assert (await emulator.control("POST", "/sims", []))[0] == 400
    assert (await emulator.control("POST", "/sims", [1]))[0] == 400
    assert (await emulator.control("GET", "/sims/001019900000002"))[0] == 404


async def test_a_body_that_is_not_json_is_400(emulator: Emulator) -> None:
    async with emulator.client.post("/_emulator/sims", data=b"{oops") as response:
        assert response.status == 400
        assert (await response.json())["code"] == "HEM1002"


async def test_reset_of_one_sim_deletes_only_its_data(emulator: Emulator) -> None:
    other = await emulator.new_sim()
    await emulator.device().send('{"a":1}')
    await emulator.device(other["sessionAddress"]).send('{"b":1}')
    status, _ = await emulator.control("POST", "/reset", {"imsi": IMSI})
    assert status == 200
    api = await emulator.api()
    assert (await api.get(f"/v1/subscribers/{IMSI}/data")).json == []
    assert len((await api.get(f"/v1/subscribers/{other['imsi']}/data")).json) == 1
    assert (await emulator.control("POST", "/reset", {"imsi": "999"}))[0] == 404


async def test_reset_of_everything_returns_to_first_start(emulator: Emulator) -> None:
    await emulator.new_sim()
    await emulator.device().send('{"a":1}')
    await emulator.control("PUT", "/clock", {"now": 1_000, "frozen": True})
    status, _ = await emulator.control("POST", "/reset")
    assert status == 200
    api = await emulator.api()  # the default credentials work again
    sims = (await api.get("/v1/subscribers")).json
    assert [(s["imsi"], s["status"]) for s in sims] == [(IMSI, "ready")]
    assert (await api.get(f"/v1/subscribers/{IMSI}/data")).json == []
    _, clock = await emulator.control("GET", "/clock")
    assert clock["frozen"] is False
    assert clock["now"] > 1_000_000


async def test_reset_forgets_tokens(emulator: Emulator) -> None:
    api = await emulator.api()
    await emulator.control("POST", "/reset")
    assert (await api.get("/v1/subscribers")).status == 401


async def test_clock_can_be_frozen_set_and_advanced(emulator: Emulator) -> None:
    status, clock = await emulator.control(
        "PUT", "/clock", {"now": 1_800_000_000_000, "frozen": True}
    )
    assert (status, clock["now"], clock["frozen"]) == (200, 1_800_000_000_000, True)
    assert clock["iso"] == "2027-01-15T08:00:00.000Z"
    status, clock = await emulator.control("POST", "/clock/advance", {"seconds": 90.5})
    assert (status, clock["now"]) == (200, 1_800_000_090_500)
    await emulator.device().send('{"a":1}')
    api = await emulator.api()
    [entry] = (await api.get(f"/v1/subscribers/{IMSI}/data")).json
    assert entry["time"] == 1_800_000_090_500  # the entry's time comes from the same clock
    status, clock = await emulator.control("PUT", "/clock", {"frozen": False})
    assert clock["frozen"] is False
    assert clock["now"] >= 1_800_000_090_500


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("PUT", "/clock", {"now": "soon"}, id="now-text"),
        pytest.param("PUT", "/clock", {"now": -1}, id="now-negative"),
        pytest.param("PUT", "/clock", {"frozen": "yes"}, id="frozen-text"),
        pytest.param("PUT", "/clock", {"speed": 2}, id="unknown-field"),
        pytest.param("POST", "/clock/advance", {"seconds": -5}, id="backwards"),
        pytest.param("POST", "/clock/advance", {}, id="no-seconds"),
        pytest.param("POST", "/clock/advance", [1], id="not-an-object"),
    ],
)
async def test_bad_clock_requests_are_400_and_leave_the_clock(
    emulator: Emulator, method: str, path: str, body: object
) -> None:
    await emulator.control("PUT", "/clock", {"now": 5_000, "frozen": True})
    status, error = await emulator.control(method, path, body)
    assert status == 400
    assert error["code"] == "HEM1002"
    assert (await emulator.control("GET", "/clock"))[1]["now"] == 5_000


async def test_token_expiry_follows_the_emulator_clock(emulator: Emulator) -> None:
    api = await emulator.api()
    assert (await api.get("/v1/subscribers")).status == 200
    await emulator.control("POST", "/clock/advance", {"seconds": 86_401})
    reply = await api.get("/v1/subscribers")
    assert (reply.status, reply.json["code"]) == (401, "AUM0001")


async def test_create_operator_gives_working_credentials(emulator: Emulator) -> None:
    status, created = await emulator.control("POST", "/operators", {"operatorId": "OP0000000042"})
    assert status == 201
    api = await emulator.api(created["authKeyId"], created["authKey"])
    assert api.operator_id == "OP0000000042"
    assert (await api.get("/v1/subscribers")).json == []
    client = emulator.api_client()
    for password, status in ((created["password"], 200), ("emulator", 401)):
        login = await client.call(
            "POST",
            "/v1/auth",
            json_body={"email": created["email"], "password": password},
            authenticated=False,
        )
        assert login.status == status  # the password is random, never a shared default
    assert len(created["password"]) >= 16
    _, other = await emulator.control("POST", "/operators", {})
    assert other["password"] != created["password"]
    assert (await emulator.control("POST", "/operators", {"operatorId": "OP0000000042"}))[0] == 409


async def test_sims_of_another_operator(emulator: Emulator) -> None:
    other = await emulator.new_operator(operatorId="OP0000000007")
    group = (
        await other.call(
            "POST", "/v1/groups", json_body={"configuration": {"SoracomHarvest": {"enabled": True}}}
        )
    ).json
    sim = await emulator.new_sim(operatorId="OP0000000007")
    assert sim["operatorId"] == "OP0000000007"
    assert sim["groupId"] == group["groupId"]


@pytest.mark.settings(control_token="s3cret")
async def test_the_control_plane_can_require_a_token(emulator: Emulator) -> None:
    status, error = await emulator.control("POST", "/sims", {})
    assert (status, error["code"]) == (401, "HEM9001")
    status, _ = await emulator.control("POST", "/sims", {}, headers={"X-Emulator-Token": "s3cret"})
    assert status == 201
    # health stays open for container health checks
    assert (await emulator.control("GET", "/health"))[0] == 200


@pytest.mark.settings(control=False)
async def test_the_control_plane_can_be_switched_off(emulator: Emulator) -> None:
    status, error = await emulator.control("POST", "/sims", {})
    assert (status, error["code"]) == (404, "HEM9002")
    # ... and a POST there is not mistaken for a device write
    api = await emulator.api()
    assert (await api.get(f"/v1/subscribers/{IMSI}/data")).json == []
    assert (await emulator.control("GET", "/health"))[0] == 200


async def test_barring_blocks_and_unblocks_a_sim_at_once(emulator: Emulator) -> None:
    device = emulator.device()
    status, sim = await emulator.control("POST", f"/sims/{IMSI}/block")
    assert (status, sim["barred"]) == (200, True)
    # barred: no data session, so no reply (spec B12; the reason is in test_lifecycle.py)
    assert await device.send('{"a":1}') == (NO_REPLY, b"")
    status, sim = await emulator.control("POST", f"/sims/{IMSI}/unblock")
    assert (status, sim["barred"]) == (200, False)
    assert (await device.send('{"a":2}'))[0] == 201
    assert (await emulator.control("POST", "/sims/999/block"))[0] == 404


async def test_a_lone_surrogate_cannot_poison_the_api(emulator: Emulator) -> None:
    async with emulator.client.post(
        "/_emulator/sims", data=b'{"tags":{"name":"\\ud800"}}'
    ) as response:
        assert response.status == 400
    api = await emulator.api()
    assert (await api.get("/v1/subscribers")).status == 200


async def test_json_nested_too_deep_is_a_400(emulator: Emulator) -> None:
    async with emulator.client.post("/_emulator/sims", data=b"[" * 100_000) as response:
        assert response.status == 400
        assert (await response.json())["code"] == "HEM1002"


async def test_health_tells_live_from_ready(emulator: Emulator) -> None:
    status, body = await emulator.control("GET", "/health")
    assert (status, body["live"], body["ready"], body["status"]) == (200, True, True, "ok")
    assert (await emulator.control("GET", "/health/ready"))[0] == 200
    assert (await emulator.control("GET", "/health/live")) == (200, {"live": True})
    emulator.app[LISTENERS].draining = True  # what shutdown does first
    status, body = await emulator.control("GET", "/health/ready")
    assert (status, body["ready"], body["status"]) == (503, False, "draining")
    assert (await emulator.control("GET", "/health/live"))[0] == 200
