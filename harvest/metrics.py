"""Prometheus metrics: one registry owned by the application, served at ``GET /metrics``.

Names follow Prometheus conventions: one ``harvest_`` prefix, base units (seconds, bytes, USD),
``_total`` on counters. No label takes an IMSI by default, since a fleet's SIMs are an unbounded
set; per-SIM write counters exist only with the ``metrics_per_sim`` setting, capped at
``metrics_per_sim_cap`` SIMs, and every series refused past the cap is counted in
``harvest_metrics_series_dropped_total``.
"""

from __future__ import annotations

import bisect
import platform
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from harvest import __version__

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

#: Latency buckets in seconds: device writes are milliseconds, commits up to seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
#: Link profile delays in seconds: LTE's tens of ms to NB-IoT's seconds (docs/link-profiles.md).
LINK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8)
#: Payload sizes in bytes, around the 1 KiB default limit (spec A2).
SIZE_BUCKETS = (16, 64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536)
#: Mutations per SQLite transaction.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class LoopCount:
    """One series of a :class:`LoopCounter`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class LoopCounter:
    """A counter only the event loop updates: ``inc`` is an addition, where prometheus_client's
    takes a lock (~0.3 us, several times per device write at tens of thousands a second).
    Exposed like a prometheus_client ``Counter`` of the same name, without ``_created``."""

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = ()) -> None:
        self.name = name.removesuffix("_total")
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._series: dict[tuple[str, ...], LoopCount] = {}

    def labels(self, *values: str) -> LoopCount:
        return self._series.setdefault(values, LoopCount())

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in self._series.items():
            family.add_metric(list(values), series.value)
        yield family


class LoopBuckets:
    """One series of a :class:`LoopHistogram`."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_times(self, value: float, times: int) -> None:
        """``times`` observations of ``value`` (writes answered together)."""
        self.counts[bisect.bisect_left(self.bounds, value)] += times
        self.sum += value * times


