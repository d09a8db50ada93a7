"""Two operators share one emulator and see nothing of each other (spec A4, B7).

Every case runs both ways: the default operator looking at the second one's resources, and the
second looking at the default one's. Each negative check is paired with the same call on the
caller's own resource, which must succeed, so a check cannot pass by the endpoint being broken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from harvest import errors
from tests.conftest import Emulator
from tests.harvest.api_helpers import (
    DEFAULT_ADDRESS,
    DEFAULT_IMSI,
    NOW,
    expect_error,
    group_of,
    harvest_group,
    set_clock,
    sim_id_of,
    write,
)
from tests.support.clients import ApiClient

#: Both operators' devices write at this same instant: entries are keyed per operator.
AT = NOW - 1_000


@dataclass
class Side:
    """One operator and the resources it owns."""

    api: ApiClient
    operator_id: str
    imsi: str
    sim_id: str
    group_id: str

    def fill(self, template: str) -> str:
        return template.format(
            operator_id=self.operator_id,
            imsi=self.imsi,
            sim_id=self.sim_id,
            group_id=self.group_id,
            time=AT,
        )

    async def snapshot(self) -> dict[str, Any]:
        """Everything of this operator that another could try to change."""
        state = {}
        for path in (
            f"/v1/subscribers/{self.imsi}",
            f"/v1/groups/{self.group_id}",
            f"/v1/subscribers/{self.imsi}/data",
            "/v1/groups",
            "/v1/subscribers",
        ):
            reply = await self.api.get(path)
            assert reply.status == 200, reply.raw
            state[path] = reply.json
        return state


@pytest.fixture(params=["default-views-second", "second-views-default"])
async def sides(request: pytest.FixtureRequest, emulator: Emulator) -> tuple[Side, Side]:
    """(viewer, owner): two operators, each with a SIM in its own Harvest group and an entry."""
    await set_clock(emulator, NOW)
    first = await emulator.api()
    assert first.operator_id is not None
    default = Side(
        first,
        first.operator_id,
        DEFAULT_IMSI,
        await sim_id_of(first, DEFAULT_IMSI),
        await group_of(first, DEFAULT_IMSI),
    )
    await write(emulator, '{"owner":"default"}', at=AT, address=DEFAULT_ADDRESS)

    second_api = await emulator.new_operator()
    assert second_api.operator_id is not None
    group_id = await harvest_group(second_api, "second")
    sim = await emulator.new_sim(operatorId=second_api.operator_id, groupId=group_id)
    second = Side(second_api, second_api.operator_id, sim["imsi"], sim["simId"], group_id)
    await write(emulator, '{"owner":"second"}', at=AT, address=sim["sessionAddress"])

    assert default.operator_id != second.operator_id
    if request.param == "default-views-second":
        return default, second
    return second, default


# --- reads -----------------------------------------------------------------------------------
#: (case, method, path template, refusal): one resource of another operator each.
REFUSED_READS = [
    ("get-subscriber", "GET", "/v1/subscribers/{imsi}", errors.NOT_FOUND),
    ("get-sim", "GET", "/v1/sims/{sim_id}", errors.NOT_FOUND),
    ("get-group", "GET", "/v1/groups/{group_id}", errors.NOT_FOUND),
    ("group-subscribers", "GET", "/v1/groups/{group_id}/subscribers", errors.NOT_FOUND),
    ("get-operator", "GET", "/v1/operators/{operator_id}", errors.INVALID_OPERATOR_ID),
    ("generate-token", "POST", "/v1/operators/{operator_id}/token", errors.INVALID_OPERATOR_ID),
    ("entry-subscriber", "GET", "/v1/data/Subscriber/{imsi}/{time}", errors.NO_SUCH_ENTRY),
    ("entry-sim", "GET", "/v1/data/Sim/{sim_id}/{time}", errors.NO_SUCH_ENTRY),
]

#: Every list of one resource's data.
DATA_READS = [
    "/v1/data/Subscriber/{imsi}",
    "/v1/data/Sim/{sim_id}",
    "/v1/subscribers/{imsi}/data",
    "/v1/sims/{sim_id}/data",
]

#: (list path, the field naming an item, the Side attribute it holds).
LISTS = [
    ("/v1/subscribers", "imsi", "imsi"),
    ("/v1/sims", "simId", "sim_id"),
    ("/v1/groups", "groupId", "group_id"),
    ("/v1/data/metadata/resources", "resourceId", "imsi"),
    ("/v1/data/resources", "resourceId", "imsi"),
]


async def test_another_operators_resources_are_refused(sides: tuple[Side, Side]) -> None:
    viewer, owner = sides
    for case, method, template, refusal in REFUSED_READS:
        body: dict[str, Any] | None = {} if method == "POST" else None
        own = await viewer.api.call(method, viewer.fill(template), json_body=body)
        assert own.status == 200, (case, own.raw)
        reply = await viewer.api.call(method, owner.fill(template), json_body=body)
        assert (reply.status, reply.json["code"]) == (refusal.status, refusal.code), case


async def test_another_operators_data_reads_as_an_empty_list(sides: tuple[Side, Side]) -> None:
    viewer, owner = sides
    window = {"from": 0, "sort": "asc"}
    for template in DATA_READS:
        own = await viewer.api.get(viewer.fill(template), **window)
        assert [e["time"] for e in own.json] == [AT], template
        assert '"owner"' in own.json[0]["content"]
        reply = await viewer.api.get(owner.fill(template), **window)
        assert (reply.status, reply.json, reply.next_key) == (200, [], None), template
        # A key pointing into the owner's data does not open it either.
        keyed = await viewer.api.get(
            owner.fill(template), **window, last_evaluated_key=f"{AT - 1}_{owner.imsi}"
        )
        assert (keyed.status, keyed.json) == (200, []), template


async def test_lists_hold_only_the_callers_own_resources(sides: tuple[Side, Side]) -> None:
    viewer, owner = sides
    for path, field, own in LISTS:
        listed = [item[field] for item in await viewer.api.all_pages(path, limit=1)]
        assert getattr(viewer, own) in listed, path
        assert getattr(owner, own) not in listed, path


async def test_subscriber_lists_carry_only_the_callers_operator_id(
    sides: tuple[Side, Side],
) -> None:
    viewer, owner = sides
    for path in ("/v1/subscribers", "/v1/sims", "/v1/groups"):
        items = (await viewer.api.get(path)).json
        assert items
        assert {item["operatorId"] for item in items} == {viewer.operator_id}
    tagged = await viewer.api.get("/v1/subscribers", tag_name="name")
    assert owner.imsi not in [s["imsi"] for s in tagged.json]


# --- writes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "template", "body"),
    [
        pytest.param(
            "POST",
            "/v1/subscribers/{owner.imsi}/set_group",
            {"groupId": "{viewer.group_id}"},
            id="set-group-of-owners-sim",
        ),
        pytest.param(
            "POST",
            "/v1/subscribers/{viewer.imsi}/set_group",
            {"groupId": "{owner.group_id}"},
            id="set-group-into-owners-group",
        ),
        pytest.param(
            "POST", "/v1/subscribers/{owner.imsi}/unset_group", None, id="unset-group-of-owners-sim"
        ),
        pytest.param(
            "DELETE", "/v1/data/Subscriber/{owner.imsi}/{time}", None, id="delete-entry-subscriber"
        ),
        pytest.param("DELETE", "/v1/data/Sim/{owner.sim_id}/{time}", None, id="delete-entry-sim"),
        pytest.param("DELETE", "/v1/groups/{owner.group_id}", None, id="delete-group"),
        pytest.param(
            "PUT",
            "/v1/groups/{owner.group_id}/configuration/SoracomHarvest",
            [{"key": "enabled", "value": False}],
            id="put-configuration",
        ),
        pytest.param(
            "DELETE",
            "/v1/groups/{owner.group_id}/configuration/SoracomHarvest",
            None,
            id="delete-namespace",
        ),
        pytest.param(
            "DELETE",
            "/v1/groups/{owner.group_id}/configuration/SoracomHarvest/enabled",
            None,
            id="delete-parameter",
        ),
    ],
)
async def test_another_operators_resources_cannot_be_changed(
    sides: tuple[Side, Side], method: str, template: str, body: Any
) -> None:
    viewer, owner = sides
    before_owner, before_viewer = await owner.snapshot(), await viewer.snapshot()

    def fill(text: str) -> str:
        return text.format(owner=owner, viewer=viewer, time=AT)

    sent = None if body is None else _fill_json(body, fill)
    reply = await viewer.api.call(method, fill(template), json_body=sent)
    refusal = errors.NO_SUCH_ENTRY if "/data/" in template else errors.NOT_FOUND
    expect_error(reply, refusal)
    assert await owner.snapshot() == before_owner
    assert await viewer.snapshot() == before_viewer
    # And the same call on the caller's own resources does work (the refusal is isolation).
    mine = template.replace("owner.", "viewer.")
    own_body = (
        None
        if body is None
        else _fill_json(body, lambda t: t.replace("owner.", "viewer.").format(viewer=viewer))
    )
    own = await viewer.api.call(method, mine.format(viewer=viewer, time=AT), json_body=own_body)
    assert own.status in (200, 204), own.raw


def _fill_json(value: Any, fill: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fill(value)
    if isinstance(value, list):
        return [_fill_json(item, fill) for item in value]
    if isinstance(value, dict):
        return {key: _fill_json(item, fill) for key, item in value.items()}
    return value


async def test_each_operators_devices_write_only_into_its_own_account(
    sides: tuple[Side, Side],
) -> None:
    contents = set()
    for side in sides:
        entries = (await side.api.get(f"/v1/subscribers/{side.imsi}/data", **{"from": 0})).json
        assert [e["time"] for e in entries] == [AT]
        contents.add(entries[0]["content"])
        [meta] = (await side.api.get("/v1/data/metadata/resources")).json
        assert (meta["resourceId"], meta["attributeNames"]) == (side.imsi, ["owner"])
    assert contents == {'{"owner":"default"}', '{"owner":"second"}'}


async def test_logging_out_one_operator_leaves_the_other_logged_in(
    sides: tuple[Side, Side],
) -> None:
    viewer, owner = sides
    assert (await viewer.api.call("POST", "/v1/auth/logout")).status == 204
    expect_error(await viewer.api.get("/v1/subscribers"), errors.TOKEN_REQUIRED)
    reply = await owner.api.get("/v1/subscribers")
    assert reply.status == 200
    assert [s["imsi"] for s in reply.json] == [owner.imsi]


async def test_error_logs_hold_only_the_callers_own_devices(
    emulator: Emulator, sides: tuple[Side, Side]
) -> None:
    for side in sides:
        address = (await side.api.get(f"/v1/subscribers/{side.imsi}")).json["ipAddress"]
        status, _ = await emulator.device(address).send("{not json")
        assert status == 400
    viewer, owner = sides
    logs = (await viewer.api.get("/v1/logs", service="Harvest")).json
    assert {entry["resourceId"] for entry in logs} == {viewer.imsi}
    assert {entry["operatorId"] for entry in logs} == {viewer.operator_id}
    reply = await viewer.api.get("/v1/logs", resource_type="Subscriber", resource_id=owner.imsi)
    assert (reply.status, reply.json) == (200, [])
