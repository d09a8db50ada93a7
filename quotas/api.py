"""Bills and Harvest stats on the ``/v1`` API (SORACOM operationIds ``getBillingHistory``,
``getLatestBilling``, ``getBilling``, ``getBillingPerDay``, ``getBillingSummaryOfBillItems``,
``getBillingSummaryOfSims``, ``getHarvestStats``, ``getHarvestExportedDataStats``).

Every figure comes from the usage ledger through :mod:`quotas.bills`; a month before the
emulator clock's month is closed, the current one is temporary.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date, datetime

from aiohttp import web

from harvest import errors
from harvest.api.auth import own_operator
from harvest.api.params import DATETIME_MAX_S, bad, int_param, optional_choice, query_value
from harvest.context import CLOCK, REGISTRY, STORE, TOKEN
from harvest.errors import HarvestError
from harvest.storage.base import UsageKind
from harvest.web import json_response
from quotas.bills import MonthBill, billing_history_to_wire, month_bill, month_is_closed
from quotas.calendar import FIVE_MINUTES_MS, LATEST_MS, five_minute_bucket, utc_day
from quotas.housekeeping import HOUSEKEEPING
from quotas.service import fee_usages, unavailable_days

#: Months of history the bills API looks back over (OpenAPI ``getBillingHistory``: 18 months).
HISTORY_MONTHS = 18
#: Months in the bill summaries (notes real-service.md section 6: four, newest first).
SUMMARY_MONTHS = 4
_YEAR_MONTH = re.compile(r"\A(\d{4})(0[1-9]|1[0-2])\Z")


def year_month(raw: str, name: str) -> tuple[int, int]:
    """``YYYYMM`` as (year, month), or 400 naming the parameter; the year is 0001 to 9999, the
    years a calendar date can have."""
    found = _YEAR_MONTH.match(raw)
    if found is None or found.group(1) == "0000":
        raise bad(f"'{name}' must be a month as YYYYMM (year 0001 to 9999), not {raw!r}.")
    return int(found.group(1)), int(found.group(2))


def _shift(year: int, month: int, back: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) - back
    return index // 12, index % 12 + 1


def _today(request: web.Request) -> date:
    return date.fromisoformat(utc_day(request.config_dict[CLOCK].now_ms()))


async def _flush(request: web.Request) -> None:
    await request.config_dict[HOUSEKEEPING].flush_reads()


async def bill(request: web.Request, year: int, month: int) -> MonthBill:
    """The caller's bill for one month, from the ledger (reads flushed first)."""
    await _flush(request)
    operator_id = request[TOKEN].operator_id
    first = f"{year:04d}-{month:02d}-01"
    rows = await request.config_dict[STORE].usage_rows(operator_id, first, first[:8] + "31")
    sim_ids = {s.imsi: s.sim_id for s in request.config_dict[REGISTRY].sims(operator_id)}
    closed = month_is_closed(year, month, today=_today(request))
    usages = fee_usages(rows, sim_ids)
    return month_bill(usages, year, month, closed=closed, unavailable_days=unavailable_days(rows))


async def _bill_of_path(request: web.Request) -> MonthBill:
    year, month = year_month(request.match_info["yyyyMM"], "yyyyMM")
    today = _today(request)
    if (year, month) > (today.year, today.month):
        raise HarvestError(errors.NOT_FOUND, f"No bill for {year:04d}{month:02d} yet.")
    found = await bill(request, year, month)
    if not found.days:
        raise HarvestError(errors.NOT_FOUND, f"No charges in {year:04d}{month:02d}.")
    return found


async def get_billing_history(request: web.Request) -> web.Response:
    """Closed months with charges, newest first, over the last 18 months."""
    today = _today(request)
    bills = []
    for back in range(1, HISTORY_MONTHS + 1):
        year, month = _shift(today.year, today.month, back)
        found = await bill(request, year, month)
        if found.days:
            bills.append(found)
    return json_response(billing_history_to_wire(bills))


async def get_latest_billing(request: web.Request) -> web.Response:
    today = _today(request)
    current = await bill(request, today.year, today.month)
    return json_response(current.latest_to_wire(request.config_dict[CLOCK].now_ms()))


async def get_billing(request: web.Request) -> web.Response:
    return json_response((await _bill_of_path(request)).to_wire())


async def get_billing_per_day(request: web.Request) -> web.Response:
    return json_response((await _bill_of_path(request)).daily_to_wire())


async def _summaries(request: web.Request) -> list[MonthBill]:
    today = _today(request)
    found = []
    for back in range(SUMMARY_MONTHS):
        year, month = _shift(today.year, today.month, back)
        one = await bill(request, year, month)
        if one.days:
            found.append(one)
    return found


async def get_billing_summary_of_bill_items(request: web.Request) -> web.Response:
    now = request.config_dict[CLOCK].now_ms()
    return json_response([b.bill_items_to_wire(now) for b in await _summaries(request)])


