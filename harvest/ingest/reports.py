"""How the ingest reports what happened to each upload, once: the write-latency metric and one
record to its :class:`Reporter` (the request log) with the SIM, the status (``0``: no reply was
sent), the bytes received, the reason of a refusal and the entries replaced; a refusal is also
counted, logged (throttled) and shown to the operator (``GET /v1/logs``); stored writes are
counted in the metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from harvest.domain import Sim, Transport, Upload
from harvest.errorlog import ErrorLog
from harvest.errors import Dropped, HarvestError
from harvest.logcaps import LogThrottle
from harvest.metrics import Metrics
from harvest.netguard import source_of
from quotas.bundle import Reservation

log = logging.getLogger("harvest.ingest")


class Reporter(Protocol):
    """Where the outcome of each upload goes (:class:`harvest.requestlog.RequestLog`)."""

    def record(
        self, protocol: str, peer: str, imsi: str | None, status: int, size: int,
        latency_s: float, target: str, reason: str | None = None, replaced: int = 0,
    ) -> None: ...  # fmt: skip

    def record_stored(
        self,
        protocol: str,
        target: str,
        latency_s: float,
        writes: Sequence[tuple[str, str, int]],
        replaced: Mapping[int, int],
    ) -> None:
        """One ``201`` record per write, as :meth:`record` would make: ``writes`` are (peer,
        IMSI, bytes received), ``replaced`` the entries each replaced, by position."""


class Reports:
    """The reporting half of :class:`~harvest.ingest.service.IngestService`, which sets what
    is declared here."""

    metrics: Metrics | None
    _reporter: Reporter | None
    _throttle: LogThrottle | None
    _error_log: ErrorLog

    def sim_of(self, upload: Upload) -> Sim | None:
        """The SIM that sent ``upload``, if any (the service's identification)."""
        raise NotImplementedError

    def failed(self, upload: Upload, error: Exception, started: float) -> None:
        """Report an upload whose checks raised ``error``: a refusal (:class:`HarvestError`),
        a request to get no answer (:class:`Dropped`) or a failure of the emulator (500)."""
        if isinstance(error, Dropped):
            self._refused(upload, error.reason, answered=False, started=started)
        elif isinstance(error, HarvestError):
            self._refused(upload, error, answered=True, started=started)
        else:
            self.report(upload, started, 500)

    def report_stored(
        self,
        transport: Transport,
        target: str,
        started: float,
        writes: Sequence[tuple[str, str, int]],
        replaced: Mapping[int, int],
    ) -> None:
        """Report ``writes`` stored and answered now, all received at ``started``: each one's
        latency in the metrics and its record to the reporter, as :meth:`commit` does;
        ``writes`` are (peer, IMSI, bytes received), ``replaced`` the entries replaced by
        position in ``writes`` (none if absent)."""
        elapsed = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.protocol[transport].latency.observe_times(elapsed, len(writes))
        if self._reporter is not None:
            self._reporter.record_stored(transport, target, elapsed, writes, replaced)

    def refuse(self, upload: Upload, error: HarvestError) -> None:
        """Count, log and report a refusal the transport made itself, before the upload got
        here (a malformed header, a bad Beam signature, a wrong method)."""
        self._refused(upload, error, answered=True, started=time.perf_counter())

    def report(
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
            self.report(upload, started, 0, imsi, "dropped")
            return
        self.report(upload, started, error.status if answered else 0, imsi, error.code)
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

    @staticmethod
    def count_stored(
        metrics: Metrics,
        stored: Iterable[tuple[Transport, int, int]],
        stored_bytes: int,
        reservations: Iterable[Reservation],
        per_sim: Iterable[tuple[str, int]],
    ) -> None:
        """The stored writes' metrics, summed where a series is shared: ``stored`` the writes
        (entries) and the entries they replaced, by transport; the bytes of their content;
        their quota reservations; the writes of each SIM (for ``metrics_per_sim``)."""
        protocol = metrics.protocol
        for transport, writes, replaced in stored:
            series = protocol[transport]
            series.stored.inc(writes)
            if replaced:
                series.replaced.inc(replaced)
        metrics.stored_bytes.inc(stored_bytes)
        included = overage = exhausted = 0
        for reservation in reservations:
            included += reservation.included
            overage += reservation.overage
            exhausted += reservation.exhausted
        if included:
            metrics.bundle_included.inc(included)
        if overage:
            metrics.bundle_overage.inc(overage)
        if exhausted:
            metrics.bundle_exhausted.inc(exhausted)
        if metrics.sim_writes is not None:
            for imsi, writes in per_sim:
                metrics.sim_stored(imsi, writes)
