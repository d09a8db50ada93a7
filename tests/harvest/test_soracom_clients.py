"""SORACOM's own clients against the running emulator, unchanged (notes real-service.md sections
3 and 4, "Client behaviours that matter").

* ``soracom-api`` 0.0.2 from PyPI (openapi-generator, urllib3, synchronous): its calls run in a
  worker thread so the emulator on the event loop can answer; it type-checks every response
  against its own models.
* soracom-cli, re-enacted request for request by :mod:`tests.support.soracom_cli` (the Go binary
  cannot be installed here), including the bare ``?`` it puts on every request target.
* soracom-sdk-go's parse of the ``link`` header.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import soracom_api
from soracom_api.api.auth_api import AuthApi
from soracom_api.api.data_entry_api import DataEntryApi
from soracom_api.api.group_api import GroupApi
from soracom_api.api.operator_api import OperatorApi
from soracom_api.api.sim_api import SimApi
from soracom_api.api.subscriber_api import SubscriberApi
from soracom_api.exceptions import ApiException, NotFoundException, UnauthorizedException
from soracom_api.model.auth_request import AuthRequest
from soracom_api.model.create_group_request import CreateGroupRequest
from soracom_api.model.data_entry import DataEntry
from soracom_api.model.data_source_resource_metadata import DataSourceResourceMetadata
from soracom_api.model.generate_token_request import GenerateTokenRequest
from soracom_api.model.group_configuration_update_request import GroupConfigurationUpdateRequest
from soracom_api.model.set_group_request import SetGroupRequest
from soracom_api.model.sim import Sim
from soracom_api.model.tag_set import TagSet
from yarl import URL

from tests.conftest import Emulator
from tests.support.clients import DEFAULT_KEY, DEFAULT_KEY_ID, ApiClient, Device
from tests.support.soracom_cli import (
    CLI_VERSION,
    CliError,
    SoracomCli,
    go_request_line,
    parse_link_header,
    raw_http,
)

# urllib3 1.26 deprecates the getheader()/getheaders() that soracom-api's rest.py calls.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:HTTPResponse\.getheaders?\(\) is deprecated:DeprecationWarning"
)

IMSI = "001010000000001"
AUTH = ["api_key", "api_token"]


def recent_ms(seconds_ago: int) -> int:
    """A device timestamp inside the default read window (retention start .. now)."""
    return int(time.time() * 1000) - seconds_ago * 1000


async def write(device: Device, body: str, at_ms: int | None = None) -> None:
    headers = None if at_ms is None else {"X-Soracom-Timestamp": str(at_ms)}
    status, answer = await device.send(body, headers=headers)
    assert status == 201, answer


# --- soracom-api (PyPI) --------------------------------------------------------------------------


@dataclass
class Sdk:
    """``soracom_api`` configured for the emulator: ``host`` is the base URL plus ``/v1``."""

    configuration: Any
    client: Any
    operator_id: str = ""

    @classmethod
    def connect(cls, base_url: str) -> Sdk:
        configuration = soracom_api.Configuration(host=base_url + "/v1")
        return cls(configuration, soracom_api.ApiClient(configuration))

    def login(self, key_id: str = DEFAULT_KEY_ID, key: str = DEFAULT_KEY) -> Any:
        """``AuthApi.auth``, then the two API-key entries its ``auth_settings`` read."""
        answer = AuthApi(self.client).auth(AuthRequest(auth_key_id=key_id, auth_key=key))
        self.configuration.api_key["api_key"] = answer.api_key
        self.configuration.api_key["api_token"] = answer.token
        self.operator_id = answer.operator_id
        return answer

    def close(self) -> None:
        self.client.close()
        self.client.rest_client.pool_manager.clear()

    @property
    def data(self) -> Any:
        return DataEntryApi(self.client)

    @property
    def subscribers(self) -> Any:
        return SubscriberApi(self.client)

    @property
    def groups(self) -> Any:
        return GroupApi(self.client)

    @property
    def sims(self) -> Any:
        return SimApi(self.client)

    @property
    def operators(self) -> Any:
        return OperatorApi(self.client)

    def last_json(self) -> Any:
        return json.loads(self.client.last_response.data)


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A synchronous client call, off the event loop the emulator runs on."""
    return await asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
