"""Harvest Data reads and deletes through ``/v1`` (spec A2, A4, B7; notes real-service.md 3.1, 3.2).

The clock is frozen at ``NOW`` and entries are written at chosen times with
``X-Soracom-Timestamp``, so every time below is exact.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from harvest import errors
from tests.conftest import Emulator
from tests.harvest.api_helpers import (
    DEFAULT_IMSI,
    NOW,
    RETENTION_MS,
    advance,
    expect_error,
    set_clock,
    sim_id_of,
    times,
    write,
)
from tests.support.clients import ApiClient, Reply

INT64_MAX = 2**63 - 1
OTHER_TYPES = ("LoraDevice", "SigfoxDevice", "Device", "SoraCam")

#: The same reads against both stores: SQLite (the default) and ``memory = true``.
STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("memory", id="memory", marks=pytest.mark.settings(memory=True)),
]


async def check_store(emulator: Emulator, kind: str) -> None:
    """The emulator runs the store the test asked for (the settings marker took effect)."""
    status, health = await emulator.control("GET", "/health")
    assert status == 200
    assert health["store"] == kind


@pytest.fixture
async def api(emulator: Emulator) -> ApiClient:
    """The default operator, with the emulator clock frozen at ``NOW``."""
    await set_clock(emulator, NOW)
    return await emulator.api()


@pytest.fixture
async def sim_id(api: ApiClient) -> str:
    return await sim_id_of(api, DEFAULT_IMSI)


async def write_at(emulator: Emulator, *moments: int) -> None:
    """One JSON entry per moment; its content names its time."""
    for moment in moments:
        await write(emulator, json.dumps({"t": moment}), at=moment)


def readers(imsi: str, sim_id: str) -> dict[str, str]:
    """Every list path that reads the default SIM's data, by name."""
    return {
        "data-subscriber": f"/v1/data/Subscriber/{imsi}",
        "subscriber-data": f"/v1/subscribers/{imsi}/data",
        "data-sim": f"/v1/data/Sim/{sim_id}",
        "sim-data": f"/v1/sims/{sim_id}/data",
    }


READERS = ["data-subscriber", "subscriber-data", "data-sim", "sim-data"]


async def read(api: ApiClient, path: str, **params: Any) -> list[dict[str, Any]]:
    reply = await api.get(path, **params)
    assert reply.status == 200, reply.raw
    assert isinstance(reply.json, list)
    return list(reply.json)


# --- what is read, and as what ---------------------------------------------------------------
async def test_subscriber_reads_present_entries_under_the_imsi(
    emulator: Emulator, api: ApiClient
) -> None:
    await write(emulator, '{"temp":21.5}', at=NOW - 5_000)
    await write(emulator, "hello", at=NOW - 4_000, content_type="text/plain")
    for path in (f"/v1/data/Subscriber/{DEFAULT_IMSI}", f"/v1/subscribers/{DEFAULT_IMSI}/data"):
        assert await read(api, path) == [
            {
                "time": NOW - 4_000,
                "contentType": "text/plain",
                "content": "hello",
                "resourceType": "Subscriber",
                "resourceId": DEFAULT_IMSI,
            },
            {
                "time": NOW - 5_000,
                "contentType": "application/json",
                "content": '{"temp":21.5}',
                "resourceType": "Subscriber",
                "resourceId": DEFAULT_IMSI,
            },
        ]


@pytest.mark.parametrize("resource_type", ["Sim", "SubscriberIdentityModule"])
async def test_sim_reads_present_the_same_entries_under_the_sim_id(
    emulator: Emulator, api: ApiClient, sim_id: str, resource_type: str
) -> None:
    assert sim_id != DEFAULT_IMSI
    await write_at(emulator, NOW - 2_000, NOW - 1_000)
    by_subscriber = await read(api, f"/v1/data/Subscriber/{DEFAULT_IMSI}")
    for path in (f"/v1/data/{resource_type}/{sim_id}", f"/v1/sims/{sim_id}/data"):
        by_sim = await read(api, path)
        assert times(by_sim) == [NOW - 1_000, NOW - 2_000]
        assert {(e["resourceType"], e["resourceId"]) for e in by_sim} == {("Sim", sim_id)}
        assert [(e["time"], e["content"]) for e in by_sim] == [
            (e["time"], e["content"]) for e in by_subscriber
        ]


