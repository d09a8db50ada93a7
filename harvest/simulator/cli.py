"""The simulator's command line: ``harvest-emulator device send`` and ``harvest-emulator
fleet``, their arguments, and what each prints and exits with (``files put|get|list`` are
:mod:`harvest.simulator.files`'s).

The commands work against any emulator. A loopback session address only routes to a loopback
endpoint, so against a remote endpoint they do not bind one: the emulator then sees this host's
own address (and attributes the messages to whichever SIM has it, or answers 403).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from harvest.simulator import files
from harvest.simulator.args import (
    BINDING_HELP,
    add_sim_arguments,
    fail,
    imsi,
    loop_run,
    non_negative_float,
    port,
    positive_float,
    positive_int,
    sim_source,
)
from harvest.simulator.devices import send_once
from harvest.simulator.fleet import DEFAULT_IMSI_BASE, FleetConfig, run_fleet
from harvest.simulator.processes import run_fleet_processes
from harvest.simulator.target import (
    DEFAULT_ENDPOINT,
    DEFAULT_HARVEST_PORT,
    DEFAULT_UNIFIED_PORT,
    PROTOCOLS,
    ProtocolName,
    SimulatorError,
    Target,
)


def _timestamp(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not UNIX milliseconds: {text!r}")
    return int(text)


def _hex_bytes(text: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "")
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not hex bytes: {text!r}") from None


def _add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint",
        default=DEFAULT_ENDPOINT,
        metavar="URL",
        help=f"the emulator's HTTP edge; raw TCP/UDP go to its host (default {DEFAULT_ENDPOINT})",
    )
    parser.add_argument(
        "--protocol", choices=PROTOCOLS, default="http", help="how to send (default http)"
    )
    parser.add_argument(
        "--harvest-port",
        type=port,
        default=DEFAULT_HARVEST_PORT,
        metavar="PORT",
        help=f"raw TCP/UDP Harvest port (default {DEFAULT_HARVEST_PORT})",
    )
    parser.add_argument(
        "--unified-port",
        type=port,
        default=DEFAULT_UNIFIED_PORT,
        metavar="PORT",
        help=f"raw TCP/UDP Unified Endpoint port (default {DEFAULT_UNIFIED_PORT})",
    )
    parser.add_argument(
        "--unified",
        action="store_true",
        help="write to the Unified Endpoint: its port for tcp/udp, the edge's /_unified path "
        "for http; a reply in the Unified format is judged by Harvest's status inside it",
    )
    parser.add_argument(
        "--control-token",
        metavar="TOKEN",
        help="X-Emulator-Token for a token-protected control plane",
    )


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``device`` (with ``device send``), ``fleet`` and ``files`` (``put``, ``get``,
    ``list``: :mod:`harvest.simulator.files`) on ``harvest-emulator``."""
    device = subparsers.add_parser(
        "device",
        help="act as one simulated device",
        description="Act as one simulated device (a SIM's session address).",
    )
    device_commands = device.add_subparsers(dest="device_command", metavar="COMMAND", required=True)
    send = device_commands.add_parser(
        "send",
        help="send one message and print the reply",
        description=(
            "Send one message from a SIM's session address over HTTP, raw TCP or raw UDP and "
            "print the emulator's reply. Exit status: 0 if stored (201), 1 if refused, 2 if "
            "the emulator could not be reached. " + BINDING_HELP
        ),
    )
    _add_target_arguments(send)
    body = send.add_mutually_exclusive_group(required=True)
    body.add_argument("--text", metavar="TEXT", help="the message as text (text/plain over http)")
    body.add_argument(
        "--json",
        dest="json_body",
        metavar="JSON",
        help="the message as JSON text (application/json over http; sent as given)",
    )
    body.add_argument(
        "--hex",
        dest="hex_body",
        type=_hex_bytes,
        metavar="HEX",
        help="the message as hex bytes, e.g. cafe0001 (application/octet-stream over http)",
    )
    add_sim_arguments(send)
    send.add_argument(
        "--content-type",
        metavar="TYPE",
        help="http only: the Content-Type to send ('' for none; default from the body option)",
    )
    send.add_argument(
        "--timestamp",
        type=_timestamp,
        metavar="MS",
        help="http only: X-Soracom-Timestamp, the entry's time in UNIX milliseconds",
    )
    send.add_argument(
        "--timeout",
        type=positive_float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the reply (default 5)",
    )

    fleet = subparsers.add_parser(
        "fleet",
        help="run many simulated devices and summarise what was stored",
        description=(
            "Run N simulated devices, each a SIM with its own session address (created through "
            "the control plane if needed), sending at a rate for a time or a count; then print "
            "what was sent, stored and refused (by reason), the achieved rate and the latency. "
            "Exit status: 0 if every message was stored, 1 if some were not, 2 if the emulator "
            "could not be reached. " + BINDING_HELP
        ),
    )
    _add_target_arguments(fleet)
    fleet.add_argument(
        "--sims", type=positive_int, default=10, metavar="N", help="how many SIMs (default 10)"
    )
    fleet.add_argument(
        "--imsi-base",
        type=imsi,
        default=DEFAULT_IMSI_BASE,
        metavar="IMSI",
        help=f"IMSI of the first SIM, the others follow (default {DEFAULT_IMSI_BASE}); "
        "existing SIMs are reused",
    )
    fleet.add_argument(
        "--rate",
        type=non_negative_float,
        default=1.0,
        metavar="PER_SECOND",
        help="messages per second per SIM; 0 sends each as soon as the last is answered "
        "(default 1)",
    )
    fleet.add_argument(
        "--duration",
        type=positive_float,
        metavar="SECONDS",
        help="run this long (default 10 s unless --count is given)",
    )
    fleet.add_argument(
        "--count",
        type=positive_int,
        metavar="N",
        help="messages per SIM (with --duration: whichever ends first)",
    )
    fleet.add_argument(
        "--size",
        type=positive_int,
        default=60,
        metavar="BYTES",
        help="message size, a JSON-looking body (default 60)",
    )
    fleet.add_argument(
        "--timeout",
        type=positive_float,
        default=2.0,
        metavar="SECONDS",
        help="wait this long for each reply, per datagram for udp (default 2)",
    )
    fleet.add_argument(
        "--content-type",
        default="application/json",
        metavar="TYPE",
        help="http only: the Content-Type ('' for none; default application/json)",
    )
    fleet.add_argument(
        "--link-profile",
        metavar="PROFILE",
        help="give every SIM this link profile first: lte, lte-m, nb-iot or 3g (their delays,"
        " losses and bandwidth apply to every protocol; docs/link-profiles.md)",
    )
    fleet.add_argument(
        "--json",
        dest="json_output",
        action="store_true",
        help="print the summary as JSON (for benchmarks)",
    )
    fleet.add_argument(
        "--processes",
        type=positive_int,
        default=1,
        metavar="N",
        help="split the SIMs over N generator processes, for rates one process cannot send;"
        " the summary merges them (default 1)",
    )
    fleet.add_argument("--samples-file", type=Path, help=argparse.SUPPRESS)
    files.add_commands(subparsers)