async def sdk(emulator: Emulator) -> AsyncIterator[Sdk]:
    client = Sdk.connect(emulator.base_url)
    await call(client.login)
    yield client
    await call(client.close)


async def test_sdk_auth_answers_what_the_client_models(emulator: Emulator) -> None:
    client = Sdk.connect(emulator.base_url)
    try:
        answer = await call(client.login)
        assert isinstance(answer.api_key, str)
        assert answer.api_key.startswith("api-")
        assert isinstance(answer.token, str)
        assert answer.token
        operator = await call(client.operators.get_operator, answer.operator_id)
        assert operator.operator_id == answer.operator_id
        assert isinstance(operator.create_date, str)
    finally:
        await call(client.close)


async def test_sdk_without_the_key_and_token_is_401_aum0001(emulator: Emulator) -> None:
    client = Sdk.connect(emulator.base_url)
    try:
        with pytest.raises(UnauthorizedException) as raised:
            await call(client.subscribers.list_subscribers)
        assert raised.value.status == 401
        assert json.loads(raised.value.body)["code"] == "AUM0001"
    finally:
        await call(client.close)


async def test_sdk_wrong_auth_key_is_401_aum0002(emulator: Emulator) -> None:
    client = Sdk.connect(emulator.base_url)
    try:
        with pytest.raises(UnauthorizedException) as raised:
            await call(client.login, DEFAULT_KEY_ID, "not-the-key")
        assert json.loads(raised.value.body)["code"] == "AUM0002"
    finally:
        await call(client.close)


async def test_sdk_generates_a_new_token(sdk: Sdk) -> None:
    answer = await call(
        sdk.operators.generate_auth_token,
        sdk.operator_id,
        GenerateTokenRequest(token_timeout_seconds=600),
    )
    assert isinstance(answer.token, str)
    sdk.configuration.api_key["api_token"] = answer.token
    assert (await call(sdk.subscribers.get_subscriber, IMSI)).imsi == IMSI


async def test_sdk_reads_a_device_write(emulator: Emulator, sdk: Sdk) -> None:
    await write(emulator.device(), '{"temp":21.5}')

    [entry] = await call(sdk.subscribers.get_data_from_subscriber, IMSI)
    assert isinstance(entry, DataEntry)
    assert entry.content == '{"temp":21.5}'  # the client checks it is a str
    assert entry.content_type == "application/json"
    assert isinstance(entry.time, int)

    [same] = await call(sdk.data.get_data_entries, "Subscriber", IMSI)
    assert (same.time, same.content) == (entry.time, entry.content)


async def test_sdk_query_parameters_reach_the_emulator(emulator: Emulator, sdk: Sdk) -> None:
    device = emulator.device()
    base = recent_ms(60)
    for i in range(3):
        await write(device, f'{{"n":{i}}}', base + i)

    entries = await call(
        sdk.data.get_data_entries,
        "Subscriber",
        IMSI,
        _from=base + 1,  # the client's name for the ``from`` query parameter
        to=base + 2,
        sort="asc",
        limit=10,
    )
    assert [e.time for e in entries] == [base + 1, base + 2]


async def test_sdk_pages_with_x_soracom_next_key(emulator: Emulator, sdk: Sdk) -> None:
    device = emulator.device()
    base = recent_ms(60)
    for i in range(3):
        await write(device, f'{{"n":{i}}}', base + i)

    first, status, headers = await call(
        sdk.data.get_data_entries, "Subscriber", IMSI, limit=2, _return_http_data_only=False
    )
    assert status == 200
    assert [e.time for e in first] == [base + 2, base + 1]
    next_key = headers.get("x-soracom-next-key")
    assert next_key
    keys = parse_link_header(headers.get("link", ""))
    assert keys is not None
    assert keys.next == next_key

    rest, _, headers = await call(
        sdk.data.get_data_entries,
        "Subscriber",
        IMSI,
        limit=2,
        last_evaluated_key=next_key,
        _return_http_data_only=False,
    )
    assert [e.time for e in rest] == [base]
    assert "x-soracom-next-key" not in headers
    assert "link" not in headers