@pytest.mark.parametrize(
    ("path", "why"),
    [
        pytest.param("/v1/data/Sim/{imsi}", "a Sim is named by its simId", id="sim-by-imsi"),
        pytest.param("/v1/sims/{imsi}/data", "a Sim is named by its simId", id="sims-by-imsi"),
        pytest.param("/v1/data/Subscriber/{sim_id}", "by IMSI", id="subscriber-by-sim-id"),
        pytest.param("/v1/data/Sim/8900999999999999999", "unknown", id="unknown-sim"),
        pytest.param("/v1/data/Subscriber/999999999999999", "unknown", id="unknown-imsi"),
        *(
            pytest.param(f"/v1/data/{kind}/{{imsi}}", "other type", id=f"{kind}-by-imsi")
            for kind in OTHER_TYPES
        ),
        pytest.param("/v1/devices/{imsi}/data", "other type", id="devices"),
        pytest.param("/v1/lora_devices/{imsi}/data", "other type", id="lora-devices"),
        pytest.param("/v1/sigfox_devices/{imsi}/data", "other type", id="sigfox-devices"),
    ],
)
async def test_other_resources_read_as_an_empty_list(
    emulator: Emulator, api: ApiClient, sim_id: str, path: str, why: str
) -> None:
    await write_at(emulator, NOW - 1_000)
    reply = await api.get(path.format(imsi=DEFAULT_IMSI, sim_id=sim_id), **{"from": 0})
    assert (reply.status, reply.json) == (200, []), why
    assert reply.next_key is None


async def test_an_unknown_resource_type_is_400(api: ApiClient) -> None:
    reply = await api.get(f"/v1/data/Modem/{DEFAULT_IMSI}")
    expect_error(reply, errors.INVALID_PARAMETER, "resource_type", "Modem")


# --- one entry: GET and DELETE ---------------------------------------------------------------
async def test_get_one_entry_by_subscriber_and_by_sim(
    emulator: Emulator, api: ApiClient, sim_id: str
) -> None:
    await write(emulator, '{"a":1}', at=NOW - 1_234)
    reply = await api.get(f"/v1/data/Subscriber/{DEFAULT_IMSI}/{NOW - 1_234}")
    assert reply.status == 200
    assert reply.json == {
        "time": NOW - 1_234,
        "contentType": "application/json",
        "content": '{"a":1}',
        "resourceType": "Subscriber",
        "resourceId": DEFAULT_IMSI,
    }
    reply = await api.get(f"/v1/data/Sim/{sim_id}/{NOW - 1_234}")
    assert reply.status == 200
    assert (reply.json["resourceType"], reply.json["resourceId"]) == ("Sim", sim_id)
    assert reply.json["content"] == '{"a":1}'


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/v1/data/Subscriber/{imsi}/{missing}", id="no-entry-at-that-time"),
        pytest.param("/v1/data/Subscriber/999999999999999/{time}", id="unknown-imsi"),
        pytest.param("/v1/data/Sim/{imsi}/{time}", id="sim-by-imsi"),
        pytest.param("/v1/data/Sim/8900999999999999999/{time}", id="unknown-sim"),
        *(pytest.param(f"/v1/data/{k}/{{imsi}}/{{time}}", id=k) for k in OTHER_TYPES),
    ],
)
async def test_no_such_entry_is_404(emulator: Emulator, api: ApiClient, path: str) -> None:
    await write_at(emulator, NOW - 1_000)
    concrete = path.format(imsi=DEFAULT_IMSI, time=NOW - 1_000, missing=NOW - 999)
    for method in ("GET", "DELETE"):
        expect_error(await api.call(method, concrete), errors.NO_SUCH_ENTRY)
    # The entry itself is still there.
    assert times(await read(api, f"/v1/subscribers/{DEFAULT_IMSI}/data")) == [NOW - 1_000]


