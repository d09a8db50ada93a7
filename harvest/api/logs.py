"""Error logs (SORACOM operationId ``getLogs``): why devices' data was refused or not parsed."""

from __future__ import annotations

from aiohttp import web

from harvest.api.params import (
    LAST_EVALUATED_KEY,
    bad,
    int_param,
    optional_choice,
    page,
    parse_int,
    query_value,
)
from harvest.context import ERROR_LOG, TOKEN
from harvest.wire import INT64_MAX

#: OpenAPI ``getLogs`` enums.
SERVICES = ("Air", "Beam", "Funk", "Funnel", "Harvest", "Napter", "Orbit", "Unified")
RESOURCE_TYPES = ("Subscriber", "Device", "LoraDevice", "SigfoxDevice")
LOG_PAGE_MAX = 1000
LOG_PAGE_DEFAULT = 100


async def get_logs(request: web.Request) -> web.Response:
    """Newest first; ``from``/``to`` inclusive UNIX ms; the paging key is opaque."""
    service = optional_choice(request, "service", SERVICES)
    resource_type = optional_choice(request, "resource_type", RESOURCE_TYPES)
    resource_id = query_value(request, "resource_id")
    limit = int_param(request, "limit", default=LOG_PAGE_DEFAULT, minimum=1, maximum=LOG_PAGE_MAX)
    low = int_param(request, "from", default=0, minimum=0, maximum=INT64_MAX)
    high = int_param(request, "to", minimum=0, maximum=INT64_MAX)
    assert limit is not None
    assert low is not None
    if high is not None and low > high:
        raise bad(f"'from' ({low}) must not be after 'to' ({high}).")
    key = query_value(request, LAST_EVALUATED_KEY)
    before = None if key is None else parse_int(key)
    if key is not None and (before is None or not 0 <= before <= INT64_MAX):
        raise bad(f"'{LAST_EVALUATED_KEY}' {key!r} is not a key this API issued.")
    entries = request.config_dict[ERROR_LOG].query(
        request[TOKEN].operator_id,
        service=service,
        resource_type=resource_type,
        resource_id=resource_id,
        from_ms=low,
        to_ms=high,
        before=before,
        limit=limit + 1,
    )
    more = len(entries) > limit
    entries = entries[:limit]
    next_key = str(entries[-1].sequence) if more else None
    return page(request, [e.view() for e in entries], next_key)
