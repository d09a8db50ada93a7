"""Harvest Data fees: the fee schedule of the service terms and what one SIM-day and one month
are charged (spec A3); the bills built from these charges are :mod:`quotas.bills`.

Pure code: no I/O and no clock; every day, month and instant is passed in. Money is a
``Decimal`` in USD.

Periods are UTC days and UTC months (General Provisions (a), (b) of both terms): a
:class:`Usage` counts one SIM on one UTC day, and a month's bill takes the usages whose day falls
in that month, so usage on either side of a month boundary lands in two bills, each with its own
free tier.

**Rounding: once, at the SIM-day** (docs/billing.md has the rule and a worked example).
General Provisions (b) calculates the fee charged per day per UTC day, and the option fee and
its 2,000 included writes are per SIM per day (air-global-terms Schedule (12)(a)), so the unit of
calculation is the SIM-day; (e) rounds fractions under 0.01 USD up. Each SIM-day's option fee
and its write fee (0.00004 x the writes past that SIM-day's bundle) are rounded up to the cent
once, there (:func:`sim_day_charge`), and every view of :mod:`quotas.bills` is a plain sum of
those rounded amounts; a month's lines take the free tier and the unavailability credit off
those sums (:func:`month_lines`, which the running meter of :mod:`quotas.service` uses too).
0.05 is a whole cent, so only write fees ever round.

**Unavailability credit** (logging-service-terms 14.2(c)): a month whose ledger holds ``n``
whole days of complete unavailability (recorded by ``quotas.housekeeping`` on the UTC day a
window ended) takes ``n`` x (the month's fee after the free tier) / (days in the month) off,
rounded down to the cent and never more than that fee (:func:`unavailability_credit`).

Not modelled: the Discount Period that (12)(b) names but never defines (the free tier always
applies), coupons (21.19), and the discretionary rounding and collection of bills under 0.5 USD
(General Provisions (f)).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_CEILING, Decimal
from typing import Final

#: Currency of every fee below and of every wire body (both terms' fee schedules are in USD).
CURRENCY: Final = "USD"

#: Harvest Data Option: 0.05 USD per SIM per UTC day on which the SIM's group has Harvest Data
#: enabled (air-global-terms, Schedule (12)(a)).
OPTION_FEE_PER_SIM_DAY: Final = Decimal("0.05")

#: Write requests included in the option fee: 2,000 per SIM per UTC day, not shared between the
#: account's SIMs, and unused ones are not carried over to the next day (air-global-terms,
#: Schedule (12)(a)).
INCLUDED_WRITES_PER_SIM_DAY: Final = 2000

#: Each write beyond the included ones: 0.00004 USD (logging-service-terms, Schedule 2(1)).
WRITE_FEE_PER_REQUEST: Final = Decimal("0.00004")

#: Reads: free (logging-service-terms, Schedule 2(2)); counted, never charged.
READ_FEE_PER_REQUEST: Final = Decimal(0)

#: Free tier: 1.55 USD per account per UTC month, taken off the Harvest Data Option fee only
#: (never off write fees) and never carried over to the next month (air-global-terms,
#: Schedule (12)(b)).
FREE_TIER_PER_MONTH: Final = Decimal("1.55")

#: Fractions under 0.01 USD are rounded up (General Provisions (e) of both terms), once per
#: SIM-day (General Provisions (b); see the module docstring).
CENT: Final = Decimal("0.01")

#: Writes past the bundle per cent of write fee: 0.01 / 0.00004 = 250. Rounded up to the cent, a
#: SIM-day's write fee is the same for every overage of one step (250k + 1 to 250(k + 1) writes,
#: :func:`write_fee_step`): a running meter need recompute it only when the step changes.
WRITES_PER_CENT: Final = int(CENT / WRITE_FEE_PER_REQUEST)
if WRITES_PER_CENT * WRITE_FEE_PER_REQUEST != CENT:  # pragma: no cover - a fee of whole steps
    raise ValueError("the write fee must divide a cent for write_fee_step to hold")


def round_up_to_cent(amount: Decimal) -> Decimal:
    """``amount`` rounded up to a whole cent (General Provisions (e)); it must not be negative."""
    if amount < 0:
        raise ValueError(f"cannot round a negative fee: {amount}")
    return amount.quantize(CENT, rounding=ROUND_CEILING)


def sim_day_write_fee(overage_writes: int) -> Decimal:
    """One SIM-day's write fee: 0.00004 x its writes past the bundle, rounded up to the cent
    once (General Provisions (b), (e); logging-service-terms Schedule 2(1))."""
    if overage_writes < 0:
        raise ValueError(f"negative overage: {overage_writes}")
    return round_up_to_cent(overage_writes * WRITE_FEE_PER_REQUEST)


def write_fee_step(overage_writes: int) -> int:
    """The step of :data:`WRITES_PER_CENT` writes that ``overage_writes`` is in (0 for none):
    overages of one step have the same :func:`sim_day_write_fee`."""
    return -(-overage_writes // WRITES_PER_CENT)


def unavailability_credit(fee: Decimal, days: int, year: int, month: int) -> Decimal:
    """The reduction of logging-service-terms 14.2(c) on a month's ``fee`` (after the free tier).

    ``days`` whole days of complete unavailability take ``days`` x ``fee`` / (days in the month)
    off, rounded down to the cent (what is left is the fee that (e) rounds up), and never more
    than ``fee``. The clause names the days, not the amount per day: a day's share of the
    month's fee is the emulator's reading (docs/billing.md).
    """
    check_month(year, month)
    if days < 0 or fee < 0:
        raise ValueError(f"a credit needs days >= 0 and a fee >= 0, not {days} and {fee}")
    cents = int(fee * 100)
    if cents != fee * 100:
        raise ValueError(f"the fee must be in whole cents: {fee}")
    in_month = calendar.monthrange(year, month)[1]
    return Decimal(min(cents, days * cents // in_month)).scaleb(-2)


@dataclass(frozen=True, slots=True)
class MonthLines:
    """A month's lines from its two sums: :func:`month_lines`."""

    #: The option fees of the month's SIM-days, summed.
    option_fee: Decimal
    #: The free tier actually used: ``min(1.55, option_fee)``, positive.
    free_tier: Decimal
    #: The (rounded) write fees of the month's SIM-days, summed.
    write_fee: Decimal
    #: The unavailability credit, positive.
    credit: Decimal

    @property
    def total(self) -> Decimal:
        """``option_fee - free_tier + write_fee - credit``, never negative."""
        return self.option_fee - self.free_tier + self.write_fee - self.credit