async def test_sdk_gets_one_entry(emulator: Emulator, sdk: Sdk) -> None:
    """The old client declares no response body for ``getDataEntry`` (it returns ``None``);
    its user reads ``last_response``, which its own ``DataEntry`` model must accept."""
    at = recent_ms(30)
    await write(emulator.device(), '{"x":1}', at)

    assert await call(sdk.data.get_data_entry, "Subscriber", IMSI, at) is None
    body = sdk.last_json()
    assert body["time"] == at
    assert body["content"] == '{"x":1}'
    entry = sdk.client.deserialize(sdk.client.last_response, (DataEntry,), True)
    assert (entry.time, entry.content, entry.content_type) == (at, '{"x":1}', "application/json")

    with pytest.raises(NotFoundException):
        await call(sdk.data.get_data_entry, "Subscriber", IMSI, at + 1)


async def test_sdk_deletes_an_entry(emulator: Emulator, sdk: Sdk) -> None:
    at = recent_ms(30)
    device = emulator.device()
    await write(device, '{"keep":false}', at)
    await write(device, '{"keep":true}', at + 1)

    assert await call(sdk.data.delete_data_entry, "Subscriber", IMSI, at) is None
    with pytest.raises(NotFoundException) as raised:
        await call(sdk.data.get_data_entry, "Subscriber", IMSI, at)
    assert raised.value.status == 404
    with pytest.raises(NotFoundException):
        await call(sdk.data.delete_data_entry, "Subscriber", IMSI, at)
    remaining = await call(sdk.subscribers.get_data_from_subscriber, IMSI)
    assert [e.content for e in remaining] == ['{"keep":true}']


async def test_sdk_lists_data_resource_metadata(emulator: Emulator, sdk: Sdk) -> None:
    await write(emulator.device(), '{"temp":21.5,"hum":40}')

    # soracom-api 0.0.2 knows the operation by its deprecated path only.
    [meta] = await call(sdk.data.list_data_source_resources)
    assert isinstance(meta, DataSourceResourceMetadata)
    assert (meta.resource_type, meta.resource_id) == ("Subscriber", IMSI)
    assert sorted(meta.attribute_names) == ["hum", "temp"]
    assert isinstance(meta.last_modified_time, int)

    # The current path, through the client's own machinery and model.
    [current] = await call(
        sdk.client.call_api,
        "/data/metadata/resources",
        "GET",
        query_params=[("resource_type", "Subscriber")],
        header_params={"Accept": "application/json"},
        response_type=([DataSourceResourceMetadata],),
        auth_settings=AUTH,
        _return_http_data_only=True,
        _check_type=True,
    )
    assert current.to_dict() == meta.to_dict()


async def test_sdk_reads_a_sim_by_its_legacy_resource_type(emulator: Emulator, sdk: Sdk) -> None:
    """The client's ``resource_type`` enum still says ``SubscriberIdentityModule`` for ``Sim``."""
    await write(emulator.device(), '{"v":1}')
    subscriber = await call(sdk.subscribers.get_subscriber, IMSI)

    [legacy] = await call(sdk.data.get_data_entries, "SubscriberIdentityModule", subscriber.sim_id)
    [by_sim] = await call(sdk.sims.get_data_from_sim, subscriber.sim_id)
    assert legacy.content == by_sim.content == '{"v":1}'


async def test_sdk_lists_and_gets_subscribers(emulator: Emulator, sdk: Sdk) -> None:
    second = await emulator.new_sim(tags={"name": "second"})

    subscribers = await call(sdk.subscribers.list_subscribers)
    assert [s.imsi for s in subscribers] == sorted([IMSI, second["imsi"]])

    page, _, headers = await call(
        sdk.subscribers.list_subscribers, limit=1, _return_http_data_only=False
    )
    assert [s.imsi for s in page] == [IMSI]
    assert headers.get("x-soracom-next-key") == IMSI
    [rest] = await call(sdk.subscribers.list_subscribers, limit=1, last_evaluated_key=IMSI)
    assert rest.imsi == second["imsi"]

    subscriber = await call(sdk.subscribers.get_subscriber, IMSI)
    assert subscriber.imsi == IMSI
    assert subscriber.tags["name"] == "default"
    assert isinstance(subscriber.group_id, str)
    assert isinstance(subscriber.session_status.online, bool)
    with pytest.raises(NotFoundException):
        await call(sdk.subscribers.get_subscriber, "001019999999999")


