"""Harvest bills: one operator's SIM-day charges (:mod:`quotas.fees`) summed into the views the
``/bills`` operations of SORACOM's OpenAPI document answer, and their wire bodies.

Money is a ``Decimal`` in USD and turns into a JSON number only in the ``*_wire`` functions and
methods. Every view is a plain sum of the SIM-days' rounded amounts (the rounding rule:
:mod:`quotas.fees`):

- daily bill (:attr:`MonthBill.days`, :func:`day_charges`): the day's SIM-day amounts;
- per-SIM summary (:attr:`MonthBill.sims`): the SIM's SIM-day amounts over the month;
- month bill (:func:`month_bill`): the option line and the write-request line, each the sum
  of every SIM-day's; then the free tier and the unavailability credit
  (:func:`~quotas.fees.month_lines`).

Nothing is rounded twice, so the views reconcile exactly. **Daily and per-SIM amounts are
gross**: the free tier is a monthly deduction per account ((12)(b)) and ``getBillingPerDay``
says fees charged monthly are not in the daily bill, so neither carries it, nor the credit. For
every :class:`MonthBill` ``b``::

    sum(d.amount for d in b.days) == b.option_fee + b.write_fee
    sum(s.amount for s in b.sims) == b.option_fee + b.write_fee
    sum(i.amount for i in b.items) == b.total
    b.total == b.option_fee - b.free_tier + b.write_fee - b.credit

(the per-SIM sum over every SIM: ``getBillingSummaryOfSims`` lists at most 100 of them, so the
wire list of a larger fleet sums to less).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

from quotas.fees import (
    CURRENCY,
    SimDayCharge,
    Usage,
    check_month,
    month_lines,
    sim_day_charge,
)

log = logging.getLogger(__name__)

#: ``getBillingSummaryOfSims`` lists at most 100 SIMs (OpenAPI ``BillingSummaryResponseOfSims``).
SIM_SUMMARY_LIMIT: Final = 100

# Bill item names. SORACOM does not publish the category and names its billing dashboard uses
# for Harvest, so these are the emulator's own (spec section B).
#: ``billItemCategory`` of every Harvest line.
BILL_ITEM_CATEGORY: Final = "Harvest"
#: The option fee, before the free tier.
BILL_ITEM_OPTION: Final = "Harvest Data Option"
#: The free tier, as a negative amount.
BILL_ITEM_FREE_TIER: Final = "Harvest Data Option Free Tier"
#: Writes beyond the daily bundle.
BILL_ITEM_WRITES: Final = "Harvest Data write requests"
#: The reduction for days of complete unavailability, as a negative amount.
BILL_ITEM_CREDIT: Final = "Service unavailability credit (logging-service-terms 14.2(c))"

#: ``MonthlyBill.state`` (OpenAPI): still aggregating, or confirmed.
STATE_TEMPORARY: Final = "temporary"
STATE_CLOSED: Final = "closed"


def month_is_closed(year: int, month: int, *, today: date) -> bool:
    """Whether the UTC month has ended on ``today`` (a UTC date), so its bill is ``closed``.

    SORACOM finalises a month's fees within the first business days of the next month; the
    emulator closes the bill as soon as the month is over.
    """
    check_month(year, month)
    return (year, month) < (today.year, today.month)


@dataclass(frozen=True, slots=True)
class DayCharges:
    """One operator's charges for one UTC day: the day's line of the daily bill.

    ``option_fee`` and ``write_fee`` are the sums of the day's SIM-days' (rounded) fees;
    ``amount`` is their sum. The free tier and the credit are not in it (see the module
    docstring).
    """

    day: date
    #: One per SIM that has a usage on the day, by SIM ID.
    sims: tuple[SimDayCharge, ...]
    option_fee: Decimal
    write_fee: Decimal
    amount: Decimal

    def to_wire(self) -> dict[str, Any]:
        """The OpenAPI ``DailyBill``: ``{"amount", "currency", "date": "YYYYMMDD"}``."""
        return {
            "amount": float(self.amount),
            "currency": CURRENCY,
            "date": self.day.strftime("%Y%m%d"),
        }


@dataclass(frozen=True, slots=True)
class SimMonthCharge:
    """One SIM's charges for one UTC month, for ``getBillingSummaryOfSims``.

    ``option_fee`` and ``write_fee`` are the sums of the SIM's SIM-days' (rounded) fees over
    the month; ``amount`` is their sum. The account's free tier and credit are not in it.
    """

    sim_id: str
    #: Days on which the SIM's group had Harvest enabled.
    harvest_days: int
    writes: int
    reads: int
    overage_writes: int
    option_fee: Decimal
    write_fee: Decimal
    amount: Decimal

    def to_wire(self) -> dict[str, Any]:
        """The OpenAPI ``SimCostBreakdown``: ``{"amount", "simId"}``."""
        return {"amount": float(self.amount), "simId": self.sim_id}


@dataclass(frozen=True, slots=True)
class BillItem:
    """One line of a month's bill, for ``getBillingSummaryOfBillItems``.

    Category and names are the emulator's (:data:`BILL_ITEM_CATEGORY` and the
    ``BILL_ITEM_*`` names), as SORACOM does not publish its own.
    """

    category: str
    name: str
    amount: Decimal

    def to_wire(self) -> dict[str, Any]:
        """The OpenAPI ``BillItemCostBreakdown``."""
        return {
            "amount": float(self.amount),
            "billItemCategory": self.category,
            "billItemName": self.name,
        }


@dataclass(frozen=True, slots=True)
class MonthBill:
    """One operator's Harvest bill for one UTC month (rounding: see the module docstring).

    ``total == option_fee - free_tier + write_fee - credit``, never negative, and equal to the
    sum of ``items``. A month with no usage is a valid bill of 0.
    """

    year: int
    month: int
    #: ``True`` once the month is over (``state`` ``closed``), else ``temporary``.
    closed: bool
    #: 0.05 x SIM-days with Harvest enabled, before the free tier.
    option_fee: Decimal
    #: The free tier actually used: ``min(1.55, option_fee)``, positive.
    free_tier: Decimal
    #: The SIM-days' write fees, each rounded up to the cent, summed.
    write_fee: Decimal
    #: Whole days of complete unavailability recorded in the month (14.2(c)).
    unavailable_days: int
    #: The reduction for them, positive (:func:`unavailability_credit`).
    credit: Decimal
    total: Decimal
    #: SIM-days on which Harvest was enabled.
    harvest_days: int
    writes: int
    reads: int
    overage_writes: int
    #: Every day of the month that has a usage, oldest first (gross of the free tier).
    days: tuple[DayCharges, ...]
    #: Every SIM with a usage in the month, highest amount first, then by SIM ID.
    sims: tuple[SimMonthCharge, ...]
    #: The non-zero lines, highest amount first: option fee, writes, and the free tier and the
    #: credit as negative amounts.
    items: tuple[BillItem, ...]

    @property
    def year_month(self) -> str:
        """``YYYYMM``, as the API's ``yyyyMM`` path parameter and ``yearMonth`` fields."""
        return f"{self.year:04d}{self.month:02d}"

    @property
    def state(self) -> str:
        """``closed`` or ``temporary`` (OpenAPI ``MonthlyBill.state``)."""
        return STATE_CLOSED if self.closed else STATE_TEMPORARY

    def to_wire(self) -> dict[str, Any]:
        """The OpenAPI ``MonthlyBill`` (``getBilling``).

        No ``paymentStatus``, ``paymentTransactionId`` or ``appliedCouponAmount``: the emulator
        takes no payments and has no coupons.
        """
        return {
            "amount": float(self.total),
            "currency": CURRENCY,
            "state": self.state,
            "yearMonth": self.year_month,
        }

    def daily_to_wire(self) -> dict[str, Any]:
        """The OpenAPI ``DailyBillResponse`` (``getBillingPerDay``).

        Days with a non-zero amount, newest first as in the document's example.
        """
        days = [day.to_wire() for day in reversed(self.days) if day.amount]
        return {"billList": days}

    def latest_to_wire(self, now_ms: int) -> dict[str, Any]:
        """The OpenAPI ``GetLatestBill`` (``getLatestBilling``) for the running month.

        ``lastEvaluatedTime`` is ``now_ms`` as ``yyyyMMddHHmmss`` in UTC. Raises ``ValueError``
        for a closed bill: this operation reports only the month not yet finalised.
        """
        if self.closed:
            raise ValueError(f"the bill for {self.year_month} is closed, not the latest")
        return {
            "amount": float(self.total),
            "currency": CURRENCY,
            "lastEvaluatedTime": _utc(now_ms).strftime("%Y%m%d%H%M%S"),
        }

    def bill_items_to_wire(self, now_ms: int) -> dict[str, Any]:
        """One element of ``getBillingSummaryOfBillItems``' list: this month's lines.

        ``updatedTime`` is ``now_ms`` in whole seconds.
        """
        return {
            "costBreakdownList": [item.to_wire() for item in self.items],
            "currency": CURRENCY,
            "updatedTime": now_ms // 1000,
            "yearMonth": self.year_month,
        }

    def sims_to_wire(self, now_ms: int) -> dict[str, Any]:
        """One element of ``getBillingSummaryOfSims``' list.

        The SIMs with a non-zero amount, highest first, at most :data:`SIM_SUMMARY_LIMIT`: with
        more SIMs than that, the list sums to less than :attr:`sims` does.
        ``updatedTime`` is ``now_ms`` in whole seconds.
        """
        sims = [sim.to_wire() for sim in self.sims if sim.amount][:SIM_SUMMARY_LIMIT]
        return {
            "costBreakdownList": sims,
            "currency": CURRENCY,
            "updatedTime": now_ms // 1000,
            "yearMonth": self.year_month,
        }


