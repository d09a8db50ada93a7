"""The one ingest service every transport hands its uploads to.

It identifies the SIM by its session address, applies the SIM's status and its group's
settings, enforces the size limit, turns the payload into a Harvest Data entry and stores it.
It knows nothing of HTTP, TCP or UDP: transports only build an :class:`~harvest.domain.Upload`
and render the :class:`~harvest.errors.HarvestError` it may raise.

It also reports what happened to each upload, once: the write-latency metric and one record
to its :class:`Reporter` (the request log) with the SIM, the status (``0``: no reply was sent),
the bytes received, the reason of a refusal and the entries replaced. Transports report
nothing themselves; a refusal of their own (a malformed header) goes through :meth:`refuse`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, Protocol

from harvest import errors
from harvest.clock import Clock
from harvest.domain import (
    HARVEST_NAMESPACE,
    DataEntry,
    Group,
    ResourceType,
    Sim,
    SimStatus,
    Upload,
)
from harvest.errorlog import ErrorLog
from harvest.errors import Dropped, HarvestError
from harvest.faults import NO_FAULT, Faults
from harvest.identity import Resolver
from harvest.logcaps import LogThrottle
from harvest.metrics import Metrics
from harvest.netguard import source_of
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

log = logging.getLogger(__name__)

# Enum members read once: a class attribute lookup on an Enum goes through a descriptor
# (~0.3 us), several times per write (tests/bench/ingest_stages.py).
_SUBSCRIBER: Final = ResourceType.SUBSCRIBER
_ACTIVE: Final = SimStatus.ACTIVE


class Reporter(Protocol):
    """Where the outcome of each upload goes (:class:`harvest.requestlog.RequestLog`)."""

    def record(
        self, protocol: str, peer: str, imsi: str | None, status: int, size: int,
        latency_s: float, target: str, reason: str | None = None, replaced: int = 0,
    ) -> None: ...  # fmt: skip


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


class IngestService:
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
        self._quotas = quotas
        self.metrics = metrics
        self._registry = registry
        self._error_log = error_log
        self._options_cache: dict[tuple[str, int], HarvestOptions] = {}
        self._day_cache: tuple[int, str] = (-1, "")
        self._bucket_cache: tuple[int, str] = (-1, "")
        self._store = store
        self._clock = clock
        self._resolve = resolve
        self.max_payload_bytes = max_payload_bytes

    def identify(self, upload: Upload) -> Sim:
        """The SIM that sent ``upload``, or 403.

        By the session's address (spec B2), unless a transport verified another identity
        (a Beam-signed IMSI) and put it on the upload.
        """
        if upload.imsi is not None:
            sim = self._registry.sim_by_imsi(upload.imsi)
            if sim is None:
                raise HarvestError(errors.NO_SESSION, f"No SIM has the IMSI {upload.imsi}.")
            return sim
        sim = self._resolve(upload.peer)
        if sim is None:
            raise HarvestError(errors.NO_SESSION, f"No SIM has a session at address {upload.peer}.")
        return sim

    def sim_of(self, upload: Upload) -> Sim | None:
        """The SIM that sent ``upload``, if any, without refusing anything."""
        if upload.imsi is not None:
            return self._registry.sim_by_imsi(upload.imsi)
        return self._resolve(upload.peer)

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
        except Dropped as dropped:
            self._refused(upload, dropped.reason, answered=False, started=started)
            raise
        except HarvestError as error:
            self._refused(upload, error, answered=True, started=started)
            raise
        except Exception:
            self._report(upload, started, 500)
            raise
        accepted.started = started
        return accepted

    def refuse(self, upload: Upload, error: HarvestError) -> None:
        """Count, log and report a refusal the transport made itself, before the upload got
        here (a malformed header, a bad Beam signature, a wrong method)."""
        self._refused(upload, error, answered=True, started=time.perf_counter())

    def _report(
        self, upload: Upload, started: float, status: int, imsi: str | None = None,
        reason: str | None = None, replaced: int = 0, now: float | None = None,
    ) -> None:  # fmt: skip
        """The upload's one report: its latency in the metrics, its record to the reporter.
        ``now``: ``time.perf_counter()`` when the caller has it (a batch's)."""
        elapsed = (time.perf_counter() if now is None else now) - started
        if self.metrics is not None:
            self.metrics.protocol[upload.transport].latency.observe(elapsed)
        if self._reporter is not None:
            size = len(upload.body) if upload.size is None else upload.size
            self._reporter.record(
                upload.transport, upload.peer, imsi, status, size, elapsed,
                upload.target, reason, replaced,
            )  # fmt: skip

    def _refused(
        self, upload: Upload, error: HarvestError | None, *, answered: bool, started: float
    ) -> None:
        """Count (by error code; ``dropped`` for a drop fault), log, show to the operator
        (``GET /v1/logs``) and report why a write was refused, whether or not the device got
        an answer."""
        if self.metrics is not None:
            reason = "dropped" if error is None else error.code
            self.metrics.writes_refused.labels(upload.transport, reason).inc()
        sim = self.sim_of(upload)
        imsi = None if sim is None else sim.imsi
        if error is None:  # a drop fault
            self._report(upload, started, 0, imsi, "dropped")
            return
        self._report(upload, started, error.status if answered else 0, imsi, error.code)
        line = (
            "refused %s write from %s: %s %s%s",
            upload.transport,
            upload.peer,
            error.code,
            error.message,
            "" if answered else " (no reply: the SIM has no data session)",
        )
        if self._throttle is None:
            log.info(*line)
        else:
            kind = f"refused {upload.transport} writes"
            self._throttle.log(log, logging.INFO, kind, source_of(upload.peer), *line)
        if sim is not None:  # with no SIM there is no operator to show it to
            self._error_log.record(
                sim.operator_id,
                sim.imsi,
                error.message,
                code=error.code,
                status=error.status,
                protocol=upload.transport,
            )

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
            replaced = await self._store.apply([a.mutation for a in accepted])
        except BaseException:
            for item in accepted:  # not stored: those writes do not count
                self._quotas.release(item.sim.operator_id, item.reservation)
                self._report(item.upload, item.started, 500, item.sim.imsi)
            raise
        finally:
            for item in accepted:  # answered either way: no longer in flight
                self._quotas.finish(item.sim.imsi)
        finished = time.perf_counter()
        for item, count in zip(accepted, replaced, strict=True):
            item.replaced = count
            self._report(item.upload, item.started, 201, item.sim.imsi, None, count, finished)
        if self.metrics is not None:
            self._count_stored(self.metrics, accepted)
        for imsi in {a.sim.imsi for a in accepted if a.sim.status is not _ACTIVE}:
            await self._registry.activate_on_traffic(imsi)

    def _count_stored(self, metrics: Metrics, accepted: Sequence[Accepted]) -> None:
        """The stored writes' metrics, summed over the batch where a series is shared."""
        stored_bytes = included = overage = exhausted = 0
        per_sim = metrics.sim_writes is not None
        protocol = metrics.protocol
        for item in accepted:
            entries = item.mutation.entries
            series = protocol[item.upload.transport]
            series.stored.inc(len(entries))
            if item.replaced:
                series.replaced.inc(item.replaced)
            for entry in entries:
                stored_bytes += len(entry.content)
            reservation = item.reservation
            included += reservation.included
            overage += reservation.overage
            exhausted += reservation.exhausted
            if per_sim:
                metrics.sim_stored(item.sim.imsi, len(entries))
        metrics.stored_bytes.inc(stored_bytes)
        if included:
            metrics.bundle_included.inc(included)
        if overage:
            metrics.bundle_overage.inc(overage)
        if exhausted:
            metrics.bundle_exhausted.inc(exhausted)

    def _binary(self, body: bytes, sim: Sim, group: Group) -> tuple[str, tuple[str, ...]]:
        """Binary through the group's Binary Parser, or the plain payload form; with the
        stored JSON's top-level keys.

        A payload the format cannot parse (or a format that does not compile) is still stored,
        in the plain form, and the reason goes to the error log (notes 1.6): data is never
        dropped for a parser problem.
        """
        fmt = binary_parser_format(group)
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

    def _prepare(self, upload: Upload) -> Accepted:
        verdict = NO_FAULT
        if self._faults is not None and self._faults.rules:
            known = self.sim_of(upload)
            verdict = self._faults.check(
                upload.transport,
                imsi=None if known is None else known.imsi,
                group_id=None if known is None else known.group_id,
            )
            if verdict.drop:
                raise Dropped
            if verdict.error is not None:
                raise verdict.error
        sim = self.identify(upload)
        refusal = self.session_refusal(sim)
        if refusal is not None:
            # No session on the real network: the device sees no reply at all (spec B12).
            raise Dropped(refusal) if self.drop_sessionless else refusal
        check_payload_size(len(upload.body), self.max_payload_bytes)
        group = None if sim.group_id is None else self._registry.group_by_id(sim.group_id)
        if group is None:
            raise HarvestError(errors.NO_GROUP, f"SIM {sim.imsi} does not belong to a group.")
        if not group.harvest_enabled:
            raise HarvestError(
                errors.HARVEST_DISABLED, f"Harvest Data is not enabled for group {group.group_id}."
            )
        typed = decode_typed(upload.body, upload.content_type, strict_json=self.strict_json)
        keys: tuple[str, ...] | None = None  # known without parsing: binary's stored form
        if typed is None:
            content, keys = self._binary(upload.body, sim, group)
            content_type = JSON
        else:
            content_type, content = typed
        now = self._clock.now_ms()
        options = self._options(group)
        try:
            stamped = apply_options(options, content_type, content, now, upload.timestamp_ms)
        except OptionError as error:
            raise HarvestError(errors.OPTION_REJECTED, str(error)) from None
        entries = tuple(
            DataEntry(
                sim.operator_id,
                _SUBSCRIBER,
                sim.imsi,
                time,
                content_type,
                text,
                options.category,
                keys if text is content else None,  # a batch element has keys of its own
            )
            for time, text in stamped
        )
        # A batch element is billed as one write (notes 2.3), so the count is per entry.
        reservation = self._quotas.admit(sim.operator_id, sim.imsi, len(entries))
        counted = DeviceWrites(
            sim.operator_id, sim.imsi, self._day(now), self._bucket(now), len(entries)
        )
        if verdict.duplicate:  # the same content again a millisecond later, as a retry would
            entries += tuple(replace(e, time=e.time + 1) for e in entries)
        mutation = PutEntries(entries, now, writes=counted)
        return Accepted(sim, group, mutation, reservation, upload, verdict.delay_ms)

    def _options(self, group: Group) -> HarvestOptions:
        """The group's Harvest options, parsed once per revision of the group."""
        key = (group.group_id, group.revision)
        cached = self._options_cache.get(key)
        if cached is None:
            try:
                cached = options_from_config(group.configuration.get(HARVEST_NAMESPACE, {}))
            except OptionError as error:
                raise HarvestError(errors.OPTION_REJECTED, str(error)) from None
            if len(self._options_cache) > 10_000:
                self._options_cache.clear()
            self._options_cache[key] = cached
        return cached

    def _bucket(self, now: int) -> str:
        """The 5-minute stats bucket of ``now``, computed once per bucket."""
        number = now // FIVE_MINUTES_MS
        if number != self._bucket_cache[0]:
            self._bucket_cache = (number, five_minute_bucket(now))
        return self._bucket_cache[1]

    def _day(self, now: int) -> str:
        """The UTC day of ``now``, computed once per day rather than once per write."""
        day_number = now // DAY_MS
        if day_number != self._day_cache[0]:
            self._day_cache = (day_number, utc_day(now))
        return self._day_cache[1]
