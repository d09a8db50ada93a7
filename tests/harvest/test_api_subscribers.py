"""Subscribers and SIMs through ``/v1`` (notes real-service.md section 3.3)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from harvest import errors
from tests.conftest import Emulator
from tests.harvest.api_helpers import (
    DEFAULT_IMSI,
    DEFAULT_OPERATOR,
    NOW,
    create_group,
    device_status,
    expect_error,
    group_of,
    harvest_group,
    set_clock,
    sim_id_of,
)
from tests.support.clients import ApiClient


@pytest.fixture
async def api(emulator: Emulator) -> ApiClient:
    return await emulator.api()


async def imsis_of(api: ApiClient, **params: Any) -> list[str]:
    reply = await api.get("/v1/subscribers", **params)
    assert reply.status == 200, reply.raw
    return [s["imsi"] for s in reply.json]


# --- GET /v1/subscribers ---------------------------------------------------------------------
async def test_the_provisioned_subscriber_is_listed_with_its_fields(
    emulator: Emulator, api: ApiClient
) -> None:
    reply = await api.get("/v1/subscribers")
    assert reply.status == 200
    [sim] = reply.json
    assert sim["imsi"] == DEFAULT_IMSI
    assert sim["operatorId"] == DEFAULT_OPERATOR
    assert sim["status"] == "ready"
    assert sim["tags"]["name"] == "default"
    assert sim["groupId"] == (await api.get("/v1/groups")).json[0]["groupId"]
    # online only once it sends (issue 12, item 6; tests/harvest/test_sessions.py)
    assert sim["sessionStatus"]["online"] is False
    assert sim["simId"] != DEFAULT_IMSI
    assert reply.next_key is None


async def test_subscribers_page_by_imsi(emulator: Emulator, api: ApiClient) -> None:
    created = [
        (await emulator.new_sim(imsi=imsi))["imsi"]
        for imsi in ("001010000000300", "001010000000100", "001010000000200", "001010000000050")
    ]
    everything = sorted([DEFAULT_IMSI, *created])
    assert await imsis_of(api) == everything
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    pages = 0
    while True:
        reply = await api.get("/v1/subscribers", **params)
        assert reply.status == 200
        page = [s["imsi"] for s in reply.json]
        assert 0 < len(page) <= 2
        seen.extend(page)
        pages += 1
        if reply.next_key is None:
            assert "link" not in reply.headers
            break
        # The key is the last IMSI of the page (notes section 3.1).
        assert reply.next_key == page[-1]
        assert reply.headers["link"].endswith(f"last_evaluated_key={page[-1]}>; rel=next")
        params["last_evaluated_key"] = reply.next_key
    assert seen == everything
    assert pages == 3
    assert (
        await api.all_pages("/v1/subscribers", limit=1) == (await api.get("/v1/subscribers")).json
    )


@pytest.mark.parametrize("path", ["/v1/subscribers", "/v1/groups"])
async def test_the_link_header_survives_commas_and_semicolons_in_the_query(
    emulator: Emulator, api: ApiClient, path: str
) -> None:
    tag = "a,b;c=d"
    for _ in range(2):
        await emulator.new_sim(tags={"place": tag})
        await create_group(api, {"tags": {"place": tag}})
    params = {"tag_name": "place", "tag_value": tag, "limit": 1}
    first = await api.get(path, **params)
    assert len(first.json) == 1
    link = first.headers["link"]
    # soracom-sdk-go splits the header on "," and then ";" (notes section 3.1).
    assert "," not in link
    [url, rel] = link.split(";")
    assert rel.split("=") == [" rel", "next"]
    query = parse_qs(urlsplit(url.strip("<>")).query)
    assert query == {
        "tag_name": ["place"],
        "tag_value": [tag],
        "limit": ["1"],
        "last_evaluated_key": [first.next_key],
    }
    headers = {"X-Soracom-API-Key": api.api_key or "", "X-Soracom-Token": api.token or ""}
    async with api.session.get(url.strip("<>"), headers=headers) as response:
        assert response.status == 200
        second = await response.json()
    assert len(second) == 1
    assert second != first.json
    assert second[0]["tags"]["place"] == tag


@pytest.mark.parametrize(
    "limit",
    [
        pytest.param(0, id="zero"),
        pytest.param(101, id="above-100"),
        pytest.param("abc", id="word"),
        pytest.param(-3, id="negative"),
    ],
)
async def test_a_bad_subscriber_limit_is_400(api: ApiClient, limit: Any) -> None:
    expect_error(await api.get("/v1/subscribers", limit=limit), errors.INVALID_PARAMETER, "limit")


async def test_subscriber_limits_1_and_100_are_accepted(emulator: Emulator, api: ApiClient) -> None:
    await emulator.new_sim()
    assert len(await imsis_of(api, limit=1)) == 1
    assert len(await imsis_of(api, limit=100)) == 2


@pytest.fixture
async def statuses(emulator: Emulator) -> dict[str, str]:
    """One more SIM per status (IMSI by status); the provisioned SIM is ``ready``."""
    made = {}
    for status in ("active", "inactive", "standby", "suspended", "terminated"):
        made[status] = (await emulator.new_sim(status=status))["imsi"]
    made["ready"] = DEFAULT_IMSI
    return made


@pytest.mark.parametrize(
    ("status_filter", "wanted"),
    [
        pytest.param("active", ["active"], id="one"),
        pytest.param("active|suspended", ["active", "suspended"], id="two"),
        pytest.param("ready|standby|terminated", ["ready", "standby", "terminated"], id="three"),
    ],
)
async def test_status_filter_takes_a_pipe_separated_list(
    api: ApiClient, statuses: dict[str, str], status_filter: str, wanted: list[str]
) -> None:
    got = await imsis_of(api, status_filter=status_filter)
    assert got == sorted(statuses[s] for s in wanted)
    reply = await api.get("/v1/subscribers", status_filter=status_filter)
    assert {s["status"] for s in reply.json} == set(wanted)


@pytest.mark.parametrize(
    "status_filter",
    [
        pytest.param("bogus", id="unknown"),
        pytest.param("active|bogus", id="one-unknown"),
        pytest.param("ACTIVE", id="upper-case"),
        pytest.param("active|", id="empty-member"),
    ],
)
async def test_an_invalid_status_filter_is_400(
    api: ApiClient, statuses: dict[str, str], status_filter: str
) -> None:
    expect_error(
        await api.get("/v1/subscribers", status_filter=status_filter),
        errors.INVALID_PARAMETER,
        "status_filter",
    )


async def test_a_device_write_makes_a_ready_sim_active(emulator: Emulator, api: ApiClient) -> None:
    assert await imsis_of(api, status_filter="active") == []
    assert await device_status(emulator) == 201
    assert await imsis_of(api, status_filter="active") == [DEFAULT_IMSI]


@pytest.fixture
async def tagged(emulator: Emulator) -> dict[str, str]:
    """SIMs tagged ``room``: the IMSI by tag value."""
    made = {}
    for room in ("kitchen", "kitchen-2", "bath"):
        made[room] = (await emulator.new_sim(tags={"room": room}))["imsi"]
    return made


@pytest.mark.parametrize(
    ("params", "rooms"),
    [
        pytest.param({"tag_name": "room"}, ["kitchen", "kitchen-2", "bath"], id="name-only"),
        pytest.param({"tag_name": "room", "tag_value": "kitchen"}, ["kitchen"], id="exact"),
        pytest.param(
            {"tag_name": "room", "tag_value": "kitchen", "tag_value_match_mode": "exact"},
            ["kitchen"],
            id="explicit-exact",
        ),
        pytest.param(
            {"tag_name": "room", "tag_value": "kit", "tag_value_match_mode": "prefix"},
            ["kitchen", "kitchen-2"],
            id="prefix",
        ),
        pytest.param({"tag_name": "room", "tag_value": "kit"}, [], id="exact-is-not-prefix"),
        pytest.param({"tag_name": "floor"}, [], id="absent-tag"),
    ],
)
async def test_tag_filters(
    api: ApiClient, tagged: dict[str, str], params: dict[str, str], rooms: list[str]
) -> None:
    assert await imsis_of(api, **params) == sorted(tagged[r] for r in rooms)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        pytest.param({"tag_value": "kitchen"}, "tag_name", id="value-without-name"),
        pytest.param(
            {"tag_name": "room", "tag_value": "k", "tag_value_match_mode": "suffix"},
            "tag_value_match_mode",
            id="unknown-mode",
        ),
    ],
)
async def test_bad_tag_filters_are_400(
    api: ApiClient, tagged: dict[str, str], params: dict[str, str], name: str
) -> None:
    expect_error(await api.get("/v1/subscribers", **params), errors.INVALID_PARAMETER, name)


async def test_speed_class_filter(emulator: Emulator, api: ApiClient) -> None:
    await emulator.new_sim()
    assert len(await imsis_of(api, speed_class_filter="s1.standard")) == 2
    assert len(await imsis_of(api, speed_class_filter="s1.fast|s1.standard")) == 2
    assert await imsis_of(api, speed_class_filter="s1.fast") == []


# --- GET /v1/subscribers/{imsi} --------------------------------------------------------------
async def test_get_subscriber(emulator: Emulator, api: ApiClient) -> None:
    sim = await emulator.new_sim(tags={"name": "probe"})
    reply = await api.get(f"/v1/subscribers/{sim['imsi']}")
    assert reply.status == 200
    assert reply.json["imsi"] == sim["imsi"]
    assert reply.json["tags"] == {"name": "probe"}
    assert reply.json["simId"] == sim["simId"]


@pytest.mark.parametrize("imsi", ["999999999999999", "not-an-imsi"])
async def test_get_unknown_subscriber_is_404(api: ApiClient, imsi: str) -> None:
    expect_error(await api.get(f"/v1/subscribers/{imsi}"), errors.NOT_FOUND, imsi)


# --- set_group / unset_group -----------------------------------------------------------------
async def test_set_group_moves_the_sim(emulator: Emulator, api: ApiClient) -> None:
    await set_clock(emulator, NOW)
    old_group = await group_of(api, DEFAULT_IMSI)
    new_group = await harvest_group(api, "moved")
    reply = await api.call(
        "POST", f"/v1/subscribers/{DEFAULT_IMSI}/set_group", json_body={"groupId": new_group}
    )
    assert reply.status == 200
    assert reply.json["imsi"] == DEFAULT_IMSI
    assert reply.json["groupId"] == new_group
    assert reply.json["lastModifiedTime"] == NOW
    assert await group_of(api, DEFAULT_IMSI) == new_group
    members = await api.get(f"/v1/groups/{new_group}/subscribers")
    assert [s["simId"] for s in members.json] == [await sim_id_of(api, DEFAULT_IMSI)]
    assert (await api.get(f"/v1/groups/{old_group}/subscribers")).json == []
    assert await device_status(emulator) == 201


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param({"groupId": "no-such-group"}, errors.NOT_FOUND, id="unknown-group"),
        pytest.param({}, errors.INVALID_BODY, id="missing-group-id"),
        pytest.param({"groupId": ""}, errors.INVALID_BODY, id="empty-group-id"),
        pytest.param({"groupId": 7}, errors.INVALID_BODY, id="group-id-not-a-string"),
        pytest.param(["groupId"], errors.INVALID_BODY, id="array"),
        pytest.param(None, errors.INVALID_BODY, id="no-body"),
        pytest.param({"groupId": "\ud800"}, errors.INVALID_BODY, id="lone-surrogate"),
    ],
)
async def test_set_group_refusals_leave_the_sim_where_it_was(
    api: ApiClient, body: Any, error: errors.ErrorSpec
) -> None:
    before = await group_of(api, DEFAULT_IMSI)
    reply = await api.call("POST", f"/v1/subscribers/{DEFAULT_IMSI}/set_group", json_body=body)
    expect_error(reply, error)
    assert await group_of(api, DEFAULT_IMSI) == before


async def test_set_group_of_an_unknown_subscriber_is_404(api: ApiClient) -> None:
    group = await harvest_group(api)
    reply = await api.call(
        "POST", "/v1/subscribers/999999999999999/set_group", json_body={"groupId": group}
    )
    expect_error(reply, errors.NOT_FOUND)


async def test_unset_group(emulator: Emulator, api: ApiClient) -> None:
    group = await group_of(api, DEFAULT_IMSI)
    reply = await api.call("POST", f"/v1/subscribers/{DEFAULT_IMSI}/unset_group")
    assert reply.status == 200
    assert "groupId" not in reply.json
    assert "groupId" not in (await api.get(f"/v1/subscribers/{DEFAULT_IMSI}")).json
    assert (await api.get(f"/v1/groups/{group}/subscribers")).json == []
    # With no group a device write is refused (spec A1).
    assert await device_status(emulator) == 400
    # Not in a group any more: 404.
    again = await api.call("POST", f"/v1/subscribers/{DEFAULT_IMSI}/unset_group")
    expect_error(again, errors.NOT_FOUND, DEFAULT_IMSI)
    # Back into the group, the device writes again.
    reply = await api.call(
        "POST", f"/v1/subscribers/{DEFAULT_IMSI}/set_group", json_body={"groupId": group}
    )
    assert reply.status == 200
    assert await device_status(emulator) == 201


async def test_concurrent_unset_group_succeeds_once(api: ApiClient) -> None:
    replies = await asyncio.gather(
        *(api.call("POST", f"/v1/subscribers/{DEFAULT_IMSI}/unset_group") for _ in range(3))
    )
    assert sorted(r.status for r in replies) == [200, 404, 404]


async def test_unset_group_of_an_unknown_subscriber_is_404(api: ApiClient) -> None:
    reply = await api.call("POST", "/v1/subscribers/999999999999999/unset_group")
    expect_error(reply, errors.NOT_FOUND)


async def test_a_sim_created_without_a_group_cannot_be_unset(
    emulator: Emulator, api: ApiClient
) -> None:
    sim = await emulator.new_sim(groupId=None)
    assert "groupId" not in (await api.get(f"/v1/subscribers/{sim['imsi']}")).json
    reply = await api.call("POST", f"/v1/subscribers/{sim['imsi']}/unset_group")
    expect_error(reply, errors.NOT_FOUND)
    # A group without Harvest: set_group works, the device is still refused.
    plain = (await create_group(api, {"tags": {"name": "plain"}}))["groupId"]
    reply = await api.call(
        "POST", f"/v1/subscribers/{sim['imsi']}/set_group", json_body={"groupId": plain}
    )
    assert reply.status == 200
    assert await device_status(emulator, sim["sessionAddress"]) == 400


# --- GET /v1/sims and /v1/sims/{sim_id} ------------------------------------------------------
async def test_sims_list_and_get(emulator: Emulator, api: ApiClient) -> None:
    extra = [await emulator.new_sim() for _ in range(3)]
    reply = await api.get("/v1/sims")
    assert reply.status == 200
    sims = reply.json
    sim_ids = [s["simId"] for s in sims]
    assert sim_ids == sorted(sim_ids)
    assert set(sim_ids) == {await sim_id_of(api, DEFAULT_IMSI), *(s["simId"] for s in extra)}
    for sim in sims:
        [profile] = sim["profiles"].values()
        assert sim["activeProfileId"] in sim["profiles"]
        imsi = profile["primaryImsi"]
        assert (await api.get(f"/v1/subscribers/{imsi}")).json["simId"] == sim["simId"]
        one = await api.get(f"/v1/sims/{sim['simId']}")
        assert (one.status, one.json) == (200, sim)
    assert [s["simId"] for s in await api.all_pages("/v1/sims", limit=1)] == sim_ids
    first = await api.get("/v1/sims", limit=3)
    assert first.next_key == sim_ids[2]
    assert (await api.get("/v1/sims", limit=4)).next_key is None


@pytest.mark.parametrize("limit", [pytest.param(0, id="zero"), pytest.param(101, id="above-100")])
async def test_a_bad_sims_limit_is_400(api: ApiClient, limit: int) -> None:
    expect_error(await api.get("/v1/sims", limit=limit), errors.INVALID_PARAMETER, "limit")


@pytest.mark.parametrize(
    "sim_id",
    [
        pytest.param("8900999999999999999", id="unknown"),
        pytest.param(DEFAULT_IMSI, id="an-imsi-is-not-a-sim-id"),
    ],
)
async def test_get_unknown_sim_is_404(api: ApiClient, sim_id: str) -> None:
    expect_error(await api.get(f"/v1/sims/{sim_id}"), errors.NOT_FOUND, sim_id)