def billing_history_to_wire(bills: Iterable[MonthBill]) -> dict[str, Any]:
    """The OpenAPI ``GetBillingHistoryResponse`` (``getBillingHistory``), newest month first.

    The operation lists finalised months only, so every bill must be closed (``ValueError``
    otherwise); the caller chooses which months to include.
    """
    listed = sorted(bills, key=lambda bill: (bill.year, bill.month), reverse=True)
    for bill in listed:
        if not bill.closed:
            raise ValueError(f"the bill for {bill.year_month} is not closed")
    return {"billList": [bill.to_wire() for bill in listed]}


def day_charges(usages: Iterable[Usage], day: date) -> DayCharges:
    """One operator's charges for the UTC ``day``, from its usages on that day.

    Usages on other days are ignored. A second usage of a SIM on the day is logged and skipped.
    """
    charges = _unique([u for u in usages if u.day == day])
    return _day(day, tuple(sim_day_charge(usage) for usage in charges))


def month_bill(
    usages: Iterable[Usage],
    year: int,
    month: int,
    *,
    closed: bool,
    unavailable_days: int = 0,
) -> MonthBill:
    """One operator's bill for the UTC month ``year``-``month``, from its usages.

    Usages outside the month are ignored, so the same list can feed every month's bill.
    ``unavailable_days`` are the whole days of complete unavailability recorded in the month
    (logging-service-terms 14.2(c)). Raises ``ValueError`` for an impossible month or a
    negative number of days (the caller's arguments); a second usage of a SIM on one day is
    logged and skipped.
    """
    check_month(year, month)
    in_month = _unique([u for u in usages if (u.day.year, u.day.month) == (year, month)])

    by_day: defaultdict[date, list[SimDayCharge]] = defaultdict(list)
    by_sim: defaultdict[str, list[SimDayCharge]] = defaultdict(list)
    for usage in in_month:
        charge = sim_day_charge(usage)
        by_day[usage.day].append(charge)
        by_sim[usage.sim_id].append(charge)
    days = tuple(_day(day, tuple(by_day[day])) for day in sorted(by_day))
    sims = sorted((_sim_month(sim_id, charges) for sim_id, charges in by_sim.items()), key=_rank)

    every = [charge for charges in by_day.values() for charge in charges]
    sums = month_lines(
        _sum(c.option_fee for c in every),
        _sum(c.write_fee for c in every),
        year,
        month,
        unavailable_days,
    )
    lines = (
        BillItem(BILL_ITEM_CATEGORY, BILL_ITEM_OPTION, sums.option_fee),
        BillItem(BILL_ITEM_CATEGORY, BILL_ITEM_FREE_TIER, -sums.free_tier),
        BillItem(BILL_ITEM_CATEGORY, BILL_ITEM_WRITES, sums.write_fee),
        BillItem(BILL_ITEM_CATEGORY, BILL_ITEM_CREDIT, -sums.credit),
    )
    items = sorted((line for line in lines if line.amount), key=lambda i: i.amount, reverse=True)

    return MonthBill(
        year=year,
        month=month,
        closed=closed,
        option_fee=sums.option_fee,
        free_tier=sums.free_tier,
        write_fee=sums.write_fee,
        unavailable_days=unavailable_days,
        credit=sums.credit,
        total=sums.total,
        harvest_days=sum(1 for c in every if c.harvest_enabled),
        writes=sum(c.writes for c in every),
        reads=sum(c.reads for c in every),
        overage_writes=sum(c.overage_writes for c in every),
        days=days,
        sims=tuple(sims),
        items=tuple(items),
    )