async def _device_send(namespace: argparse.Namespace) -> int:
    protocol: ProtocolName = namespace.protocol
    if protocol != "http":
        for flag, value in (
            ("--timestamp", namespace.timestamp),
            ("--content-type", namespace.content_type),
        ):
            if value is not None:
                return fail(f"{flag} is for --protocol http only", 2)
    target = Target.parse(namespace.endpoint, namespace.harvest_port, namespace.unified_port)
    if namespace.text is not None:
        body, content_type = namespace.text.encode(), "text/plain"
    elif namespace.json_body is not None:
        body, content_type = namespace.json_body.encode(), "application/json"
    else:
        body, content_type = namespace.hex_body, "application/octet-stream"
    if namespace.content_type is not None:
        content_type = namespace.content_type
    source = await sim_source(target, namespace.control_token, namespace.imsi, namespace.source)
    reply = await send_once(
        target,
        protocol,
        body,
        source=source,
        unified=namespace.unified,
        content_type=content_type,
        timestamp=namespace.timestamp,
        wait_s=namespace.timeout,
    )
    print(reply.text, flush=True)
    return 0 if reply.stored else 1


async def _fleet(namespace: argparse.Namespace) -> int:
    config = FleetConfig(
        endpoint=namespace.endpoint,
        sims=namespace.sims,
        protocol=namespace.protocol,
        rate=namespace.rate,
        duration=namespace.duration,
        count=namespace.count,
        size=namespace.size,
        imsi_base=namespace.imsi_base,
        unified=namespace.unified,
        harvest_port=namespace.harvest_port,
        unified_port=namespace.unified_port,
        timeout=namespace.timeout,
        control_token=namespace.control_token,
        content_type=namespace.content_type,
        link_profile=namespace.link_profile,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []

    def interrupted() -> None:
        stop.set()
        # a second Ctrl-C ends the command at once
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, interrupted)
            handled.append(sig)
    try:
        if namespace.processes > 1:
            summary = await run_fleet_processes(
                config, namespace.processes, progress=sys.stderr, stop=stop
            )
        else:
            summary = await run_fleet(
                config, progress=sys.stderr, stop=stop, keep_samples=bool(namespace.samples_file)
            )
    finally:
        for sig in handled:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    if namespace.samples_file is not None:  # for the process that started this one
        namespace.samples_file.write_text(json.dumps(summary.samples))
    print(summary.to_json() if namespace.json_output else summary.text(), flush=True)
    return summary.exit_code()


def run(namespace: argparse.Namespace) -> int:
    """Run ``device send``, ``fleet`` or ``files ...`` as parsed by :func:`add_commands`; the
    exit status."""
    commands: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "device": _device_send,
        "fleet": _fleet,
        "files": files.run,
    }
    command = commands.get(getattr(namespace, "command", ""))
    if command is None:
        return fail(f"unknown command {getattr(namespace, 'command', None)!r}", 2)
    try:
        return loop_run(command(namespace))
    except SimulatorError as error:
        return fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        return 130
