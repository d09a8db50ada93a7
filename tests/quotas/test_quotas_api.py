"""Quotas, rate ceilings, balance control, bills and stats through the running server (issue 4).

Worked bills are computed by hand from the seed text (air-global-terms Schedule (12);
logging-service-terms Schedule 2; General Provisions (e)) in each test's comments.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from harvest import errors
from harvest.context import QUOTAS
from quotas.housekeeping import HOUSEKEEPING
from tests.conftest import Emulator
from tests.gateway.test_raw_listeners import udp_exchange
from tests.harvest.api_helpers import expect_error
from tests.support.stored import entry_count

IMSI = "001010000000001"
DAY_S = 86_400
BATCH = {
    "customTimestamp": {"type": "jsonpointer", "value": "/t", "format": "unixtime-milliseconds"},
    "batchWrite": {"enabled": True, "pointer": ""},
}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


async def freeze(emulator: Emulator, at: str) -> None:
    status, _ = await emulator.control("PUT", "/clock", {"now": ms(at), "frozen": True})
    assert status == 200


async def enable_batches(emulator: Emulator) -> None:
    api = await emulator.api()
    group_id = (await api.get(f"/v1/subscribers/{IMSI}")).json["groupId"]
    reply = await api.call(
        "PUT",
        f"/v1/groups/{group_id}/configuration/SoracomHarvest",
        json_body=[{"key": k, "value": v} for k, v in BATCH.items()],
    )
    assert reply.status == 200


async def write_many(emulator: Emulator, count: int, address: str = "127.0.0.1") -> list[int]:
    """``count`` writes as batches of 100 elements (each element is one write)."""
    _, clock = await emulator.control("GET", "/clock")
    device = emulator.device(address)
    statuses = []
    sent = 0
    while sent < count:
        size = min(100, count - sent)
        body = json.dumps([{"t": clock["now"] - 1000 + sent + i} for i in range(size)])
        statuses.append((await device.send(body))[0])
        sent += size
    return statuses


async def quota(emulator: Emulator, imsi: str = IMSI) -> dict[str, Any]:
    status, body = await emulator.control("GET", f"/sims/{imsi}/quota")
    assert status == 200
    return dict(body)


async def meter(emulator: Emulator, operator: str = "OP0000000000") -> dict[str, Any]:
    status, body = await emulator.control("GET", f"/operators/{operator}/meter")
    assert status == 200
    return dict(body)


# --- the daily bundle ----------------------------------------------------------------------------
@pytest.mark.settings(max_payload_bytes=8192)
async def test_writes_past_the_bundle_are_billed_by_default(emulator: Emulator) -> None:
    await freeze(emulator, "2026-11-10T12:00:00")
    await enable_batches(emulator)
    assert set(await write_many(emulator, 2500)) == {201}
    got = await quota(emulator)
    assert (got["used"], got["remaining"], got["overage"], got["policy"]) == (2500, 0, 500, "bill")
    assert got["nextResetTime"] == ms("2026-11-11T00:00:00")
    # 500 x 0.00004 = 0.02 USD; the 0.05 option fee is inside the 1.55 free tier
    assert (await meter(emulator))["charges"] == 0.02


@pytest.mark.settings(max_payload_bytes=8192, quota_policy="reject")
async def test_the_reject_policy_refuses_what_would_pass_the_bundle(emulator: Emulator) -> None:
    await freeze(emulator, "2026-11-10T12:00:00")
    await enable_batches(emulator)
    assert set(await write_many(emulator, 1950)) == {201}
    status, body = await emulator.device().send(json.dumps([{"t": i} for i in range(51)]))
    assert (status, json.loads(body)["code"]) == (429, "HEM4013")
    assert (await quota(emulator))["used"] == 1950  # a refused send counts nothing
    assert set(await write_many(emulator, 50)) == {201}
    assert (await quota(emulator))["remaining"] == 0
    sim = await emulator.new_sim()  # not shared between SIMs
    assert await write_many(emulator, 1, sim["sessionAddress"]) == [201]
    assert await write_many(emulator, 1) == [429]
    # no carry-over: the next UTC day starts at zero
    await emulator.control("POST", "/clock/advance", {"seconds": DAY_S})
    assert (await quota(emulator))["used"] == 0
    assert await write_many(emulator, 1) == [201]


@pytest.mark.settings(quota_policy="reject", rate_limits=False)
async def test_raw_protocols_answer_429_past_the_bundle(emulator: Emulator) -> None:
    await freeze(emulator, "2026-11-10T12:00:00")
    sim = await emulator.new_sim()
    replies = await udp_exchange(emulator, [b"x"] * 2001, source=sim["sessionAddress"])
    assert replies[:2000] == [b"201"] * 2000
    assert replies[2000] == b"429"
    assert (await quota(emulator, sim["imsi"]))["used"] == 2000


async def test_bundle_counts_survive_a_restart_of_the_service(emulator: Emulator) -> None:
    await freeze(emulator, "2026-11-10T12:00:00")
    await asyncio.gather(*(emulator.device().send(f'{{"n":{i}}}') for i in range(30)))
    # a reset of the clock reloads every counter from the ledger in the database
    await emulator.control("PUT", "/clock", {"now": ms("2026-11-10T13:00:00")})
    assert (await quota(emulator))["used"] == 30


# --- rate ceilings (more in test_rate_ceilings.py) ---------------------------------------------
@pytest.mark.settings(device_write_burst=3, device_writes_per_second=1, rate_limit_counting="every")
async def test_the_device_write_ceiling_is_a_token_bucket_in_real_time(emulator: Emulator) -> None:
    await freeze(emulator, "2026-11-10T12:00:00")
    device = emulator.device()
    assert [(await device.send('{"a":1}'))[0] for _ in range(3)] == [201] * 3
    async with device.session.post(emulator.base_url, data=b'{"a":1}') as refused:
        body = json.loads(await refused.read())
        assert (refused.status, body["code"]) == (429, "HEM4012")
        assert refused.headers["Retry-After"] == "1"  # one token a second
    assert "retry in 1 s" in body["message"]
    # the emulator clock does not refill it (spec B9) ...
    await emulator.control("POST", "/clock/advance", {"seconds": 3600})
    assert (await device.send('{"a":1}'))[0] == 429
    await asyncio.sleep(1.0)  # ... real time does: a token a second
    assert (await device.send('{"a":1}'))[0] == 201


@pytest.mark.settings(api_calls_per_minute=3, rate_limit_counting="every")
async def test_the_api_budget_answers_soracoms_rate_limit_headers(emulator: Emulator) -> None:
    await freeze(emulator, "2026-11-10T12:00:30")
    api = await emulator.api()  # /auth counts against the peer address, not the operator
    first = await api.get("/v1/subscribers")
    assert first.headers["X-Soracom-Ratelimit-Limit"] == "3"
    assert first.headers["X-Soracom-Ratelimit-Remaining"] == "2"
    await api.get("/v1/groups")
    await api.get("/v1/groups")
    refused = await api.get("/v1/subscribers")
    assert (refused.status, refused.json["code"]) == (429, "HEM1007")
    assert refused.headers["X-Soracom-Ratelimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["X-Soracom-Ratelimit-Seconds-Before-Refresh"]) <= 60
    other = await emulator.new_operator()  # per operator
    assert (await other.get("/v1/subscribers")).status == 200
    # moving the emulator clock refreshes nothing: the window is a real minute (spec B9)
    await emulator.control("POST", "/clock/advance", {"seconds": 120})
    api = await emulator.api()
    assert (await api.get("/v1/subscribers")).status == 429


@pytest.mark.settings(rate_limits=False, device_write_burst=1)
async def test_one_setting_turns_the_ceilings_off(emulator: Emulator) -> None:
    await freeze(emulator, "2026-11-10T12:00:00")
    device = emulator.device()
    assert [(await device.send('{"a":1}'))[0] for _ in range(5)] == [201] * 5


# --- balance control -----------------------------------------------------------------------------
@pytest.mark.settings(max_payload_bytes=8192)
async def test_balance_control_refuses_writes_once_charges_pass_the_ceiling(
    emulator: Emulator,
) -> None:
    await freeze(emulator, "2026-11-10T12:00:00")
    await enable_batches(emulator)
    status, body = await emulator.control(
        "PUT", "/operators/OP0000000000/balance", {"ceiling": 0.01}
    )
    assert (status, body["balanceCeiling"]) == (200, 0.01)
    assert set(await write_many(emulator, 2300)) == {201}  # 300 x 0.00004 = 0.012 -> 0.02
    assert (await meter(emulator))["charges"] == 0.02
    status, body = await emulator.device().send(json.dumps([{"t": 1}]))
    assert (status, json.loads(body)["code"]) == (403, "HEM4014")
    assert "0.01" in json.loads(body)["message"]
    assert (await meter(emulator))["refusingWrites"] is True
    await emulator.control("PUT", "/operators/OP0000000000/balance", {"ceiling": 1})
    assert set(await write_many(emulator, 1)) == {201}
    await emulator.control("PUT", "/operators/OP0000000000/balance", {"ceiling": 0})
    assert (await emulator.device().send(json.dumps([{"t": 2}])))[0] == 403
    await freeze(emulator, "2026-12-01T00:00:00")  # the month rolls over
    assert set(await write_many(emulator, 1)) == {201}


@pytest.mark.parametrize("body", [{"ceiling": -1}, {"ceiling": "lots"}, {"limit": 1}, {}])
async def test_bad_ceilings_are_400(emulator: Emulator, body: dict[str, Any]) -> None:
    status, _ = await emulator.control("PUT", "/operators/OP0000000000/balance", body)
    assert status == 400


# --- bills ---------------------------------------------------------------------------------------
async def test_one_sim_one_day_under_the_bundle(emulator: Emulator) -> None:
    await freeze(emulator, "2026-11-10T12:00:00")
    await emulator.device().send('{"a":1}')
    api = await emulator.api()
    month = await api.get("/v1/bills/202611")
    # the SIM-days of November so far at 0.05 each; all inside the 1.55 free tier -> 0.00
    assert (month.status, month.json["amount"], month.json["state"]) == (200, 0, "temporary")
    daily = await api.get("/v1/bills/202611/daily")
    assert {"date": "20261110", "amount": 0.05, "currency": "USD"} in daily.json["billList"]
    latest = await api.get("/v1/bills/latest")
    assert latest.json["amount"] == 0
    assert latest.json["lastEvaluatedTime"] == "20261110120000"


async def test_forty_sims_over_a_month_with_the_free_tier(emulator: Emulator) -> None:
    await freeze(emulator, "2026-11-01T00:00:00")
    for _ in range(39):
        await emulator.new_sim()
    # walk November day by day into December: every midnight records each SIM's day
    await emulator.control("POST", "/clock/advance", {"seconds": 30 * DAY_S})
    api = await emulator.api()
    november = (await api.get("/v1/bills/202611")).json
    # 40 SIMs x 30 days x 0.05 = 60.00, less the 1.55 free tier = 58.45 USD
    assert (november["amount"], november["state"]) == (58.45, "closed")
    history = (await api.get("/v1/bills")).json["billList"]
    assert history[0]["yearMonth"] == "202611"
    [items] = [
        s
        for s in (await api.get("/v1/bills/summaries/bill_items")).json
        if s["yearMonth"] == "202611"
    ]
    lines = {i["billItemName"]: i["amount"] for i in items["costBreakdownList"]}
    assert lines == {"Harvest Data Option": 60.0, "Harvest Data Option Free Tier": -1.55}
    [sims] = [
        s for s in (await api.get("/v1/bills/summaries/sims")).json if s["yearMonth"] == "202611"
    ]
    assert len(sims["costBreakdownList"]) == 40
    assert {s["amount"] for s in sims["costBreakdownList"]} == {1.5}  # 30 x 0.05, gross


async def test_a_month_boundary_makes_two_bills(emulator: Emulator) -> None:
    await freeze(emulator, "2026-11-30T23:59:59")
    await emulator.device().send('{"a":1}')
    await emulator.control("POST", "/clock/advance", {"seconds": 2})
    await emulator.device().send('{"b":1}')
    api = await emulator.api()
    november = (await api.get("/v1/bills/202611/daily")).json["billList"]
    december = (await api.get("/v1/bills/202612/daily")).json["billList"]
    assert [d["date"] for d in december] == ["20261201"]
    assert "20261130" in [d["date"] for d in november]
    # each month has its own free tier: both bills are 0.00 for one SIM
    assert (await api.get("/v1/bills/202612")).json["amount"] == 0


@pytest.mark.settings(max_payload_bytes=8192)
async def test_every_view_and_the_meter_reconcile_with_the_month(emulator: Emulator) -> None:
    """docs/billing.md's worked example through the server: each SIM-day rounded once.

    November 2025: a month the wall clock has left, so the default SIM's start-up day is not in
    it.
    """
    await freeze(emulator, "2025-11-01T12:00:00")
    await enable_batches(emulator)
    b, c = await emulator.new_sim(), await emulator.new_sim()
    a_address, b_address, c_address = "127.0.0.1", b["sessionAddress"], c["sessionAddress"]
    for address, count in ((a_address, 2001), (b_address, 2250), (c_address, 2251)):
        assert set(await write_many(emulator, count, address)) == {201}
    await emulator.control("POST", "/clock/advance", {"seconds": DAY_S})
    for address, count in ((a_address, 4000), (b_address, 2001), (c_address, 500)):
        assert set(await write_many(emulator, count, address)) == {201}
    api = await emulator.api()
    # SIM-days (0.05 + write fee): a 0.06, 0.13; b 0.06, 0.06; c 0.07, 0.05
    daily = (await api.get("/v1/bills/202511/daily")).json["billList"]
    assert daily == [
        {"amount": 0.24, "currency": "USD", "date": "20251102"},
        {"amount": 0.19, "currency": "USD", "date": "20251101"},
    ]
    [sims] = (await api.get("/v1/bills/summaries/sims")).json
    assert [s["amount"] for s in sims["costBreakdownList"]] == [0.19, 0.12, 0.12]
    [items] = (await api.get("/v1/bills/summaries/bill_items")).json
    lines = {i["billItemName"]: i["amount"] for i in items["costBreakdownList"]}
    assert lines == {
        "Harvest Data Option": 0.3,
        "Harvest Data write requests": 0.13,
        "Harvest Data Option Free Tier": -0.3,
    }
    # 0.19 + 0.24 = 0.12 + 0.12 + 0.19 = 0.43 = 0.30 + 0.13; total 0.30 - 0.30 + 0.13
    assert (await api.get("/v1/bills/202511")).json["amount"] == 0.13
    assert (await meter(emulator))["charges"] == 0.13
    # the meter reloaded from the ledger (any clock change) agrees as well
    await emulator.control("PUT", "/clock", {"now": ms("2025-11-02T13:00:00")})
    assert (await meter(emulator))["charges"] == 0.13


@pytest.mark.parametrize("month", ["2026-11", "202613", "abc"])
async def test_a_bad_month_is_400(emulator: Emulator, month: str) -> None:
    api = await emulator.api()
    assert (await api.get(f"/v1/bills/{month}")).status == 400


async def test_a_month_without_charges_is_404(emulator: Emulator) -> None:
    await freeze(emulator, "2026-11-10T12:00:00")
    api = await emulator.api()
    assert (await api.get("/v1/bills/202501")).status == 404
    assert (await api.get("/v1/bills/202701")).status == 404


async def test_bills_are_per_operator(emulator: Emulator) -> None:
    await freeze(emulator, "2026-11-10T12:00:00")
    other = await emulator.new_operator()
    assert (await other.get("/v1/bills/202611")).status == 404
    assert (await other.get("/v1/bills/latest")).json["amount"] == 0


# --- stats ---------------------------------------------------------------------------------------
async def test_harvest_stats_count_writes_and_reads(emulator: Emulator) -> None:
    await freeze(emulator, "2026-11-10T12:01:00")
    for _ in range(3):
        await emulator.device().send('{"a":1}')
        await emulator.control("POST", "/clock/advance", {"seconds": 0.001})
    api = await emulator.api()
    await api.get(f"/v1/subscribers/{IMSI}/data")
    start = ms("2026-11-10T00:00:00") // 1000
    day = await api.get(
        f"/v1/stats/harvest/subscribers/{IMSI}",
        **{"from": start, "to": start + 60, "period": "day"},
    )
    assert day.json == [
        {"unixtime": start, "harvestStatsMap": {"read": {"count": 1}, "write": {"count": 3}}}
    ]
    minutes = await api.get(
        f"/v1/stats/harvest/subscribers/{IMSI}",
        **{"from": start, "to": start + DAY_S - 1, "period": "minutes"},
    )
    assert minutes.json == [
        {"unixtime": ms("2026-11-10T12:00:00") // 1000, "harvestStatsMap": {"write": {"count": 3}}}
    ]
    month = await api.get(
        f"/v1/stats/harvest/subscribers/{IMSI}", **{"from": start, "to": start, "period": "month"}
    )
    assert month.json[0]["unixtime"] == ms("2026-11-01T00:00:00") // 1000
    exported = await api.get(f"/v1/stats/harvest/operators/{api.operator_id}", year_month="202611")
    assert exported.json == {"yearMonth": "202611", "exportedBytes": 3 * len('{"a":1}')}


@pytest.mark.parametrize(
    "params",
    [
        {"from": 1, "to": 2},
        {"from": 2, "to": 1, "period": "day"},
        {"from": "x", "to": 1, "period": "day"},
        {"to": 1, "period": "day"},
        {"from": 1, "to": 2, "period": "hour"},
    ],
)
async def test_bad_stats_queries_are_400(emulator: Emulator, params: dict[str, Any]) -> None:
    api = await emulator.api()
    assert (await api.get(f"/v1/stats/harvest/subscribers/{IMSI}", **params)).status == 400


BILL_VIEWS = [
    "/v1/bills/latest",
    "/v1/bills/summaries/bill_items",
    "/v1/bills/summaries/sims",
    "/v1/bills/202611",
]


async def test_reads_of_what_is_no_sim_of_the_caller_are_not_metered(emulator: Emulator) -> None:
    # Found by the OpenAPI fuzz run: a read of /data/Subscriber/{id} was metered whatever the
    # id named. Spelling the default SIM's simId there gave that SIM a second usage on the day
    # (keyed by the "IMSI" that is its simId), and every bill of the month was then a 500.
    await freeze(emulator, "2026-11-10T12:00:00")
    await emulator.device().send('{"a":1}')
    api = await emulator.api()
    sim_id = (await api.get(f"/v1/subscribers/{IMSI}")).json["simId"]
    other = await emulator.new_operator()
    for reader in (api, other):
        for resource_id in (sim_id, "999999999999999", IMSI):
            assert (await reader.get(f"/v1/data/Subscriber/{resource_id}")).status == 200
    for path in BILL_VIEWS:
        assert (await api.get(path)).status == 200, path
        assert (await other.get(path)).status in (200, 404), path
    [month] = (await api.get("/v1/bills/summaries/sims")).json
    assert [line["simId"] for line in month["costBreakdownList"]] == [sim_id]
    stats = await api.get(
        f"/v1/stats/harvest/subscribers/{IMSI}",
        **{"from": ms("2026-11-10T00:00:00") // 1000, "to": ms("2026-11-10T00:00:00") // 1000},
        period="day",
    )
    # the caller's own read of its SIM is the one read counted
    assert stats.json[0]["harvestStatsMap"]["read"] == {"count": 1}


#: 9999-12-31T23:59:59Z, the last second a calendar day can hold; one more is year 10000.
LAST_SECOND = 253_402_300_799


@pytest.mark.parametrize("period", ["day", "month", "minutes"])
@pytest.mark.parametrize("name", ["from", "to"])
async def test_stats_times_past_year_9999_are_400_naming_them(
    emulator: Emulator, period: str, name: str
) -> None:
    # Found by hand and by the OpenAPI fuzz run: ``to=253402300800`` passed validation (which
    # allowed up to 2**40) and the day lookup then failed with a 500.
    api = await emulator.api()
    params = {"from": 0, "to": LAST_SECOND + 1, "period": period}
    if name == "from":
        params["from"] = LAST_SECOND + 1
    reply = await api.get(f"/v1/stats/harvest/subscribers/{IMSI}", **params)
    expect_error(reply, errors.INVALID_PARAMETER, f"'{name}'", str(LAST_SECOND))


@pytest.mark.parametrize("period", ["day", "month", "minutes"])
async def test_stats_up_to_the_last_second_of_year_9999_answer(
    emulator: Emulator, period: str
) -> None:
    # The 5-minute buckets reach past ``to`` by one bucket, which in the last bucket of year
    # 9999 would be past what a calendar can name: they stop at its last millisecond.
    api = await emulator.api()
    reply = await api.get(
        f"/v1/stats/harvest/subscribers/{IMSI}",
        **{"from": LAST_SECOND - 600, "to": LAST_SECOND, "period": period},
    )
    assert (reply.status, reply.json) == (200, [])


@pytest.mark.parametrize("month", ["000001", "000012"])
@pytest.mark.parametrize("path", ["/v1/bills/{month}", "/v1/bills/{month}/daily"])
async def test_bills_of_year_zero_are_400(emulator: Emulator, path: str, month: str) -> None:
    # Found by the OpenAPI fuzz run: the month passed the YYYYMM pattern and the bill's
    # calendar then refused year 0 with a 500.
    api = await emulator.api()
    reply = await api.get(path.format(month=month))
    expect_error(reply, errors.INVALID_PARAMETER, "'yyyyMM'", month)


async def test_exported_data_stats_of_year_zero_are_400(emulator: Emulator) -> None:
    api = await emulator.api()
    reply = await api.get(f"/v1/stats/harvest/operators/{api.operator_id}", year_month="000001")
    expect_error(reply, errors.INVALID_PARAMETER, "'year_month'", "000001")


async def test_stats_of_another_operators_sim_are_404(emulator: Emulator) -> None:
    other = await emulator.new_operator()
    reply = await other.get(
        f"/v1/stats/harvest/subscribers/{IMSI}", **{"from": 1, "to": 2, "period": "day"}
    )
    assert reply.status == 404


# --- clock jumps ---------------------------------------------------------------------------------
async def test_a_clock_jump_sweeps_expired_entries_from_the_file(emulator: Emulator) -> None:
    await freeze(emulator, "2026-11-10T12:00:00")
    for i in range(5):
        await emulator.device().send(
            f'{{"i":{i}}}', headers={"X-Soracom-Timestamp": str(ms("2026-11-09") + i)}
        )
    path = emulator.settings.database_path
    assert path is not None

    def rows() -> int:
        return entry_count(path)

    assert rows() == 5
    await emulator.control("POST", "/clock/advance", {"seconds": 41 * DAY_S})
    assert rows() == 0  # deleted, not only hidden, when the jump answers


async def test_a_flush_of_reads_returns_once_the_reads_taken_by_another_are_stored(
    emulator: Emulator,
) -> None:
    """An export or a bill flushes the noted reads first; when the background task has just
    taken them and is storing them, that flush must wait for it, or the export would lack
    them (it did, now and then, under load)."""
    housekeeping = emulator.app[HOUSEKEEPING]
    emulator.app[QUOTAS].note_read("OP0000000000", IMSI, 10)
    background = asyncio.ensure_future(housekeeping.flush_reads())
    await asyncio.sleep(0)  # it has taken the reads and waits for the store
    await housekeeping.flush_reads()
    assert background.done()
    await background