def month_lines(
    option_fee: Decimal, write_fee: Decimal, year: int, month: int, unavailable_days: int = 0
) -> MonthLines:
    """The month's lines from the sums of its SIM-days' rounded option and write fees: the free
    tier off the option fee only ((12)(b)), then the credit for ``unavailable_days`` whole days
    of complete unavailability (14.2(c)). Both the bill and the running meter use this."""
    free_tier = min(FREE_TIER_PER_MONTH, option_fee)
    fee = option_fee - free_tier + write_fee
    credit = unavailability_credit(fee, unavailable_days, year, month)
    return MonthLines(option_fee, free_tier, write_fee, credit)


@dataclass(frozen=True, slots=True)
class Usage:
    """What one SIM did on one UTC day: the only input to the fee functions.

    ``harvest_enabled`` says whether the SIM's group had Harvest Data enabled on that day, which
    makes the day cost the option fee and brings the 2,000 included writes. The device side
    refuses writes while Harvest is off (spec A1), so ``writes`` should then be 0; if it is not,
    the writes are still billed, all of them at 0.00004 USD: the write fee applies to every
    write (logging-service-terms, Schedule 2(1)) and the bundle comes only with the option fee
    ((12)(a)), which is not charged.

    ``sim_id`` identifies the SIM (the option fee and the bundle are per SIM card); ``imsi`` is
    carried along for the caller. Raises ``ValueError`` on empty ids, a ``datetime`` for
    ``day`` (a UTC date is required) or negative counts.
    """

    imsi: str
    sim_id: str
    day: date
    harvest_enabled: bool
    writes: int
    reads: int

    def __post_init__(self) -> None:
        if not self.imsi or not self.sim_id:
            raise ValueError("a usage needs an IMSI and a SIM ID")
        if isinstance(self.day, datetime):
            raise ValueError(f"a usage's day is a UTC date, not a datetime: {self.day!r}")
        if self.writes < 0 or self.reads < 0:
            raise ValueError(f"negative counts: {self.writes} writes, {self.reads} reads")


@dataclass(frozen=True, slots=True)
class SimDayCharge:
    """One SIM's charges for one UTC day: each fee rounded up to the cent here, once."""

    sim_id: str
    imsi: str
    day: date
    harvest_enabled: bool
    writes: int
    reads: int
    #: 0.05 when Harvest was enabled that day, else 0.
    option_fee: Decimal
    #: Writes covered by the day's bundle: at most 2,000, and 0 when Harvest was off.
    included_writes: int
    #: Writes beyond the bundle.
    overage_writes: int
    #: ``overage_writes`` x 0.00004, exact (not charged as such: see ``write_fee``).
    exact_write_fee: Decimal
    #: ``exact_write_fee`` rounded up to the cent: what the SIM-day is charged for writes.
    write_fee: Decimal

    @property
    def amount(self) -> Decimal:
        """``option_fee + write_fee``: the SIM-day's part of every view."""
        return self.option_fee + self.write_fee


def sim_day_charge(usage: Usage) -> SimDayCharge:
    """One SIM-day's charges: the option fee, the bundle used, the overage and its fee.

    With Harvest enabled: 0.05, the first 2,000 writes included, the rest at 0.00004 each.
    With it off: no option fee and no bundle, every write at 0.00004 (see :class:`Usage`).
    Reads cost :data:`READ_FEE_PER_REQUEST`, nothing, so no fee counts them. Each fee is
    rounded up to the cent here, the one place anything is rounded.
    """
    if usage.harvest_enabled:
        option_fee = round_up_to_cent(OPTION_FEE_PER_SIM_DAY)
        included = min(usage.writes, INCLUDED_WRITES_PER_SIM_DAY)
    else:
        option_fee = Decimal(0)
        included = 0
    overage = usage.writes - included
    return SimDayCharge(
        sim_id=usage.sim_id,
        imsi=usage.imsi,
        day=usage.day,
        harvest_enabled=usage.harvest_enabled,
        writes=usage.writes,
        reads=usage.reads,
        option_fee=option_fee,
        included_writes=included,
        overage_writes=overage,
        exact_write_fee=overage * WRITE_FEE_PER_REQUEST,
        write_fee=sim_day_write_fee(overage),
    )


def check_month(year: int, month: int) -> None:
    """Raise ``ValueError`` for an impossible month (the caller's arguments)."""
    if not 1 <= year <= 9999 or not 1 <= month <= 12:
        raise ValueError(f"no such month: {year}-{month}")