@pytest.mark.parametrize(
    "time",
    [
        pytest.param("soon", id="word"),
        pytest.param("-5", id="negative"),
        pytest.param("1.5", id="fraction"),
        pytest.param("1e3", id="exponent"),
        pytest.param("1_000", id="underscore"),
        pytest.param("+1000", id="plus"),
        pytest.param("%EF%BC%91", id="fullwidth-digit"),
        pytest.param(str(INT64_MAX + 1), id="beyond-int64"),
        pytest.param(str(10**30), id="huge"),
    ],
)
async def test_a_time_that_is_not_a_unix_ms_is_400(
    emulator: Emulator, api: ApiClient, time: str
) -> None:
    await write_at(emulator, NOW - 1_000)
    for method in ("GET", "DELETE"):
        reply = await api.call(method, f"/v1/data/Subscriber/{DEFAULT_IMSI}/{time}")
        expect_error(reply, errors.INVALID_PARAMETER, "'time'")
    path = f"/v1/subscribers/{DEFAULT_IMSI}/data"
    assert times(await read(api, path, **{"from": 0})) == [NOW - 1_000]


@pytest.mark.parametrize("store", STORES)
async def test_the_largest_time_is_readable(emulator: Emulator, api: ApiClient, store: str) -> None:
    await check_store(emulator, store)
    await write(emulator, '{"end":1}', at=INT64_MAX)
    reply = await api.get(f"/v1/data/Subscriber/{DEFAULT_IMSI}/{INT64_MAX}")
    assert (reply.status, reply.json["time"]) == (200, INT64_MAX)
    everything = {"from": 0, "to": INT64_MAX}
    path = f"/v1/subscribers/{DEFAULT_IMSI}/data"
    assert times(await read(api, path, **everything)) == [INT64_MAX]
    assert times(await read(api, path, **everything, sort="asc")) == [INT64_MAX]
    key = f"{INT64_MAX}_{DEFAULT_IMSI}"
    for sort in ("asc", "desc"):
        assert await read(api, path, **everything, sort=sort, last_evaluated_key=key) == []


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("view", ["Subscriber", "Sim"])
async def test_delete_one_entry_really_deletes_it(
    emulator: Emulator, api: ApiClient, sim_id: str, view: str, store: str
) -> None:
    await check_store(emulator, store)
    await write_at(emulator, NOW - 3_000, NOW - 2_000, NOW - 1_000)
    resource_id = DEFAULT_IMSI if view == "Subscriber" else sim_id
    target = f"/v1/data/{view}/{resource_id}/{NOW - 2_000}"
    reply = await api.call("DELETE", target)
    assert (reply.status, reply.raw) == (204, b"")
    expect_error(await api.get(target), errors.NO_SUCH_ENTRY)
    expect_error(await api.call("DELETE", target), errors.NO_SUCH_ENTRY)
    remaining = [NOW - 1_000, NOW - 3_000]
    for path in readers(DEFAULT_IMSI, sim_id).values():
        assert times(await read(api, path)) == remaining