async def get_billing_summary_of_sims(request: web.Request) -> web.Response:
    now = request.config_dict[CLOCK].now_ms()
    return json_response([b.sims_to_wire(now) for b in await _summaries(request)])


# --- stats -----------------------------------------------------------------------------------
def _bucket_start(day_or_bucket: str, period: str) -> int:
    """UNIX seconds at the start of a ledger row's month, day or 5-minute bucket."""
    if period == "minutes":
        moment = datetime.strptime(day_or_bucket, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
    else:
        moment = datetime.fromisoformat(day_or_bucket).replace(tzinfo=UTC)
        if period == "month":
            moment = moment.replace(day=1)
    return int(moment.timestamp())


async def get_harvest_stats(request: web.Request) -> web.Response:
    """Write (and, by day or month, read) request counts of one SIM per bucket.

    ``from``/``to`` are UNIX seconds and both required; the buckets are whole months or days
    containing them, or 5-minute buckets. Both stop at the last second a calendar date can
    name (9999-12-31T23:59:59Z), since each becomes a day. The map keys ``write`` and ``read``,
    and the SIM's Harvest Files ``fileUpload`` and ``fileDownload`` by day or month, are the
    emulator's names (SORACOM does not document them).
    """
    operator_id = request[TOKEN].operator_id
    imsi = request.match_info["imsi"]
    request.config_dict[REGISTRY].sim(operator_id, imsi)  # 404 for an unknown SIM
    period = optional_choice(request, "period", ("month", "day", "minutes"))
    low = int_param(request, "from", minimum=0, maximum=DATETIME_MAX_S)
    high = int_param(request, "to", minimum=0, maximum=DATETIME_MAX_S)
    if period is None:
        raise bad("'period' is required: one of month, day, minutes.")
    if low is None or high is None:
        raise bad("'from' and 'to' (UNIX seconds) are required.")
    if low > high:
        raise bad(f"'from' ({low}) must not be after 'to' ({high}).")
    await _flush(request)
    if period == "minutes":
        first = five_minute_bucket(low * 1000)
        # the bucket that ends at or after ``to``; in the last bucket of year 9999 that is it
        last = five_minute_bucket(min(high * 1000 + FIVE_MINUTES_MS - 1, LATEST_MS))
        kinds = {UsageKind.WRITE_5MIN: "write"}
    else:
        first, last = utc_day(low * 1000), utc_day(high * 1000)
        if period == "month":
            first, last = first[:8] + "01", last[:8] + "31"
        kinds = {
            UsageKind.WRITE: "write",
            UsageKind.READ: "read",
            UsageKind.FILE_UPLOAD: "fileUpload",
            UsageKind.FILE_DOWNLOAD: "fileDownload",
        }
    rows = await request.config_dict[STORE].usage_rows(operator_id, first, last + "~")
    buckets: dict[int, dict[str, int]] = defaultdict(dict)
    for row in rows:
        if row.imsi != imsi or row.kind not in kinds or not first <= row.day <= last + "~":
            continue
        counts = buckets[_bucket_start(row.day, period)]
        name = kinds[row.kind]
        counts[name] = counts.get(name, 0) + row.count
    return json_response(
        [
            {"unixtime": start, "harvestStatsMap": {k: {"count": v} for k, v in sorted(c.items())}}
            for start, c in sorted(buckets.items())
        ]
    )


async def get_harvest_exported_data_stats(request: web.Request) -> web.Response:
    """Bytes of data read through the API in one month (``year_month`` YYYYMM, default now)."""
    operator_id = own_operator(request)
    raw = query_value(request, "year_month")
    today = _today(request)
    if raw is None:
        year, month = today.year, today.month
    else:
        year, month = year_month(raw, "year_month")
    await _flush(request)
    first = f"{year:04d}-{month:02d}-01"
    rows = await request.config_dict[STORE].usage_rows(operator_id, first, first[:8] + "31")
    exported = sum(r.count for r in rows if r.kind is UsageKind.READ_BYTES)
    return json_response({"yearMonth": f"{year:04d}{month:02d}", "exportedBytes": exported})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/bills", get_billing_history, name="getBillingHistory")
    router.add_get("/bills/latest", get_latest_billing, name="getLatestBilling")
    router.add_get(
        "/bills/summaries/bill_items",
        get_billing_summary_of_bill_items,
        name="getBillingSummaryOfBillItems",
    )
    router.add_get(
        "/bills/summaries/sims", get_billing_summary_of_sims, name="getBillingSummaryOfSims"
    )
    router.add_get("/bills/{yyyyMM}", get_billing, name="getBilling")
    router.add_get("/bills/{yyyyMM}/daily", get_billing_per_day, name="getBillingPerDay")
    router.add_get("/stats/harvest/subscribers/{imsi}", get_harvest_stats, name="getHarvestStats")
    router.add_get(
        "/stats/harvest/operators/{operator_id}",
        get_harvest_exported_data_stats,
        name="getHarvestExportedDataStats",
    )