class LoopHistogram:
    """A histogram only the event loop updates (see :class:`LoopCounter`)."""

    def __init__(
        self, name: str, documentation: str, labelnames: Iterable[str], buckets: tuple[float, ...]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(float(b) for b in buckets)
        self._series: dict[tuple[str, ...], LoopBuckets] = {}

    def labels(self, *values: str) -> LoopBuckets:
        return self._series.setdefault(values, LoopBuckets(self.buckets))

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in self._series.items():
            cumulative, total = [], 0
            for bound, count in zip((*self.buckets, float("inf")), series.counts, strict=True):
                total += count
                cumulative.append((_le(bound), float(total)))
            family.add_metric(list(values), cumulative, series.sum)
        yield family


def _le(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (``0.005``, ``1.0``, ``+Inf``)."""
    return "+Inf" if bound == float("inf") else repr(bound)


_Loop = TypeVar("_Loop", LoopCounter, LoopHistogram)


@dataclass(frozen=True, slots=True)
class ProtocolMetrics:
    """The series of one device protocol, resolved once (a ``labels()`` lookup per write adds
    up at tens of thousands of writes a second)."""

    received: Any
    stored: Any
    payload_size: Any
    latency: Any
    replaced: Any


class Metrics:
    """Every metric of the emulator, registered in one :class:`CollectorRegistry`."""

    def __init__(self, *, per_sim: bool = False, per_sim_cap: int = 1000) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # The series every device write touches are loop-only (LoopCounter, LoopHistogram).
        self.writes_received = self._loop(
            LoopCounter(
                "harvest_device_writes_received_total",
                "Device writes received, by protocol (http, tcp, udp).",
                ["protocol"],
            )
        )
        self.writes_stored = self._loop(
            LoopCounter(
                "harvest_device_writes_stored_total",
                "Device writes stored (a batch element counts as one), by protocol.",
                ["protocol"],
            )
        )
        self.writes_refused = Counter(
            "harvest_device_writes_refused_total",
            "Device writes refused, by protocol and reason (the error code).",
            ["protocol", "reason"],
            registry=r,
        )
        self.entries_replaced = self._loop(
            LoopCounter(
                "harvest_entries_replaced_total",
                "Stored entries replaced by a later write at the same key (resource and"
                " millisecond, the real service's rule), by protocol.",
                ["protocol"],
            )
        )
        self.stored_bytes = self._loop(
            LoopCounter("harvest_stored_bytes_total", "Bytes of content stored.")
        ).labels()
        self.write_latency = self._loop(
            LoopHistogram(
                "harvest_device_write_duration_seconds",
                "Time from a device write's arrival to its answer, by protocol.",
                ["protocol"],
                LATENCY_BUCKETS,
            )
        )
        self.payload_size = self._loop(
            LoopHistogram(
                "harvest_device_payload_size_bytes",
                "Size of device payloads, by protocol.",
                ["protocol"],
                SIZE_BUCKETS,
            )
        )
        self.api_requests = Counter(
            "harvest_api_requests_total",
            "Management API calls, by operation (SORACOM's operationId) and status.",
            ["operation", "status"],
            registry=r,
        )
        self.api_latency = Histogram(
            "harvest_api_request_duration_seconds",
            "Management API call duration, by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.bundle_writes = self._loop(
            LoopCounter(
                "harvest_bundle_writes_total",
                "Writes counted against the daily bundle, by kind (included, overage).",
                ["kind"],
            )
        )
        self.bundle_exhausted = Counter(
            "harvest_bundle_exhausted_total",
            "SIM-days that used up their 2,000 included writes.",
            registry=r,
        )
        self.retention_sweeps = Counter(
            "harvest_retention_sweeps_total", "Retention sweep passes.", registry=r
        )
        self.entries_expired = Counter(
            "harvest_entries_expired_total",
            "Entries deleted because they passed their retention.",
            registry=r,
        )
        self.commit_batch = Histogram(
            "harvest_group_commit_batch_size",
            "Mutations committed per SQLite transaction (group commit).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.commit_latency = Histogram(
            "harvest_group_commit_duration_seconds",
            "Time to commit one group-commit transaction, fsync included.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.dns_queries = Counter(
            "harvest_dns_queries_total",
            "DNS queries answered by the responder (setting dns), by type (A, AAAA, other) and"
            " answer (own, nodata, forwarded, refused, servfail, formerr, notimp).",
            ["type", "answer"],
            registry=r,
        )
        self.link_delay = Histogram(
            "harvest_link_delay_seconds",
            "Delay a link profile added to a chunk of a SIM's traffic, by direction (up, down).",
            ["direction"],
            buckets=LINK_BUCKETS,
            registry=r,
        )
        self.link_lost = Counter(
            "harvest_link_lost_total",
            "Datagrams a link profile lost (UDP), or chunks it delayed by a retransmission"
            " (TCP), by direction (up, down) and protocol (udp, tcp).",
            ["direction", "protocol"],
            registry=r,
        )
        self.protocol = {
            name: ProtocolMetrics(
                self.writes_received.labels(name),
                self.writes_stored.labels(name),
                self.payload_size.labels(name),
                self.write_latency.labels(name),
                self.entries_replaced.labels(name),
            )
            for name in ("http", "tcp", "udp")
        }
        self.bundle_included = self.bundle_writes.labels("included")
        self.bundle_overage = self.bundle_writes.labels("overage")
        self.build_info = Gauge(
            "harvest_build_info",
            "Always 1; the labels say which emulator this is.",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.series_dropped = Counter(
            "harvest_metrics_series_dropped_total",
            "Per-SIM series not created because the cap was reached.",
            registry=r,
        )
        self.per_sim = per_sim
        self.per_sim_cap = per_sim_cap
        self._sim_series: set[str] = set()
        self.sim_writes = (
            Counter(
                "harvest_sim_writes_total",
                "Writes stored per SIM (only with the metrics_per_sim setting; capped).",
                ["imsi"],
                registry=r,
            )
            if per_sim
            else None
        )

    def _loop(self, metric: _Loop) -> _Loop:
        self.registry.register(metric)
        return metric

    def observe_commit(self, mutations: int, seconds: float) -> None:
        self.commit_batch.observe(mutations)
        self.commit_latency.observe(seconds)

    def sim_stored(self, imsi: str, count: int) -> None:
        """Count a SIM's writes in its own series, within the cap."""
        if self.sim_writes is None:
            return
        if imsi not in self._sim_series:
            if len(self._sim_series) >= self.per_sim_cap:
                self.series_dropped.inc()
                return
            self._sim_series.add(imsi)
        self.sim_writes.labels(imsi).inc(count)

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class StateCollector(Collector):
    """What is read from the state when Prometheus scrapes, not counted per write:
    ``harvest_sims{status}`` and ``harvest_month_charges_usd{operator}`` (the running meter of
    balance control; operators are few, so the label is bounded)."""

    def __init__(
        self,
        statuses: Callable[[], Iterable[str]],
        charges: Callable[[], Iterable[tuple[str, float]]],
    ) -> None:
        self._statuses = statuses
        self._charges = charges

    def collect(self) -> Iterable[Metric]:
        sims = GaugeMetricFamily("harvest_sims", "SIMs by status.", labels=["status"])
        counts: dict[str, int] = {}
        for status in self._statuses():
            counts[status] = counts.get(status, 0) + 1
        for status in ("ready", "active", "inactive", "standby", "suspended", "terminated"):
            sims.add_metric([status], counts.get(status, 0))
        yield sims
        charges = GaugeMetricFamily(
            "harvest_month_charges_usd",
            "Running charges of the current UTC month in USD, by operator.",
            labels=["operator"],
        )
        for operator_id, amount in self._charges():
            charges.add_metric([operator_id], amount)
        yield charges
