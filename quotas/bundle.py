"""The daily write bundle: 2,000 included write requests per SIM per UTC day (spec A2, A3, B8).

Pure code: the day comes from an injected :class:`Clock`, stored counts from a
:class:`CountSource`. A new UTC day is simply a new key, so no timer rolls anything over.

Nothing here awaits, so one call is atomic with respect to other asyncio tasks: a reservation
counts at once, and two senders can never both slip under the limit. The object is not
thread-safe.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from harvest.clock import Clock
from quotas.calendar import DAY_MS, next_utc_midnight, utc_day

#: Write requests included per SIM per UTC day, not shared between SIMs, no carry-over; a batch
#: element counts as one (air-global-terms Schedule (12)(a); spec A2, A3).
INCLUDED_WRITES_PER_DAY: Final = 2000


class QuotaPolicy(enum.StrEnum):
    """What happens to writes past the bundle (spec B8)."""

    #: Accept them; the ledger meters the overage, as the real service bills it (default).
    BILL = "bill"
    #: Refuse a whole send whose writes would pass the bundle (answered with 429).
    REJECT = "reject"


class CountSource(Protocol):
    """Where a day's stored write counts come from the first time the bundle sees that day.

    It is called synchronously from :meth:`DailyBundle.reserve` and :meth:`DailyBundle.usage`,
    so it must be fast and must not block: a mapping the caller has preloaded from the database
    (e.g. :class:`StaticCounts`), or a shared backend's in-process cache.
    """

    def counts_for_day(self, day: str) -> Mapping[str, int]:
        """Every SIM's write count on ``day`` (``YYYY-MM-DD``, UTC), keyed by IMSI; SIMs with
        no writes may be left out."""
        ...


class StaticCounts:
    """A :class:`CountSource` over counts loaded beforehand: ``{day: {imsi: count}}``."""

    def __init__(self, days: Mapping[str, Mapping[str, int]] | None = None) -> None:
        self._days: Mapping[str, Mapping[str, int]] = days if days is not None else {}

    def counts_for_day(self, day: str) -> Mapping[str, int]:
        return self._days.get(day, {})


# Not frozen: one is made per device write, and a frozen dataclass costs five times as much to
# build (0.6 against 0.12 us, tests/bench/ingest_stages.py). Nothing changes one once made.
@dataclass(slots=True)
class Reservation:
    """``count`` writes of one SIM on one UTC day, as :meth:`DailyBundle.reserve` decided.

    ``included`` of them fell within the bundle and ``overage`` past it, as the counts stood
    when they were reserved (a later release of an earlier reservation does not change this;
    the bill comes from the day's final count). A ``refused`` reservation counted nothing.
    """

    imsi: str
    day: str
    count: int
    included: int
    overage: int
    refused: bool
    #: Which counts this reservation belongs to (see :meth:`DailyBundle.release`).
    stamp: int
    #: This send used up the bundle: the SIM-day had included writes left before it, none after.
    exhausted: bool = False

    @property
    def accepted(self) -> bool:
        return not self.refused


@dataclass(frozen=True, slots=True)
class Quota:
    """One SIM's bundle on the current UTC day ``day``.

    ``used`` counts every write (past the bundle too), ``remaining`` the included writes left
    and ``overage`` the writes past the bundle; ``next_reset_ms`` is the next UTC midnight of
    the emulator clock, when a new day starts at zero.
    """

    imsi: str
    day: str
    used: int
    remaining: int
    included: int
    next_reset_ms: int

    @property
    def overage(self) -> int:
        return max(0, self.used - self.included)


class DailyBundle:
    """Write counts per (SIM, UTC day) in memory, checked against the included bundle.

    A day is loaded from ``source`` the first time it is used (counts of SIMs the source does
    not name start at zero) and kept until :meth:`reset`; the
    source is asked once per loaded day. Every count equals the loaded count plus the writes
    reserved since, less those released.
    """

    def __init__(
        self,
        clock: Clock,
        source: CountSource | None = None,
        policy: QuotaPolicy = QuotaPolicy.BILL,
        included: int = INCLUDED_WRITES_PER_DAY,
    ) -> None:
        if included < 0:
            raise ValueError("included must not be negative")
        self._clock = clock
        self._source = source if source is not None else StaticCounts()
        self.policy = QuotaPolicy(policy)
        self.included = included
        #: day -> imsi -> count
        self._days: dict[str, dict[str, int]] = {}
        #: Stamps: a counter that moves on every load and reset. A reservation made with stamp
        #: ``s`` belongs to the current counts iff ``s`` is at least its day's load stamp and
        #: its SIM's last reset stamp.
        self._stamp = 0
        self._loaded_at: dict[str, int] = {}
        self._reset_at: dict[str, int] = {}
        self._day_number = -1
        self._day_name = ""

    def _today(self, now_ms: int | None = None) -> tuple[str, int]:
        now = self._clock.now_ms() if now_ms is None else now_ms
        number = now // DAY_MS
        if number != self._day_number:
            self._day_number, self._day_name = number, utc_day(now)
        return self._day_name, now

    def _counts(self, day: str) -> dict[str, int]:
        counts = self._days.get(day)
        if counts is None:
            counts = {}
            for imsi, count in self._source.counts_for_day(day).items():
                if count < 0:
                    raise ValueError(f"the stored count of {imsi} on {day} is negative")
                if count:
                    counts[imsi] = count
            self._stamp += 1
            self._days[day] = counts
            self._loaded_at[day] = self._stamp
        return counts

    def reserve(
        self, imsi: str, n: int, policy: QuotaPolicy | None = None, *, now_ms: int | None = None
    ) -> Reservation:
        """Count ``n >= 1`` writes of ``imsi`` now (``now_ms``: the clock's reading, when the
        caller has it), unless the policy refuses them.

        ``policy`` (default: the bundle's) ``bill`` always accepts; ``reject`` refuses the whole
        send when any of its ``n`` writes would pass the bundle, and a refused send counts
        nothing. Release an accepted reservation whose writes were not stored.
        """
        if n < 1:
            raise ValueError("n must be at least 1")
        day, _ = self._today(now_ms)
        counts = self._counts(day)
        used = counts.get(imsi, 0)
        included = max(0, min(n, self.included - used))
        overage = n - included
        rule = self.policy if policy is None else policy
        refused = overage > 0 and rule == QuotaPolicy.REJECT
        if not refused:
            counts[imsi] = used + n
        exhausted = not refused and used < self.included <= used + n
        return Reservation(imsi, day, n, included, overage, refused, self._stamp, exhausted)

    def release(self, reservation: Reservation) -> None:
        """Undo an accepted reservation whose writes were not stored; call it at most once.

        A refused reservation, or one whose counts are gone (its day forgotten or reloaded, its
        SIM reset), releases nothing. Raises :class:`ValueError` when the count would go
        negative, which only a second release of the same reservation can cause.
        """
        if reservation.refused:
            return
        counts = self._days.get(reservation.day)
        if counts is None:
            return
        if reservation.stamp < max(
            self._loaded_at[reservation.day], self._reset_at.get(reservation.imsi, 0)
        ):
            return
        left = counts.get(reservation.imsi, 0) - reservation.count
        if left < 0:
            raise ValueError("released more writes than were reserved")
        if left:
            counts[reservation.imsi] = left
        else:
            counts.pop(reservation.imsi, None)

    def usage(self, imsi: str) -> Quota:
        """``imsi``'s bundle on the current UTC day of the emulator clock."""
        day, now = self._today()
        used = self._counts(day).get(imsi, 0)
        return Quota(
            imsi=imsi,
            day=day,
            used=used,
            remaining=max(0, self.included - used),
            included=self.included,
            next_reset_ms=next_utc_midnight(now),
        )

    def reset(self, imsi: str | None = None) -> None:
        """Zero one SIM's counts on every loaded day, or (``None``) drop every loaded day, so
        each is loaded from the source afresh: reset the stored counts first."""
        self._stamp += 1
        if imsi is None:
            self._days.clear()
            self._loaded_at.clear()
            self._reset_at.clear()
        else:
            for counts in self._days.values():
                counts.pop(imsi, None)
            self._reset_at[imsi] = self._stamp