# --- parameter validation --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "names"),
    [
        pytest.param({"limit": 0}, ["'limit'", "1", "1000"], id="limit-0"),
        pytest.param({"limit": 1001}, ["'limit'", "1000"], id="limit-1001"),
        pytest.param({"limit": "abc"}, ["'limit'", "abc"], id="limit-abc"),
        pytest.param({"limit": -1}, ["'limit'"], id="limit-negative"),
        pytest.param({"limit": "1_0"}, ["'limit'"], id="limit-underscore"),
        pytest.param({"limit": "10.0"}, ["'limit'"], id="limit-float"),
        pytest.param({"sort": "up"}, ["'sort'", "asc", "desc"], id="sort-up"),
        pytest.param({"sort": "ASC"}, ["'sort'"], id="sort-upper-case"),
        pytest.param({"from": 2000, "to": 1000}, ["'from'", "'to'"], id="from-after-to"),
        pytest.param({"from": "yesterday"}, ["'from'"], id="from-word"),
        pytest.param({"to": "1.5"}, ["'to'"], id="to-fraction"),
        pytest.param({"from": -1}, ["'from'"], id="from-negative"),
        pytest.param({"to": str(10**30)}, ["'to'"], id="to-huge"),
        pytest.param({"from": str(INT64_MAX + 1)}, ["'from'"], id="from-beyond-int64"),
        pytest.param({"last_evaluated_key": "garbage"}, ["last_evaluated_key"], id="key-garbage"),
        pytest.param({"last_evaluated_key": "-5_x"}, ["last_evaluated_key"], id="key-negative"),
        pytest.param({"last_evaluated_key": "²"}, ["last_evaluated_key"], id="key-superscript"),
        pytest.param(
            {"last_evaluated_key": str(10**30)}, ["last_evaluated_key"], id="key-beyond-int64"
        ),
    ],
)
async def test_bad_read_parameters_are_400_naming_the_parameter(
    emulator: Emulator, api: ApiClient, sim_id: str, params: dict[str, Any], names: list[str]
) -> None:
    await write_at(emulator, NOW - 1_000)
    for path in readers(DEFAULT_IMSI, sim_id).values():
        expect_error(await api.get(path, **params), errors.INVALID_PARAMETER, *names)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/v1/data/Sim/8900999999999999999", id="unknown-sim"),
        pytest.param("/v1/data/Device/nothing", id="device"),
    ],
)
async def test_parameters_are_checked_even_when_the_answer_would_be_empty(
    api: ApiClient, path: str
) -> None:
    for params in ({"limit": 0}, {"sort": "x"}, {"last_evaluated_key": "garbage"}):
        expect_error(await api.get(path, **params), errors.INVALID_PARAMETER)


async def test_limits_at_the_edges_are_accepted(emulator: Emulator, api: ApiClient) -> None:
    await write_at(emulator, NOW - 2_000, NOW - 1_000)
    path = f"/v1/subscribers/{DEFAULT_IMSI}/data"
    assert times(await read(api, path, limit=1)) == [NOW - 1_000]
    assert times(await read(api, path, limit=1000)) == [NOW - 1_000, NOW - 2_000]


# --- window and order ------------------------------------------------------------------------
async def test_the_default_limit_is_10_newest_first(emulator: Emulator, api: ApiClient) -> None:
    moments = [NOW - i * 1_000 for i in range(12, 0, -1)]
    await write_at(emulator, *moments)
    reply = await api.get(f"/v1/subscribers/{DEFAULT_IMSI}/data")
    assert reply.status == 200
    assert times(reply.json) == sorted(moments, reverse=True)[:10]
    assert reply.next_key is not None


@pytest.mark.parametrize(
    ("sort", "descending"),
    [pytest.param(None, True, id="default"), ("desc", True), ("asc", False)],
)
async def test_sort_orders_by_time(
    emulator: Emulator, api: ApiClient, sim_id: str, sort: str | None, descending: bool
) -> None:
    # Written out of order: the order is the entries' time, not the order of writing.
    moments = [NOW - 3_000, NOW - 1_000, NOW - 5_000, NOW - 2_000, NOW - 4_000]
    await write_at(emulator, *moments)
    params = {} if sort is None else {"sort": sort}
    for path in readers(DEFAULT_IMSI, sim_id).values():
        assert times(await read(api, path, **params)) == sorted(moments, reverse=descending)


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("reader", READERS)
async def test_from_and_to_are_inclusive(
    emulator: Emulator, api: ApiClient, sim_id: str, reader: str, store: str
) -> None:
    await check_store(emulator, store)
    moments = [NOW - i * 1_000 for i in range(1, 6)]
    await write_at(emulator, *moments)
    path = readers(DEFAULT_IMSI, sim_id)[reader]
    assert times(await read(api, path, **{"from": NOW - 4_000, "to": NOW - 2_000})) == [
        NOW - 2_000,
        NOW - 3_000,
        NOW - 4_000,
    ]
    assert times(await read(api, path, **{"from": NOW - 3_000, "to": NOW - 3_000})) == [NOW - 3_000]
    assert await read(api, path, **{"from": NOW - 2_999, "to": NOW - 2_001}) == []
    assert times(await read(api, path, **{"from": NOW - 2_000})) == [NOW - 1_000, NOW - 2_000]
    assert times(await read(api, path, to=NOW - 4_000)) == [NOW - 4_000, NOW - 5_000]


