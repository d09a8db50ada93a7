"""The quota service the ingest and the API consult: rate ceilings, balance control, the daily
bundle and the running month meter.

Every check here is synchronous and in memory, so it adds no wait to a write. What it counts is
seeded from the usage ledger (:meth:`QuotaService.reload`) and kept in step with it by the
ingest, which stores the same writes in the same transaction as their entries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from harvest import errors
from harvest.clock import Clock
from harvest.errors import HarvestError
from harvest.storage.base import Usage as LedgerRow
from harvest.storage.base import UsageKind
from quotas.bundle import DailyBundle, Quota, QuotaPolicy, Reservation, StaticCounts
from quotas.calendar import utc_day
from quotas.fees import (
    OPTION_FEE_PER_SIM_DAY,
    Usage,
    month_lines,
    sim_day_charge,
    sim_day_write_fee,
    write_fee_step,
)
from quotas.ratelimit import RateLimiter, RateSettings

log = logging.getLogger(__name__)

#: The ledger kinds a fee reads, folded into one :class:`Usage` per SIM-day.
_FEE_KINDS = frozenset({UsageKind.WRITE, UsageKind.READ, UsageKind.HARVEST_DAY})


def fee_usages(rows: Iterable[LedgerRow], sim_ids: Mapping[str, str] | None = None) -> list[Usage]:
    """Ledger rows (one per kind) folded into the fee calculator's one-per-SIM-day usages.

    Only the per-SIM kinds a fee reads are folded: 5-minute buckets, bytes read and the
    operator's unavailable days (:func:`unavailable_days`) are not usages. With ``sim_ids``
    (the operator's SIMs, IMSI to SIM id), rows are folded per SIM id, and rows of an IMSI
    that is not one of them are skipped. Never raises: a row this version would not write (an
    unknown IMSI, a day that is not a date, a negative count, as a past version or a hand-made
    snapshot may hold) is skipped and logged, so one bad row cannot stop every bill.
    """
    folded: dict[tuple[str, date], tuple[str, dict[UsageKind, int]]] = {}
    skipped: list[str] = []
    for row in rows:
        if row.kind not in _FEE_KINDS:
            continue
        if not row.imsi or (sim_ids is not None and row.imsi not in sim_ids):
            skipped.append(f"{row.imsi}/{row.day}/{row.kind}: not a SIM of the operator")
            continue
        try:
            day = date.fromisoformat(row.day)
        except ValueError:
            skipped.append(f"{row.imsi}/{row.day}/{row.kind}: not a UTC day")
            continue
        if row.count < 0:
            skipped.append(f"{row.imsi}/{row.day}/{row.kind}: negative count {row.count}")
            continue
        sim_id = row.imsi if sim_ids is None else sim_ids[row.imsi]
        _, counts = folded.setdefault((sim_id, day), (row.imsi, {}))
        counts[row.kind] = counts.get(row.kind, 0) + row.count
    if skipped:
        log.warning(
            "ledger: skipped %d row(s) no fee reads: %s", len(skipped), "; ".join(skipped[:5])
        )
    return [
        Usage(
            imsi=imsi,
            sim_id=sim_id,
            day=day,
            harvest_enabled=counts.get(UsageKind.HARVEST_DAY, 0) > 0,
            writes=counts.get(UsageKind.WRITE, 0),
            reads=counts.get(UsageKind.READ, 0),
        )
        for (sim_id, day), (imsi, counts) in sorted(folded.items())
    ]


def unavailable_days(rows: Iterable[LedgerRow]) -> int:
    """The whole days of complete unavailability among ledger rows (logging-service-terms
    14.2(c)), for the bill of the month the rows cover."""
    return sum(row.count for row in rows if row.kind is UsageKind.UNAVAILABLE_DAYS)


_NO_FEE = Decimal("0.00")


@dataclass(slots=True)
class MonthMeter:
    """One operator's running charges for the UTC month ``year``-``month``, as the bill has them.

    ``option_days`` counts SIM-days with Harvest enabled; ``overage`` the writes past each
    SIM-day's bundle, by (IMSI, day), because each SIM-day's write fee is rounded up to the cent
    on its own (:mod:`quotas.fees`); ``write_fee`` is the sum of those rounded fees, kept as
    each SIM-day's overage grows. :attr:`charges` is the month bill's total:
    :func:`quotas.fees.month_lines` over the same sums.
    """

    year: int
    month: int
    option_days: int = 0
    overage: dict[tuple[str, str], int] = field(default_factory=dict)
    write_fee: Decimal = Decimal("0.00")
    unavailable_days: int = 0
    #: Each SIM-day's write fee, as ``write_fee`` sums it.
    fees: dict[tuple[str, str], Decimal] = field(default_factory=dict)

    def add_overage(self, imsi: str, day: str, writes: int) -> None:
        """``writes`` more (or, negative, fewer) writes past the bundle of one SIM-day."""
        if not writes:
            return
        key = (imsi, day)
        before = self.overage.get(key, 0)
        new = max(0, before + writes)
        self.overage[key] = new
        # A cent per 250 writes: most writes past the bundle leave the fee as it was, and its
        # Decimal arithmetic made the meter cost 3.6 us a write past the bundle, 1.6 us now
        # (docs/benchmarks.md, "HTTP on this machine").
        if write_fee_step(new) != write_fee_step(before):
            fee = sim_day_write_fee(new)
            old = self.fees.get(key, _NO_FEE)
            self.fees[key] = fee
            self.write_fee += fee - old

    @property
    def charges(self) -> Decimal:
        option = OPTION_FEE_PER_SIM_DAY * self.option_days
        lines = month_lines(option, self.write_fee, self.year, self.month, self.unavailable_days)
        return lines.total


class QuotaService:
    """See the module docstring."""

    def __init__(
        self,
        clock: Clock,
        *,
        policy: QuotaPolicy = QuotaPolicy.BILL,
        rates: RateSettings | None = None,
        ceilings: Mapping[str, Decimal] | None = None,
        rate_clock: Clock | None = None,
    ) -> None:
        """``clock`` is the emulator clock (days, months, bills); ``rate_clock`` the real-time
        clock the rate ceilings measure with (spec B9; the server passes a monotonic one),
        ``clock`` when not given."""
        self._clock = clock
        self._counts = StaticCounts()
        self.bundle = DailyBundle(clock, self._counts, policy)
        self.limiter = RateLimiter(rates or RateSettings(), rate_clock or clock)
        #: Balance control per operator (logging-service-terms 11.6): charges may not pass it.
        self.ceilings: dict[str, Decimal] = dict(ceilings or {})
        self._meters: dict[tuple[str, str], MonthMeter] = {}
        self._harvest_days: set[tuple[str, str]] = set()
        self._reads: dict[tuple[str, str, str], list[int]] = {}

    # --- loading ------------------------------------------------------------------------------
    def reload(
        self,
        today_writes: Mapping[str, int],
        month_rows: Mapping[str, Iterable[LedgerRow]],
    ) -> None:
        """Start over from the ledger: today's write counts and, per operator, this month's rows
        (after a start, a reset or a clock jump)."""
        day = utc_day(self._clock.now_ms())
        self._counts = StaticCounts({day: dict(today_writes)})
        self.bundle = DailyBundle(self._clock, self._counts, self.bundle.policy)
        self._meters.clear()
        self._harvest_days.clear()
        month = day[:7]
        for operator_id, rows in month_rows.items():
            listed = list(rows)
            meter = self._meter(operator_id, month)
            meter.unavailable_days += unavailable_days(listed)
            for usage in fee_usages(listed):
                charge = sim_day_charge(usage)
                meter.add_overage(usage.imsi, usage.day.isoformat(), charge.overage_writes)
                if usage.harvest_enabled:
                    meter.option_days += 1
                    self._harvest_days.add((usage.imsi, usage.day.isoformat()))

    def _meter(self, operator_id: str, month: str) -> MonthMeter:
        """The meter of ``month`` (``YYYY-MM``)."""
        meter = self._meters.get((operator_id, month))
        if meter is None:
            meter = MonthMeter(int(month[:4]), int(month[5:7]))
            self._meters[(operator_id, month)] = meter
        return meter

    # --- the write path -----------------------------------------------------------------------
    def admit(
        self, operator_id: str, imsi: str, writes: int, now_ms: int | None = None
    ) -> Reservation:
        """Admit ``writes`` writes of one SIM now (``now_ms``: the emulator clock's reading,
        when the caller has it), or raise the refusal.

        In order: the SIM's rate ceiling (429, with ``Retry-After``), the operator's balance
        control (403), the daily bundle under the ``reject`` policy (429). Once admitted, the
        request is in flight for the rate ceiling until :meth:`finish`; if storing fails,
        :meth:`release` the reservation as well.
        """
        limited = self.limiter.settings.enabled  # else nothing is in flight to count
        if limited:
            decision = self.limiter.device_write(imsi)
            if not decision.allowed:
                raise HarvestError(
                    errors.RATE_LIMITED,
                    f"SIM {imsi} is over its write rate ceiling; retry in "
                    f"{decision.retry_after} s.",
                    headers={"Retry-After": str(decision.retry_after)},
                )
        try:
            reservation = self._reserve(operator_id, imsi, writes, now_ms)
        except HarvestError:
            if limited:
                self.limiter.device_done(imsi)
            raise
        if reservation.overage:  # within the bundle nothing is billed: no meter to touch
            meter = self._meter(operator_id, reservation.day[:7])
            meter.add_overage(imsi, reservation.day, reservation.overage)
        return reservation

    def _reserve(self, operator_id: str, imsi: str, writes: int, now_ms: int | None) -> Reservation:
        ceiling = self.ceilings.get(operator_id) if self.ceilings else None
        if ceiling is not None:
            charges = self.charges(operator_id)
            if charges > ceiling:
                raise HarvestError(
                    errors.BALANCE_EXCEEDED,
                    f"This month's charges ({charges} USD) have passed the balance ceiling "
                    f"({ceiling} USD) (logging-service-terms 11.6).",
                )
        reservation = self.bundle.reserve(imsi, writes, now_ms=now_ms)
        if reservation.refused:
            quota = self.bundle.usage(imsi)
            raise HarvestError(
                errors.QUOTA_EXCEEDED,
                f"SIM {imsi} has used {quota.used} of its {quota.included} writes today and the "
                f"policy is reject; the bundle resets at {quota.next_reset_ms} (UTC midnight).",
            )
        return reservation

    def finish(self, imsi: str) -> None:
        """An admitted write request of the SIM has been answered (stored or not)."""
        self.limiter.device_done(imsi)

    def finish_all(self, imsis: Iterable[str]) -> None:
        """:meth:`finish` for each of ``imsis`` (one per request)."""
        if self.limiter.settings.enabled:
            for imsi in imsis:
                self.limiter.device_done(imsi)

    def release(self, operator_id: str, reservation: Reservation) -> None:
        """Undo an admitted reservation whose writes were not stored."""
        self.bundle.release(reservation)
        meter = self._meter(operator_id, reservation.day[:7])
        meter.add_overage(reservation.imsi, reservation.day, -reservation.overage)

    def harvest_day(self, operator_id: str, imsi: str, day: str) -> bool:
        """Note a SIM-day with Harvest enabled; ``False`` when it was already noted."""
        if (imsi, day) in self._harvest_days:
            return False
        self._harvest_days.add((imsi, day))
        self._meter(operator_id, day[:7]).option_days += 1
        return True

    def unavailable(self, operator_id: str, day: str, days: int) -> None:
        """Note ``days`` whole days of complete unavailability recorded on ``day`` (the ledger
        has them too), for that month's credit (logging-service-terms 14.2(c))."""
        self._meter(operator_id, day[:7]).unavailable_days += days

    # --- reads --------------------------------------------------------------------------------
    def note_read(self, operator_id: str, imsi: str, content_bytes: int) -> None:
        """Count one data read request of a SIM's data (free, logging-service-terms Schedule
        2(2)) and the bytes it returned; kept here until :meth:`drain_reads`."""
        key = (operator_id, imsi, utc_day(self._clock.now_ms()))
        counts = self._reads.setdefault(key, [0, 0])
        counts[0] += 1
        counts[1] += content_bytes

    def drain_reads(self) -> tuple[LedgerRow, ...]:
        """The reads noted since the last drain, as ledger rows (the caller stores them)."""
        rows: list[LedgerRow] = []
        for (operator_id, imsi, day), (count, size) in self._reads.items():
            rows.append(LedgerRow(operator_id, imsi, day, UsageKind.READ, count))
            if size:
                rows.append(LedgerRow(operator_id, imsi, day, UsageKind.READ_BYTES, size))
        self._reads = {}
        return tuple(rows)

    # --- inspection ---------------------------------------------------------------------------
    def charges(self, operator_id: str) -> Decimal:
        """The operator's running charges for the current UTC month."""
        month = utc_day(self._clock.now_ms())[:7]
        meter = self._meters.get((operator_id, month))
        return meter.charges if meter else Decimal("0.00")

    def quota(self, imsi: str) -> Quota:
        return self.bundle.usage(imsi)
