"""Harvest fees, worked by hand from the seeds' fee schedules (spec A3).

The figures: 0.05 USD per SIM per UTC day with Harvest enabled, 2,000 writes included per SIM
per day (air-global-terms, Schedule (12)(a)); 0.00004 USD per write beyond that, reads free
(logging-service-terms, Schedule 2); a 1.55 USD free tier per month off the option fee only
((12)(b)); fractions of a cent rounded up (General Provisions (e)), once per SIM-day
(General Provisions (b)), every view a plain sum of the rounded SIM-day amounts
(docs/billing.md).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from quotas.bills import (
    BILL_ITEM_CATEGORY,
    BILL_ITEM_CREDIT,
    BILL_ITEM_FREE_TIER,
    BILL_ITEM_OPTION,
    BILL_ITEM_WRITES,
    SIM_SUMMARY_LIMIT,
    BillItem,
    MonthBill,
    billing_history_to_wire,
    day_charges,
    month_bill,
    month_is_closed,
)
from quotas.fees import (
    FREE_TIER_PER_MONTH,
    INCLUDED_WRITES_PER_SIM_DAY,
    OPTION_FEE_PER_SIM_DAY,
    READ_FEE_PER_REQUEST,
    WRITE_FEE_PER_REQUEST,
    Usage,
    round_up_to_cent,
    unavailability_credit,
)
from tests.support.openapi import spec_dict, validate

D = Decimal
NOV = (2026, 11)  # a 30-day month


def usage(
    sim: int | str,
    day: date,
    writes: int = 0,
    *,
    enabled: bool = True,
    reads: int = 0,
) -> Usage:
    sim_id = sim if isinstance(sim, str) else f"8942310022000{sim:06d}"
    return Usage(f"295050{sim_id[-9:]}", sim_id, day, enabled, writes, reads)


def nov(day: int) -> date:
    return date(2026, 11, day)


def november(
    usages: Iterable[Usage], *, closed: bool = True, unavailable_days: int = 0
) -> MonthBill:
    return month_bill(usages, *NOV, closed=closed, unavailable_days=unavailable_days)


# --- the constants are the seeds' figures ----------------------------------------------------
def test_constants_are_the_seed_figures() -> None:
    assert D("0.05") == OPTION_FEE_PER_SIM_DAY
    assert INCLUDED_WRITES_PER_SIM_DAY == 2000
    assert D("0.00004") == WRITE_FEE_PER_REQUEST
    assert READ_FEE_PER_REQUEST == 0
    assert D("1.55") == FREE_TIER_PER_MONTH


# --- (1) one SIM, one day, under the bundle --------------------------------------------------
def test_one_sim_one_day_under_the_bundle_is_covered_by_the_free_tier() -> None:
    bill = november([usage(1, nov(5), 100)])
    # option 1 SIM-day x 0.05 = 0.05; 100 <= 2,000 writes included, so no write fee;
    # free tier min(1.55, 0.05) = 0.05; total 0.05 - 0.05 + 0.00 = 0.00.
    assert bill.option_fee == D("0.05")
    assert bill.free_tier == D("0.05")
    assert bill.write_fee == D("0.00")
    assert bill.total == D("0.00")
    (day,) = bill.days
    (sim,) = day.sims
    assert (sim.included_writes, sim.overage_writes, sim.write_fee) == (100, 0, D(0))
    # The daily bill is gross: the free tier is a monthly deduction.
    assert day.amount == D("0.05")
    assert bill.items == (
        BillItem(BILL_ITEM_CATEGORY, BILL_ITEM_OPTION, D("0.05")),
        BillItem(BILL_ITEM_CATEGORY, BILL_ITEM_FREE_TIER, D("-0.05")),
    )


# --- (2) one SIM over the bundle -------------------------------------------------------------
def test_one_sim_over_the_bundle_pays_the_overage_only() -> None:
    bill = november([usage(1, nov(5), 2500)])
    # overage 2,500 - 2,000 = 500 writes x 0.00004 = 0.02000 -> 0.02;
    # option 0.05 - free tier 0.05 = 0.00; total 0.00 + 0.02 = 0.02.
    (sim,) = bill.days[0].sims
    assert (sim.included_writes, sim.overage_writes) == (2000, 500)
    assert sim.exact_write_fee == D("0.02000")
    assert sim.write_fee == D("0.02")
    assert bill.write_fee == D("0.02")
    assert bill.total == D("0.02")
    assert [(i.name, i.amount) for i in bill.items] == [
        (BILL_ITEM_OPTION, D("0.05")),
        (BILL_ITEM_WRITES, D("0.02")),
        (BILL_ITEM_FREE_TIER, D("-0.05")),
    ]


# --- (3) forty SIMs all month ----------------------------------------------------------------
def test_forty_sims_every_day_of_a_thirty_day_month() -> None:
    usages = [usage(sim, nov(day), 1999) for sim in range(40) for day in range(1, 31)]
    bill = november(usages)
    # option 40 SIMs x 30 days x 0.05 = 60.00; writes 1,999 <= 2,000 each, so none billed;
    # free tier 1.55; total 60.00 - 1.55 = 58.45.
    assert bill.harvest_days == 1200
    assert bill.option_fee == D("60.00")
    assert bill.free_tier == D("1.55")
    assert bill.write_fee == 0
    assert bill.total == D("58.45")
    # Each day 40 x 0.05 = 2.00; the 30 days sum to 60.00 = 58.45 + 1.55 (the free tier).
    assert [d.amount for d in bill.days] == [D("2.00")] * 30
    # Each SIM 30 x 0.05 = 1.50.
    assert {s.amount for s in bill.sims} == {D("1.50")}
    assert len(bill.sims) == 40
    assert bill.to_wire() == {
        "amount": 58.45,
        "currency": "USD",
        "state": "closed",
        "yearMonth": "202611",
    }


# --- (4) a month boundary --------------------------------------------------------------------
def test_a_month_boundary_makes_two_bills_each_with_its_own_free_tier() -> None:
    usages = [usage(0, nov(30), 100)] + [usage(sim, date(2026, 12, 1)) for sim in range(40)]
    november_bill = november(usages)
    december_bill = month_bill(usages, 2026, 12, closed=False)
    # November: 1 SIM-day x 0.05 = 0.05, free tier 0.05, total 0.00 (1.50 of it unused).
    assert (november_bill.option_fee, november_bill.free_tier) == (D("0.05"), D("0.05"))
    assert november_bill.total == D("0.00")
    assert [d.day for d in november_bill.days] == [nov(30)]
    # December: 40 SIM-days x 0.05 = 2.00; its own free tier of 1.55, nothing carried over
    # from November; total 2.00 - 1.55 = 0.45.
    assert (december_bill.option_fee, december_bill.free_tier) == (D("2.00"), D("1.55"))
    assert december_bill.total == D("0.45")
    assert [d.day for d in december_bill.days] == [date(2026, 12, 1)]
    assert december_bill.to_wire()["state"] == "temporary"


def test_the_bundle_is_not_carried_over_to_the_next_day() -> None:
    bill = november([usage(1, nov(1), 1000), usage(1, nov(2), 3000)])
    # Day 1 leaves 1,000 writes unused; day 2 still has only 2,000: overage 1,000 x 0.00004
    # = 0.04. Option 2 x 0.05 = 0.10, all free; total 0.04.
    assert [d.write_fee for d in bill.days] == [D("0.00"), D("0.04")]
    assert bill.total == D("0.04")


def test_the_bundle_is_not_shared_between_sims() -> None:
    bill = november([usage(1, nov(1), 0), usage(2, nov(1), 4000)])
    # SIM 1's unused 2,000 writes do not cover SIM 2: overage 4,000 - 2,000 = 2,000 x 0.00004
    # = 0.08. Option 2 x 0.05 = 0.10, all free; total 0.08.
    assert bill.overage_writes == 2000
    assert bill.total == D("0.08")


def test_reads_are_free() -> None:
    bill = november([usage(1, nov(1), 10, reads=1_000_000)])
    # Only the option fee 0.05, all free; a million reads cost 0.
    assert bill.reads == 1_000_000
    assert bill.option_fee == D("0.05")
    assert bill.total == 0


# --- (5) rounding ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("writes", "exact", "rounded"),
    [
        # 2,001 - 2,000 = 1 write x 0.00004 = 0.00004 -> 0.01
        pytest.param(2001, D("0.00004"), D("0.01"), id="1-overage-write"),
        # 251 x 0.00004 = 0.01004 -> 0.02
        pytest.param(2251, D("0.01004"), D("0.02"), id="251-overage-writes"),
        # 250 x 0.00004 = 0.01000 exactly -> 0.01, no rounding
        pytest.param(2250, D("0.01000"), D("0.01"), id="250-overage-writes"),
    ],
)
def test_a_fraction_of_a_cent_is_rounded_up(writes: int, exact: Decimal, rounded: Decimal) -> None:
    charges = day_charges([usage(1, nov(3), writes)], nov(3))
    assert charges.sims[0].exact_write_fee == exact
    assert charges.sims[0].write_fee == rounded  # rounded at the SIM-day
    assert charges.write_fee == rounded
    # The option fee 0.05 is entirely free, so the month pays the rounded write fee.
    assert november([usage(1, nov(3), writes)]).total == rounded


def test_each_sim_day_rounds_its_write_fee_and_every_view_sums_them() -> None:
    bill = november([usage(1, nov(day), 2001) for day in range(1, 31)])
    # Each SIM-day: 1 overage write x 0.00004 = 0.00004 -> 0.01 (General Provisions (b), (e));
    # the month's write line is the sum of the 30 rounded SIM-days: 0.30.
    assert {s.write_fee for d in bill.days for s in d.sims} == {D("0.01")}
    assert bill.write_fee == D("0.30")
    # Option 30 x 0.05 = 1.50 < 1.55, so the free tier applied is 1.50; total 0.30.
    assert bill.free_tier == D("1.50")
    assert bill.total == D("0.30")
    # Each day 0.05 + 0.01 = 0.06; 30 days sum to 1.80 = option 1.50 + writes 0.30, exactly.
    assert {d.amount for d in bill.days} == {D("0.06")}
    assert sum(d.amount for d in bill.days) == bill.option_fee + bill.write_fee == D("1.80")
    # The SIM's month is the same 30 SIM-days summed: 1.80.
    assert bill.sims[0].amount == D("1.80")


def test_the_worked_example_of_the_docs() -> None:
    """docs/billing.md, "A worked example": three SIMs over two days."""
    a, b, c = "sim-a", "sim-b", "sim-c"
    bill = november(
        [
            usage(a, nov(1), 2001),  # 1 x 0.00004 = 0.00004 -> 0.01
            usage(b, nov(1), 2250),  # 250 x 0.00004 = 0.01000 -> 0.01
            usage(c, nov(1), 2251),  # 251 x 0.00004 = 0.01004 -> 0.02
            usage(a, nov(2), 4000),  # 2,000 x 0.00004 = 0.08000 -> 0.08
            usage(b, nov(2), 2001),  # 0.00004 -> 0.01
            usage(c, nov(2), 500),  # within the bundle: 0.00
        ]
    )
    sim_days = {
        (s.sim_id, s.day.day): (s.option_fee, s.write_fee) for d in bill.days for s in d.sims
    }
    assert sim_days == {
        (a, 1): (D("0.05"), D("0.01")),
        (b, 1): (D("0.05"), D("0.01")),
        (c, 1): (D("0.05"), D("0.02")),
        (a, 2): (D("0.05"), D("0.08")),
        (b, 2): (D("0.05"), D("0.01")),
        (c, 2): (D("0.05"), D("0.00")),
    }
    # Daily bill: 1 November 0.15 + 0.04 = 0.19; 2 November 0.15 + 0.09 = 0.24.
    assert [(d.option_fee, d.write_fee, d.amount) for d in bill.days] == [
        (D("0.15"), D("0.04"), D("0.19")),
        (D("0.15"), D("0.09"), D("0.24")),
    ]
    # Per SIM: a 0.10 + 0.09 = 0.19; b 0.10 + 0.02 = 0.12; c 0.10 + 0.02 = 0.12.
    assert [(s.sim_id, s.amount) for s in bill.sims] == [
        (a, D("0.19")),
        (b, D("0.12")),
        (c, D("0.12")),
    ]
    # Month: option 0.30, writes 0.13, free tier -0.30; total 0.13. Rounding the month's exact
    # write fee once (0.10012) would have given 0.11, and the views would not sum to the bill.
    assert [(i.name, i.amount) for i in bill.items] == [
        (BILL_ITEM_OPTION, D("0.30")),
        (BILL_ITEM_WRITES, D("0.13")),
        (BILL_ITEM_FREE_TIER, D("-0.30")),
    ]
    assert bill.total == D("0.13")
    assert sum(d.amount for d in bill.days) == sum(s.amount for s in bill.sims) == D("0.43")


@pytest.mark.parametrize(
    ("amount", "rounded"),
    [
        pytest.param(D(0), D("0.00"), id="zero"),
        pytest.param(D("0.01"), D("0.01"), id="whole-cent"),
        pytest.param(D("0.010001"), D("0.02"), id="just-over"),
        pytest.param(D("58.45"), D("58.45"), id="already-cents"),
    ],
)
def test_round_up_to_cent(amount: Decimal, rounded: Decimal) -> None:
    assert round_up_to_cent(amount) == rounded
    assert round_up_to_cent(amount).as_tuple().exponent == -2


def test_round_up_refuses_a_negative_amount() -> None:
    with pytest.raises(ValueError, match="negative"):
        round_up_to_cent(D("-0.01"))


# --- (6) writes while Harvest is off ---------------------------------------------------------
def test_writes_while_harvest_is_off_are_all_billed_and_the_free_tier_does_not_cover_them() -> None:
    bill = november([usage(1, nov(1), 10, enabled=False)])
    # No option fee and so no bundle: 10 writes x 0.00004 = 0.0004 -> 0.01.
    # The free tier comes off the option fee only (0.00 here), never off write fees.
    (sim,) = bill.days[0].sims
    assert (sim.option_fee, sim.included_writes, sim.overage_writes) == (D(0), 0, 10)
    assert bill.free_tier == 0
    assert bill.total == D("0.01")


def test_an_unused_free_tier_never_covers_write_fees() -> None:
    bill = november([usage(1, nov(1), 0), usage(2, nov(1), 2500, enabled=False)])
    # Option 1 x 0.05 = 0.05, free tier 0.05 (1.50 left unused); SIM 2 has no bundle:
    # 2,500 x 0.00004 = 0.10. Total 0.00 + 0.10 = 0.10.
    assert bill.free_tier == D("0.05")
    assert bill.total == D("0.10")


# --- (7) the unavailability credit (logging-service-terms 14.2(c)) ---------------------------
@pytest.mark.parametrize(
    ("fee", "days", "month", "credit"),
    [
        # 2 x 58.45 / 30 = 3.8966... -> 3.89 (rounded down: the fee left, 54.56, is what (e)
        # would round up)
        pytest.param(D("58.45"), 2, NOV, D("3.89"), id="two-days"),
        # 2 x 8.47 / 30 = 0.5646... -> 0.56
        pytest.param(D("8.47"), 2, NOV, D("0.56"), id="two-days-small-fee"),
        # 1 x 2.80 / 28 = 0.10 exactly: February 2027 has 28 days
        pytest.param(D("2.80"), 1, (2027, 2), D("0.10"), id="february"),
        # 1 x 3.10 / 31 = 0.10 exactly: December has 31
        pytest.param(D("3.10"), 1, (2026, 12), D("0.10"), id="december"),
        # 1 x 0.29 / 30 = 0.0096... -> 0.00: less than a cent is no credit
        pytest.param(D("0.29"), 1, NOV, D("0.00"), id="under-a-cent"),
        pytest.param(D("5.00"), 30, NOV, D("5.00"), id="the-whole-month"),
        pytest.param(D("5.00"), 45, NOV, D("5.00"), id="never-more-than-the-fee"),
        pytest.param(D("0.00"), 3, NOV, D("0.00"), id="nothing-to-reduce"),
        pytest.param(D("5.00"), 0, NOV, D("0.00"), id="no-days"),
    ],
)
def test_the_unavailability_credit_is_a_share_of_the_month_rounded_down(
    fee: Decimal, days: int, month: tuple[int, int], credit: Decimal
) -> None:
    assert unavailability_credit(fee, days, *month) == credit
    assert unavailability_credit(fee, days, *month).as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("fee", "days"),
    [
        pytest.param(D("1.00"), -1, id="negative-days"),
        pytest.param(D("-1.00"), 1, id="negative-fee"),
        pytest.param(D("1.005"), 1, id="fraction-of-a-cent"),
    ],
)
def test_the_unavailability_credit_refuses_impossible_inputs(fee: Decimal, days: int) -> None:
    with pytest.raises(ValueError, match=r"."):
        unavailability_credit(fee, days, *NOV)


def test_the_credit_is_a_line_of_the_month_bill_only() -> None:
    usages = [usage(sim, nov(day), 1999) for sim in range(40) for day in range(1, 31)]
    bill = november(usages, unavailable_days=2)
    # Option 60.00 - free tier 1.55 = 58.45; credit 2 x 58.45 / 30 = 3.8966... -> 3.89;
    # total 58.45 - 3.89 = 54.56.
    assert (bill.unavailable_days, bill.credit, bill.total) == (2, D("3.89"), D("54.56"))
    body = bill.bill_items_to_wire(NOW_MS)
    assert body["costBreakdownList"] == [
        {"amount": 60.0, "billItemCategory": "Harvest", "billItemName": BILL_ITEM_OPTION},
        {"amount": -1.55, "billItemCategory": "Harvest", "billItemName": BILL_ITEM_FREE_TIER},
        {"amount": -3.89, "billItemCategory": "Harvest", "billItemName": BILL_ITEM_CREDIT},
    ]
    assert BILL_ITEM_CREDIT == "Service unavailability credit (logging-service-terms 14.2(c))"
    check_schema(body, "BillingSummaryResponseOfBillItems")
    assert bill.to_wire()["amount"] == 54.56
    # Daily and per-SIM amounts stay gross: 30 days x 2.00 and 40 SIMs x 1.50.
    assert sum(d.amount for d in bill.days) == sum(s.amount for s in bill.sims) == D("60.00")
    # No usage, no fee: days alone credit nothing.
    assert november([], unavailable_days=5).items == ()


# --- inputs and periods ----------------------------------------------------------------------
def test_usages_outside_the_period_are_ignored() -> None:
    usages = [usage(1, date(2026, 10, 31), 9000), usage(1, nov(1)), usage(1, date(2026, 12, 1))]
    assert [d.day for d in november(usages).days] == [nov(1)]
    assert [s.sim_id for s in day_charges(usages, nov(1)).sims] == [usage(1, nov(1)).sim_id]
    assert day_charges(usages, nov(2)).amount == 0


def test_an_empty_month_is_a_bill_of_zero() -> None:
    bill = november([])
    assert bill.total == 0
    assert (bill.days, bill.sims, bill.items) == ((), (), ())
    assert bill.daily_to_wire() == {"billList": []}


def test_a_second_usage_for_one_sim_on_one_day_is_skipped_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bill never fails on data it did not expect (issue 9, item 1): the first usage of the
    SIM-day counts, the second is logged and skipped."""
    twice = [usage(1, nov(1), 2005), usage(1, nov(1), 7)]
    assert november(twice).overage_writes == november(twice[:1]).overage_writes == 5
    assert day_charges(twice, nov(1)).amount == day_charges(twice[:1], nov(1)).amount
    assert "second usage" in caplog.text


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: Usage("", "sim", nov(1), True, 0, 0), id="no-imsi"),
        pytest.param(lambda: Usage("imsi", "", nov(1), True, 0, 0), id="no-sim-id"),
        pytest.param(
            lambda: Usage("i", "s", datetime(2026, 11, 1, tzinfo=UTC), True, 0, 0), id="dt"
        ),
        pytest.param(lambda: Usage("imsi", "sim", nov(1), True, -1, 0), id="negative-writes"),
        pytest.param(lambda: Usage("imsi", "sim", nov(1), True, 0, -1), id="negative-reads"),
    ],
)
def test_a_usage_validates_itself(make: Any) -> None:
    with pytest.raises(ValueError, match=r"."):
        make()


