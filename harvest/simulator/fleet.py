"""The fleet: N simulated devices sending at a rate, and the summary of what became of it.

:func:`run_fleet` provisions N SIMs through the control plane (each with its own session
address, so a socket bound to it *is* that SIM, spec B2) and has each send at a rate, from its
own address, for a time or a count; the :class:`FleetSummary` says what was stored, what was
refused and why, the achieved rate and the latency percentiles. It is a coroutine that
``harvest-emulator fleet``, benchmarks and tests call alike, and runs on one event loop with one
socket per SIM (:mod:`harvest.simulator.channels`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from harvest import wire
from harvest.control_client import ControlClient, ControlClientError
from harvest.links import BUILTIN
from harvest.simulator.channels import CHANNELS, Channel, Tally, wake
from harvest.simulator.target import (
    DEFAULT_ENDPOINT,
    DEFAULT_HARVEST_PORT,
    DEFAULT_UNIFIED_PORT,
    PROTOCOLS,
    ProtocolName,
    SimInfo,
    SimulatorError,
    Target,
    control_failure,
)

#: Fleet IMSIs start here, away from the ones the emulator hands out (0010100...).
DEFAULT_IMSI_BASE = "001019000000000"
#: How long a SIM waits after a failed connection before it tries again.
_RECONNECT_PAUSE_S = 0.1
#: Control-plane calls in flight at once while provisioning a fleet.
_PROVISIONING_CONCURRENCY = 16


def fleet_imsis(base: str, count: int) -> list[str]:
    """``count`` consecutive IMSIs from ``base``, as wide as ``base``."""
    if not wire.is_imsi(base):
        raise SimulatorError(f"--imsi-base {base!r} must be 6 to 15 digits")
    first = int(base)
    last = first + count - 1
    if len(str(last)) > len(base):
        raise SimulatorError(f"{count} SIMs from {base} run past {len(base)} digits")
    return [f"{first + i:0{len(base)}d}" for i in range(count)]


# --- the fleet ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FleetConfig:
    """What :func:`run_fleet` does. With neither ``duration`` nor ``count`` it runs 10 s; with
    both, it stops at whichever comes first."""

    endpoint: str = DEFAULT_ENDPOINT
    sims: int = 10
    protocol: ProtocolName = "http"
    #: Messages per second per SIM; 0 is as fast as replies come (one in flight per SIM).
    rate: float = 1.0
    duration: float | None = None
    count: int | None = None
    size: int = 60
    imsi_base: str = DEFAULT_IMSI_BASE
    unified: bool = False
    harvest_port: int = DEFAULT_HARVEST_PORT
    unified_port: int = DEFAULT_UNIFIED_PORT
    #: Seconds to wait for each reply (per datagram for UDP).
    timeout: float = 2.0
    control_token: str | None = None
    content_type: str = "application/json"
    #: A link profile every SIM of the fleet gets (``lte``, ``lte-m``, ``nb-iot``, ``3g``);
    #: ``None`` leaves the SIMs' links as they are.
    link_profile: str | None = None

    def target(self) -> Target:
        return Target.parse(self.endpoint, self.harvest_port, self.unified_port)

    def check(self) -> None:
        if self.link_profile is not None and self.link_profile not in BUILTIN:
            raise SimulatorError(f"link profile must be one of {', '.join(BUILTIN)}")
        if self.protocol not in PROTOCOLS:
            raise SimulatorError(f"protocol must be one of {', '.join(PROTOCOLS)}")
        if self.sims < 1:
            raise SimulatorError("sims must be at least 1")
        if not (self.rate >= 0 and math.isfinite(self.rate)):
            raise SimulatorError("rate must be 0 or more")
        if self.duration is not None and not self.duration > 0:
            raise SimulatorError("duration must be more than 0")
        if self.count is not None and self.count < 1:
            raise SimulatorError("count must be at least 1")
        if self.size < 1:
            raise SimulatorError("size must be at least 1")
        if not self.timeout > 0:
            raise SimulatorError("timeout must be more than 0")


@dataclass(frozen=True, slots=True)
class Latency:
    """Milliseconds from sending a message to its reply, over the messages that got one."""

    p50: float
    p90: float
    p99: float
    max: float


@dataclass(slots=True)
class FleetSummary:
    """What a fleet run did. ``sent == stored + sum(refused.values())``: every message sent
    ends stored (``201``) or refused for one reason, a status code (``"400"``, ``"403"``, ...)
    or ``"timeout"``, ``"disconnected"``, ``"connect failed"``, ``"bad reply"``."""

    protocol: str
    target: str
    sims: int
    sent: int = 0
    stored: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    #: Messages that got a reply (stored or refused with a status).
    replied: int = 0
    elapsed_s: float = 0.0
    #: Messages sent per second, and stored per second, over ``elapsed_s``.
    rate: float = 0.0
    stored_rate: float = 0.0
    latency_ms: Latency | None = None
    #: Warnings: addresses not bound, the first connection error.
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    #: Every message's latency in seconds, when the run was asked to keep them (to merge the
    #: percentiles of several generator processes); never in :meth:`to_dict`.
    samples: list[float] = field(default_factory=list, repr=False)

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())

    def exit_code(self) -> int:
        """0 if every message was stored, 2 if none got a reply, 1 otherwise."""
        if self.sent and self.replied == 0:
            return 2
        return 0 if self.stored == self.sent else 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["samples"]
        data["refused_total"] = self.refused_total
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FleetSummary:
        """The summary :meth:`to_dict` described (another process's ``--json``)."""
        fields = {k: v for k, v in data.items() if k not in ("refused_total", "samples")}
        latency = fields.pop("latency_ms", None)
        summary = cls(**fields)
        summary.latency_ms = None if latency is None else Latency(**latency)
        return summary

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def text(self) -> str:
        lines = [
            f"fleet: {self.sims} SIMs over {self.protocol} to {self.target}"
            + (" (interrupted)" if self.interrupted else ""),
            f"  sent       {self.sent:>9} in {self.elapsed_s:.3f} s  ({self.rate:.1f} msg/s)",
            f"  stored     {self.stored:>9} (201)  ({self.stored_rate:.1f} msg/s)",
            f"  refused    {self.refused_total:>9}",
        ]
        lines += [f"    {reason:<14} {n:>7}" for reason, n in sorted(self.refused.items())]
        if self.latency_ms is None:
            lines.append("  latency    no replies")
        else:
            lat = self.latency_ms
            lines.append(
                f"  latency ms p50 {lat.p50:.2f}  p90 {lat.p90:.2f}  p99 {lat.p99:.2f}"
                f"  max {lat.max:.2f}"
            )
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def latency_of(values: Iterable[float]) -> Latency | None:
    """The percentiles of ``values`` (seconds), in milliseconds; ``None`` for none."""
    ordered = sorted(values)
    if not ordered:
        return None

    def ms(value: float) -> float:
        return round(value * 1000, 3)

    return Latency(
        p50=ms(_percentile(ordered, 0.5)),
        p90=ms(_percentile(ordered, 0.9)),
        p99=ms(_percentile(ordered, 0.99)),
        max=ms(ordered[-1]),
    )


def payload(size: int, sim: int = 0, seq: int = 0) -> bytes:
    """A JSON-looking message of exactly ``size`` bytes (digits when too small for JSON)."""
    head = b'{"sim":%d,"seq":%d,"temp":21.5,"pad":"' % (sim, seq)
    room = size - len(head) - 2
    if room < 0:
        return b"1" * size  # a JSON number, still valid as application/json
    return head + b"x" * room + b'"}'


class _Run:
    """Timing shared by every SIM: the deadline, and sleepers to wake when stopped early."""

    def __init__(self, deadline: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.deadline = deadline
        self.stopped = False
        self.sleepers: set[asyncio.Future[None]] = set()

    def over(self) -> bool:
        return self.stopped or self.loop.time() >= self.deadline

    async def sleep_until(self, when: float) -> None:
        delay = min(when, self.deadline) - self.loop.time()
        if delay <= 0 or self.stopped:
            return
        future: asyncio.Future[None] = self.loop.create_future()
        handle = self.loop.call_later(delay, wake, future)
        self.sleepers.add(future)
        try:
            await future
        finally:
            handle.cancel()
            self.sleepers.discard(future)

    def stop(self) -> None:
        self.stopped = True
        for future in list(self.sleepers):
            wake(future)


async def _sim_loop(
    index: int, channel: Channel, config: FleetConfig, run: _Run, start: float, tally: Tally
) -> None:
    """One SIM: send at its rate (staggered among the SIMs) until the deadline or the count."""
    interval = 1.0 / config.rate if config.rate > 0 else 0.0
    next_at = start + interval * index / config.sims
    in_flight: list[asyncio.Future[None]] = []
    seq = 0
    while config.count is None or seq < config.count:
        if interval:
            await run.sleep_until(next_at)
            next_at += interval
        if run.over():
            break
        body = payload(config.size, index, seq)
        seq += 1
        tally.sent += 1
        settled = channel.submit(body) if interval else None
        if settled is not None:
            in_flight.append(settled)
            if len(in_flight) > 1024:
                in_flight = [f for f in in_flight if not f.done()]
            continue
        if not await channel.exchange(body):
            await run.sleep_until(run.loop.time() + max(interval, _RECONNECT_PAUSE_S))
    if in_flight:
        await asyncio.gather(*in_flight)


def _raise_fd_limit(needed: int) -> None:
    """Let the process hold a socket per SIM (the soft limit up to the hard one)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


class _Progress:
    """The live progress line on a stream: rewritten in place on a terminal, else a line every
    few seconds."""

    def __init__(self, stream: TextIO, tally: Tally, start: float) -> None:
        self.stream = stream
        self.tally = tally
        self.start = start
        self.tty = stream.isatty()
        self.every = 0.5 if self.tty else 5.0
        self.shown = 0
        self.last_sent = 0
        self.last_time = start
        self.last_latency = 0
        self.width = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.every)
            self.show(loop.time())

    def show(self, now: float) -> None:
        tally = self.tally
        recent = sorted(tally.latencies[self.last_latency :])
        self.last_latency = len(tally.latencies)
        span = max(now - self.last_time, 1e-9)
        rate = (tally.sent - self.last_sent) / span
        self.last_sent, self.last_time = tally.sent, now
        line = (
            f"{now - self.start:6.1f} s  sent {tally.sent}  stored {tally.stored}"
            f"  refused {sum(tally.refused.values())}  {rate:.0f} msg/s"
        )
        if recent:
            line += f"  p50 {_percentile(recent, 0.5) * 1000:.1f} ms"
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.shown += 1

    def finish(self, now: float) -> None:
        """On a terminal, the final figures, and end the line."""
        if self.tty:
            self.show(now)
            self.stream.write("\n")
            self.stream.flush()


def _ensure_sims(
    target: Target,
    token: str | None,
    imsis: list[str],
    stopped: threading.Event,
    link_profile: str | None = None,
) -> list[SimInfo]:
    """Every SIM of ``imsis``, created where it does not exist yet, a thousand per call (one
    commit each); then each SIM's link profile, a few calls in flight at once, each worker
    thread on a connection of its own. Blocking; ``stopped`` ends it early."""
    try:
        with target.control(token, keep_alive=True) as client:
            sims = [SimInfo.from_body(body) for body in client.ensure_sims(imsis)]
    except ControlClientError as error:
        raise control_failure(target, error) from None
    if link_profile is None:
        return sims
    local = threading.local()
    clients: list[ControlClient] = []

    def link(imsi: str) -> None:
        if stopped.is_set():
            raise SimulatorError("provisioning was interrupted")
        client: ControlClient | None = getattr(local, "client", None)
        if client is None:
            client = local.client = target.control(token, keep_alive=True)
            clients.append(client)
        client.set_link(imsi, link_profile)

    pool = ThreadPoolExecutor(_PROVISIONING_CONCURRENCY, thread_name_prefix="harvest-provision")
    try:
        list(pool.map(link, imsis))
    except ControlClientError as error:
        raise control_failure(target, error) from None
    finally:
        pool.shutdown(cancel_futures=True)
        for client in clients:
            client.close()
    return sims


async def provision(
    config: FleetConfig, target: Target | None = None
) -> tuple[list[SimInfo], list[str]]:
    """The fleet's SIMs, created through the control plane where they do not exist yet; and
    the notes about addresses that will not be bound."""
    target = target or config.target()
    imsis = fleet_imsis(config.imsi_base, config.sims)
    stopped = threading.Event()
    try:
        sims = await asyncio.to_thread(
            _ensure_sims, target, config.control_token, imsis, stopped, config.link_profile
        )
    finally:
        stopped.set()
    notes = []
    unbound = [
        s for s in sims if s.session_address and target.source_for(s.session_address) is None
    ]
    if unbound:
        notes.append(
            f"{len(unbound)} SIMs have loopback session addresses ({unbound[0].session_address}"
            f"...) and {target.host} is not on loopback: they send from this host's address"
        )
    return sims, notes


async def run_fleet(
    config: FleetConfig,
    *,
    progress: TextIO | None = None,
    stop: asyncio.Event | None = None,
    keep_samples: bool = False,
) -> FleetSummary:
    """Run a fleet (see the module docstring) and return its summary.

    ``progress``: a stream for the live progress line and the notes (none by default).
    ``stop``: set it to end the run early; messages in flight still get their replies counted.
    Raises :class:`SimulatorError` when the configuration is wrong or the control plane cannot
    provision the SIMs.
    """
    config.check()
    target = config.target()
    loop = asyncio.get_running_loop()
    summary = FleetSummary(
        config.protocol, target.describe(config.protocol, config.unified), config.sims
    )
    if progress is not None and config.sims > 100:
        progress.write(f"provisioning {config.sims} SIMs from {config.imsi_base}...\n")
    sims, notes = await provision(config, target)
    summary.notes += notes
    if progress is not None:
        for note in notes:
            progress.write(f"note: {note}\n")
    if stop is not None and stop.is_set():
        summary.interrupted = True
        return summary

    _raise_fd_limit(config.sims + 64)
    tally = Tally()
    kind = CHANNELS[config.protocol]
    channels = [kind(config, target, target.source_for(s.session_address), tally) for s in sims]
    duration = config.duration
    if duration is None and config.count is None:
        duration = 10.0
    try:
        await asyncio.gather(*(c.open() for c in channels))
        start = loop.time()
        clock_start = time.perf_counter()
        run = _Run(start + duration if duration is not None else math.inf)
        helpers = []
        if stop is not None:
            helpers.append(loop.create_task(_watch(stop, run)))
        meter = _Progress(progress, tally, start) if progress is not None else None
        if meter is not None:
            helpers.append(loop.create_task(meter.run()))
        try:
            await asyncio.gather(
                *(
                    _sim_loop(i, channel, config, run, start, tally)
                    for i, channel in enumerate(channels)
                )
            )
        finally:
            end = loop.time()
            elapsed = time.perf_counter() - clock_start
            for task in helpers:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if meter is not None:
                meter.finish(end)
    finally:
        await asyncio.gather(*(c.close() for c in channels), return_exceptions=True)

    summary.interrupted = run.stopped
    summary.sent = tally.sent
    summary.stored = tally.stored
    summary.refused = dict(sorted(tally.refused.items()))
    summary.replied = len(tally.latencies)
    summary.elapsed_s = round(elapsed, 4)
    span = max(elapsed, 1e-9)
    summary.rate = round(tally.sent / span, 1)
    summary.stored_rate = round(tally.stored / span, 1)
    summary.latency_ms = latency_of(tally.latencies)
    if keep_samples:
        summary.samples = list(tally.latencies)
    if tally.first_error is not None:
        summary.notes.append(f"first error: {tally.first_error}")
    return summary


async def _watch(stop: asyncio.Event, run: _Run) -> None:
    await stop.wait()
    run.stop()
