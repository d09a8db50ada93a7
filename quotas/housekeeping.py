"""What falls due with time: Harvest-enabled days in the ledger, the retention sweep, and clock
jumps that run both in order.

- **Harvest days.** The Harvest Data Option is charged per SIM per UTC day on which its group has
  Harvest enabled (air-global-terms Schedule (12)(a)). The ledger records such a SIM-day when the
  day starts, and at once when a SIM joins an enabled group or a group is enabled during a day.
  Terminated SIMs are not charged.
- **Retention sweep.** Entries past their operator's retention are already invisible to reads
  (``harvest.api.data``); the sweep deletes them, a bounded number of rows per pass, through the
  store's group commit, so it never holds up a write for long.
- **Unavailability.** A maintenance fault rule that matches everything makes the service
  completely unavailable for its window (:mod:`harvest.faults`). When such a window has ended
  (the clock passed its ``until``, seen on every pass and after every clock jump, or the rule
  was deleted) and lasted 24 hours or more, every operator's ledger gets its whole days (hours
  / 24, rounded down) once, on the UTC day it ended: the month's bill takes the credit of
  logging-service-terms 14.2(c) off (``quotas.fees``). The clause grants it "upon the
  Subscriber's request"; the emulator applies it without one.
- **Clock jumps.** Advancing the emulator clock walks every UTC midnight it crosses in order
  (each starts a day: Harvest days recorded, the bundle starts at zero), settles the
  unavailability windows that ended, then sweeps retention to completion and returns when
  everything has settled. A month closes by itself: bills are computed from the ledger, and a
  month before the clock's is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Protocol

from aiohttp import web

from harvest.clock import EmulatorClock
from harvest.context import (
    CLOCK,
    FAULTS,
    METRICS,
    QUOTAS,
    REGISTRY,
    SETTINGS,
    STATEFUL,
    STORE,
)
from harvest.domain import Group, ResourceType, Sim, SimStatus
from harvest.faults import FaultRule, Faults
from harvest.metrics import Metrics
from harvest.registry import Registry
from harvest.storage.base import (
    ACCOUNT_WIDE,
    EntryQuery,
    ExpireEntries,
    Mutation,
    PutGroup,
    PutSim,
    RecordUsage,
    Store,
    Usage,
    UsageKind,
)
from quotas.calendar import DAY_MS, next_utc_midnight, utc_day
from quotas.limits import retention_start
from quotas.service import QuotaService

log = logging.getLogger(__name__)

#: Resources one sweep pass looks at, besides the row bound.
SWEEP_RESOURCES_PER_PASS = 500
#: How often noted reads reach the ledger.
READ_FLUSH_INTERVAL_S = 1.0


class Chore(Protocol):
    """Another package's work that falls due with the clock (Harvest Files' retention and
    daily stored bytes): told of each UTC day that starts, and asked to expire what is due."""

    async def day_started(self, day: str) -> None: ...

    async def expire(self, now_ms: int | None = None) -> int: ...


class Housekeeping:
    """See the module docstring."""

    def __init__(
        self,
        *,
        clock: EmulatorClock,
        store: Store,
        registry: Registry,
        quotas: QuotaService,
        sweep_rows: int,
        sweep_interval_s: float,
        metrics: Metrics | None = None,
        faults: Faults | None = None,
    ) -> None:
        self._metrics = metrics
        self._faults = faults
        self._clock = clock
        self._store = store
        self._registry = registry
        self._quotas = quotas
        self._sweep_rows = sweep_rows
        self._sweep_interval_s = sweep_interval_s
        self._cursor: tuple[str, tuple[str, str] | None] | None = None
        self._lock = asyncio.Lock()
        self._reads_lock = asyncio.Lock()  # see flush_reads
        self._day = ""
        self._cycle_done = False
        self.swept = 0
        #: Other packages' chores, run at each day start and each sweep.
        self.chores: list[Chore] = []

    @property
    def day(self) -> str:
        """The UTC day housekeeping last started."""
        return self._day

    # --- start, reset, clock --------------------------------------------------------------------
    async def reset(self) -> None:
        """After a control-plane reset: start over from the (wiped) ledger."""
        await self.reload()

    async def reload(self) -> None:
        """Seed the quota service from the ledger for the clock's day and month, and record the
        day's Harvest days. Call after a start, a reset or a clock change."""
        now = self._clock.now_ms()
        day = utc_day(now)
        month = day[:7]
        month_rows = {
            op.operator_id: await self._store.usage_rows(
                op.operator_id, month + "-01", month + "-31"
            )
            for op in self._registry.operators()
        }
        self._quotas.reload(await self._store.day_counts(day, UsageKind.WRITE), month_rows)
        self._day = day
        await self.record_harvest_days(day, self._registry.all_sims())
        for chore in self.chores:
            await chore.day_started(day)

    async def clock_changed(self, previous_ms: int) -> None:
        """After ``PUT /clock``: a jump forward runs what fell due in between, in order."""
        async with self._lock:
            target = self._clock.now_ms()
            if target > previous_ms:
                frozen = self._clock.state().frozen
                self._clock.set(previous_ms, frozen)
                await self._walk_to(target)
                self._clock.set(target, frozen)
            await self.settle_outages()
            await self.reload()
            await self._sweep_to_the_end()

    async def advance(self, milliseconds: int) -> None:
        """``POST /clock/advance``: move forward, running every day start on the way, then sweep
        retention to the end; returns when all is settled."""
        async with self._lock:
            target = self._clock.now_ms() + milliseconds
            await self._walk_to(target)
            self._clock.set(target, self._clock.state().frozen)
            await self.settle_outages()
            await self.reload()
            await self._sweep_to_the_end()

    async def _walk_to(self, target: int) -> None:
        frozen = self._clock.state().frozen
        midnight = next_utc_midnight(self._clock.now_ms())
        while midnight <= target:
            self._clock.set(midnight, frozen)
            await self.record_harvest_days(utc_day(midnight), self._registry.all_sims())
            for chore in self.chores:  # what expired by that midnight is not stored that day
                await chore.expire(midnight)
                await chore.day_started(utc_day(midnight))
            midnight += DAY_MS

    # --- Harvest days ---------------------------------------------------------------------------
    def _enabled(self, sim: Sim) -> bool:
        if sim.status is SimStatus.TERMINATED or sim.group_id is None:
            return False
        group = self._registry.group_by_id(sim.group_id)
        return group is not None and group.harvest_enabled

    async def record_harvest_days(self, day: str, sims: Iterable[Sim]) -> None:
        """Record ``day`` for each given SIM whose group has Harvest on (once per SIM-day)."""
        rows = tuple(
            Usage(sim.operator_id, sim.imsi, day, UsageKind.HARVEST_DAY, 1)
            for sim in list(sims)
            if self._enabled(sim) and self._quotas.harvest_day(sim.operator_id, sim.imsi, day)
        )
        if rows:
            await self._store.apply([RecordUsage(rows)])

    async def state_changed(self, mutations: Sequence[Mutation]) -> None:
        """Registry listener: a SIM that joins an enabled group, or a group switched on, starts
        being charged today (spec A3: per day on which its group has Harvest enabled)."""
        touched: list[Sim] = []
        for mutation in mutations:
            if isinstance(mutation, PutSim):
                touched.append(mutation.sim)
            elif isinstance(mutation, PutGroup):
                touched.extend(self._members(mutation.group))
        if touched:
            await self.record_harvest_days(utc_day(self._clock.now_ms()), touched)

    def _members(self, group: Group) -> list[Sim]:
        return [s for s in self._registry.all_sims() if s.group_id == group.group_id]

    # --- unavailability --------------------------------------------------------------------------
    async def settle_outages(self) -> None:
        """Account for every whole-service maintenance window whose ``until`` the clock has
        passed (call with the lock held)."""
        if self._faults is None:
            return
        now = self._clock.now_ms()
        for rule in list(self._faults.rules.values()):
            if not rule.settled:
                end = rule.outage_end(now, deleted=False)
                if end is not None:
                    await self._settle(rule, end)

    async def faults_removed(self, rules: Sequence[FaultRule]) -> None:
        """Faults listener: a deleted whole-service window ends now, or at its earlier
        ``until``."""
        async with self._lock:
            now = self._clock.now_ms()
            for rule in rules:
                if not rule.settled:
                    end = rule.outage_end(now, deleted=True)
                    if end is not None:
                        await self._settle(rule, end)

    async def _settle(self, rule: FaultRule, end_ms: int) -> None:
        """Record a window's whole days (24 hours or more: logging-service-terms 14.2(c)) for
        every operator on the UTC day it ended, once."""
        days = max(0, end_ms - rule.start_ms) // DAY_MS
        if days:
            day = utc_day(end_ms)
            operators = [op.operator_id for op in self._registry.operators()]
            rows = tuple(
                Usage(op, ACCOUNT_WIDE, day, UsageKind.UNAVAILABLE_DAYS, days) for op in operators
            )
            if rows:
                await self._store.apply([RecordUsage(rows)])
            for operator_id in operators:
                self._quotas.unavailable(operator_id, day, days)
        rule.settled = True

    # --- retention ------------------------------------------------------------------------------
    async def sweep(self, max_rows: int | None = None) -> int:
        """One bounded pass: delete at most ``max_rows`` expired entries; the number deleted.

        It goes through every operator's resources with a cursor kept between passes, so each
        pass does bounded work and a full cycle visits every resource.
        """
        deleted = await self._sweep_pass(max_rows)
        for chore in self.chores:
            await chore.expire(self._clock.now_ms())
        self.swept += deleted
        if self._metrics is not None:
            self._metrics.retention_sweeps.inc()
            self._metrics.entries_expired.inc(deleted)
        return deleted

    async def _sweep_pass(self, max_rows: int | None) -> int:
        budget = self._sweep_rows if max_rows is None else max_rows
        self._cycle_done = False
        deleted = 0
        visited = 0
        operators = [o.operator_id for o in self._registry.operators()]
        if not operators:
            return 0
        if self._cursor is None or self._cursor[0] not in operators:
            self._cursor = (operators[0], None)
        operator_id, after = self._cursor
        now = self._clock.now_ms()
        while budget > 0 and visited < SWEEP_RESOURCES_PER_PASS:
            cutoff = retention_start(now, self._registry.retention_days(operator_id))
            resources = await self._store.list_resources(operator_id, None, 100, after)
            if not resources:
                index = operators.index(operator_id) + 1
                if index >= len(operators):
                    self._cursor = (operators[0], None)
                    self._cycle_done = True
                    return deleted
                operator_id, after = operators[index], None
                continue
            for meta in resources:
                visited += 1
                after = (meta.resource_type.value, meta.resource_id)
                expired = await self._count_expired(
                    meta.resource_type, operator_id, meta.resource_id, cutoff, budget
                )
                if expired:
                    await self._store.apply(
                        [
                            ExpireEntries(
                                operator_id, meta.resource_type, meta.resource_id, cutoff, expired
                            )
                        ]
                    )
                    deleted += expired
                    budget -= expired
                if budget <= 0:
                    break
            self._cursor = (operator_id, after)
        return deleted

    async def _count_expired(
        self,
        resource_type: ResourceType,
        operator_id: str,
        resource_id: str,
        cutoff: int,
        budget: int,
    ) -> int:
        if cutoff <= 0:
            return 0
        rows = await self._store.query_entries(
            EntryQuery(operator_id, resource_type, resource_id, 0, cutoff - 1, True, budget)
        )
        return len(rows)

    async def _sweep_to_the_end(self) -> None:
        """Sweep from the start in bounded passes until a whole cycle finds nothing expired."""
        self._cursor = None
        for chore in self.chores:
            await chore.expire(self._clock.now_ms())
        if not self._registry.operators():
            return
        deleted_in_cycle = 0
        while True:
            deleted_in_cycle += await self.sweep(self._sweep_rows * 100)
            if self._cycle_done:
                if not deleted_in_cycle:
                    return
                deleted_in_cycle = 0

    # --- reads --------------------------------------------------------------------------------
    async def flush_reads(self) -> None:
        """Store the reads noted since the last flush (at most a second old, or before any bill
        or stats answer), so the ledger stays exact without a commit on every read. Returns
        once every read noted before the call is stored, also when another flush (the
        background task's) had taken them and is still storing them."""
        async with self._reads_lock:
            rows = self._quotas.drain_reads()
            if rows:
                await self._store.apply([RecordUsage(rows)])

    # --- the background task --------------------------------------------------------------------
    async def run(self) -> None:
        """Forever: flush reads every second, settle ended unavailability windows, start each new
        UTC day when the clock crosses it, and sweep retention every ``sweep_interval_s``."""
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self._sweep_interval_s
        while True:
            now = self._clock.now_ms()
            until_midnight = (next_utc_midnight(now) - now) / 1000
            delay = max(0.05, min(READ_FLUSH_INTERVAL_S, until_midnight))
            await asyncio.sleep(delay)
            try:
                await self.flush_reads()
                async with self._lock:
                    await self.settle_outages()
                    if utc_day(self._clock.now_ms()) != self._day:
                        await self.reload()
                    if loop.time() >= next_sweep:
                        next_sweep = loop.time() + self._sweep_interval_s
                        await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep housekeeping alive; the next pass tries again
                log.exception("housekeeping pass failed")


HOUSEKEEPING = web.AppKey("housekeeping", Housekeeping)


async def housekeeping_context(app: web.Application) -> AsyncIterator[None]:
    """Seed the quotas from the ledger, follow state changes, and run the background pass."""
    settings = app[SETTINGS]
    housekeeping = Housekeeping(
        clock=app[CLOCK],
        store=app[STORE],
        registry=app[REGISTRY],
        quotas=app[QUOTAS],
        sweep_rows=settings.retention_sweep_rows,
        sweep_interval_s=settings.retention_sweep_interval,
        metrics=app[METRICS],
        faults=app[FAULTS],
    )
    app[REGISTRY].listeners.append(housekeeping.state_changed)
    app[FAULTS].listeners.append(housekeeping.faults_removed)
    await housekeeping.reload()
    app[HOUSEKEEPING] = housekeeping
    app[STATEFUL].append(housekeeping)  # last: it reloads from what the others left
    task = asyncio.create_task(housekeeping.run(), name="housekeeping")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await housekeeping.flush_reads()
        app[FAULTS].listeners.remove(housekeeping.faults_removed)
        app[REGISTRY].listeners.remove(housekeeping.state_changed)