@pytest.mark.parametrize(("year", "month"), [(2026, 0), (2026, 13), (0, 1)])
def test_an_impossible_month_is_refused(year: int, month: int) -> None:
    with pytest.raises(ValueError, match="no such month"):
        month_bill([], year, month, closed=False)


@pytest.mark.parametrize(
    ("today", "closed"),
    [
        pytest.param(date(2026, 11, 1), False, id="first-day"),
        pytest.param(date(2026, 11, 30), False, id="last-day"),
        pytest.param(date(2026, 12, 1), True, id="next-month"),
        pytest.param(date(2027, 1, 15), True, id="later"),
        pytest.param(date(2026, 10, 31), False, id="before"),
    ],
)
def test_month_is_closed_once_it_is_over(today: date, closed: bool) -> None:
    assert month_is_closed(*NOV, today=today) is closed


# --- wire shapes -----------------------------------------------------------------------------
SPEC_URI = "urn:soracom:harvest-subset"
NOW_MS = int(datetime(2026, 11, 5, 12, 34, 56, tzinfo=UTC).timestamp() * 1000) + 789


@functools.cache
def registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(spec_dict(), default_specification=DRAFT4)
    return Registry().with_resources([(SPEC_URI, resource)])


@functools.cache
def validator(schema_name: str) -> Any:
    return OAS30Validator(
        {"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"},
        registry=registry(),
        format_checker=oas30_format_checker,
    )


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = spec_dict()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return resolve(node)


