"""What the benchmarks share: server subprocesses, percentiles, CPU accounting, the loop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: The repository root (``tests/bench/_common.py`` -> ``.``): servers run with it as cwd.
ROOT = Path(__file__).resolve().parents[2]

#: The emulator's banner line ``  HTTP edge        http://127.0.0.1:PORT   (...)``, and the
#: baseline server's line, which copies it.
_BANNER = re.compile(r"^\s*HTTP edge\s+http://127\.0\.0\.1:(\d+)\b", re.MULTILINE)

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop where it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (``fraction`` 0.5 is the median)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Server:
    """A server subprocess whose output goes to a log file; ``port`` is parsed from its banner."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, *, crash: bool = False, timeout: float = 20.0) -> int:
        """SIGTERM (a clean shutdown) or SIGKILL (``crash``); the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start_server(
    name: str,
    args: Sequence[str],
    log: Path,
    *,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
) -> Server:
    """Start ``python <args>`` from the repository root and wait for its banner line."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(errors="replace")
        found = _BANNER.search(text)
        if found:
            return Server(name, process, int(found.group(1)), log)
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{text}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{name} printed no banner in {timeout:.0f} s:\n{text}")
        time.sleep(0.05)


def emulator_args(data_dir: Path, *extra: str) -> list[str]:
    """``python -m harvest serve --port 0 --data-dir DIR`` (durable SQLite); the raw TCP/UDP
    ports are free ports too, so runs never collide with another emulator."""
    return [
        *("-m", "harvest", "serve", "--port", "0", "--data-dir", str(data_dir)),
        *("--harvest-port", "0", "--unified-port", "0"),
        # One SIM sending as fast as it can: the per-SIM ceiling (and the API budget for the
        # page-read samples) would answer 429 long before the server is saturated.
        "--no-rate-limits",
        # a log line per request is an access log for people; at these rates nobody reads it
        "--request-log",
        "off",
        *extra,
    ]


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds a process has used, in total and per thread name."""

    total: float
    threads: dict[str, float]

    def minus(self, earlier: CpuSample) -> CpuSample:
        return CpuSample(
            self.total - earlier.total,
            {k: v - earlier.threads.get(k, 0.0) for k, v in self.threads.items()},
        )


def _stat_seconds(stat: str) -> tuple[str, float]:
    # /proc/<pid>/stat: "pid (comm) state ... utime stime ..." (fields 14 and 15).
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return comm, (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def cpu_of(pid: int) -> CpuSample:
    """CPU time of ``pid`` (Linux ``/proc``); threads are keyed ``<tid>:<name>``, the main
    thread ``main``. Zero where ``/proc`` is missing."""
    proc = Path(f"/proc/{pid}")
    try:
        _, total = _stat_seconds((proc / "stat").read_text())
    except OSError:
        return CpuSample(0.0, {})
    threads: dict[str, float] = {}
    for task in sorted((proc / "task").iterdir(), key=lambda p: int(p.name)):
        try:
            comm, seconds = _stat_seconds((task / "stat").read_text())
        except OSError:
            continue
        key = "main" if int(task.name) == pid else f"{task.name}:{comm}"
        threads[key] = seconds
    return CpuSample(total, threads)


def machine_note() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
        f"Python {sys.version.split()[0]}, loop {loop_name()}"
    )


def recovered_counts(database: Path) -> tuple[int, int, int]:
    """After a crash: ``(entries, ledger writes, journal rows the crash left)``, read as the
    next start sees them. The file is opened with the product's store, which folds what a crash
    left in the journal (docs/storage.md, "The journal"), as a restart would."""
    import asyncio
    import sqlite3

    from harvest.storage.sqlite import SqliteStore

    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        left = (
            int(db.execute("SELECT count(*) FROM journal").fetchone()[0])
            if "journal" in tables
            else 0
        )
    db.close()

    async def reopen() -> None:
        store = SqliteStore(database)
        await store.open()
        await store.close()

    asyncio.run(reopen())
    with sqlite3.connect(database) as db:
        entries = int(db.execute("SELECT count(*) FROM entries").fetchone()[0])
        counted = int(
            db.execute(
                "SELECT coalesce(sum(count), 0) FROM ledger WHERE kind = 'write'"
            ).fetchone()[0]
        )
    db.close()
    return entries, counted, left
