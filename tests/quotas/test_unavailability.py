"""The service unavailability credit (logging-service-terms 14.2(c); issue 8, item 7) through the
running server, with the emulator clock and maintenance faults.

A maintenance rule that matches everything makes the service completely unavailable for its
window; a window of 24 hours or more takes floor(hours / 24) days x (the month's fee after the
free tier) / (days in the month), rounded down to the cent, off the bill of the month it ended
in (docs/billing.md). Worked by hand in each test's comments.

The tests run in November 2025, a month the wall clock has left, so the default SIM's start-up
day is not in the bill.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Emulator
from tests.quotas.test_quotas_api import DAY_S, enable_batches, freeze, meter, ms, write_many
from tests.support.clients import ApiClient
from tests.support.stored import ledger_rows

OP = "OP0000000000"
HOUR_MS = 3_600_000
CREDIT = "Service unavailability credit (logging-service-terms 14.2(c))"


async def forty_sims(emulator: Emulator) -> None:
    """The default SIM and 39 more in its Harvest group: 40 x 0.05 = 2.00 a day."""
    for _ in range(39):
        await emulator.new_sim()


async def add(emulator: Emulator, **rule: Any) -> str:
    status, body = await emulator.control("POST", "/faults", rule)
    assert status == 201, body
    return str(body["id"])


def credit_rows(emulator: Emulator) -> list[tuple[str, str, str, int]]:
    """The ledger's unavailable days, as stored in the SQLite file."""
    path = emulator.settings.database_path
    assert path is not None
    return ledger_rows(path, "unavailable_days")


async def november_items(api: ApiClient) -> dict[str, float]:
    [items] = [
        s
        for s in (await api.get("/v1/bills/summaries/bill_items")).json
        if s["yearMonth"] == "202511"
    ]
    return {i["billItemName"]: i["amount"] for i in items["costBreakdownList"]}


@pytest.mark.settings(max_payload_bytes=8192)
async def test_a_window_of_49_hours_credits_two_days_and_one_of_23_hours_none(
    emulator: Emulator,
) -> None:
    await freeze(emulator, "2025-11-10T00:00:00")
    await forty_sims(emulator)
    status, other = await emulator.control("POST", "/operators", {})  # every one is credited
    assert status == 201
    await enable_batches(emulator)
    # 2,251 writes on one SIM-day: 251 x 0.00004 = 0.01004 -> 0.02
    assert set(await write_many(emulator, 2251)) == {201}
    a = await add(
        emulator,
        effect="maintenance",
        **{"from": ms("2025-11-10T01:00:00"), "until": ms("2025-11-12T02:00:00")},
    )
    await add(
        emulator,
        effect="maintenance",
        **{"from": ms("2025-11-13T00:00:00"), "until": ms("2025-11-13T23:00:00")},
    )

    # Past the first window's end: 49 hours / 24 = 2.04 -> 2 days, on 12 November.
    await emulator.control("POST", "/clock/advance", {"seconds": 2.5 * DAY_S})
    assert credit_rows(emulator) == [
        (OP, "2025-11-12", "-", 2),
        (other["operatorId"], "2025-11-12", "-", 2),
    ]
    api = await emulator.api()
    # SIM-days 10 to 12 November: 120 x 0.05 = 6.00; fee 6.00 - 1.55 + 0.02 = 4.47;
    # credit 2 x 4.47 / 30 = 0.298 -> 0.29; total 4.47 - 0.29 = 4.18.
    assert (await api.get("/v1/bills/202511")).json["amount"] == 4.18
    assert (await meter(emulator))["charges"] == 4.18

    # Past the second (23 hours: no whole day), by setting the clock this time.
    await emulator.control("PUT", "/clock", {"now": ms("2025-11-14T12:00:00")})
    assert len(credit_rows(emulator)) == 2
    api = await emulator.api()  # a new token: the last one expired on the way
    # SIM-days 10 to 14 November: 200 x 0.05 = 10.00; fee 10.00 - 1.55 + 0.02 = 8.47;
    # credit 2 x 8.47 / 30 = 0.5646... -> 0.56; total 8.47 - 0.56 = 7.91.
    bill = (await api.get("/v1/bills/202511")).json
    assert (bill["amount"], bill["state"]) == (7.91, "temporary")
    assert await november_items(api) == {
        "Harvest Data Option": 10.0,
        "Harvest Data write requests": 0.02,
        "Harvest Data Option Free Tier": -1.55,
        CREDIT: -0.56,
    }
    assert (await meter(emulator))["charges"] == 7.91
    # The daily and per-SIM views stay gross (10.02), and no SIM is made of the credit row.
    daily = (await api.get("/v1/bills/202511/daily")).json["billList"]
    assert round(sum(d["amount"] for d in daily), 2) == 10.02
    [sims] = (await api.get("/v1/bills/summaries/sims")).json
    assert len(sims["costBreakdownList"]) == 40
    assert "-" not in {s["simId"] for s in sims["costBreakdownList"]}
    assert round(sum(s["amount"] for s in sims["costBreakdownList"]), 2) == 10.02
    exported = await api.get(f"/v1/stats/harvest/operators/{OP}", year_month="202511")
    assert exported.json["exportedBytes"] == 0
    # The other operator has no SIM-days: days alone are no bill.
    other_api = await emulator.api(other["authKeyId"], other["authKey"])
    assert (await other_api.get("/v1/bills/202511")).status == 404

    # Once per window: deleting the ended rule, or more clock, credits nothing more.
    assert (await emulator.control("DELETE", f"/faults/{a}"))[0] == 204
    await emulator.control("POST", "/clock/advance", {"seconds": 60})
    assert len(credit_rows(emulator)) == 2

    # The month closes with its credit: SIM-days 10 to 30 November: 840 x 0.05 = 42.00;
    # fee 42.00 - 1.55 + 0.02 = 40.47; credit 2 x 40.47 / 30 = 2.698 -> 2.69; total 37.78.
    await freeze(emulator, "2025-12-01T12:00:00")
    api = await emulator.api()
    bill = (await api.get("/v1/bills/202511")).json
    assert (bill["amount"], bill["state"]) == (37.78, "closed")
    # December's bill has no credit: 40 x 0.05 = 2.00 - 1.55 = 0.45.
    assert (await api.get("/v1/bills/202512")).json["amount"] == 0.45
    assert (await meter(emulator))["charges"] == 0.45


