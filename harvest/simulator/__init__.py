"""Simulated devices: ``harvest-emulator device send``, ``harvest-emulator fleet`` and
``harvest-emulator files put|get|list``.

A device is a SIM's session address: the emulator identifies the SIM by the sender's IP address
(spec B2), and on loopback every SIM has its own ``127.x.y.z``, so a socket bound to that address
*is* that SIM. ``device send`` sends one message from one SIM over HTTP, raw TCP or raw UDP and
prints the reply; ``fleet`` runs N such devices and summarises what was stored.

A client of the emulator's public interfaces (its edge, raw ports and control plane), like any
device; the server never imports it. By job:

- :mod:`~harvest.simulator.target`: where an emulator is and how to reach it, SIMs included;
- :mod:`~harvest.simulator.devices`: one device's message over HTTP, TCP or UDP, and its reply;
- :mod:`~harvest.simulator.channels`: the socket each SIM of a fleet holds, and the tally;
- :mod:`~harvest.simulator.fleet`: the load generator, :func:`run_fleet`, and its summary;
- :mod:`~harvest.simulator.files`: Harvest Files as a SIM (``put``, ``get``) and a backend
  (``list``);
- :mod:`~harvest.simulator.args`: what the commands share: argument types, the SIM to act as;
- :mod:`~harvest.simulator.cli`: the commands' arguments, output and exit status.
"""

from harvest.simulator.cli import add_commands, run
from harvest.simulator.devices import DeviceReply, send_once, unified_status
from harvest.simulator.fleet import (
    DEFAULT_IMSI_BASE,
    FleetConfig,
    FleetSummary,
    Latency,
    fleet_imsis,
    payload,
    provision,
    run_fleet,
)
from harvest.simulator.target import (
    DEFAULT_ENDPOINT,
    DEFAULT_HARVEST_PORT,
    DEFAULT_UNIFIED_PORT,
    PROTOCOLS,
    ProtocolName,
    SimInfo,
    SimulatorError,
    Target,
)

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_HARVEST_PORT",
    "DEFAULT_IMSI_BASE",
    "DEFAULT_UNIFIED_PORT",
    "PROTOCOLS",
    "DeviceReply",
    "FleetConfig",
    "FleetSummary",
    "Latency",
    "ProtocolName",
    "SimInfo",
    "SimulatorError",
    "Target",
    "add_commands",
    "fleet_imsis",
    "payload",
    "provision",
    "run",
    "run_fleet",
    "send_once",
    "unified_status",
]
