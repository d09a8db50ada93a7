"""The one ingest service every transport hands its uploads to.

It identifies the SIM by its session address, applies the SIM's status and its group's
settings, enforces the size limit, turns the payload into a Harvest Data entry and stores it.
It knows nothing of HTTP, TCP or UDP: transports only build an :class:`~harvest.domain.Upload`
and render the :class:`~harvest.errors.HarvestError` it may raise.

It also reports what happened to each upload, once (:mod:`harvest.ingest.reports`): the
write-latency metric and one record to its :class:`~harvest.ingest.reports.Reporter` (the
request log). Transports report nothing themselves; a refusal of their own (a malformed header)
goes through :meth:`refuse`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from harvest import errors
from harvest.clock import Clock
from harvest.domain import (
    HARVEST_NAMESPACE,
    DataEntry,
    Group,
    ResourceType,
    Sim,
    SimStatus,
    Transport,
    Upload,
)
from harvest.errorlog import ErrorLog
from harvest.errors import Dropped, HarvestError
from harvest.faults import NO_FAULT, Faults, Verdict
from harvest.identity import Resolver
from harvest.ingest.reports import Reporter, Reports
from harvest.logcaps import LogThrottle
from harvest.metrics import Metrics
from harvest.payload.binary_parser import BinaryParserError, parser_for, to_json
from harvest.payload.decode import (
    JSON,
    PAYLOAD_KEYS,
    binary_parser_format,
    decode_typed,
    payload_form,
)
from harvest.payload.options import HarvestOptions, OptionError, apply_options, options_from_config
from harvest.registry import Registry
from harvest.storage.base import DeviceWrites, PutEntries, Store
from quotas.bundle import Reservation
from quotas.calendar import DAY_MS, FIVE_MINUTES_MS, five_minute_bucket, utc_day
from quotas.limits import check_payload_size
from quotas.service import QuotaService

# Enum members read once: a class attribute lookup on an Enum goes through a descriptor
# (~0.3 us), several times per write (tests/bench/ingest_stages.py).
_SUBSCRIBER: Final = ResourceType.SUBSCRIBER
_ACTIVE: Final = SimStatus.ACTIVE


@dataclass(slots=True)
class Accepted:
    """An upload that passed every check, ready to be stored.

    ``group`` is kept so transports can shape their reply by the group's settings (the Unified
    Endpoint's response format).
    """

    sim: Sim
    group: Group
    mutation: PutEntries
    reservation: Reservation
    #: The upload as received (what its report names).
    upload: Upload
    #: Injected delay before storing (a ``delay`` fault), in ms.
    delay_ms: int = 0
    #: Once stored: how many existing entries its writes replaced (same resource and
    #: millisecond, spec A1), for the metrics and the request log.
    replaced: int = 0
    #: When its checks began (``time.perf_counter()``): its reported latency starts there.
    started: float = 0.0

    @property
    def entries(self) -> int:
        return len(self.mutation.entries)


#: What :meth:`IngestService.check` found of an upload that passed every check, in order: the
#: SIM; its group; when it was checked (emulator clock: its entries' ``lastModifiedTime``); the
#: content type and content as stored; the ``(time, content)`` of each entry it becomes (one, or
#: a batch's elements, notes 2.3); the content's top-level keys (from the parse that checked a
#: JSON body, or binary's stored form); the category; the quota reservation; the fault
#: verdict. A plain tuple: one is made per write, and a NamedTuple costs 0.6 us more to build.
Checked = tuple[
    Sim, Group, int, str, str, list[tuple[int, str]], tuple[str, ...] | None, str | None,
    Reservation, Verdict,
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class _GroupPlan:
    """What the ingest needs of one revision of a group (see :meth:`IngestService._plan`)."""

    enabled: bool
    #: The Binary Parser format when the parser is on.
    parser: str | None
    #: The Harvest options, or ``None`` with why they are refused.
    options: HarvestOptions | None
    problem: str


class IngestService(Reports):
    """See the module docstring.

    :meth:`ingest` serves one upload. Transports that receive bursts (UDP) call :meth:`prepare`
    for each upload, which runs every check without awaiting, and :meth:`commit` once for the
    accepted ones, so a burst costs one storage call.
    """

    def __init__(
        self,
        *,
        registry: Registry,
        store: Store,
        clock: Clock,
        resolve: Resolver,
        max_payload_bytes: int,
        error_log: ErrorLog,
        quotas: QuotaService,
        metrics: Metrics | None = None,
        faults: Faults | None = None,
        drop_sessionless: bool = True,
        strict_json: bool = True,
        throttle: LogThrottle | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        """``drop_sessionless``: a SIM without a data session gets no reply (the network's
        behaviour, spec B12), or, ``False``, an explicit ``403``. ``strict_json``: a body sent
        as JSON that does not parse is refused, or, ``False``, stored as sent. ``throttle``
        keeps the line about refused writes to one per source per interval, with a count;
        ``reporter`` gets one record per upload (see the module docstring)."""
        self._reporter = reporter
        self._throttle = throttle
        self.drop_sessionless = drop_sessionless
        self.strict_json = strict_json
        self._faults = faults
        self.quotas = quotas
        self.metrics = metrics
        self._registry = registry
        self._error_log = error_log
        self._plans: dict[tuple[str, int], _GroupPlan] = {}
        self._day_cache: tuple[int, str] = (-1, "")
        self._bucket_cache: tuple[int, str] = (-1, "")
        self.store = store
        self._clock = clock
        self._resolve = resolve
        self.max_payload_bytes = max_payload_bytes

    def identify(self, upload: Upload) -> Sim:
        """The SIM that sent ``upload``, or 403.

        By the session's address (spec B2), unless a transport verified another identity
        (a Beam-signed IMSI) and put it on the upload.
        """
        return self._identify(upload.imsi, upload.peer)

    def _identify(self, imsi: str | None, peer: str) -> Sim:
        if imsi is not None:
            sim = self._registry.sim_by_imsi(imsi)
            if sim is None:
                raise HarvestError(errors.NO_SESSION, f"No SIM has the IMSI {imsi}.")
            return sim
        sim = self._resolve(peer)
        if sim is None:
            raise HarvestError(errors.NO_SESSION, f"No SIM has a session at address {peer}.")
        return sim

    def sim_of(self, upload: Upload) -> Sim | None:
        """The SIM that sent ``upload``, if any, without refusing anything."""
        return self._sim_of(upload.imsi, upload.peer)

    def _sim_of(self, imsi: str | None, peer: str) -> Sim | None:
        if imsi is not None:
            return self._registry.sim_by_imsi(imsi)
        return self._resolve(peer)

    def group_of(self, peer: str) -> Group | None:
        """The group of the SIM at ``peer``, if any (for transports that shape replies)."""
        sim = self._resolve(peer)
        if sim is None or sim.group_id is None:
            return None
        return self._registry.group_by_id(sim.group_id)

    async def ingest(self, upload: Upload) -> Accepted:
        """Store one upload; raises :class:`HarvestError` for every refusal."""
        accepted = self.prepare(upload)
        await self.commit([accepted])
        return accepted

    def prepare(self, upload: Upload) -> Accepted:
        """Every check and conversion, without storing; raises :class:`HarvestError`, or
        :class:`Dropped` when the request is to get no answer at all. A refusal is reported
        here; an accepted upload when :meth:`commit` has stored it."""
        started = time.perf_counter()
        metrics = self.metrics
        if metrics is not None:
            series = metrics.protocol[upload.transport]
            series.received.inc()
            series.payload_size.observe(len(upload.body))
        try:
            accepted = self._prepare(upload)
        except Exception as error:
            self.failed(upload, error, started)
            raise
        accepted.started = started
        return accepted

    @property
    def faults_in_force(self) -> bool:
        """Whether any fault rule is in force (each upload is checked against them)."""
        return self._faults is not None and bool(self._faults.rules)

    def session_refusal(self, sim: Sim) -> HarvestError | None:
        """Why the network gives ``sim`` no data session (inactive, suspended, terminated, or
        barred by its subscriber, logging-service-terms 11.7), or ``None``."""
        if not sim.status.allows_data:
            return HarvestError(
                errors.SIM_NOT_USABLE, f"SIM {sim.imsi} is {sim.status}: no data communication."
            )
        if sim.barred:
            return HarvestError(
                errors.SIM_BARRED, f"SIM {sim.imsi} is barred (logging-service-terms 11.7)."
            )
        return None

    def screen(self, upload: Upload) -> bool:
        """Whether a new connection from ``upload.peer`` may proceed. ``False`` (already
        counted and logged) for a SIM without a data session when such SIMs get no reply
        (spec B12): the transport closes the connection at once."""
        if not self.drop_sessionless:
            return True
        sim = self.sim_of(upload)
        error = None if sim is None else self.session_refusal(sim)
        if error is None:
            return True
        self._refused(upload, error, answered=False, started=time.perf_counter())
        return False

    async def commit(self, accepted: Sequence[Accepted]) -> None:
        """Store accepted uploads in one call; durable when this returns."""
        if not accepted:
            return
        delay = max(a.delay_ms for a in accepted)
        try:
            # At least one turn of the loop while admitted: writes of a SIM that arrived
            # together overlap even with a store that does not yield, which is what the rate
            # ceiling counts (spec B9).
            await asyncio.sleep(delay / 1000)
            replaced = await self.store.apply([a.mutation for a in accepted])
        except BaseException:
            for item in accepted:  # not stored: those writes do not count
                self.quotas.release(item.sim.operator_id, item.reservation)
                self.report(item.upload, item.started, 500, item.sim.imsi)
            raise
        finally:
            for item in accepted:  # answered either way: no longer in flight
                self.quotas.finish(item.sim.imsi)
        finished = time.perf_counter()
        for item, count in zip(accepted, replaced, strict=True):
            item.replaced = count
            self.report(item.upload, item.started, 201, item.sim.imsi, None, count, finished)
        if self.metrics is not None:
            stored: dict[Transport, list[int]] = {}  # writes and replaced, by transport
            stored_bytes = 0
            for item in accepted:
                entries = item.mutation.entries
                counts = stored.setdefault(item.upload.transport, [0, 0])
                counts[0] += len(entries)
                counts[1] += item.replaced
                for entry in entries:
                    stored_bytes += len(entry.content)
            self.count_stored(
                self.metrics,
                ((transport, writes, replaced) for transport, (writes, replaced) in stored.items()),
                stored_bytes,
                (a.reservation for a in accepted),
                ((a.sim.imsi, a.entries) for a in accepted),
            )
        await self.activate(a.sim for a in accepted)

    async def activate(self, sims: Iterable[Sim]) -> None:
        """Activate the SIMs among ``sims`` not active yet: they have sent traffic."""
        for imsi in {sim.imsi for sim in sims if sim.status is not _ACTIVE}:
            await self._registry.activate_on_traffic(imsi)

    def _binary(self, body: bytes, sim: Sim, fmt: str | None) -> tuple[str, tuple[str, ...]]:
        """Binary through the group's Binary Parser, or the plain payload form; with the
        stored JSON's top-level keys.

        A payload the format cannot parse (or a format that does not compile) is still stored,
        in the plain form, and the reason goes to the error log (notes 1.6): data is never
        dropped for a parser problem.
        """
        if fmt is None:
            return payload_form(body), PAYLOAD_KEYS
        try:
            parsed = parser_for(fmt).parse(body)
            return to_json(parsed), tuple(parsed)
        except BinaryParserError as error:
            self._error_log.record(
                sim.operator_id,
                sim.imsi,
                f"Binary Parser: {error}; stored the payload unparsed.",
                service="Air",
                level="warning",
                format=fmt,
            )
            return payload_form(body), PAYLOAD_KEYS

    def check(
        self, transport: Transport, peer: str, imsi: str | None, body: bytes,
        content_type: str | None = None, timestamp_ms: int | None = None,
    ) -> Checked:  # fmt: skip
        """Every check and conversion of one upload, in the service's order, and its quota
        admission: what both :meth:`prepare` and the raw listeners' batch path
        (:class:`~harvest.ingest.batch.RawIngest`) store. Raises as :meth:`prepare` does,
        without reporting anything."""
        verdict = NO_FAULT
        if self._faults is not None and self._faults.rules:
            known = self._sim_of(imsi, peer)
            verdict = self._faults.check(
                transport,
                imsi=None if known is None else known.imsi,
                group_id=None if known is None else known.group_id,
            )
            if verdict.drop:
                raise Dropped
            if verdict.error is not None:
                raise verdict.error
        sim = self._identify(imsi, peer)
        if sim.barred or not (sim.status is _ACTIVE or sim.status.allows_data):
            refusal = self.session_refusal(sim)
            assert refusal is not None
            # No session on the real network: the device sees no reply at all (spec B12).
            raise Dropped(refusal) if self.drop_sessionless else refusal
        if len(body) > self.max_payload_bytes:
            check_payload_size(len(body), self.max_payload_bytes)
        group = None if sim.group_id is None else self._registry.group_by_id(sim.group_id)
        if group is None:
            raise HarvestError(errors.NO_GROUP, f"SIM {sim.imsi} does not belong to a group.")
        plan = self._plan(group)
        if not plan.enabled:
            raise HarvestError(
                errors.HARVEST_DISABLED, f"Harvest Data is not enabled for group {group.group_id}."
            )
        typed = (
            None
            if content_type is None
            else decode_typed(body, content_type, strict_json=self.strict_json)
        )
        if typed is None:
            content, keys = self._binary(body, sim, plan.parser)
            content_type = JSON
        else:  # keys from the parse that checked the JSON: the writer need not parse it again
            content_type, content, keys = typed
        now = self._clock.now_ms()
        if plan.options is None:
            raise HarvestError(errors.OPTION_REJECTED, plan.problem)
        try:
            stamped = apply_options(plan.options, content_type, content, now, timestamp_ms)
        except OptionError as error:
            raise HarvestError(errors.OPTION_REJECTED, str(error)) from None
        # A batch element is billed as one write (notes 2.3), so the count is per entry.
        reservation = self.quotas.admit(sim.operator_id, sim.imsi, len(stamped), now)
        return (
            sim, group, now, content_type, content, stamped, keys, plan.options.category,
            reservation, verdict,
        )  # fmt: skip

    def _prepare(self, upload: Upload) -> Accepted:
        sim, group, now, content_type, content, stamped, keys, category, reservation, verdict = (
            self.check(
                upload.transport, upload.peer, upload.imsi, upload.body, upload.content_type,
                upload.timestamp_ms,
            )
        )  # fmt: skip
        entries = tuple(
            DataEntry(
                sim.operator_id,
                _SUBSCRIBER,
                sim.imsi,
                time,
                content_type,
                text,
                category,
                keys if text is content else None,  # a batch element has keys of its own
            )
            for time, text in stamped
        )
        counted = DeviceWrites(
            sim.operator_id, sim.imsi, self.day(now), self.bucket(now), len(entries)
        )
        if verdict.duplicate:  # the same content again a millisecond later, as a retry would
            entries += tuple(replace(e, time=e.time + 1) for e in entries)
        mutation = PutEntries(entries, now, writes=counted)
        return Accepted(sim, group, mutation, reservation, upload, verdict.delay_ms)

    def _plan(self, group: Group) -> _GroupPlan:
        """What the ingest needs of ``group``, worked out once per revision of the group."""
        key = (group.group_id, group.revision)
        plan = self._plans.get(key)
        if plan is None:
            try:
                options: HarvestOptions | None = options_from_config(
                    group.configuration.get(HARVEST_NAMESPACE, {})
                )
                problem = ""
            except OptionError as error:
                options, problem = None, str(error)
            plan = _GroupPlan(group.harvest_enabled, binary_parser_format(group), options, problem)
            if len(self._plans) > 10_000:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def bucket(self, now: int) -> str:
        """The 5-minute stats bucket of ``now``, computed once per bucket."""
        number = now // FIVE_MINUTES_MS
        if number != self._bucket_cache[0]:
            self._bucket_cache = (number, five_minute_bucket(now))
        return self._bucket_cache[1]

    def day(self, now: int) -> str:
        """The UTC day of ``now``, computed once per day rather than once per write."""
        day_number = now // DAY_MS
        if day_number != self._day_cache[0]:
            self._day_cache = (day_number, utc_day(now))
        return self._day_cache[1]
