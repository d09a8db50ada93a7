"""Harvest Data reads and deletes (SORACOM operationIds ``getDataEntries``, ``getDataEntry``,
``deleteDataEntry``, ``getDataFromSubscriber``, ``getDataFromSim``, ``getDataEntriesByCategory``,
``listDataResourceMetadata``, ``listDataSourceResources``).

A SIM's data is stored under its IMSI (``Subscriber``). Read through the ``Sim`` views it is the
same data presented under the SIM's id. Unknown resources, and other operators' resources, read
as an empty list (spec B7).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from harvest import errors
from harvest.api import views
from harvest.api.params import (
    LAST_EVALUATED_KEY,
    bad,
    choice_param,
    enum_param,
    enum_value,
    int_param,
    int_path,
    page,
    parse_int,
    query_value,
)
from harvest.context import CLOCK, QUOTAS, REGISTRY, STORE, TOKEN
from harvest.domain import DataEntry, ResourceType
from harvest.errors import HarvestError
from harvest.storage.base import CategoryQuery, DeleteEntry, EntryQuery
from harvest.web import Handler, json_response
from harvest.wire import INT64_MAX
from quotas.limits import PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, PAGE_LIMIT_MIN, retention_start

#: Older clients (``soracom-api`` 0.0.2) still name ``Sim`` by its legacy value.
_RESOURCE_ALIASES = {"SubscriberIdentityModule": ResourceType.SIM}


@dataclass(frozen=True, slots=True)
class Resource:
    """A resource as the caller named it, and where its entries are stored."""

    shown_type: ResourceType
    shown_id: str
    stored_type: ResourceType
    stored_id: str


def resolve_resource(
    request: web.Request, resource_type: ResourceType, resource_id: str
) -> Resource | None:
    """``None`` when the caller has no such resource (reads then answer an empty list)."""
    if resource_type is ResourceType.SIM:
        sim = request.config_dict[REGISTRY].sim_by_id(request[TOKEN].operator_id, resource_id)
        if sim is None:
            return None
        return Resource(ResourceType.SIM, resource_id, ResourceType.SUBSCRIBER, sim.imsi)
    return Resource(resource_type, resource_id, resource_type, resource_id)


def path_resource_type(request: web.Request) -> ResourceType:
    raw = request.match_info["resource_type"]
    return _RESOURCE_ALIASES.get(raw) or enum_value(ResourceType, raw, "resource_type")


@dataclass(frozen=True, slots=True)
class Window:
    from_ms: int
    to_ms: int
    ascending: bool
    limit: int
    after: str | None


def visible_from(request: web.Request) -> int:
    """The oldest entry time the caller may still see (its operator's retention)."""
    operator_id = request[TOKEN].operator_id
    days = request.config_dict[REGISTRY].retention_days(operator_id)
    return retention_start(request.config_dict[CLOCK].now_ms(), days)


def read_window(request: web.Request) -> Window:
    """``from``/``to``/``sort``/``limit``/``last_evaluated_key``, validated (spec A2, B7).

    ``from`` and ``to`` are inclusive UNIX milliseconds; ``to`` defaults to now and ``from`` to
    the start of retention. Entries past the operator's retention are invisible at once, even
    before the sweep deletes them: ``from`` never reaches back further than retention.
    """
    limit = int_param(
        request, "limit", default=PAGE_LIMIT_DEFAULT, minimum=PAGE_LIMIT_MIN, maximum=PAGE_LIMIT_MAX
    )
    sort = choice_param(request, "sort", ("desc", "asc"), "desc")
    given_from = int_param(request, "from", minimum=0, maximum=INT64_MAX)
    given_to = int_param(request, "to", minimum=0, maximum=INT64_MAX)
    if given_from is not None and given_to is not None and given_from > given_to:
        raise bad(f"'from' ({given_from}) must not be after 'to' ({given_to}).")
    now = request.config_dict[CLOCK].now_ms()
    oldest = visible_from(request)
    assert limit is not None
    return Window(
        from_ms=oldest if given_from is None else max(given_from, oldest),
        to_ms=now if given_to is None else given_to,
        ascending=sort == "asc",
        limit=limit,
        after=query_value(request, LAST_EVALUATED_KEY),
    )


def key_time(key: str) -> int:
    """The time in a paging key: ``<ms>`` or ``<ms>_<id>`` (notes section 3.1)."""
    value = parse_int(key.split("_", 1)[0])
    if value is None or not 0 <= value <= INT64_MAX:
        raise bad(f"'{LAST_EVALUATED_KEY}' {key!r} is not a key this API issued.")
    return value


async def _entries_page(request: web.Request, resource: Resource | None) -> web.Response:
    window = read_window(request)
    after = None if window.after is None else key_time(window.after)
    if resource is None or (after is not None and window.ascending and after >= window.to_ms):
        return page(request, [], None)
    rows = await request.config_dict[STORE].query_entries(
        EntryQuery(
            operator_id=request[TOKEN].operator_id,
            resource_type=resource.stored_type,
            resource_id=resource.stored_id,
            from_ms=window.from_ms,
            to_ms=window.to_ms,
            ascending=window.ascending,
            limit=window.limit + 1,  # one more tells whether a next page exists
            after=after,
        )
    )
    more = len(rows) > window.limit
    rows = rows[: window.limit]
    note_read(request, resource, rows)
    next_key = None
    if more:
        last = rows[-1].time
        next_key = (
            f"{last}_{resource.shown_id}"
            if resource.shown_type in (ResourceType.SUBSCRIBER, ResourceType.SIM)
            else str(last)
        )
    return page(
        request,
        [views.data_entry(e, resource.shown_type, resource.shown_id) for e in rows],
        next_key,
    )


def note_read(request: web.Request, resource: Resource, rows: list[DataEntry]) -> None:
    """Meter a read of a SIM's data (free, but in the ledger and the exported-bytes stat).

    Only a read of one of the caller's own SIMs is metered: a read of anything else (a SIM id
    where an IMSI belongs, another operator's IMSI, an unknown string) finds no data and
    costs nothing, and must not put a row in the ledger that no SIM owns.
    """
    if resource.stored_type is not ResourceType.SUBSCRIBER:
        return
    operator_id = request[TOKEN].operator_id
    if request.config_dict[REGISTRY].find_sim(operator_id, resource.stored_id) is None:
        return
    size = sum(len(entry.content.encode()) for entry in rows)
    request.config_dict[QUOTAS].note_read(operator_id, resource.stored_id, size)


async def get_data_entries(request: web.Request) -> web.Response:
    resource_type = path_resource_type(request)
    return await _entries_page(
        request, resolve_resource(request, resource_type, request.match_info["resource_id"])
    )


async def get_data_from_subscriber(request: web.Request) -> web.Response:
    return await _entries_page(
        request, resolve_resource(request, ResourceType.SUBSCRIBER, request.match_info["imsi"])
    )


async def get_data_from_sim(request: web.Request) -> web.Response:
    return await _entries_page(
        request, resolve_resource(request, ResourceType.SIM, request.match_info["sim_id"])
    )


def _device_reader(resource_type: ResourceType) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return await _entries_page(
            request, resolve_resource(request, resource_type, request.match_info["device_id"])
        )

    return handler


get_data_from_device = _device_reader(ResourceType.DEVICE)
get_data_from_lora_device = _device_reader(ResourceType.LORA_DEVICE)
get_data_from_sigfox_device = _device_reader(ResourceType.SIGFOX_DEVICE)


async def _one_entry(request: web.Request) -> tuple[Resource, int]:
    resource_type = path_resource_type(request)
    time = int_path(request, "time")
    resource = resolve_resource(request, resource_type, request.match_info["resource_id"])
    if resource is None or time < visible_from(request):
        raise HarvestError(errors.NO_SUCH_ENTRY)
    return resource, time


async def get_data_entry(request: web.Request) -> web.Response:
    resource, time = await _one_entry(request)
    entry = await request.config_dict[STORE].get_entry(
        request[TOKEN].operator_id, resource.stored_type, resource.stored_id, time
    )
    if entry is None:
        raise HarvestError(errors.NO_SUCH_ENTRY)
    note_read(request, resource, [entry])
    return json_response(views.data_entry(entry, resource.shown_type, resource.shown_id))


async def delete_data_entry(request: web.Request) -> web.Response:
    resource, time = await _one_entry(request)
    store = request.config_dict[STORE]
    operator_id = request[TOKEN].operator_id
    if await store.get_entry(operator_id, resource.stored_type, resource.stored_id, time) is None:
        raise HarvestError(errors.NO_SUCH_ENTRY)
    await store.apply([DeleteEntry(operator_id, resource.stored_type, resource.stored_id, time)])
    return web.Response(status=204)


async def get_data_entries_by_category(request: web.Request) -> web.Response:
    window = read_window(request)
    after: tuple[int, str, str] | None = None
    if window.after is not None:
        parts = window.after.split("_", 2)
        if len(parts) != 3:
            raise bad(f"'{LAST_EVALUATED_KEY}' {window.after!r} is not a key this API issued.")
        after = (key_time(window.after), parts[1], parts[2])
    rows = await request.config_dict[STORE].query_category(
        CategoryQuery(
            operator_id=request[TOKEN].operator_id,
            category=request.match_info["category"],
            from_ms=window.from_ms,
            to_ms=window.to_ms,
            ascending=window.ascending,
            limit=window.limit + 1,
            after=after,
        )
    )
    more = len(rows) > window.limit
    rows = rows[: window.limit]
    next_key = None
    if more:
        last = rows[-1]
        next_key = f"{last.time}_{last.resource_type.value}_{last.resource_id}"
    return page(request, [views.data_entry(e) for e in rows], next_key)


async def list_data_resource_metadata(request: web.Request) -> web.Response:
    """Resources that hold data, ordered by (type, id); key ``<type>/<id>``."""
    resource_type = enum_param(request, ResourceType, "resource_type")
    limit = int_param(
        request, "limit", default=PAGE_LIMIT_DEFAULT, minimum=PAGE_LIMIT_MIN, maximum=PAGE_LIMIT_MAX
    )
    assert limit is not None
    after: tuple[str, str] | None = None
    raw_key = query_value(request, LAST_EVALUATED_KEY)
    if raw_key is not None:
        kind, sep, ident = raw_key.partition("/")
        if not sep:
            raise bad(f"'{LAST_EVALUATED_KEY}' {raw_key!r} is not a key this API issued.")
        after = (kind, ident)
    rows = await request.config_dict[STORE].list_resources(
        request[TOKEN].operator_id, resource_type, limit + 1, after
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_key = f"{rows[-1].resource_type.value}/{rows[-1].resource_id}" if more else None
    return page(request, [views.resource_metadata(m) for m in rows], next_key)


#: The deprecated name of the same operation.
list_data_source_resources = list_data_resource_metadata
