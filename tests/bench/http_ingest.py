"""Device writes per second through the emulator's HTTP edge, against a bare aiohttp baseline.

    python -m tests.bench.http_ingest [--clients 64] [--rounds 3] [--duration 5] [--compare-aiohttp]

Two servers run as subprocesses, each on its own event loop (uvloop where installed):

* the emulator, ``python -m harvest serve --port 0 --data-dir <tmp>``: durable SQLite (WAL,
  ``synchronous=FULL``, group commit), so every ``201`` means the entry is on disk;
* the baseline, ``python -m tests.bench.baseline_server``: aiohttp whose handler only answers
  ``201``, set up as the emulator's edge is.

The load generator (this process) keeps ``--clients`` keep-alive connections from 127.0.0.1 (the
default SIM's session address), one request in flight on each (no pipelining), each a ``POST /``
of a 60-byte JSON body. It is an ``asyncio.Protocol`` with a minimal HTTP/1.1 response parser,
so it spends as little CPU as it can: on a small machine it shares the cores with the server.

Rounds alternate baseline, emulator, baseline, ... after one unmeasured warm-up round each, and
each round runs for a fixed time on fresh connections. For each server the figures are medians
over its rounds: requests/s, p50 and p99 latency (send to last response byte) and the server's
CPU time per request (from ``/proc``). Then the emulator is killed with SIGKILL (``--clean-stop``
for SIGTERM) and its SQLite file is read: ``write_counts`` must equal the ``201`` answers (each
acknowledged write was durable), ``entries`` may be fewer (one SIM's writes in the same
millisecond overwrite one another, spec A1). Writes are counted in ``write_counts`` (schema 1)
or, from schema 2, in the usage ``ledger`` (``kind = 'write'``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from tests.bench._common import (
    CpuSample,
    Server,
    cpu_of,
    emulator_args,
    machine_note,
    median,
    percentile,
    recovered_counts,
    run_loop,
    start_server,
)

#: The device payload: 60 bytes of JSON.
BODY = b'{"temp":21.5,"humidity":48.25,"pressure":1013.25,"seq":1234}'
assert len(BODY) == 60, len(BODY)
json.loads(BODY)

SOURCE_ADDRESS = "127.0.0.1"


def request_bytes(port: int) -> bytes:
    head = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    )
    return head.encode("ascii") + BODY


def _content_length(head: bytes) -> int:
    lower = head.lower()
    start = lower.find(b"\r\ncontent-length:")
    if start < 0:
        status = int(head[9:12])
        if status in (204, 304) or 100 <= status < 200:
            return 0
        raise ValueError(f"response without Content-Length: {head!r}")
    start += len(b"\r\ncontent-length:")
    end = lower.find(b"\r\n", start)
    return int(lower[start : end if end >= 0 else None])


class Round:
    """One timed round against one server: what every connection records."""

    def __init__(self, connections: int) -> None:
        self.running = False
        self.latencies_ns: list[int] = []
        self.statuses: collections.Counter[int] = collections.Counter()
        self.lost = 0
        self._pending = connections
        self.drained: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_done(self) -> None:
        self._pending -= 1
        if self._pending <= 0 and not self.drained.done():
            self.drained.set_result(None)


class Connection(asyncio.Protocol):
    """One keep-alive client: sends the request again as soon as the answer is complete."""

    def __init__(self, request: bytes, round_: Round) -> None:
        self._request = request
        self._round = round_
        self._buffer = bytearray()
        self._sent_ns = 0
        self._busy = False
        self._done = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self) -> None:
        assert self.transport is not None
        self._busy = True
        self._sent_ns = time.perf_counter_ns()
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            total = end + 4 + _content_length(head)
            if len(buffer) < total:
                return
            del buffer[:total]
            self._answered(int(head[9:12]))

    def _answered(self, status: int) -> None:
        round_ = self._round
        round_.latencies_ns.append(time.perf_counter_ns() - self._sent_ns)
        round_.statuses[status] += 1
        self._busy = False
        if round_.running:
            self.send()
        elif not self._done:
            self._done = True
            round_.connection_done()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done:
            self._done = True
            if self._busy:
                self._round.lost += 1
            self._round.connection_done()


@dataclass
class Result:
    server: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    answers: collections.Counter[int]
    lost: int
    server_cpu: CpuSample
    client_cpu_s: float
    measured: int

    def cpu_us_per_request(self) -> float:
        return 1e6 * self.server_cpu.total / max(1, self.measured)


async def run_round(server: Server, clients: int, duration: float) -> Result:
    loop = asyncio.get_running_loop()
    round_ = Round(clients)
    request = request_bytes(server.port)
    connections: list[Connection] = []
    for _ in range(clients):
        _, protocol = await loop.create_connection(
            lambda: Connection(request, round_),
            "127.0.0.1",
            server.port,
            local_addr=(SOURCE_ADDRESS, 0),
        )
        connections.append(protocol)
    server_before = cpu_of(server.pid)
    client_before = cpu_of(os.getpid())
    started = time.perf_counter()
    round_.running = True
    for connection in connections:
        connection.send()
    await asyncio.sleep(duration)
    round_.running = False
    stopped = time.perf_counter()
    measured = len(round_.latencies_ns)
    server_cpu = cpu_of(server.pid).minus(server_before)
    client_cpu = cpu_of(os.getpid()).total - client_before.total
    await asyncio.wait_for(round_.drained, timeout=60)
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    latencies = sorted(round_.latencies_ns)
    return Result(
        server=server.name,
        requests_per_s=measured / (stopped - started),
        p50_ms=percentile(latencies, 0.50) / 1e6,
        p99_ms=percentile(latencies, 0.99) / 1e6,
        answers=round_.statuses,
        lost=round_.lost,
        server_cpu=server_cpu,
        client_cpu_s=client_cpu,
        measured=measured,
    )


def describe(result: Result) -> str:
    threads = result.server_cpu.threads
    main = threads.get("main", 0.0)
    others = sum(v for k, v in threads.items() if k != "main")
    per = 1e6 / max(1, result.measured)
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(result.answers.items()))
    return (
        f"{result.requests_per_s:9.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
        f"p99 {result.p99_ms:6.2f} ms  server CPU {result.cpu_us_per_request():5.0f} us/req "
        f"(main thread {main * per:4.0f}, other threads {others * per:4.0f})  "
        f"client CPU {result.client_cpu_s * per:4.0f} us/req  [{statuses}"
        + (f", lost {result.lost}" if result.lost else "")
        + "]"
    )


#: Issue 11: device writes at >= 0.6 of a bare aiohttp handler answering 201, same load.
TARGET_RATIO = 0.6


@dataclass
class Totals:
    results: dict[str, list[Result]] = field(default_factory=dict)
    #: Per emulator: its 201 answers, and the other answers (-1: requests lost).
    created: collections.Counter[str] = field(default_factory=collections.Counter)
    other: dict[str, collections.Counter[int]] = field(default_factory=dict)


async def benchmark(
    servers: list[Server], clients: int, rounds: int, duration: float, warmup: float
) -> Totals:
    """Rounds alternate over ``servers`` (the baseline first)."""
    totals = Totals(results={server.name: [] for server in servers})
    width = max(len(server.name) for server in servers)

    def account(result: Result) -> None:
        if result.server == "baseline":
            return
        totals.created[result.server] += result.answers.get(201, 0)
        other = totals.other.setdefault(result.server, collections.Counter())
        other.update({code: n for code, n in result.answers.items() if code != 201})
        if result.lost:
            other[-1] += result.lost

    if warmup > 0:
        for server in servers:
            result = await run_round(server, clients, warmup)
            account(result)
            print(f"warm-up   {server.name:{width}} {describe(result)}", flush=True)
    for number in range(1, rounds + 1):
        for server in servers:
            result = await run_round(server, clients, duration)
            account(result)
            totals.results[server.name].append(result)
            print(f"round {number:<3} {server.name:{width}} {describe(result)}", flush=True)
    return totals


def summarise(totals: Totals) -> None:
    print()
    print(f"{'medians over rounds':32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11}")
    summary: dict[str, tuple[float, float, float, float]] = {}
    for name, results in totals.results.items():
        row = (
            median([r.requests_per_s for r in results]),
            median([r.p50_ms for r in results]),
            median([r.p99_ms for r in results]),
            median([r.cpu_us_per_request() for r in results]),
        )
        summary[name] = row
        print(f"{name:32} {row[0]:9.0f} {row[1]:8.2f} {row[2]:8.2f} {row[3]:11.0f}")
    base = summary["baseline"]
    for name, emu in summary.items():
        if name == "baseline":
            continue
        ratio = emu[0] / base[0]
        print(
            f"{name + '/baseline':32} {ratio:9.2f} {emu[1] / base[1]:8.2f} "
            f"{emu[2] / base[2]:8.2f} {emu[3] / base[3]:11.2f}"
        )
    for name, emu in summary.items():
        if name != "baseline":
            ratio = emu[0] / base[0]
            verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
            print(f"{name}: throughput ratio {ratio:.2f}: target >= {TARGET_RATIO} {verdict}")


def check_durability(database: Path, acknowledged: int, other: collections.Counter[int]) -> bool:
    entries, counted, left = recovered_counts(database)
    table = "ledger"
    print()
    print(f"emulator answers: 201 x {acknowledged}" + (f", other {dict(other)}" if other else ""))
    print(
        f"SQLite after the run and a restart: entries {entries}, {table} writes {counted}"
        f" ({left} journal rows left by the crash, folded at the restart)"
    )
    ok = counted == acknowledged and entries <= acknowledged
    print(
        "durability: "
        + (
            f"OK ({table} writes == 201 answers; entries <= writes: same-millisecond overwrites)"
            if ok
            else "MISMATCH"
        )
    )
    return ok


def print_profile(path: Path, top: int = 30) -> None:
    print(f"\ncProfile of the emulator's main thread ({path}), by own time:")
    stats = pstats.Stats(str(path), stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=64, help="concurrent connections (64)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per server (3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round (5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds (1; 0: none)")
    parser.add_argument("--clean-stop", action="store_true", help="SIGTERM, not SIGKILL, at end")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument(
        "--compare-aiohttp",
        action="store_true",
        help="also run the emulator with --device-http aiohttp (every request through aiohttp's "
        "application, as before the lean path) in the same rounds",
    )
    parser.add_argument(
        "--profile", type=Path, metavar="FILE", help="run the emulator under cProfile into FILE"
    )
    parser.add_argument(
        "--emulator-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra emulator flag, repeatable (e.g. --emulator-arg=--memory for the in-memory "
        "store, whose run skips the durability check)",
    )
    args = parser.parse_args()
    if args.clients < 1 or args.rounds < 1 or args.duration <= 0:
        parser.error("--clients, --rounds and --duration must be positive")

    work = Path(tempfile.mkdtemp(prefix="harvest-bench-ingest-"))
    data_dir = work / "data"
    emulator_cmd = emulator_args(data_dir, *args.emulator_arg)
    durable = "--memory" not in args.emulator_arg
    if args.profile is not None:
        emulator_cmd = ["-m", "cProfile", "-o", str(args.profile.resolve()), *emulator_cmd]
    print(f"machine: {machine_note()}")
    print(f"emulator: python {' '.join(emulator_cmd)}")
    print(
        f"{args.clients} keep-alive clients from {SOURCE_ADDRESS}, {len(BODY)}-byte JSON body, "
        f"{args.rounds} rounds x {args.duration:g} s per server (warm-up {args.warmup:g} s)"
    )
    baseline = start_server(
        "baseline", ["-m", "tests.bench.baseline_server"], work / "baseline.log"
    )
    emulators: dict[str, tuple[Server, Path]] = {}
    ok = False
    try:
        print(f"baseline pid {baseline.pid} at {baseline.base_url}")
        emulators["emulator"] = (
            start_server("emulator", emulator_cmd, work / "emulator.log"),
            data_dir,
        )
        if args.compare_aiohttp:
            other_dir = work / "data-aiohttp"
            command = emulator_args(other_dir, *args.emulator_arg, "--device-http", "aiohttp")
            emulators["emulator-aiohttp-path"] = (
                start_server("emulator-aiohttp-path", command, work / "emulator-aiohttp.log"),
                other_dir,
            )
        for server, directory in emulators.values():
            print(f"{server.name} pid {server.pid} at {server.base_url}, data in {directory}")
        print()
        servers = [baseline, *(server for server, _ in emulators.values())]
        totals = run_loop(benchmark(servers, args.clients, args.rounds, args.duration, args.warmup))
        summarise(totals)
        crash = not args.clean_stop and args.profile is None
        ok = True
        for name, (server, directory) in emulators.items():
            status = server.stop(crash=crash)
            print(f"\n{name} stopped with {'SIGKILL' if crash else 'SIGTERM'} (exit {status})")
            if durable:
                ok &= check_durability(
                    directory / "harvest.sqlite3",
                    totals.created[name],
                    totals.other.get(name, collections.Counter()),
                )
            else:
                print("in-memory store: no durability check")
        if args.profile is not None:
            print_profile(args.profile)
    finally:
        baseline.stop()
        for server, _ in emulators.values():
            server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
