"""A fleet split over several generator processes, for rates one Python process cannot send.

``harvest-emulator fleet --processes N`` provisions every SIM once, then runs the fleet in this
process and N-1 children (``harvest-emulator fleet`` with a share of the SIMs each, started
together), and merges what they did into one :class:`~harvest.simulator.fleet.FleetSummary`:
counts add up, the rates are over the longest run, the latency percentiles are computed over
every message's latency (each child hands its samples over in a file).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from harvest.simulator.fleet import (
    FleetConfig,
    FleetSummary,
    fleet_imsis,
    latency_of,
    provision,
    run_fleet,
)
from harvest.simulator.target import SimulatorError


def shares(sims: int, processes: int) -> list[int]:
    """How many SIMs each process runs: as even as can be, none empty."""
    base, extra = divmod(sims, processes)
    return [base + (1 if i < extra else 0) for i in range(processes) if base or i < extra]


def child_arguments(config: FleetConfig, sims: int, imsi_base: str, samples: Path) -> list[str]:
    """``harvest-emulator fleet`` for one child: ``sims`` SIMs from ``imsi_base``."""
    arguments = [
        "-m", "harvest", "fleet", "--json", "--samples-file", str(samples),
        "--endpoint", config.endpoint, "--protocol", config.protocol,
        "--sims", str(sims), "--imsi-base", imsi_base, "--rate", str(config.rate),
        "--size", str(config.size), "--timeout", str(config.timeout),
        "--harvest-port", str(config.harvest_port), "--unified-port", str(config.unified_port),
        "--content-type", config.content_type,
    ]  # fmt: skip
    if config.duration is not None:
        arguments += ["--duration", str(config.duration)]
    if config.count is not None:
        arguments += ["--count", str(config.count)]
    if config.unified:
        arguments.append("--unified")
    if config.control_token is not None:
        arguments += ["--control-token", config.control_token]
    return arguments


async def run_fleet_processes(
    config: FleetConfig,
    processes: int,
    *,
    progress: TextIO | None = None,
    stop: asyncio.Event | None = None,
) -> FleetSummary:
    """Run ``config`` over ``processes`` generator processes (this one included)."""
    if processes < 2:
        return await run_fleet(config, progress=progress, stop=stop)
    await provision(config)  # once, before the children look their SIMs up
    imsis = fleet_imsis(config.imsi_base, config.sims)
    counts = shares(config.sims, processes)
    starts = [sum(counts[:i]) for i in range(len(counts))]
    with tempfile.TemporaryDirectory(prefix="harvest-fleet-") as directory:
        children = []
        for index, (start, count) in enumerate(zip(starts[1:], counts[1:], strict=True), 1):
            samples = Path(directory) / f"{index}.json"
            process = await asyncio.create_subprocess_exec(
                sys.executable, *child_arguments(config, count, imsis[start], samples),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            children.append((process, samples))
        mine = replace(config, sims=counts[0])
        own = await run_fleet(mine, progress=progress, stop=stop, keep_samples=True)
        summaries, samples_of = [own], [own.samples]
        for process, samples in children:
            out, _ = await process.communicate()
            try:
                body = json.loads(out)
            except ValueError:
                raise SimulatorError(
                    f"a fleet process ended without a summary (exit {process.returncode})"
                ) from None
            summaries.append(FleetSummary.from_dict(body))
            samples_of.append(json.loads(samples.read_text()) if samples.exists() else [])
    return merged(summaries, [s for batch in samples_of for s in batch])


def merged(summaries: list[FleetSummary], samples: list[float]) -> FleetSummary:
    """One summary of several processes' runs over ``samples`` (every latency, in seconds)."""
    first = summaries[0]
    total = FleetSummary(first.protocol, first.target, sum(s.sims for s in summaries))
    for summary in summaries:
        total.sent += summary.sent
        total.stored += summary.stored
        total.replied += summary.replied
        for reason, count in summary.refused.items():
            total.refused[reason] = total.refused.get(reason, 0) + count
        total.notes.extend(n for n in summary.notes if n not in total.notes)
        total.interrupted = total.interrupted or summary.interrupted
    total.refused = dict(sorted(total.refused.items()))
    total.elapsed_s = max(s.elapsed_s for s in summaries)
    span = max(total.elapsed_s, 1e-9)
    total.rate = round(total.sent / span, 1)
    total.stored_rate = round(total.stored / span, 1)
    total.latency_ms = latency_of(samples)
    total.notes.append(f"{len(summaries)} generator processes")
    return total
