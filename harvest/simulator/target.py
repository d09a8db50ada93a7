"""Where and how the simulator reaches an emulator: its HTTP edge, its raw ports, the address
to bind for a SIM, and the control plane that says which SIMs exist."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from harvest import wire
from harvest.control_client import (
    ControlClient,
    ControlClientError,
    ControlPlaneError,
    ControlPlaneUnreachable,
    describe_error,
)

ProtocolName = Literal["http", "tcp", "udp"]

PROTOCOLS: tuple[ProtocolName, ...] = ("http", "tcp", "udp")
DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
DEFAULT_HARVEST_PORT = wire.HARVEST_PORT
DEFAULT_UNIFIED_PORT = wire.UNIFIED_PORT
#: The edge path of the Unified Endpoint over HTTP (the emulator's, gateway.unified).
UNIFIED_PATH = wire.UNIFIED_PATH


class SimulatorError(Exception):
    """Ends a command with a one-line message; ``exit_code`` 2 when the emulator could not be
    reached, 1 otherwise."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is on this machine's loopback; names other than localhost count as
    remote (nothing is resolved)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        name = host.lower().rstrip(".")
        return name == "localhost" or name.endswith(".localhost")


def family(address: str) -> socket.AddressFamily:
    """The socket family of an IP address."""
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe(error: BaseException) -> str:
    """A short reason for a failed send or connection (``Connection refused``, ...)."""
    if isinstance(error, aiohttp.ClientConnectorError):
        error = error.os_error
    return describe_error(error)


@dataclass(frozen=True, slots=True)
class Target:
    """An emulator: its HTTP edge (device writes and the control plane) and its raw ports."""

    #: ``scheme://host:port`` of the HTTP edge.
    base: str
    #: The endpoint's path (and query), ``/`` if it had none: where HTTP device writes go.
    path: str
    #: Host of the raw TCP/UDP listeners: the endpoint's host.
    host: str
    harvest_port: int = DEFAULT_HARVEST_PORT
    unified_port: int = DEFAULT_UNIFIED_PORT

    @classmethod
    def parse(
        cls,
        endpoint: str,
        harvest_port: int = DEFAULT_HARVEST_PORT,
        unified_port: int = DEFAULT_UNIFIED_PORT,
    ) -> Target:
        text = endpoint.strip()
        if "://" not in text:
            text = "http://" + text
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https"):
            raise SimulatorError(f"endpoint {endpoint!r}: the scheme must be http or https")
        try:
            port = parts.port
        except ValueError:
            raise SimulatorError(f"endpoint {endpoint!r}: the port is not a port") from None
        host = parts.hostname
        if not host:
            raise SimulatorError(f"endpoint {endpoint!r} has no host")
        port = port or (443 if parts.scheme == "https" else 80)
        base = f"{parts.scheme}://{_host_port(host, port)}"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(base, path, host, harvest_port, unified_port)

    @property
    def loopback(self) -> bool:
        return _is_loopback(self.host)

    def raw_port(self, unified: bool = False) -> int:
        return self.unified_port if unified else self.harvest_port

    def write_url(self, unified: bool = False) -> str:
        """Where HTTP device writes go; the Unified Endpoint is the edge's ``/_unified`` path
        (for clients that cannot set ``Host: uni.soracom.io``)."""
        if not unified:
            return self.base + self.path
        return self.base + UNIFIED_PATH + ("" if self.path == "/" else self.path)

    def describe(self, protocol: ProtocolName, unified: bool = False) -> str:
        if protocol == "http":
            return self.write_url(unified)
        return f"{protocol}://{_host_port(self.host, self.raw_port(unified))}"

    def source_for(self, session_address: str | None) -> str | None:
        """The address to bind for a SIM: its session address, unless that is a loopback
        address and the emulator is not on loopback (it would not route)."""
        if session_address is None:
            return None
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(session_address).is_loopback and not self.loopback:
                return None
        return session_address

    def control(self, token: str | None, *, keep_alive: bool = False) -> ControlClient:
        """A client of this emulator's control plane (on the edge's ``base``)."""
        return ControlClient(self.base, token=token, keep_alive=keep_alive)


# --- the SIMs, through the control plane ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SimInfo:
    """A SIM as the control plane describes it."""

    imsi: str
    session_address: str | None
    group_id: str | None = None
    status: str | None = None

    @classmethod
    def from_body(cls, body: Any) -> SimInfo:
        """From the control plane's SIM object."""
        if not isinstance(body, dict) or not isinstance(body.get("imsi"), str):
            raise SimulatorError(f"the control plane answered an unexpected body: {body!r}")
        address = body.get("sessionAddress")
        group = body.get("groupId")
        status = body.get("status")
        return cls(
            body["imsi"],
            address if isinstance(address, str) else None,
            group if isinstance(group, str) else None,
            status if isinstance(status, str) else None,
        )


def control_failure(target: Target, error: ControlClientError) -> SimulatorError:
    """A control-plane failure as the one-line message a command ends with."""
    if isinstance(error, ControlPlaneError):
        if error.needs_token:
            return SimulatorError(
                f"the control plane at {target.base} needs a token: give --control-token"
            )
        if error.switched_off:
            return SimulatorError(f"the control plane at {target.base} is switched off")
        return SimulatorError(f"{error.what} failed: {error.status} {error.message}")
    if isinstance(error, ControlPlaneUnreachable):
        return SimulatorError(f"cannot reach the control plane at {target.base}: {error.reason}", 2)
    return SimulatorError(str(error), 2)


def find_sim(target: Target, token: str | None, imsi: str) -> SimInfo | None:
    """The SIM with this IMSI, or ``None``; blocking (run it in a thread from a loop)."""
    try:
        with target.control(token) as control:
            found = control.find_sim(imsi)
    except ControlClientError as error:
        raise control_failure(target, error) from None
    return None if found is None else SimInfo.from_body(found)