async def test_sdk_lists_and_gets_sims(sdk: Sdk) -> None:
    [sim] = await call(sdk.sims.list_sims)
    assert isinstance(sim, Sim)
    same = await call(sdk.sims.get_sim, sim.sim_id)
    assert same.sim_id == sim.sim_id


async def test_sdk_group_lifecycle(emulator: Emulator, sdk: Sdk) -> None:
    device = emulator.device()
    [default] = await call(sdk.groups.list_groups)
    assert default.configuration["SoracomHarvest"] == {"enabled": True}

    group = await call(sdk.groups.create_group, CreateGroupRequest(tags=TagSet(name="sensors")))
    assert isinstance(group.group_id, str)
    assert group.tags["name"] == "sensors"
    assert (await call(sdk.groups.get_group, group.group_id)).group_id == group.group_id
    assert len(await call(sdk.groups.list_groups)) == 2

    # The client types ``value`` as a string; a boolean needs its type check off.
    enabled = GroupConfigurationUpdateRequest(key="enabled", value=True, _check_type=False)
    updated = await call(
        sdk.groups.put_configuration_parameters, group.group_id, "SoracomHarvest", [enabled]
    )
    assert updated.configuration["SoracomHarvest"] == {"enabled": True}

    moved = await call(sdk.subscribers.set_group, IMSI, SetGroupRequest(group_id=group.group_id))
    assert moved.group_id == group.group_id
    await write(device, '{"in":"sensors"}')

    # The generated op declares one Group for what is an array of Sim; call it by hand.
    members = await call(
        sdk.client.call_api,
        "/groups/{group_id}/subscribers",
        "GET",
        path_params={"group_id": group.group_id},
        header_params={"Accept": "application/json"},
        response_type=([Sim],),
        auth_settings=AUTH,
        _return_http_data_only=True,
        _check_type=True,
    )
    assert [m.sim_id for m in members] == [moved.sim_id]

    alone = await call(sdk.subscribers.unset_group, IMSI)
    assert alone.get("group_id") is None
    status, _ = await device.send('{"in":"nothing"}')
    assert status == 400

    assert await call(sdk.groups.delete_group, group.group_id) is None
    with pytest.raises(NotFoundException):
        await call(sdk.groups.get_group, group.group_id)
    back = await call(sdk.subscribers.set_group, IMSI, SetGroupRequest(group_id=default.group_id))
    assert back.group_id == default.group_id


async def test_sdk_deletes_configuration(sdk: Sdk) -> None:
    group = await call(sdk.groups.create_group, CreateGroupRequest(tags=TagSet(name="cfg")))
    parameters = [
        GroupConfigurationUpdateRequest(key="enabled", value=True, _check_type=False),
        GroupConfigurationUpdateRequest(key="note", value="kept"),
    ]
    await call(
        sdk.groups.put_configuration_parameters, group.group_id, "SoracomHarvest", parameters
    )
    await call(sdk.groups.delete_configuration_parameter, group.group_id, "SoracomHarvest", "note")
    left = await call(sdk.groups.get_group, group.group_id)
    assert left.configuration["SoracomHarvest"] == {"enabled": True}
    await call(sdk.groups.delete_configuration_namespace, group.group_id, "SoracomHarvest")
    assert "SoracomHarvest" not in (await call(sdk.groups.get_group, group.group_id)).configuration
    with pytest.raises(ApiException) as raised:
        await call(sdk.groups.delete_configuration_namespace, group.group_id, "SoracomHarvest")
    assert raised.value.status == 400


# --- soracom-cli, re-enacted ---------------------------------------------------------------------


@pytest.fixture
async def cli(emulator: Emulator) -> AsyncIterator[SoracomCli]:
    """``SORACOM_ENDPOINT=<emulator> soracom ... --auth-key-id ... --auth-key ...``."""
    async with aiohttp.ClientSession() as session:
        yield SoracomCli(session, emulator.base_url, DEFAULT_KEY_ID, DEFAULT_KEY)