async def test_without_from_reads_start_40_days_before_now(
    emulator: Emulator, api: ApiClient
) -> None:
    start = NOW - RETENTION_MS
    await write_at(emulator, start - 1, start, NOW - 1_000)
    path = f"/v1/subscribers/{DEFAULT_IMSI}/data"
    assert times(await read(api, path)) == [NOW - 1_000, start]
    # An explicit from reaches no further back: older entries are past retention (issue 4).
    assert times(await read(api, path, **{"from": 0})) == [NOW - 1_000, start]
    # The window follows the emulator clock.
    await advance(emulator, 1)
    assert times(await read(api, path)) == [NOW - 1_000]


async def test_without_to_reads_end_now(emulator: Emulator, api: ApiClient) -> None:
    await write_at(emulator, NOW, NOW + 1)
    path = f"/v1/subscribers/{DEFAULT_IMSI}/data"
    assert times(await read(api, path)) == [NOW]
    assert times(await read(api, path, to=NOW + 1)) == [NOW + 1, NOW]
    await advance(emulator, 0.001)
    assert times(await read(api, path)) == [NOW + 1, NOW]


async def test_a_write_without_a_timestamp_is_at_the_emulator_clock(
    emulator: Emulator, api: ApiClient
) -> None:
    await write(emulator, '{"a":1}')
    await advance(emulator, 2.5)
    await write(emulator, '{"a":2}')
    path = f"/v1/subscribers/{DEFAULT_IMSI}/data"
    assert times(await read(api, path)) == [NOW + 2_500, NOW]


# --- paging ----------------------------------------------------------------------------------
def link_url(reply: Reply) -> str:
    """The URL of ``link: <url>; rel=next`` (unquoted ``next``, notes section 3.1)."""
    link = reply.headers["link"]
    target, _, rel = link.partition(";")
    assert rel.strip() == "rel=next", link
    assert target.startswith("<"), link
    assert target.endswith(">"), link
    return target[1:-1]


async def walk(
    api: ApiClient, path: str, params: dict[str, Any]
) -> tuple[list[list[int]], list[Reply]]:
    """Follow ``x-soracom-next-key`` from the first page to the last."""
    pages: list[list[int]] = []
    replies: list[Reply] = []
    params = dict(params)
    while True:
        reply = await api.get(path, **params)
        assert reply.status == 200, reply.raw
        pages.append(times(reply.json))
        replies.append(reply)
        if reply.next_key is None:
            assert "link" not in reply.headers
            return pages, replies
        assert len(pages) < 100, "paging does not end"
        params["last_evaluated_key"] = reply.next_key


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("sort", ["desc", "asc"])
async def test_following_next_keys_visits_every_entry_once_in_order(
    emulator: Emulator, api: ApiClient, sim_id: str, reader: str, sort: str, store: str
) -> None:
    await check_store(emulator, store)
    moments = [NOW - i * 1_000 for i in range(25, 0, -1)]
    await write_at(emulator, *moments)
    pages, replies = await walk(
        api, readers(DEFAULT_IMSI, sim_id)[reader], {"limit": 7, "sort": sort}
    )
    assert [len(p) for p in pages] == [7, 7, 7, 4]
    assert [t for p in pages for t in p] == sorted(moments, reverse=sort == "desc")
    shown_id = sim_id if "sim" in reader.split("-") else DEFAULT_IMSI
    for page, reply in zip(pages, replies[:-1], strict=False):
        # SORACOM's key for a SIM's data is "<ms>_<id>" of the page's last entry.
        assert reply.next_key == f"{page[-1]}_{shown_id}"