def _day(day: date, charges: tuple[SimDayCharge, ...]) -> DayCharges:
    ordered = tuple(sorted(charges, key=lambda c: c.sim_id))
    option_fee = _sum(c.option_fee for c in ordered)
    write_fee = _sum(c.write_fee for c in ordered)
    return DayCharges(day, ordered, option_fee, write_fee, option_fee + write_fee)


def _sim_month(sim_id: str, charges: list[SimDayCharge]) -> SimMonthCharge:
    option_fee = _sum(c.option_fee for c in charges)
    write_fee = _sum(c.write_fee for c in charges)
    return SimMonthCharge(
        sim_id=sim_id,
        harvest_days=sum(1 for c in charges if c.harvest_enabled),
        writes=sum(c.writes for c in charges),
        reads=sum(c.reads for c in charges),
        overage_writes=sum(c.overage_writes for c in charges),
        option_fee=option_fee,
        write_fee=write_fee,
        amount=option_fee + write_fee,
    )


def _rank(sim: SimMonthCharge) -> tuple[Decimal, str]:
    return -sim.amount, sim.sim_id


def _sum(amounts: Iterable[Decimal]) -> Decimal:
    """The sum, with two decimals even when empty (every amount is in whole cents)."""
    return sum(amounts, Decimal("0.00"))


def _unique(usages: list[Usage]) -> list[Usage]:
    """The usages with at most one per SIM-day: a second one for a SIM-day is logged and
    skipped, never raised, so one bad input cannot stop a bill (callers fold the ledger per
    SIM-day, :func:`quotas.service.fee_usages`, so this does not happen with stored data)."""
    seen: set[tuple[str, date]] = set()
    kept: list[Usage] = []
    for usage in usages:
        key = (usage.sim_id, usage.day)
        if key in seen:
            log.warning(
                "bills: skipped a second usage of SIM %s on %s", usage.sim_id, usage.day.isoformat()
            )
            continue
        seen.add(key)
        kept.append(usage)
    return kept


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms // 1000, UTC)