async def test_cli_authenticates_on_every_command(emulator: Emulator, cli: SoracomCli) -> None:
    await write(emulator.device(), '{"temp":1}')
    first = await cli.data_get(IMSI)
    second = await cli.data_get(IMSI)
    assert first == second
    assert [(s.method, s.target) for s in cli.sent] == [
        ("POST", "/v1/auth"),
        ("GET", f"/v1/subscribers/{IMSI}/data"),
        ("POST", "/v1/auth"),
        ("GET", f"/v1/subscribers/{IMSI}/data"),
    ]
    auth = cli.sent[0]
    assert auth.body == json.dumps(
        {"authKeyId": DEFAULT_KEY_ID, "authKey": DEFAULT_KEY}, separators=(",", ":")
    )
    assert "tokenTimeoutSeconds" not in auth.body
    assert auth.headers["Content-Type"] == "application/json"
    assert "X-Soracom-Token" not in auth.headers
    read = cli.sent[1]
    assert read.headers["User-Agent"] == f"soracom-cli/{CLI_VERSION}"
    assert read.headers["X-Soracom-Lang"] == "en"
    assert read.headers["X-Soracom-Api-Key"].startswith("api-")
    assert "Content-Type" not in read.headers
    assert {s.status for s in cli.sent} == {200}
    # Each command logged in afresh and its token worked.
    assert cli.sent[1].headers["X-Soracom-Token"] != cli.sent[3].headers["X-Soracom-Token"]


async def test_cli_data_get_after_a_device_write(emulator: Emulator, cli: SoracomCli) -> None:
    await write(emulator.device(), '{"temp":21.5}')
    [entry] = await cli.data_get(IMSI)
    assert entry["content"] == '{"temp":21.5}'
    assert entry["contentType"] == "application/json"
    assert isinstance(entry["time"], int)


async def test_cli_sends_only_flags_that_differ_from_defaults(
    emulator: Emulator, cli: SoracomCli
) -> None:
    device = emulator.device()
    base = recent_ms(60)
    for i in range(4):
        await write(device, f'{{"n":{i}}}', base + i)

    entries = await cli.data_get(IMSI, from_=base + 1, to=base + 3, sort="asc", limit=2)
    assert [e["time"] for e in entries] == [base + 1, base + 2]
    assert cli.sent[-1].target == (
        f"/v1/subscribers/{IMSI}/data?from={base + 1}&limit=2&sort=asc&to={base + 3}"
    )


async def test_cli_fetch_all_follows_x_soracom_next_key(
    emulator: Emulator, cli: SoracomCli
) -> None:
    device = emulator.device()
    base = recent_ms(60)
    for i in range(5):
        await write(device, f'{{"n":{i}}}', base + i)

    entries = await cli.data_get(IMSI, limit=2, fetch_all=True)
    assert [e["time"] for e in entries] == [base + i for i in (4, 3, 2, 1, 0)]
    reads = cli.sent[1:]
    assert [s.target for s in reads] == [
        f"/v1/subscribers/{IMSI}/data?limit=2",
        f"/v1/subscribers/{IMSI}/data?last_evaluated_key={base + 3}_{IMSI}&limit=2",
        f"/v1/subscribers/{IMSI}/data?last_evaluated_key={base + 1}_{IMSI}&limit=2",
    ]
    assert "x-soracom-next-key" not in reads[-1].response_headers

    ascending = await cli.data_get_entries("Subscriber", IMSI, sort="asc", limit=3, fetch_all=True)
    assert [e["time"] for e in ascending] == [base + i for i in range(5)]


async def test_cli_fetch_all_on_subscribers_groups_and_metadata(
    emulator: Emulator, cli: SoracomCli
) -> None:
    sims = [await emulator.new_sim() for _ in range(2)]
    for sim in sims:
        await write(emulator.device(sim["sessionAddress"]), '{"a":1}')
    await write(emulator.device(), '{"a":1}')
    for name in ("g1", "g2"):
        await cli.groups_create(json.dumps({"tags": {"name": name}}))

    subscribers = await cli.subscribers_list(limit=1, fetch_all=True)
    assert [s["imsi"] for s in subscribers] == sorted([IMSI] + [s["imsi"] for s in sims])
    groups = await cli.groups_list(limit=1, fetch_all=True)
    assert len(groups) == 3
    assert len({g["groupId"] for g in groups}) == 3
    metadata = await cli.data_list_resource_metadata(limit=1, fetch_all=True)
    assert sorted(m["resourceId"] for m in metadata) == sorted([IMSI] + [s["imsi"] for s in sims])


