"""The running month meter (balance control, ``harvest_month_charges_usd``) charges exactly what
the month bill totals: both round each SIM-day's write fee once and sum (docs/billing.md)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from harvest.clock import EmulatorClock
from harvest.storage.base import ACCOUNT_WIDE, UsageKind
from harvest.storage.base import Usage as LedgerRow
from quotas.bills import month_bill
from quotas.ratelimit import RateSettings
from quotas.service import QuotaService, fee_usages, unavailable_days

OP = "OP0000000000"
IMSIS = [f"00101000000000{i}" for i in range(4)]


def at(day: int) -> int:
    return int(datetime(2026, 11, day, 12, tzinfo=UTC).timestamp() * 1000)


# Each SIM-day's writes (around the 2,000 included ones, so many SIM-days have a little
# overage), sent in pieces of at most ``chunk``; ``lost`` sends are released at once, as the
# ingest does when storing fails.
SIM_DAYS = st.dictionaries(
    st.tuples(st.integers(0, 3), st.integers(1, 4)),
    st.one_of(st.integers(0, 6000), st.integers(1990, 2300), st.sampled_from([2001, 2250, 2251])),
    max_size=16,
)


@settings(deadline=None)  # a property, not a timing: a busy machine must not fail it
@given(SIM_DAYS, st.integers(1, 2500), st.sets(st.integers(0, 50)), st.integers(0, 31))
def test_the_meter_charges_what_the_month_bill_totals(
    sim_days: dict[tuple[int, int], int], chunk: int, lost: set[int], down: int
) -> None:
    clock = EmulatorClock()
    clock.set(at(1), frozen=True)
    quotas = QuotaService(clock, rates=RateSettings(enabled=False))
    writes: Counter[tuple[str, str]] = Counter()
    sends = 0
    for (sim, day), total in sim_days.items():
        imsi, iso = IMSIS[sim], date(2026, 11, day).isoformat()
        clock.set(at(day))
        quotas.harvest_day(OP, imsi, iso)
        while writes[(imsi, iso)] < total:
            count = min(chunk, total - writes[(imsi, iso)])
            reservation = quotas.admit(OP, imsi, count)
            sends += 1
            if sends in lost:
                quotas.release(OP, reservation)
            else:
                writes[(imsi, iso)] += count
    quotas.unavailable(OP, "2026-11-04", down)

    rows = [
        LedgerRow(OP, IMSIS[sim], date(2026, 11, day).isoformat(), UsageKind.HARVEST_DAY, 1)
        for sim, day in sim_days
    ]
    rows += [LedgerRow(OP, imsi, day, UsageKind.WRITE, n) for (imsi, day), n in writes.items() if n]
    rows.append(LedgerRow(OP, ACCOUNT_WIDE, "2026-11-04", UsageKind.UNAVAILABLE_DAYS, down))
    bill = month_bill(
        fee_usages(rows), 2026, 11, closed=False, unavailable_days=unavailable_days(rows)
    )
    assert quotas.charges(OP) == bill.total
    # and after a reload from the ledger, as after a restart or a clock jump
    quotas.reload({}, {OP: rows})
    assert quotas.charges(OP) == bill.total
