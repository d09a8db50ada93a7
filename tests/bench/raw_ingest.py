"""Raw UDP and TCP device writes per second through the fleet engine, against a bare baseline.

    python -m tests.bench.raw_ingest [--protocol udp|tcp|both] [--sims 200] [--rounds 3]
                                     [--duration 5] [--warmup 1] [--generators 1]

Two servers run as subprocesses, each on its own uvloop event loop:

* the emulator, ``python -m harvest serve --port 0 --data-dir <tmp> ...``: durable SQLite (WAL,
  ``synchronous=FULL``, group commit), so every ``201`` means the entry is on disk; its raw
  Harvest port (TCP and UDP on one number) is read from the banner line ``Harvest TCP/UDP``;
* the baseline, ``python -m tests.bench.raw_ingest --serve-baseline 0``: a bare asyncio TCP and
  UDP listener on one port that answers ``201`` to every read (TCP) and every datagram (UDP),
  and does nothing else. It prints a banner line in the emulator's format.

The load is the product's fleet engine, :func:`harvest.simulator.run_fleet`, with ``rate=0``:
``--sims`` SIMs, each with its own socket bound to its session address (127.x.y.z), each
sending its next 60-byte message as soon as the last one is answered (one in flight per SIM).
The SIMs are created once through the emulator's control plane; every round, ``run_fleet``
looks them up there again, for the baseline too (the baseline does not identify SIMs, so the
same session addresses just work). With ``--generators N`` the fleet is split over N processes
(this one and N-1 children started as ``--generate``), all started together.

Rounds alternate baseline, emulator, baseline, ..., and with ``--protocol both`` UDP and TCP
alternate round by round too (the emulator's database grows through the run, so neither
protocol is measured on a larger one alone), after one unmeasured warm-up round each. The CPU
window of a round opens when ``run_fleet`` has provisioned its SIMs (the benchmark wraps
``harvest.simulator.fleet.provision`` to mark it, so the control-plane look-ups are
not counted) and closes when ``run_fleet`` returns. For each server and protocol the figures
are medians over its rounds: stored (``201``) messages per second, p50 and p99 latency (as the
fleet engine measures them), the server's CPU time per answered message (main thread and
other threads, from ``/proc``) and its CPU in cores, the generator's CPU, and the emulator's
group commits (transactions, writes and time per transaction, from its ``GET /metrics``,
where it has one). The ratios emulator/baseline follow. Then the emulator
is killed with SIGKILL (``--clean-stop`` for SIGTERM) and its SQLite file is read: the usage
``ledger`` writes (``kind = 'write'``) must equal the ``201`` answers (each acknowledged write
was durable); a UDP datagram whose reply timed out may still have been stored, so unanswered
datagrams widen the accepted range upwards.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import aiohttp

from harvest.simulator import channels
from harvest.simulator import fleet as fleet_engine
from harvest.simulator.fleet import FleetConfig, FleetSummary, Latency, fleet_imsis, run_fleet
from harvest.simulator.target import SimInfo, Target
from tests.bench._common import (
    ROOT,
    CpuSample,
    Server,
    cpu_of,
    emulator_args,
    machine_note,
    median,
    recovered_counts,
    run_loop,
    start_server,
)

Protocol = Literal["udp", "tcp"]

#: Both servers print this line (the emulator in its banner, the baseline on its own).
_RAW_BANNER = re.compile(
    r"^\s*Harvest TCP/UDP\s+tcp://127\.0\.0\.1:(\d+)\s+udp://127\.0\.0\.1:(\d+)", re.MULTILINE
)
#: What the baseline answers: the emulator's reply to a stored message (spec B3, B4).
CREATED = b"201"
#: The UDP throughput target on one core, in stored messages a second (issue 11,
#: docs/benchmarks.md; measure it with --pin).
UDP_TARGET = 40_000
#: A process (the server: all its threads) using this much of a core is taken to limit the rate.
FULL_CORE = 0.9
#: Where the benchmark's SIMs start: away from the emulator's own and the fleet CLI's default.
IMSI_BASE = "001019900000000"


# --- the baseline server ------------------------------------------------------------------------
class _TcpReplier(asyncio.Protocol):
    """Answers every read with ``201``: a message is what one read delivers, as in the
    emulator (the device waits for the reply before it sends the next one)."""

    transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(CREATED)


class _UdpReplier(asyncio.DatagramProtocol):
    """Answers every datagram with ``201``."""

    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(CREATED, addr)


async def serve_baseline(host: str, port: int) -> None:
    """TCP and UDP on one port (UDP on the port TCP got when ``port`` is 0) until SIGTERM."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_TcpReplier, host, port, reuse_address=True)
    port = port or server.sockets[0].getsockname()[1]
    udp, _ = await loop.create_datagram_endpoint(_UdpReplier, local_addr=(host, port))
    print(
        f"  Harvest TCP/UDP  tcp://{host}:{port}  udp://{host}:{port}   (baseline: answers 201)",
        flush=True,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        udp.close()
        server.close()
        await server.wait_closed()


# --- the servers under test ---------------------------------------------------------------------
@dataclass
class RawServer:
    """A server subprocess and its raw TCP/UDP port."""

    server: Server
    raw_port: int

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def pid(self) -> int:
        return self.server.pid


def _raw_port(process: subprocess.Popen[bytes], log: Path, name: str, timeout: float) -> int:
    """The port on the ``Harvest TCP/UDP`` line of ``log``, once ``process`` has printed it."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(errors="replace")
        found = _RAW_BANNER.search(text)
        if found:
            if found.group(1) != found.group(2):
                raise RuntimeError(f"{name}: TCP and UDP on different ports:\n{text}")
            return int(found.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{text}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{name} printed no raw port in {timeout:.0f} s:\n{text}")
        time.sleep(0.05)


def pin(pid: int, cpu: int) -> None:
    """Every thread of ``pid`` (and the threads it starts later) on ``cpu`` only."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})


def start_emulator(args: Sequence[str], log: Path) -> RawServer:
    server = start_server("emulator", args, log)
    return RawServer(server, _raw_port(server.process, log, "emulator", 10.0))


def start_baseline(log: Path, timeout: float = 30.0) -> RawServer:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.raw_ingest", "--serve-baseline", "0"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    port = _raw_port(process, log, "baseline", timeout)
    return RawServer(Server("baseline", process, port, log), port)


# --- one round ----------------------------------------------------------------------------------
_COMMIT_METRIC = re.compile(
    r"^harvest_group_commit_(batch_size|duration_seconds)_(sum|count) (\S+)$", re.MULTILINE
)


@dataclass(frozen=True)
class CommitStats:
    """The emulator's group commits (its ``/metrics`` histograms), or their change over a round."""

    transactions: float
    mutations: float
    seconds: float

    def minus(self, earlier: CommitStats) -> CommitStats:
        return CommitStats(
            self.transactions - earlier.transactions,
            self.mutations - earlier.mutations,
            self.seconds - earlier.seconds,
        )


async def commit_stats(base_url: str) -> CommitStats | None:
    """The emulator's group-commit totals from ``GET /metrics``; ``None`` where it has none."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(base_url + "/metrics") as response,
        ):
            text = await response.text() if response.status == 200 else ""
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None
    found = {(m[1], m[2]): float(m[3]) for m in _COMMIT_METRIC.finditer(text)}
    try:
        return CommitStats(
            found[("batch_size", "count")],
            found[("batch_size", "sum")],
            found[("duration_seconds", "sum")],
        )
    except KeyError:
        return None


@dataclass
class Window:
    """CPU seconds over a round's measured window: the servers', and each generator's."""

    server: CpuSample
    generators: list[float]
    wall_s: float


async def _fleet_in_window(
    config: FleetConfig, mark: asyncio.Future[None] | None, go: asyncio.Future[None] | None
) -> FleetSummary:
    """``run_fleet(config)``; ``mark`` is set when its SIMs are provisioned (the window opens),
    and with ``go`` the fleet then waits for it before sending (several generators start
    together)."""
    original = fleet_engine.provision

    async def provision_then_mark(
        config: FleetConfig, target: Target | None = None
    ) -> tuple[list[SimInfo], list[str]]:
        found = await original(config, target)
        if mark is not None and not mark.done():
            mark.set_result(None)
        if go is not None:
            await go
        return found

    fleet_engine.provision = provision_then_mark
    try:
        return await run_fleet(config)
    finally:
        fleet_engine.provision = original


@dataclass
class Result:
    server: str
    protocol: str
    stored_per_s: float
    p50_ms: float
    p99_ms: float
    summary: FleetSummary
    window: Window
    #: The emulator's group commits over the window (``None``: the baseline, or no metrics).
    commits: CommitStats | None = None

    @property
    def answered(self) -> int:
        return self.summary.replied

    def server_us(self, part: str = "total") -> float:
        """Server CPU microseconds per answered message: ``total``, ``main`` or ``other``."""
        cpu = self.window.server
        seconds = {
            "total": cpu.total,
            "main": cpu.threads.get("main", 0.0),
            "other": sum(v for k, v in cpu.threads.items() if k != "main"),
        }[part]
        return 1e6 * seconds / max(1, self.answered)

    def server_cores(self, part: str = "total") -> float:
        return self.server_us(part) * self.answered / 1e6 / max(self.window.wall_s, 1e-9)

    def generator_us(self) -> float:
        return 1e6 * sum(self.window.generators) / max(1, self.answered)

    def generator_cores(self) -> list[float]:
        return [c / max(self.window.wall_s, 1e-9) for c in self.window.generators]


def merge(summaries: Sequence[FleetSummary]) -> FleetSummary:
    """One summary of several generators' (latency: the slowest generator's percentiles)."""
    if len(summaries) == 1:
        return summaries[0]
    first = summaries[0]
    total = FleetSummary(first.protocol, first.target, sum(s.sims for s in summaries))
    refused: collections.Counter[str] = collections.Counter()
    for s in summaries:
        total.sent += s.sent
        total.stored += s.stored
        total.replied += s.replied
        refused.update(s.refused)
        total.notes += s.notes
    total.refused = dict(sorted(refused.items()))
    total.elapsed_s = max(s.elapsed_s for s in summaries)
    total.stored_rate = sum(s.stored_rate for s in summaries)
    total.rate = sum(s.rate for s in summaries)
    latencies = [s.latency_ms for s in summaries if s.latency_ms is not None]
    if latencies:
        total.latency_ms = Latency(
            p50=max(lat.p50 for lat in latencies),
            p90=max(lat.p90 for lat in latencies),
            p99=max(lat.p99 for lat in latencies),
            max=max(lat.max for lat in latencies),
        )
    return total


@dataclass
class Bench:
    """What every round shares: the servers, the fleet, the helper generator processes."""

    emulator: RawServer
    baseline: RawServer
    sims: int
    timeout: float
    helpers: list[Helper] = field(default_factory=list)

    def configs(self, server: RawServer, protocol: Protocol, duration: float) -> list[FleetConfig]:
        """One fleet config per generator: the SIMs split among them."""
        parts = min(1 + len(self.helpers), self.sims)
        imsis = fleet_imsis(IMSI_BASE, self.sims)
        configs = []
        start = 0
        for index in range(parts):
            # Each generator gets a contiguous block of IMSIs (a fleet's are consecutive).
            size = self.sims // parts + (1 if index < self.sims % parts else 0)
            configs.append(
                FleetConfig(
                    endpoint=self.emulator.server.base_url,  # the control plane
                    sims=size,
                    protocol=protocol,
                    rate=0.0,
                    duration=duration,
                    imsi_base=imsis[start],
                    harvest_port=server.raw_port,
                    timeout=self.timeout,
                )
            )
            start += size
        return configs


class Helper:
    """A generator child process (``--generate``): it reads a fleet config as a JSON line,
    provisions, prints ``ready``, waits for ``go``, runs the fleet and prints its summary and
    its CPU seconds over the run."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.raw_ingest", "--generate"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def _line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"generator {self.process.pid} exited")
        return cast(dict[str, Any], json.loads(line))

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    async def start(self, config: FleetConfig) -> None:
        self._send({"config": dataclasses.asdict(config)})
        await asyncio.to_thread(self._line)  # ready: provisioned

    def go(self) -> None:
        self._send({"go": True})

    async def finish(self) -> tuple[FleetSummary, float]:
        reply = await asyncio.to_thread(self._line)
        return FleetSummary.from_dict(reply["summary"]), float(reply["cpu_s"])

    def stop(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def run_round(bench: Bench, server: RawServer, protocol: Protocol, duration: float) -> Result:
    loop = asyncio.get_running_loop()
    own, *others = bench.configs(server, protocol, duration)
    helpers = bench.helpers[: len(others)]
    for helper, config in zip(helpers, others, strict=True):
        await helper.start(config)
    mark: asyncio.Future[None] = loop.create_future()
    go: asyncio.Future[None] = loop.create_future()
    fleet = loop.create_task(_fleet_in_window(own, mark, go))
    either: list[asyncio.Future[Any]] = [mark, fleet]
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    metrics_url = bench.emulator.server.base_url
    commits_before = await commit_stats(metrics_url) if server is bench.emulator else None
    server_before = cpu_of(server.pid)
    own_before = cpu_of(os.getpid()).total
    started = time.perf_counter()
    for helper in helpers:
        helper.go()
    go.set_result(None)
    summary = await fleet
    server_cpu = cpu_of(server.pid).minus(server_before)
    own_cpu = cpu_of(os.getpid()).total - own_before
    wall = time.perf_counter() - started
    commits = None
    if commits_before is not None:
        commits_after = await commit_stats(metrics_url)
        commits = commits_after.minus(commits_before) if commits_after is not None else None
        if commits is not None and commits.transactions <= 0:
            commits = None  # the in-memory store commits nothing
    summaries, generators = [summary], [own_cpu]
    for helper in helpers:
        their_summary, their_cpu = await helper.finish()
        summaries.append(their_summary)
        generators.append(their_cpu)
    merged = merge(summaries)
    latency = merged.latency_ms
    return Result(
        server=server.name,
        protocol=protocol,
        stored_per_s=merged.stored_rate,
        p50_ms=latency.p50 if latency is not None else float("nan"),
        p99_ms=latency.p99 if latency is not None else float("nan"),
        summary=merged,
        window=Window(server_cpu, generators, wall),
        commits=commits,
    )


def limit(result: Result) -> str:
    """Which process was at a full core: the generator's, or the server's threads together."""
    generator = max(result.generator_cores())
    if generator >= FULL_CORE:
        return f"generator-bound (a generator process used {generator:.2f} of a core)"
    if result.server_cores() >= FULL_CORE:
        return f"server-bound ({result.server_cores():.2f} cores)"
    return "neither process used a full core"


def describe(result: Result) -> str:
    refused = result.summary.refused
    outcome = f"201: {result.summary.stored}" + "".join(f", {k}: {v}" for k, v in refused.items())
    generators = "+".join(f"{c:.2f}" for c in result.generator_cores())
    return (
        f"{result.stored_per_s:7.0f} stored/s  p50 {result.p50_ms:6.2f} ms  "
        f"p99 {result.p99_ms:6.2f} ms  [{outcome}]; {limit(result)}\n"
        f"{'':23}server {result.server_us():5.1f} us/msg, {result.server_cores():.2f} cores "
        f"(main thread {result.server_us('main'):5.1f} us/msg, "
        f"{result.server_cores('main'):.2f} cores; other threads "
        f"{result.server_us('other'):5.1f} us/msg, {result.server_cores('other'):.2f} cores); "
        f"generator {result.generator_us():4.1f} us/msg, {generators} cores"
        + (f"\n{'':23}{commit_line(result)}" if result.commits is not None else "")
    )


def commit_line(result: Result) -> str:
    commits = result.commits
    assert commits is not None
    n = max(commits.transactions, 1.0)
    return (
        f"group commit: {commits.transactions:.0f} transactions, {commits.mutations / n:.0f} "
        f"writes and {1e3 * commits.seconds / n:.2f} ms each, a commit in progress "
        f"{100 * _busy(result):.0f}% of the time"
    )


# --- the run ------------------------------------------------------------------------------------
@dataclass
class Totals:
    results: dict[tuple[str, str], list[Result]] = field(default_factory=dict)
    emulator_201: int = 0
    #: Emulator messages without an answer (timed out, disconnected): stored or not.
    emulator_unanswered: int = 0
    emulator_other: collections.Counter[str] = field(default_factory=collections.Counter)


_UNANSWERED = (channels.TIMEOUT, channels.DISCONNECTED)


async def benchmark(
    bench: Bench, protocols: Sequence[Protocol], rounds: int, duration: float, warmup: float
) -> Totals:
    totals = Totals()

    def account(result: Result) -> None:
        if result.server != "emulator":
            return
        summary = result.summary
        totals.emulator_201 += summary.stored
        for reason, count in summary.refused.items():
            if reason in _UNANSWERED:
                totals.emulator_unanswered += count
            else:
                totals.emulator_other[reason] += count

    # The SIMs exist before the first round (created once through the control plane).
    await fleet_engine.provision(
        FleetConfig(endpoint=bench.emulator.server.base_url, sims=bench.sims, imsi_base=IMSI_BASE)
    )
    servers = (bench.baseline, bench.emulator)
    if warmup > 0:
        for protocol in protocols:
            for server in servers:
                result = await run_round(bench, server, protocol, warmup)
                account(result)
                print(f"{protocol} warm-up  {server.name:9} {describe(result)}", flush=True)
    # Protocols alternate round by round, as the servers do: the emulator's database grows
    # through the run (~150,000 entries a round) and its later rounds tend to be slower, so
    # every UDP round before every TCP one would measure TCP only on the larger database.
    for number in range(1, rounds + 1):
        for protocol in protocols:
            for server in servers:
                result = await run_round(bench, server, protocol, duration)
                account(result)
                totals.results.setdefault((protocol, server.name), []).append(result)
                print(
                    f"{protocol} round {number:<2} {server.name:9} {describe(result)}", flush=True
                )
    return totals


def _commits(results: Sequence[Result]) -> list[CommitStats]:
    return [r.commits for r in results if r.commits is not None]


def _busy(result: Result) -> float:
    """The share of the window with a group commit in progress."""
    assert result.commits is not None
    return result.commits.seconds / max(result.window.wall_s, 1e-9)


def summarise(totals: Totals, protocols: Sequence[Protocol]) -> None:
    print()
    print(f"{'':22} {'':>8} {'':>7} {'':>7} {'server CPU':-^38} {'generator':-^14}")
    print(
        f"{'medians over rounds':22} {'stored/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'us/msg':>7} {'main us':>7} {'other us':>8} {'cores':>5} {'main':>4} {'other':>5}"
        f" {'us/msg':>7} {'cores':>6}"
    )
    columns = (
        ("stored_per_s", "8.0f"),
        ("p50_ms", "7.2f"),
        ("p99_ms", "7.2f"),
        ("us", "7.1f"),
        ("main_us", "7.1f"),
        ("other_us", "8.1f"),
        ("cores", "5.2f"),
        ("main_cores", "4.2f"),
        ("other_cores", "5.2f"),
        ("gen_us", "7.1f"),
        ("gen_cores", "6.2f"),
    )
    for protocol in protocols:
        rows: dict[str, dict[str, float]] = {}
        for name in ("baseline", "emulator"):
            results = totals.results[(protocol, name)]
            figures = {
                "stored_per_s": [r.stored_per_s for r in results],
                "p50_ms": [r.p50_ms for r in results],
                "p99_ms": [r.p99_ms for r in results],
                "us": [r.server_us() for r in results],
                "main_us": [r.server_us("main") for r in results],
                "other_us": [r.server_us("other") for r in results],
                "cores": [r.server_cores() for r in results],
                "main_cores": [r.server_cores("main") for r in results],
                "other_cores": [r.server_cores("other") for r in results],
                "gen_us": [r.generator_us() for r in results],
                "gen_cores": [sum(r.generator_cores()) for r in results],
            }
            row = rows[name] = {k: median(v) for k, v in figures.items()}
            cells = " ".join(f"{row[k]:{fmt}}" for k, fmt in columns)
            print(f"{protocol + ' ' + name:22} {cells}")
        base, emu = rows["baseline"], rows["emulator"]
        ratios = " ".join(f"{emu[k] / base[k]:{fmt[0]}.2f}" for k, fmt in columns[:4])
        print(f"{protocol + ' emulator/baseline':22} {ratios}")
        commits = [r for r in totals.results[(protocol, "emulator")] if r.commits is not None]
        if commits:
            batch = median([c.mutations / max(c.transactions, 1) for c in _commits(commits)])
            each = median([1e3 * c.seconds / max(c.transactions, 1) for c in _commits(commits)])
            busy = median([100 * _busy(r) for r in commits])
            print(
                f"{protocol + ' emulator':22} group commit: {batch:.0f} writes and {each:.2f} ms "
                f"per transaction, a commit in progress {busy:.0f}% of the time"
            )
        print()
    for protocol in protocols:
        of_base = median([r.stored_per_s for r in totals.results[(protocol, "baseline")]])
        of_emu = median([r.stored_per_s for r in totals.results[(protocol, "emulator")]])
        cpu_base = median([r.server_us() for r in totals.results[(protocol, "baseline")]])
        cpu_emu = median([r.server_us() for r in totals.results[(protocol, "emulator")]])
        line = (
            f"{protocol}: emulator {of_emu:.0f} stored/s, baseline {of_base:.0f}/s: "
            f"throughput ratio {of_emu / of_base:.2f}, server CPU per message "
            f"{cpu_emu / cpu_base:.1f}x the baseline's"
        )
        if protocol == "udp":
            verdict = "met" if of_emu >= UDP_TARGET else "NOT met"
            line += f"; target >= {UDP_TARGET} stored/s: {verdict}"
        print(line)


def check_durability(database: Path, totals: Totals) -> bool:
    acknowledged, unanswered = totals.emulator_201, totals.emulator_unanswered
    entries, counted, left = recovered_counts(database)
    print()
    print(
        f"emulator answers: 201 x {acknowledged}"
        + (f", unanswered {unanswered}" if unanswered else "")
        + (f", other {dict(totals.emulator_other)}" if totals.emulator_other else "")
    )
    print(
        f"SQLite after the run and a restart: entries {entries}, ledger writes {counted}"
        f" ({left} journal rows left by the crash, folded at the restart)"
    )
    ok = acknowledged <= counted <= acknowledged + unanswered and entries <= counted
    expected = "== 201 answers" if not unanswered else "between 201 answers and 201 + unanswered"
    print(f"durability: {'OK' if ok else 'MISMATCH'} (ledger writes {expected})")
    return ok


# --- entry points -------------------------------------------------------------------------------
def _generate() -> int:
    """A helper generator: see :class:`Helper`."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

        def reply(message: dict[str, Any]) -> None:
            sys.stdout.write(json.dumps(message) + "\n")
            sys.stdout.flush()

        while line := await reader.readline():
            config = FleetConfig(**json.loads(line)["config"])
            mark: asyncio.Future[None] = loop.create_future()
            go: asyncio.Future[None] = loop.create_future()
            fleet = loop.create_task(_fleet_in_window(config, mark, go))
            either: list[asyncio.Future[Any]] = [mark, fleet]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            reply({"ready": True})
            await reader.readline()
            before = cpu_of(os.getpid()).total
            go.set_result(None)
            summary = await fleet
            reply({"summary": summary.to_dict(), "cpu_s": cpu_of(os.getpid()).total - before})

    run_loop(main())
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--protocol", choices=("udp", "tcp", "both"), default="both", help="(both: udp, then tcp)"
    )
    parser.add_argument("--sims", type=int, default=200, help="SIMs, one in flight each (200)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per server (3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round (5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds (1; 0: none)")
    parser.add_argument(
        "--generators",
        type=int,
        default=1,
        help="load generator processes: this one and N-1 children, the SIMs split among them (1)",
    )
    parser.add_argument(
        "--timeout", type=float, default=2.0, help="seconds to wait for each reply (2)"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin each server (every thread) to CPU 0 and the load generators to CPU 1, as the"
        " targets are stated (Linux)",
    )
    parser.add_argument("--clean-stop", action="store_true", help="SIGTERM, not SIGKILL, at end")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument(
        "--emulator-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra emulator flag, repeatable (e.g. --emulator-arg=--memory for the in-memory "
        "store, whose run skips the durability check)",
    )
    parser.add_argument(
        "--serve-baseline", type=int, metavar="PORT", help="be the baseline server on PORT"
    )
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline is not None:
        run_loop(serve_baseline("127.0.0.1", args.serve_baseline))
        return 0
    if args.generate:
        return _generate()
    if args.sims < 1 or args.rounds < 1 or args.duration <= 0 or args.generators < 1:
        parser.error("--sims, --rounds, --duration and --generators must be positive")
    protocols: list[Protocol] = ["udp", "tcp"] if args.protocol == "both" else [args.protocol]

    work = Path(tempfile.mkdtemp(prefix="harvest-bench-raw-"))
    data_dir = work / "data"
    emulator_cmd = emulator_args(data_dir, *args.emulator_arg)
    durable = "--memory" not in args.emulator_arg
    print(f"machine: {machine_note()}")
    print(f"emulator: python {' '.join(emulator_cmd)}")
    print("baseline: python -m tests.bench.raw_ingest --serve-baseline 0")
    print(
        f"fleet: {args.sims} SIMs ({', '.join(protocols)}), rate 0 (one message in flight per "
        f"SIM), 60-byte messages, {args.generators} generator process(es), {args.rounds} rounds "
        f"x {args.duration:g} s per server (warm-up {args.warmup:g} s)"
    )
    baseline = start_baseline(work / "baseline.log")
    emulator: RawServer | None = None
    helpers: list[Helper] = []
    ok = False
    try:
        emulator = start_emulator(emulator_cmd, work / "emulator.log")
        print(f"baseline pid {baseline.pid}, raw port {baseline.raw_port}")
        print(
            f"emulator pid {emulator.pid} at {emulator.server.base_url}, raw port "
            f"{emulator.raw_port}, data in {data_dir}"
        )
        helpers = [Helper() for _ in range(args.generators - 1)]
        pids = [os.getpid(), *(h.process.pid for h in helpers)]
        print(f"generator pids {', '.join(str(p) for p in pids)}")
        if args.pin:
            for server_pid in (emulator.pid, baseline.pid):
                pin(server_pid, 0)
            for generator in pids:
                pin(generator, 1)
            print("pinned: servers on CPU 0, generators on CPU 1")
        print()
        bench = Bench(emulator, baseline, args.sims, args.timeout, helpers)
        totals = run_loop(benchmark(bench, protocols, args.rounds, args.duration, args.warmup))
        summarise(totals, protocols)
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        crash = not args.clean_stop
        status = emulator.server.stop(crash=crash)
        print(f"\nemulator stopped with {'SIGKILL' if crash else 'SIGTERM'} (exit {status})")
        if durable:
            ok = check_durability(data_dir / "harvest.sqlite3", totals)
        else:
            ok = True
            print("in-memory store: no durability check")
    finally:
        for helper in helpers:
            helper.stop()
        baseline.server.stop()
        if emulator is not None:
            emulator.server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