async def test_cli_get_and_delete_an_entry(emulator: Emulator, cli: SoracomCli) -> None:
    at = recent_ms(30)
    await write(emulator.device(), '{"x":1}', at)

    entry = await cli.data_get_entry("Subscriber", IMSI, at)
    assert (entry["time"], entry["content"]) == (at, '{"x":1}')
    assert await cli.data_delete_entry("Subscriber", IMSI, at) is None  # 204, nothing printed
    with pytest.raises(CliError) as raised:
        await cli.data_get_entry("Subscriber", IMSI, at)
    assert raised.value.status == 404
    assert set(raised.value.json) >= {"code", "message"}
    assert await cli.data_get(IMSI) == []


async def test_cli_group_flow(emulator: Emulator, cli: SoracomCli) -> None:
    device = emulator.device()
    group = await cli.groups_create('{"tags":{"name":"cli"}}')
    assert group["tags"] == {"name": "cli"}
    updated = await cli.groups_put_config(
        group["groupId"], "SoracomHarvest", '[{"key":"enabled","value":true}]'
    )
    assert updated["configuration"]["SoracomHarvest"] == {"enabled": True}
    assert (await cli.groups_get(group["groupId"]))["configuration"] == updated["configuration"]

    moved = await cli.subscribers_set_group(IMSI, group["groupId"])
    assert moved["groupId"] == group["groupId"]
    await write(device, '{"via":"cli"}')

    alone = await cli.subscribers_unset_group(IMSI)
    unset = cli.sent[-1]
    assert (unset.method, unset.body) == ("POST", "")
    assert "Content-Type" not in unset.headers
    assert "groupId" not in alone
    assert (await cli.subscribers_get(IMSI)).get("groupId") is None
    status, _ = await device.send('{"via":"nothing"}')
    assert status == 400

    assert await cli.groups_delete_config(group["groupId"], "SoracomHarvest", "enabled") is None
    assert (await cli.groups_get(group["groupId"]))["configuration"]["SoracomHarvest"] == {}
    assert await cli.groups_delete(group["groupId"]) is None


async def test_cli_errors_are_printed_verbatim_and_not_retried(
    emulator: Emulator, cli: SoracomCli
) -> None:
    """The CLI retries 429 and 5xx for minutes; typical mistakes must be plain 4xx."""
    with pytest.raises(CliError) as raised:
        await cli.groups_get("no-such-group")
    assert raised.value.status == 404
    assert raised.value.json["code"]
    with pytest.raises(CliError) as raised:
        await cli.groups_put_config("no-such-group", "SoracomHarvest", "[]")
    assert raised.value.status == 404
    with pytest.raises(CliError) as raised:
        await cli.data_get(IMSI, sort="sideways")
    assert raised.value.status == 400

    async with aiohttp.ClientSession() as session:
        stranger = SoracomCli(session, emulator.base_url, DEFAULT_KEY_ID, "wrong")
        with pytest.raises(CliError) as raised:
            await stranger.data_get(IMSI)
    assert raised.value.status == 401
    assert raised.value.json["code"] == "AUM0002"
    assert [s.target for s in stranger.sent] == ["/v1/auth"]