async def test_a_full_last_page_carries_no_next_key(emulator: Emulator, api: ApiClient) -> None:
    await write_at(emulator, *(NOW - i * 1_000 for i in range(1, 15)))
    pages, _ = await walk(api, f"/v1/subscribers/{DEFAULT_IMSI}/data", {"limit": 7})
    assert [len(p) for p in pages] == [7, 7]


async def test_paging_keeps_the_time_window(emulator: Emulator, api: ApiClient) -> None:
    moments = [NOW - i * 1_000 for i in range(1, 21)]
    await write_at(emulator, *moments)
    window = {"from": NOW - 15_000, "to": NOW - 5_000, "limit": 4, "sort": "asc"}
    pages, _ = await walk(api, f"/v1/data/Subscriber/{DEFAULT_IMSI}", window)
    assert [t for p in pages for t in p] == [NOW - i * 1_000 for i in range(15, 4, -1)]
    assert [len(p) for p in pages] == [4, 4, 3]


@pytest.mark.parametrize("reader", READERS)
async def test_the_link_header_is_the_absolute_url_of_the_next_page(
    emulator: Emulator, api: ApiClient, sim_id: str, reader: str
) -> None:
    await write_at(emulator, *(NOW - i * 1_000 for i in range(1, 6)))
    path = readers(DEFAULT_IMSI, sim_id)[reader]
    first = await api.get(path, limit=2, sort="asc", **{"from": NOW - 10_000})
    url = link_url(first)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == api.base_url
    assert parts.path == path
    query = parse_qs(parts.query)
    assert query == {
        "limit": ["2"],
        "sort": ["asc"],
        "from": [str(NOW - 10_000)],
        "last_evaluated_key": [first.next_key],
    }
    # Following the link answers what following the key answers.
    async with api.session.get(
        url, headers={"X-Soracom-API-Key": api.api_key or "", "X-Soracom-Token": api.token or ""}
    ) as response:
        assert response.status == 200
        by_link = await response.json()
        assert first.next_key is not None
        shown_id = first.next_key.split("_", 1)[1]
        assert response.headers["x-soracom-next-key"] == f"{NOW - 2_000}_{shown_id}"
    by_key = await read(
        api, path, limit=2, sort="asc", last_evaluated_key=first.next_key, **{"from": NOW - 10_000}
    )
    assert by_link == by_key
    assert times(by_key) == [NOW - 3_000, NOW - 2_000]


async def test_a_bare_millisecond_key_is_accepted(emulator: Emulator, api: ApiClient) -> None:
    await write_at(emulator, NOW - 3_000, NOW - 2_000, NOW - 1_000)
    path = f"/v1/subscribers/{DEFAULT_IMSI}/data"
    assert times(await read(api, path, last_evaluated_key=str(NOW - 2_000))) == [NOW - 3_000]
    assert times(await read(api, path, last_evaluated_key=str(NOW - 2_000), sort="asc")) == [
        NOW - 1_000
    ]


