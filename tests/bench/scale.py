"""A fleet's worth of state: start-up time and resident memory with 100,000 SIMs and 10 million
entries, and how fast the fleet is provisioned.

    python -m tests.bench.scale [--sims 100000] [--writers 10000] [--cache-dir /tmp/harvest-bench]

Uses the 10,000,000-entry database of ``tests.bench.page_reads`` (built and cached there on
first use, ~40 s), copied to a temporary directory. Then, with the emulator as its own process:

1. start it on that file (10 M entries, the default SIM): seconds to the banner, RSS;
2. provision ``--sims`` SIMs through the control plane as ``harvest-emulator fleet`` does (a
   thousand per call): SIMs per second, RSS;
3. ``--writers`` of them send 10 UDP messages each (the fleet engine, one in flight per SIM),
   so the per-SIM caches of the write path are filled: RSS;
4. stop it (SIGTERM) and start it again on the same file (10 M entries, the SIMs): seconds to
   the banner and RSS, which is what a user restarting a big emulator waits for.

RSS is ``VmRSS`` and the peak ``VmHWM`` from ``/proc``. Targets (issue 11): start-up <= 5 s,
RSS <= 300 MB. The baseline is the first start: the same process with the default SIM.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harvest.control_client import ControlClient
from harvest.simulator.fleet import FleetConfig, fleet_imsis, run_fleet
from tests.bench._common import emulator_args, machine_note, run_loop, start_server
from tests.bench.page_reads import Shape, ensure


def memory_of(pid: int) -> tuple[float, float]:
    """``(VmRSS, VmHWM)`` of ``pid`` in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def started(data_dir: Path, log: Path) -> tuple[float, Any]:
    begun = time.perf_counter()
    server = start_server("emulator", emulator_args(data_dir), log, timeout=120)
    return time.perf_counter() - begun, server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=100_000)
    parser.add_argument("--writers", type=int, default=10_000)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/harvest-bench"))
    args = parser.parse_args()
    print(f"machine: {machine_note()}")
    source, _ = ensure(Shape(10_000_000, 10_000, 1_000_000), args.cache_dir, rebuild=False)
    with tempfile.TemporaryDirectory(prefix="harvest-scale-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        shutil.copyfile(source / "harvest.sqlite3", data_dir / "harvest.sqlite3")
        log = Path(tmp) / "emulator.log"

        seconds, server = started(data_dir, log)
        pid = server.pid
        rss, peak = memory_of(pid)
        print(f"start, 10 M entries, 1 SIM:        {seconds:6.2f} s   RSS {rss:6.1f} MiB")

        imsis = fleet_imsis("001019900000000", args.sims)
        url = server.base_url
        begun = time.perf_counter()
        with ControlClient(url, keep_alive=True) as client:
            client.ensure_sims(imsis)
        took = time.perf_counter() - begun
        rss, peak = memory_of(pid)
        print(
            f"provisioned {args.sims:,} SIMs:       {took:6.2f} s   RSS {rss:6.1f} MiB"
            f"   ({args.sims / took:,.0f} SIMs/s)"
        )

        config = FleetConfig(
            endpoint=url, sims=args.writers, protocol="udp", rate=0, count=10,
            imsi_base="001019900000000",
            harvest_port=int(_raw_port(log)), timeout=10.0,
        )  # fmt: skip
        summary = run_loop(run_fleet(config))
        rss, peak = memory_of(pid)
        print(
            f"{args.writers:,} SIMs wrote {summary.stored:,} of {summary.sent:,} entries:"
            f" RSS {rss:6.1f} MiB (peak {peak:6.1f} MiB)"
            + (f"; not stored: {summary.refused}" if summary.refused else "")
        )
        server.stop()

        seconds, server = started(data_dir, log)
        pid = server.pid
        rss, peak = memory_of(pid)
        print(
            f"restart, 10 M entries, {args.sims + 1:,} SIMs: {seconds:6.2f} s   RSS {rss:6.1f} MiB"
            f" (peak {peak:6.1f} MiB)"
        )
        server.stop()
    return 0


def _raw_port(log: Path) -> str:
    found = re.search(r"Harvest TCP/UDP\s+tcp://127\.0\.0\.1:(\d+)", log.read_text())
    assert found, "no raw port in the banner"
    return found.group(1)


if __name__ == "__main__":
    sys.exit(main())