async def test_go_request_targets_end_in_a_bare_question_mark(emulator: Emulator) -> None:
    """Go's ``constructURL`` appends ``?`` even to an empty query: ``POST /v1/auth?``."""
    url = URL(emulator.base_url)
    assert url.host is not None
    assert url.port is not None
    host = f"Host: {url.host}:{url.port}"
    await write(emulator.device(), '{"raw":true}')
    body = json.dumps(
        {"authKeyId": DEFAULT_KEY_ID, "authKey": DEFAULT_KEY}, separators=(",", ":")
    ).encode()
    status, _, payload = await raw_http(
        url.host,
        url.port,
        [
            go_request_line("POST", "/auth", {}),
            host,
            f"User-Agent: soracom-cli/{CLI_VERSION}",
            f"Content-Length: {len(body)}",
            "Content-Type: application/json",
            "X-Soracom-Lang: en",
            "Accept-Encoding: gzip",
        ],
        body,
    )
    assert status == 200, payload
    auth = json.loads(payload)

    status, _, payload = await raw_http(
        url.host,
        url.port,
        [
            go_request_line("GET", f"/subscribers/{IMSI}/data", {}),
            host,
            f"User-Agent: soracom-cli/{CLI_VERSION}",
            f"X-Soracom-Api-Key: {auth['apiKey']}",
            f"X-Soracom-Token: {auth['token']}",
            "X-Soracom-Lang: en",
            "Accept-Encoding: gzip",
        ],
    )
    assert status == 200, payload
    [entry] = json.loads(payload)
    assert entry["content"] == '{"raw":true}'


# --- soracom-sdk-go's link header ----------------------------------------------------------------


async def follow_link(api: ApiClient, path: str, **params: Any) -> None:
    """Page through ``path``: the sdk-go parse of ``link`` must give ``x-soracom-next-key``, and
    the link's URL, fetched as it is, must give the same next page as the key."""
    reply = await api.get(path, **params)
    assert reply.status == 200, reply.raw
    pages = 1
    while reply.next_key is not None:
        link = reply.headers.get("link", "")
        keys = parse_link_header(link)
        assert keys is not None, link
        assert keys.next == reply.next_key
        assert keys.prev == ""
        by_key = await api.get(path, **params, last_evaluated_key=reply.next_key)
        target = URL(link.split(";")[0].strip("<>"), encoded=True)
        headers = {"X-Soracom-API-Key": api.api_key or "", "X-Soracom-Token": api.token or ""}
        async with api.session.get(target, headers=headers) as response:
            assert response.status == 200
            assert await response.json() == by_key.json
        reply = by_key
        pages += 1
    assert "link" not in reply.headers
    assert pages > 1


async def test_sdk_go_parses_the_link_header(emulator: Emulator) -> None:
    device = emulator.device()
    base = recent_ms(60)
    for i in range(3):
        await write(device, f'{{"n":{i}}}', base + i)
    sims = [await emulator.new_sim() for _ in range(2)]
    await write(emulator.device(sims[0]["sessionAddress"]), '{"n":9}')
    api = await emulator.api()
    for name in ("a", "b"):
        reply = await api.call("POST", "/v1/groups", json_body={"tags": {"name": name}})
        assert reply.status == 201

    await follow_link(api, f"/v1/subscribers/{IMSI}/data", limit=1, sort="asc")
    await follow_link(api, "/v1/data/Subscriber/" + IMSI, limit=2)
    await follow_link(api, "/v1/data/metadata/resources", limit=1)
    await follow_link(api, "/v1/subscribers", limit=1, status_filter="ready|active")
    await follow_link(api, "/v1/groups", limit=1)


async def test_sdk_go_parses_a_link_whose_query_has_a_comma(emulator: Emulator) -> None:
    for _ in range(2):
        await emulator.new_sim(tags={"place": "a,b"})
    api = await emulator.api()
    reply = await api.get("/v1/subscribers", tag_name="place", tag_value="a,b", limit=1)
    assert reply.next_key is not None
    keys = parse_link_header(reply.headers.get("link", ""))
    assert keys is not None
    assert keys.next == reply.next_key


def test_sdk_go_parse_matches_rel_next_unquoted_only() -> None:
    url = "http://h/v1/groups?limit=1&last_evaluated_key=k1"
    assert parse_link_header(f"<{url}>; rel=next") == parse_link_header(f"<{url}>;rel=next")
    keys = parse_link_header(f"<{url}>; rel=next")
    assert keys is not None
    assert keys.next == "k1"
    quoted = parse_link_header(f'<{url}>; rel="next"')
    assert quoted is not None
    assert quoted.next == ""
    assert parse_link_header("") is None