async def test_deleting_a_window_ends_it_and_credits_its_whole_days(emulator: Emulator) -> None:
    await freeze(emulator, "2025-11-10T00:00:00")
    await forty_sims(emulator)
    # No from, no until: from its creation (10 November 00:00) until it is deleted.
    first = await add(emulator, effect="maintenance")
    await emulator.control("POST", "/clock/advance", {"seconds": 30 * 3600})
    api = emulator.api_client()
    refused = await api.call("GET", "/v1/bills/202511", authenticated=False)
    assert refused.status == 503  # still down
    assert credit_rows(emulator) == []

    # Deleted at 11 November 06:00: 30 hours -> 1 day, on 11 November.
    assert (await emulator.control("DELETE", f"/faults/{first}"))[0] == 204
    assert credit_rows(emulator) == [(OP, "2025-11-11", "-", 1)]
    api = await emulator.api()
    # SIM-days 10 and 11 November: 80 x 0.05 = 4.00; fee 4.00 - 1.55 = 2.45;
    # credit 1 x 2.45 / 30 = 0.0816... -> 0.08; total 2.37.
    assert (await api.get("/v1/bills/202511")).json["amount"] == 2.37
    assert (await november_items(api))[CREDIT] == -0.08

    now = ms("2025-11-11T06:00:00")
    # Until later than its deletion: it ends when deleted.
    await add(emulator, effect="maintenance", until=now + 10 * DAY_S * 1000)
    # Not the whole service (HTTP device writes only), or not begun when deleted: no credit.
    await add(emulator, effect="maintenance", protocol="http")
    await add(emulator, effect="maintenance", probability=0.5, seed=1)
    await add(emulator, effect="maintenance", **{"from": now + 100 * HOUR_MS})
    await emulator.control("POST", "/clock/advance", {"seconds": 48 * 3600})
    assert (await emulator.control("DELETE", "/faults"))[0] == 204
    # 48 hours -> 2 days, on 13 November.
    assert credit_rows(emulator) == [(OP, "2025-11-11", "-", 1), (OP, "2025-11-13", "-", 2)]
    api = await emulator.api()
    # SIM-days 10 to 13 November: 160 x 0.05 = 8.00; fee 8.00 - 1.55 = 6.45;
    # credit 3 x 6.45 / 30 = 0.645 -> 0.64; total 5.81.
    assert (await api.get("/v1/bills/202511")).json["amount"] == 5.81
    assert (await november_items(api))[CREDIT] == -0.64
    assert (await meter(emulator))["charges"] == 5.81


async def test_the_background_pass_settles_a_window_the_running_clock_leaves(
    emulator: Emulator,
) -> None:
    # A running clock, no clock call after the window: housekeeping's own pass notices.
    start = ms("2025-11-10T12:00:00")
    await emulator.control("PUT", "/clock", {"now": start, "frozen": False})
    await add(
        emulator,
        effect="maintenance",
        **{"from": start - 25 * HOUR_MS, "until": start + 300},
    )
    for _ in range(100):
        if credit_rows(emulator):
            break
        await asyncio.sleep(0.05)
    # 25 hours and 0.3 s -> 1 day, on the day the window ended.
    assert credit_rows(emulator) == [(OP, "2025-11-10", "-", 1)]