def undeclared(instance: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Keys the schema does not declare (its objects allow extras; ours should have none)."""
    schema = resolve(schema)
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        found = [f"{where}.{key}" for key in instance if key not in properties]
        for key, value in instance.items():
            if key in properties:
                found += undeclared(value, properties[key], f"{where}.{key}")
        return found
    if isinstance(instance, list):
        return [
            bad
            for i, item in enumerate(instance)
            for bad in undeclared(item, schema["items"], f"{where}[{i}]")
        ]
    return []


def check_schema(instance: Any, schema_name: str) -> None:
    validator(schema_name).validate(instance)
    assert undeclared(instance, {"$ref": f"#/components/schemas/{schema_name}"}) == []


def check_operation(path: str, body: Any) -> None:
    """The body validates as the 200 reply of the OpenAPI operation at ``/v1`` + ``path``."""
    validate("GET", "/v1" + path, {}, 200, "application/json", json.dumps(body).encode())


def sample_bill(*, closed: bool) -> MonthBill:
    usages = [usage(sim, nov(day), 1500 + 600 * sim) for sim in range(3) for day in (1, 2, 5)]
    usages.append(usage(9, nov(4), 3, enabled=False, reads=7))
    return november(usages, closed=closed)


def test_monthly_bill_wire_matches_the_document() -> None:
    closed, running = sample_bill(closed=True), sample_bill(closed=False)
    assert running.to_wire()["state"] == "temporary"
    for bill in (closed, running):
        check_schema(bill.to_wire(), "MonthlyBill")
        check_operation("/bills/202611", bill.to_wire())
    history = billing_history_to_wire([closed, month_bill([], 2026, 10, closed=True)])
    assert [b["yearMonth"] for b in history["billList"]] == ["202611", "202610"]
    check_schema(history, "GetBillingHistoryResponse")
    check_operation("/bills", history)


def test_billing_history_lists_closed_months_only() -> None:
    with pytest.raises(ValueError, match="not closed"):
        billing_history_to_wire([sample_bill(closed=False)])


def test_daily_bill_wire_matches_the_document() -> None:
    bill = november([usage(1, nov(1), 100), usage(1, nov(2), 2251), usage(1, nov(3), reads=5)])
    body = bill.daily_to_wire()
    # Newest first, gross of the free tier; each day 0.05 for the option fee, plus on 2 November
    assert body == {
        "billList": [
            {"amount": 0.05, "currency": "USD", "date": "20261103"},
            # 251 x 0.00004 = 0.01004 -> 0.02, so 0.07
            {"amount": 0.07, "currency": "USD", "date": "20261102"},
            {"amount": 0.05, "currency": "USD", "date": "20261101"},
        ]
    }
    check_schema(body, "DailyBillResponse")
    check_operation("/bills/202611/daily", body)


def test_daily_bill_wire_omits_days_with_nothing_to_pay() -> None:
    bill = november([usage(1, nov(1), 0, enabled=False, reads=9), usage(1, nov(2))])
    assert [d["date"] for d in bill.daily_to_wire()["billList"]] == ["20261102"]


def test_latest_bill_wire_matches_the_document() -> None:
    body = sample_bill(closed=False).latest_to_wire(NOW_MS)
    assert body["lastEvaluatedTime"] == "20261105123456"
    assert body["currency"] == "USD"
    check_schema(body, "GetLatestBill")
    check_operation("/bills/latest", body)
    with pytest.raises(ValueError, match="closed"):
        sample_bill(closed=True).latest_to_wire(NOW_MS)


def test_bill_items_wire_matches_the_document() -> None:
    bill = november([usage(sim, nov(1), 4000) for sim in range(40)])
    # Option 40 x 0.05 = 2.00; writes 40 x 2,000 x 0.00004 = 3.20; free tier -1.55;
    # total 2.00 + 3.20 - 1.55 = 3.65; listed highest amount first.
    body = bill.bill_items_to_wire(NOW_MS)
    assert body == {
        "costBreakdownList": [
            {"amount": 3.2, "billItemCategory": "Harvest", "billItemName": BILL_ITEM_WRITES},
            {"amount": 2.0, "billItemCategory": "Harvest", "billItemName": BILL_ITEM_OPTION},
            {"amount": -1.55, "billItemCategory": "Harvest", "billItemName": BILL_ITEM_FREE_TIER},
        ],
        "currency": "USD",
        "updatedTime": NOW_MS // 1000,
        "yearMonth": "202611",
    }
    assert bill.total == D("3.65")
    check_schema(body, "BillingSummaryResponseOfBillItems")
    check_operation("/bills/summaries/bill_items", [body])


def test_sims_wire_lists_the_top_hundred_sims_with_a_charge() -> None:
    # SIM i writes 2,000 + 250 i: 250 i x 0.00004 = 0.01 i, so it costs 0.05 + 0.01 i.
    usages = [usage(i, nov(1), 2000 + 250 * i) for i in range(150)]
    usages.append(usage("idle-sim", nov(1), 0, enabled=False, reads=3))  # costs 0.00
    bill = november(usages)
    body = bill.sims_to_wire(NOW_MS)
    listed = body["costBreakdownList"]
    assert len(listed) == SIM_SUMMARY_LIMIT
    assert listed[0] == {"amount": 1.54, "simId": usage(149, nov(1)).sim_id}  # 0.05 + 1.49
    assert listed[-1] == {"amount": 0.55, "simId": usage(50, nov(1)).sim_id}  # 0.05 + 0.50
    assert "idle-sim" not in {s["simId"] for s in listed}
    assert len(bill.sims) == 151
    # Every SIM sums to the month's option and write lines: 150 x 0.05 = 7.50, plus
    # 0.01 x (0 + 1 + ... + 149) = 111.75; the wire's 100 (SIMs 50 to 149) sum to less,
    # 100 x 0.05 + 0.01 x (50 + ... + 149) = 5.00 + 99.50 = 104.50.
    assert sum(sim.amount for sim in bill.sims) == bill.option_fee + bill.write_fee == D("119.25")
    assert sum(D(str(sim["amount"])) for sim in listed) == D("104.50")
    check_schema(body, "BillingSummaryResponseOfSims")
    check_operation("/bills/summaries/sims", [body])


# --- properties ------------------------------------------------------------------------------
def ceil_cent(amount: Decimal) -> Decimal:
    """The oracle's own rounding up, independent of the module's."""
    return D(math.ceil(amount * 100)) / 100


def floor_cent(amount: Fraction) -> Decimal:
    """The oracle's own rounding down."""
    return D(math.floor(amount * 100)) / 100


SIM_IDS = [f"sim-{i}" for i in range(12)]
# Write counts around the 2,000 included writes and well past them.
WRITES = st.one_of(
    st.integers(0, 6000),
    st.integers(1990, 2300),
    st.sampled_from([0, 1999, 2000, 2001, 2250, 2251, 4000]),
)
# Days from 31 October to 1 December: the edges must stay out of November's bill.
DAYS = st.integers(0, 31).map(lambda n: date(2026, 10, 31) + timedelta(days=n))
USAGES = st.lists(
    st.builds(
        lambda sim, day, enabled, writes, reads: Usage(
            "imsi-" + sim, sim, day, enabled, writes, reads
        ),
        st.sampled_from(SIM_IDS),
        DAYS,
        st.booleans(),
        WRITES,
        st.integers(0, 50),
    ),
    max_size=150,
    unique_by=lambda u: (u.sim_id, u.day),
)


@given(USAGES, st.integers(0, 40))
def test_every_view_reconciles_with_the_month_bill(usages: list[Usage], down: int) -> None:
    bill = november(usages, unavailable_days=down)
    in_month = [u for u in usages if (u.day.year, u.day.month) == NOV]

    # The oracle: each SIM-day's fees rounded up to the cent once, then summed.
    option = D(0)
    writes = D(0)
    for u in in_month:
        included = 2000 if u.harvest_enabled else 0
        option += D("0.05") if u.harvest_enabled else D(0)
        writes += ceil_cent(max(0, u.writes - included) * D("0.00004"))
    free_tier = min(D("1.55"), option)
    fee = option - free_tier + writes
    credit = min(fee, floor_cent(Fraction(down) * Fraction(fee) / 30))
    assert (bill.option_fee, bill.write_fee, bill.free_tier) == (option, writes, free_tier)
    assert bill.credit == credit

    items = {i.name: i.amount for i in bill.items}
    option_item = items.get(BILL_ITEM_OPTION, D(0))
    write_item = items.get(BILL_ITEM_WRITES, D(0))
    free_tier_item = items.get(BILL_ITEM_FREE_TIER, D(0))
    credit_item = items.get(BILL_ITEM_CREDIT, D(0))
    # The four statements of docs/billing.md, exactly.
    assert sum((d.amount for d in bill.days), D(0)) == option_item + write_item
    assert sum((s.amount for s in bill.sims), D(0)) == option_item + write_item
    assert sum(items.values(), D(0)) == bill.total
    assert bill.total == option_item + free_tier_item + write_item + credit_item
    assert bill.total == option - free_tier + writes - credit
    # The same through the wire bodies (the SIM list is whole up to 100 SIMs).
    wire_days = bill.daily_to_wire()["billList"]
    assert sum((D(str(d["amount"])) for d in wire_days), D(0)) == option + writes
    wire_sims = bill.sims_to_wire(NOW_MS)["costBreakdownList"]
    assert sum((D(str(x["amount"])) for x in wire_sims), D(0)) == option + writes
    assert D(str(bill.to_wire()["amount"])) == bill.total

    amounts = [bill.total, bill.option_fee, bill.free_tier, bill.write_fee, bill.credit]
    amounts += [d.amount for d in bill.days] + [s.amount for s in bill.sims]
    assert all(a >= 0 and a == a.quantize(D("0.01")) for a in amounts)
    negative = {BILL_ITEM_FREE_TIER, BILL_ITEM_CREDIT}
    assert all(i.amount < 0 for i in bill.items if i.name in negative)
    assert all(i.amount > 0 for i in bill.items if i.name not in negative)
    assert [s.amount for s in bill.sims] == sorted((s.amount for s in bill.sims), reverse=True)

    for day in bill.days:
        assert day_charges(usages, day.day) == day
    assert [d.day for d in bill.days] == sorted({u.day for u in in_month})


@given(USAGES)
def test_wire_bodies_always_match_the_document(usages: list[Usage]) -> None:
    bill = november(usages, closed=False)
    check_schema(bill.to_wire(), "MonthlyBill")
    check_schema(bill.daily_to_wire(), "DailyBillResponse")
    check_schema(bill.latest_to_wire(NOW_MS), "GetLatestBill")
    check_schema(bill.bill_items_to_wire(NOW_MS), "BillingSummaryResponseOfBillItems")
    check_schema(bill.sims_to_wire(NOW_MS), "BillingSummaryResponseOfSims")
