"""What the simulator's commands share on the command line: the types of their arguments, the
choice of the SIM to act as, and how a command runs and fails (``harvest-emulator: error:``,
exit status 2 when the emulator cannot be reached, 1 otherwise; docs/simulated-devices.md)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import math
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from harvest import wire
from harvest.simulator.target import SimulatorError, Target, find_sim

T = TypeVar("T")

BINDING_HELP = (
    "A loopback session address is bound only when the endpoint is on loopback (an IP "
    "address in 127.0.0.0/8 or ::1, or localhost): against a remote emulator it would not "
    "route, so the message leaves from this host's own address and the emulator identifies "
    "the SIM by that."
)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text}")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def imsi(text: str) -> str:
    if not wire.is_imsi(text):
        raise argparse.ArgumentTypeError(f"an IMSI is 6 to 15 digits: {text!r}")
    return text


def add_sim_arguments(parser: argparse.ArgumentParser, what: str = "send") -> None:
    """``--imsi`` or ``--source``: the SIM a command acts as (see :func:`sim_source`)."""
    sim = parser.add_mutually_exclusive_group()
    sim.add_argument(
        "--imsi",
        type=imsi,
        help=f"{what} as this SIM: its session address is looked up through the control plane",
    )
    sim.add_argument(
        "--source",
        type=address,
        metavar="ADDRESS",
        help="bind this source address (always, even against a remote endpoint); "
        "with neither --imsi nor --source nothing is bound",
    )


async def sim_source(
    target: Target, token: str | None, imsi: str | None, source: str | None
) -> str | None:
    """The address to bind: ``source`` as given, or the session address of the SIM ``imsi``
    (not bound, with a note on stderr, when it is a loopback address and the endpoint is not
    on loopback), or ``None``."""
    if imsi is None:
        return source
    sim = await asyncio.to_thread(find_sim, target, token, imsi)
    if sim is None:
        raise SimulatorError(f"no SIM with IMSI {imsi} at {target.base}")
    if sim.session_address is None:
        raise SimulatorError(f"SIM {sim.imsi} has no session address")
    bound = target.source_for(sim.session_address)
    if bound is None:
        print(
            f"note: not binding {sim.session_address} (SIM {sim.imsi}'s loopback address): "
            f"{target.host} is not on loopback, so this host's own address is used",
            file=sys.stderr,
        )
    return bound


def loop_run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def fail(message: str, code: int) -> int:
    print(f"harvest-emulator: error: {message}", file=sys.stderr)
    return code