# --- resource metadata -----------------------------------------------------------------------
METADATA = [
    pytest.param("/v1/data/metadata/resources", id="metadata-resources"),
    pytest.param("/v1/data/resources", id="deprecated-resources"),
]


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("path", METADATA)
async def test_metadata_accumulates_attribute_names_and_the_last_write_time(
    emulator: Emulator, api: ApiClient, path: str, store: str
) -> None:
    await check_store(emulator, store)
    assert await read(api, path) == []
    await write(emulator, '{"temp":1,"hum":2}', at=NOW - 10_000)
    first = await read(api, path)
    assert len(first) == 1
    assert sorted(first[0]["attributeNames"]) == ["hum", "temp"]
    assert first[0]["lastModifiedTime"] == NOW
    written = await advance(emulator, 5)
    # An older entry time still moves lastModifiedTime: it is when data last arrived.
    await write(emulator, '{"temp":3,"co2":4}', at=NOW - 20_000)
    await write(emulator, "plain text", at=NOW - 30_000, content_type="text/plain")
    await write(emulator, "[1,2]", at=NOW - 40_000)
    [meta] = await read(api, path)
    assert meta["resourceType"] == "Subscriber"
    assert meta["resourceId"] == DEFAULT_IMSI
    assert sorted(meta["attributeNames"]) == ["co2", "hum", "temp"]
    assert meta["lastModifiedTime"] == written


async def new_sims_with_data(emulator: Emulator, count: int) -> list[str]:
    """``count`` more SIMs of the default operator, each with one entry; answers all IMSIs."""
    imsis = [DEFAULT_IMSI]
    await write(emulator, '{"a":0}', at=NOW - 1_000)
    for i in range(count):
        sim = await emulator.new_sim()
        await write(emulator, f'{{"k{i}":1}}', at=NOW - 1_000, address=sim["sessionAddress"])
        imsis.append(sim["imsi"])
    return sorted(imsis)


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("path", METADATA)
async def test_metadata_pages_by_resource_and_filters_by_type(
    emulator: Emulator, api: ApiClient, path: str, store: str
) -> None:
    await check_store(emulator, store)
    imsis = await new_sims_with_data(emulator, 4)
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        reply = await api.get(path, **params)
        assert reply.status == 200
        seen.extend(m["resourceId"] for m in reply.json)
        if reply.next_key is None:
            assert "link" not in reply.headers
            break
        query = parse_qs(urlsplit(link_url(reply)).query)
        assert query == {"limit": ["2"], "last_evaluated_key": [reply.next_key]}
        params["last_evaluated_key"] = reply.next_key
    assert seen == imsis
    assert [m["resourceId"] for m in await read(api, path, resource_type="Subscriber")] == imsis[
        :10
    ]
    assert await read(api, path, resource_type="Sim") == []
    assert await read(api, path, resource_type="Device") == []


@pytest.mark.parametrize("path", METADATA)
@pytest.mark.parametrize(
    ("params", "name"),
    [
        pytest.param({"resource_type": "Modem"}, "resource_type", id="bad-resource-type"),
        pytest.param({"limit": 0}, "limit", id="limit-0"),
        pytest.param({"limit": "abc"}, "limit", id="limit-abc"),
        pytest.param({"last_evaluated_key": "garbage"}, "last_evaluated_key", id="key-garbage"),
    ],
)
async def test_metadata_refuses_bad_parameters(
    emulator: Emulator, api: ApiClient, path: str, params: dict[str, Any], name: str
) -> None:
    await write_at(emulator, NOW - 1_000)
    expect_error(await api.get(path, **params), errors.INVALID_PARAMETER, name)


async def test_metadata_default_limit_is_10(emulator: Emulator, api: ApiClient) -> None:
    imsis = await new_sims_with_data(emulator, 11)
    reply = await api.get("/v1/data/metadata/resources")
    assert [m["resourceId"] for m in reply.json] == imsis[:10]
    assert reply.next_key == f"Subscriber/{imsis[9]}"


# --- categories (no write path sets a category yet: the list is empty but validated) -----------
async def test_category_reads_are_validated_and_empty(emulator: Emulator, api: ApiClient) -> None:
    await write_at(emulator, NOW - 1_000)
    assert await read(api, "/v1/data/categories/weather", **{"from": 0}) == []
    for params in ({"limit": 0}, {"last_evaluated_key": "1_x"}, {"last_evaluated_key": "²_a_b"}):
        expect_error(
            await api.get("/v1/data/categories/weather", **params), errors.INVALID_PARAMETER
        )
    assert await read(api, "/v1/data/categories/weather", last_evaluated_key="1_Subscriber_x") == []
