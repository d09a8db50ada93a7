"""Simulated devices: ``harvest-emulator device send`` and ``harvest-emulator fleet``.

A device is a SIM's session address: the emulator identifies the SIM by the sender's IP address
(spec B2), and on loopback every SIM has its own ``127.x.y.z``, so a socket bound to that address
*is* that SIM. ``device send`` sends one message from one SIM over HTTP, raw TCP or raw UDP and
prints the reply. ``fleet`` provisions N SIMs through the control plane and has each send at a
rate, from its own address, for a time or a count, then prints what was stored, what was refused
and why, the achieved rate and the latency percentiles.

The fleet engine is :func:`run_fleet`, a coroutine that benchmarks and tests call without the
command line. It runs on one event loop with one socket per SIM: one keep-alive aiohttp session
(HTTP), one connection that sends a message and waits for its reply (TCP, as firmware does, spec
B3), or one datagram endpoint whose replies are matched to the datagrams in the order they were
sent, each with its own timeout (UDP, spec B4).

Both commands work against any emulator. A loopback session address only routes to a loopback
endpoint, so against a remote endpoint they do not bind one: the emulator then sees this host's
own address (and attributes the messages to whichever SIM has it, or answers 403).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import collections
import contextlib
import ipaddress
import json
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TextIO, TypeVar, cast
from urllib.parse import quote, urlsplit

import aiohttp

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_HARVEST_PORT",
    "DEFAULT_IMSI_BASE",
    "DEFAULT_UNIFIED_PORT",
    "PROTOCOLS",
    "ControlPlane",
    "DeviceReply",
    "FleetConfig",
    "FleetSummary",
    "Latency",
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

T = TypeVar("T")
ProtocolName = Literal["http", "tcp", "udp"]

PROTOCOLS: tuple[ProtocolName, ...] = ("http", "tcp", "udp")
DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
DEFAULT_HARVEST_PORT = 8514
DEFAULT_UNIFIED_PORT = 23080
#: Fleet IMSIs start here, away from the ones the emulator hands out (0010100...).
DEFAULT_IMSI_BASE = "001019000000000"
CONTROL_TOKEN_HEADER = "X-Emulator-Token"
TIMESTAMP_HEADER = "X-Soracom-Timestamp"
#: The edge path of the Unified Endpoint over HTTP (the emulator's, gateway.unified).
UNIFIED_PATH = "/_unified"

#: Refusal reasons that are not a status code.
TIMEOUT = "timeout"
DISCONNECTED = "disconnected"
CONNECT_FAILED = "connect failed"
BAD_REPLY = "bad reply"

#: A raw reply is the ASCII status: three digits (spec B3, B4).
_RAW_REPLY_BYTES = 3
#: Raw TCP replies after which the emulator closes the connection: an oversized message (its
#: framing is lost) and the connection cap.
_TCP_HANG_UPS = (413, 503)
#: How long a SIM waits after a failed connection before it tries again.
_RECONNECT_PAUSE_S = 0.1
#: Control-plane calls in flight at once while provisioning a fleet.
_PROVISIONING_CONCURRENCY = 16


class SimulatorError(Exception):
    """Ends a command with a one-line message; ``exit_code`` 2 when the emulator could not be
    reached, 1 otherwise."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# --- where to send ------------------------------------------------------------------------------
def _is_loopback(host: str) -> bool:
    """Whether ``host`` is on this machine's loopback; names other than localhost count as
    remote (nothing is resolved)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        name = host.lower().rstrip(".")
        return name == "localhost" or name.endswith(".localhost")


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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


# --- the control plane --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SimInfo:
    """A SIM as the control plane describes it."""

    imsi: str
    session_address: str | None
    group_id: str | None = None
    status: str | None = None


def _sim_info(body: Any) -> SimInfo:
    if not isinstance(body, dict) or not isinstance(body.get("imsi"), str):
        raise SimulatorError(f"the control plane answered an unexpected body: {body!r}")
    address = body.get("sessionAddress")
    group = body.get("groupId")
    status = body.get("status")
    return SimInfo(
        body["imsi"],
        address if isinstance(address, str) else None,
        group if isinstance(group, str) else None,
        status if isinstance(status, str) else None,
    )


class ControlPlane:
    """The emulator's ``/_emulator`` SIM calls, over one aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, target: Target, token: str | None) -> None:
        self.session = session
        self.target = target
        self.headers = {CONTROL_TOKEN_HEADER: token} if token else {}

    async def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = self.target.base + "/_emulator" + path
        try:
            async with self.session.request(
                method, url, json=body, headers=self.headers
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise SimulatorError(
                f"cannot reach the control plane at {self.target.base}: {_describe(error)}", 2
            ) from None
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode("utf-8", "replace")
        if status == 401:
            raise SimulatorError(
                f"the control plane at {self.target.base} needs a token: give --control-token"
            )
        if status == 404 and isinstance(data, dict) and data.get("code") == "HEM9002":
            raise SimulatorError(f"the control plane at {self.target.base} is switched off")
        return status, data

    async def get_sim(self, imsi: str) -> SimInfo | None:
        status, data = await self._call("GET", "/sims/" + quote(imsi, safe=""))
        if status == 404:
            return None
        if status != 200:
            raise SimulatorError(f"looking up SIM {imsi} failed: {status} {_message(data)}")
        return _sim_info(data)

    async def ensure_sim(self, imsi: str) -> SimInfo:
        """The SIM with this IMSI, created with the emulator's defaults if it does not exist."""
        found = await self.get_sim(imsi)
        if found is not None:
            return found
        status, data = await self._call("POST", "/sims", {"imsi": imsi})
        if status == 409:  # created meanwhile by someone else
            found = await self.get_sim(imsi)
            if found is not None:
                return found
        if status != 201:
            raise SimulatorError(f"creating SIM {imsi} failed: {status} {_message(data)}")
        return _sim_info(data)


def _message(data: Any) -> str:
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])
    return str(data)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, aiohttp.ClientConnectorError):
        error = error.os_error
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno)
    return str(error) or type(error).__name__


def fleet_imsis(base: str, count: int) -> list[str]:
    """``count`` consecutive IMSIs from ``base``, as wide as ``base``."""
    if not (base.isdigit() and 6 <= len(base) <= 15):
        raise SimulatorError(f"--imsi-base {base!r} must be 6 to 15 digits")
    first = int(base)
    last = first + count - 1
    if len(str(last)) > len(base):
        raise SimulatorError(f"{count} SIMs from {base} run past {len(base)} digits")
    return [f"{first + i:0{len(base)}d}" for i in range(count)]


# --- one message --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeviceReply:
    """What the emulator answered one message: its status (``None`` if the reply was not a
    status) and the text to show."""

    status: int | None
    text: str

    @property
    def stored(self) -> bool:
        return self.status == 201


def unified_status(document: Any) -> int | None:
    """Harvest's status inside a reply in the Unified Endpoint's ``Unified`` format: the HTTP
    body ``{"result","detail":{"harvest":{"statusCode","body"}}}``, or over TCP/UDP the whole
    ``{"statusCode","body":{...}}``. ``None`` if ``document`` is not such a reply."""
    if not isinstance(document, dict):
        return None
    body = document.get("body", document)
    detail = body.get("detail") if isinstance(body, dict) else None
    harvest = detail.get("harvest") if isinstance(detail, dict) else None
    status = harvest.get("statusCode") if isinstance(harvest, dict) else None
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def _raw_status(reply: bytes) -> int | None:
    """The status a raw reply carries: the ASCII status, or Harvest's in a Unified reply."""
    text = reply.strip()
    if len(text) == _RAW_REPLY_BYTES and text.isdigit():
        return int(text)
    if text.startswith(b"{"):
        try:
            return unified_status(json.loads(text))
        except ValueError:
            return None
    return None


def _http_status(status: int, body: bytes) -> int:
    """An HTTP reply's status; for the Unified format (200 or 207 and a JSON body), Harvest's
    status inside it."""
    if status in (200, 207) and body[:1] == b"{":
        try:
            inner = unified_status(json.loads(body))
        except ValueError:
            inner = None
        if inner is not None:
            return inner
    return status


_JSON = json.JSONDecoder()


def _reply_length(buffer: bytearray) -> int:
    """The length of the first whole reply in ``buffer`` (0: not all there yet). A reply is
    three ASCII digits, or a JSON object (the Unified format on the Unified Endpoint port)."""
    if buffer[:1] == b"{":
        try:
            # latin-1 keeps one character per byte, so the end index is a byte count
            _, end = _JSON.raw_decode(buffer.decode("latin-1"))
        except ValueError:
            return 0
        return end
    return _RAW_REPLY_BYTES if len(buffer) >= _RAW_REPLY_BYTES else 0


def _raw_text(reply: bytes) -> str:
    try:
        text = reply.decode("ascii")
    except UnicodeDecodeError:
        return repr(reply)
    return text if text.isprintable() else repr(reply)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


async def _await_within(future: asyncio.Future[T], seconds: float) -> T:
    """``future``'s result, or ``TimeoutError`` after ``seconds`` (cheaper than wait_for)."""
    handle = asyncio.get_running_loop().call_later(seconds, _expire, future)
    try:
        return await future
    finally:
        handle.cancel()


class _Disconnected(ConnectionError):
    """The emulator closed the connection before replying."""


class _TcpDevice(asyncio.Protocol):
    """One raw TCP connection: a message, then its reply (three ASCII digits, or a JSON
    object in the Unified format)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[bytes] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, so no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._deliver()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(_Disconnected("the emulator closed the connection"))

    def _deliver(self) -> None:
        waiter = self.waiter
        length = _reply_length(self.buffer) if waiter is not None else 0
        if waiter is None or not length:
            return
        self.waiter = None
        reply = bytes(self.buffer[:length])
        del self.buffer[:length]
        if not waiter.done():
            waiter.set_result(reply)

    def request(self, body: bytes) -> asyncio.Future[bytes]:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if self.closed or self.transport is None:
            future.set_exception(_Disconnected("the connection is closed"))
            return future
        self.waiter = future
        if self.buffer:  # answered before we asked (503 at the connection cap)
            self._deliver()
        if self.waiter is future:
            self.transport.write(body)
        return future

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _UdpDevice(asyncio.DatagramProtocol):
    """One UDP socket: replies are matched to datagrams in the order they were sent.

    A reply carries nothing to match it by, so one that arrives after its datagram timed out
    is taken as the next datagram's: the counts by status stay right, a latency may not.
    """

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: collections.deque[asyncio.Future[bytes]] = collections.deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        while self.pending:
            future = self.pending.popleft()
            if not future.done():  # timed out ones are skipped
                future.set_result(data)
                return

    def error_received(self, exc: Exception) -> None:
        # On a connected socket: ICMP port unreachable for the oldest datagram.
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(exc)
                return

    def connection_lost(self, exc: Exception | None) -> None:
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(_Disconnected("the socket was closed"))

    def request(self, body: bytes) -> asyncio.Future[bytes]:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if self.transport is None or self.transport.is_closing():
            future.set_exception(_Disconnected("the socket is closed"))
            return future
        self.pending.append(future)
        self.transport.sendto(body)
        return future


async def _connect_tcp(target: Target, unified: bool, source: str | None) -> _TcpDevice:
    loop = asyncio.get_running_loop()
    kwargs: dict[str, Any] = {}
    if source is not None:
        kwargs = {"local_addr": (source, 0), "family": _family(source)}
    _, device = await loop.create_connection(
        _TcpDevice, target.host, target.raw_port(unified), **kwargs
    )
    return device


async def _open_udp(target: Target, unified: bool, source: str | None) -> _UdpDevice:
    loop = asyncio.get_running_loop()
    kwargs: dict[str, Any] = {}
    if source is not None:
        kwargs = {"local_addr": (source, 0), "family": _family(source)}
    _, device = await loop.create_datagram_endpoint(
        _UdpDevice, remote_addr=(target.host, target.raw_port(unified)), **kwargs
    )
    return device


def _http_session(source: str | None, timeout: float) -> aiohttp.ClientSession:
    kwargs: dict[str, Any] = {}
    if source is not None:
        kwargs = {"local_addr": (source, 0), "family": _family(source)}
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1, **kwargs),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


def _http_headers(content_type: str | None, timestamp: int | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if content_type:
        headers["Content-Type"] = content_type
    if timestamp is not None:
        headers[TIMESTAMP_HEADER] = str(timestamp)
    return headers


def _skip_headers(content_type: str | None) -> tuple[str, ...]:
    # An empty content type means none at all (the emulator stores such a body as binary).
    return () if content_type else ("Content-Type",)


async def send_once(
    target: Target,
    protocol: ProtocolName,
    body: bytes,
    *,
    source: str | None = None,
    unified: bool = False,
    content_type: str | None = None,
    timestamp: int | None = None,
    wait_s: float = 5.0,
) -> DeviceReply:
    """Send one message from ``source`` (unbound if ``None``) and return the reply.

    Raises :class:`SimulatorError` with exit code 2 when no reply came (connection refused,
    unreachable, closed, timed out).
    """
    where = target.describe(protocol, unified)
    origin = f" from {source}" if source else ""
    try:
        if protocol == "http":
            async with (
                _http_session(source, wait_s) as session,
                session.post(
                    target.write_url(unified),
                    data=body,
                    headers=_http_headers(content_type, timestamp),
                    skip_auto_headers=_skip_headers(content_type),
                ) as response,
            ):
                raw = await response.read()
                text = f"{response.status} {response.reason or ''}".rstrip()
                if raw:
                    text += "\n" + raw.decode("utf-8", "replace")
                return DeviceReply(_http_status(response.status, raw), text)
        if protocol == "tcp":
            tcp = await asyncio.wait_for(_connect_tcp(target, unified, source), wait_s)
            try:
                reply = await _await_within(tcp.request(body), wait_s)
            finally:
                tcp.abort()
        else:
            udp = await _open_udp(target, unified, source)
            try:
                reply = await _await_within(udp.request(body), wait_s)
            finally:
                if udp.transport is not None:
                    udp.transport.close()
        return DeviceReply(_raw_status(reply), _raw_text(reply))
    except TimeoutError:
        raise SimulatorError(f"no reply from {where}{origin} within {wait_s:g} s", 2) from None
    except (aiohttp.ClientError, OSError) as error:
        raise SimulatorError(f"cannot send to {where}{origin}: {_describe(error)}", 2) from None


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

    def target(self) -> Target:
        return Target.parse(self.endpoint, self.harvest_port, self.unified_port)

    def check(self) -> None:
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
        data["refused_total"] = self.refused_total
        return data

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


def _latency(values: Iterable[float]) -> Latency | None:
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


class _Tally:
    """Every outcome of a run, counted as it happens (one loop: no locks)."""

    def __init__(self) -> None:
        self.sent = 0
        self.stored = 0
        self.refused: collections.Counter[str] = collections.Counter()
        self.latencies = array.array("d")
        self.first_error: str | None = None

    def outcome(self, reason: str, latency: float | None) -> None:
        if reason == "201":
            self.stored += 1
        else:
            self.refused[reason] += 1
        if latency is not None:
            self.latencies.append(latency)

    def failure(self, reason: str, error: BaseException) -> None:
        self.refused[reason] += 1
        if self.first_error is None:
            self.first_error = f"{reason}: {_describe(error)}"


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
        handle = self.loop.call_later(delay, _wake, future)
        self.sleepers.add(future)
        try:
            await future
        finally:
            handle.cancel()
            self.sleepers.discard(future)

    def stop(self) -> None:
        self.stopped = True
        for future in list(self.sleepers):
            _wake(future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Channel:
    """One SIM's socket; ``exchange`` sends a message and classifies its reply."""

    def __init__(
        self, config: FleetConfig, target: Target, source: str | None, tally: _Tally
    ) -> None:
        self.config = config
        self.target = target
        self.source = source
        self.tally = tally
        self.loop = asyncio.get_running_loop()

    async def open(self) -> None:
        """Connect ahead of the run; a failure here is retried at the first message."""

    async def exchange(self, body: bytes) -> bool:
        """Send ``body``, wait for its reply, count the outcome; False if it could not be sent
        (the caller pauses before the next)."""
        raise NotImplementedError

    def submit(self, body: bytes) -> asyncio.Future[None] | None:
        """Send without waiting for the reply (UDP at a rate); the future ends when the
        outcome is counted. ``None``: not supported, use ``exchange``."""
        return None

    async def close(self) -> None:
        pass

    def _reply(self, reply: bytes, started: float) -> None:
        status = _raw_status(reply)
        self.tally.outcome(str(status) if status is not None else BAD_REPLY, self._since(started))

    def _since(self, started: float) -> float:
        return time.perf_counter() - started


class _HttpChannel(_Channel):
    def __init__(
        self, config: FleetConfig, target: Target, source: str | None, tally: _Tally
    ) -> None:
        super().__init__(config, target, source, tally)
        self.session = _http_session(source, config.timeout)
        self.url = target.write_url(config.unified)
        self.headers = _http_headers(config.content_type, None)
        self.skip = _skip_headers(config.content_type)

    async def exchange(self, body: bytes) -> bool:
        started = time.perf_counter()
        try:
            async with self.session.post(
                self.url, data=body, headers=self.headers, skip_auto_headers=self.skip
            ) as response:
                raw = await response.read()
                status = _http_status(response.status, raw)
                self.tally.outcome(str(status), self._since(started))
                return True
        except TimeoutError as error:
            self.tally.failure(TIMEOUT, error)
        except aiohttp.ClientConnectorError as error:
            self.tally.failure(CONNECT_FAILED, error)
            return False
        except (aiohttp.ClientError, OSError) as error:
            self.tally.failure(DISCONNECTED, error)
        return True

    async def close(self) -> None:
        await self.session.close()


class _TcpChannel(_Channel):
    device: _TcpDevice | None = None

    async def _connect(self) -> _TcpDevice:
        return await asyncio.wait_for(
            _connect_tcp(self.target, self.config.unified, self.source), self.config.timeout
        )

    async def open(self) -> None:
        with contextlib.suppress(OSError):  # TimeoutError included
            self.device = await self._connect()

    async def exchange(self, body: bytes) -> bool:
        device = self.device
        if device is None or device.closed:
            self.device = None
            try:
                device = self.device = await self._connect()
            except (OSError, TimeoutError) as error:
                self.tally.failure(CONNECT_FAILED, error)
                return False
        started = time.perf_counter()
        try:
            reply = await _await_within(device.request(body), self.config.timeout)
        except TimeoutError as error:
            # The reply may still come and would answer the next message: start afresh.
            device.abort()
            self.tally.failure(TIMEOUT, error)
        except OSError as error:
            self.tally.failure(DISCONNECTED, error)
        else:
            self._reply(reply, started)
            if _raw_status(reply) in _TCP_HANG_UPS:
                device.abort()  # the emulator hangs up after these: reconnect for the next
        return True

    async def close(self) -> None:
        if self.device is not None:
            self.device.abort()


class _UdpChannel(_Channel):
    device: _UdpDevice | None = None

    async def open(self) -> None:
        with contextlib.suppress(OSError):
            self.device = await _open_udp(self.target, self.config.unified, self.source)

    async def _device(self) -> _UdpDevice | None:
        if self.device is None:
            try:
                self.device = await _open_udp(self.target, self.config.unified, self.source)
            except OSError as error:
                self.tally.failure(CONNECT_FAILED, error)
        return self.device

    def _settle(self, future: asyncio.Future[bytes], started: float) -> None:
        try:
            reply = future.result()
        except TimeoutError as error:
            self.tally.failure(TIMEOUT, error)
        except asyncio.CancelledError:
            self.tally.outcome(DISCONNECTED, None)
        except ConnectionRefusedError as error:
            self.tally.failure(CONNECT_FAILED, error)
        except OSError as error:
            self.tally.failure(DISCONNECTED, error)
        else:
            self._reply(reply, started)

    async def exchange(self, body: bytes) -> bool:
        device = await self._device()
        if device is None:
            return False
        started = time.perf_counter()
        future = device.request(body)
        with contextlib.suppress(Exception):
            await _await_within(future, self.config.timeout)
        self._settle(future, started)
        error = None if future.cancelled() else future.exception()
        return not isinstance(error, ConnectionRefusedError)

    def submit(self, body: bytes) -> asyncio.Future[None] | None:
        device = self.device
        if device is None:
            return None  # no socket yet: the caller falls back on exchange
        started = time.perf_counter()
        future = device.request(body)
        handle = self.loop.call_later(self.config.timeout, _expire, future)
        settled: asyncio.Future[None] = self.loop.create_future()

        def done(f: asyncio.Future[bytes]) -> None:
            handle.cancel()
            self._settle(f, started)
            _wake(settled)

        future.add_done_callback(done)
        return settled

    async def close(self) -> None:
        if self.device is not None and self.device.transport is not None:
            self.device.transport.close()


_CHANNELS: dict[str, type[_Channel]] = {
    "http": _HttpChannel,
    "tcp": _TcpChannel,
    "udp": _UdpChannel,
}


async def _sim_loop(
    index: int, channel: _Channel, config: FleetConfig, run: _Run, start: float, tally: _Tally
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

    def __init__(self, stream: TextIO, tally: _Tally, start: float) -> None:
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


async def provision(
    config: FleetConfig, target: Target | None = None
) -> tuple[list[SimInfo], list[str]]:
    """The fleet's SIMs, created through the control plane where they do not exist yet; and
    the notes about addresses that will not be bound."""
    target = target or config.target()
    imsis = fleet_imsis(config.imsi_base, config.sims)
    limit = asyncio.Semaphore(_PROVISIONING_CONCURRENCY)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        control = ControlPlane(session, target, config.control_token)

        async def one(imsi: str) -> SimInfo:
            async with limit:
                return await control.ensure_sim(imsi)

        sims = list(await asyncio.gather(*(one(i) for i in imsis)))
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
    tally = _Tally()
    kind = _CHANNELS[config.protocol]
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
    summary.latency_ms = _latency(tally.latencies)
    if tally.first_error is not None:
        summary.notes.append(f"first error: {tally.first_error}")
    return summary


async def _watch(stop: asyncio.Event, run: _Run) -> None:
    await stop.wait()
    run.stop()


# --- the command line ---------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


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


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def _imsi(text: str) -> str:
    if not (text.isdigit() and 6 <= len(text) <= 15):
        raise argparse.ArgumentTypeError(f"an IMSI is 6 to 15 digits: {text!r}")
    return text


_BINDING_HELP = (
    "A loopback session address is bound only when the endpoint is on loopback (an IP "
    "address in 127.0.0.0/8 or ::1, or localhost): against a remote emulator it would not "
    "route, so the message leaves from this host's own address and the emulator identifies "
    "the SIM by that."
)


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
        type=_port,
        default=DEFAULT_HARVEST_PORT,
        metavar="PORT",
        help=f"raw TCP/UDP Harvest port (default {DEFAULT_HARVEST_PORT})",
    )
    parser.add_argument(
        "--unified-port",
        type=_port,
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
    """Register ``device`` (with ``device send``) and ``fleet`` on ``harvest-emulator``."""
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
            "the emulator could not be reached. " + _BINDING_HELP
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
    sim = send.add_mutually_exclusive_group()
    sim.add_argument(
        "--imsi",
        type=_imsi,
        help="send as this SIM: its session address is looked up through the control plane",
    )
    sim.add_argument(
        "--source",
        type=_address,
        metavar="ADDRESS",
        help="bind this source address (always, even against a remote endpoint); "
        "with neither --imsi nor --source nothing is bound",
    )
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
        type=_positive_float,
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
            "could not be reached. " + _BINDING_HELP
        ),
    )
    _add_target_arguments(fleet)
    fleet.add_argument(
        "--sims", type=_positive_int, default=10, metavar="N", help="how many SIMs (default 10)"
    )
    fleet.add_argument(
        "--imsi-base",
        type=_imsi,
        default=DEFAULT_IMSI_BASE,
        metavar="IMSI",
        help=f"IMSI of the first SIM, the others follow (default {DEFAULT_IMSI_BASE}); "
        "existing SIMs are reused",
    )
    fleet.add_argument(
        "--rate",
        type=_non_negative_float,
        default=1.0,
        metavar="PER_SECOND",
        help="messages per second per SIM; 0 sends each as soon as the last is answered "
        "(default 1)",
    )
    fleet.add_argument(
        "--duration",
        type=_positive_float,
        metavar="SECONDS",
        help="run this long (default 10 s unless --count is given)",
    )
    fleet.add_argument(
        "--count",
        type=_positive_int,
        metavar="N",
        help="messages per SIM (with --duration: whichever ends first)",
    )
    fleet.add_argument(
        "--size",
        type=_positive_int,
        default=60,
        metavar="BYTES",
        help="message size, a JSON-looking body (default 60)",
    )
    fleet.add_argument(
        "--timeout",
        type=_positive_float,
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
        "--json",
        dest="json_output",
        action="store_true",
        help="print the summary as JSON (for benchmarks)",
    )


def _loop_run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _fail(message: str, code: int) -> int:
    print(f"harvest-emulator: error: {message}", file=sys.stderr)
    return code


async def _device_send(namespace: argparse.Namespace) -> int:
    protocol: ProtocolName = namespace.protocol
    if protocol != "http":
        for flag, value in (
            ("--timestamp", namespace.timestamp),
            ("--content-type", namespace.content_type),
        ):
            if value is not None:
                return _fail(f"{flag} is for --protocol http only", 2)
    target = Target.parse(namespace.endpoint, namespace.harvest_port, namespace.unified_port)
    if namespace.text is not None:
        body, content_type = namespace.text.encode(), "text/plain"
    elif namespace.json_body is not None:
        body, content_type = namespace.json_body.encode(), "application/json"
    else:
        body, content_type = namespace.hex_body, "application/octet-stream"
    if namespace.content_type is not None:
        content_type = namespace.content_type
    source: str | None = namespace.source
    if namespace.imsi is not None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            sim = await ControlPlane(session, target, namespace.control_token).get_sim(
                namespace.imsi
            )
        if sim is None:
            return _fail(f"no SIM with IMSI {namespace.imsi} at {target.base}", 1)
        if sim.session_address is None:
            return _fail(f"SIM {sim.imsi} has no session address", 1)
        source = target.source_for(sim.session_address)
        if source is None:
            print(
                f"note: not binding {sim.session_address} (SIM {sim.imsi}'s loopback address): "
                f"{target.host} is not on loopback, so this host's own address is used",
                file=sys.stderr,
            )
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
        summary = await run_fleet(config, progress=sys.stderr, stop=stop)
    finally:
        for sig in handled:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    print(summary.to_json() if namespace.json_output else summary.text(), flush=True)
    return summary.exit_code()


def run(namespace: argparse.Namespace) -> int:
    """Run ``device send`` or ``fleet`` as parsed by :func:`add_commands`; the exit status."""
    commands: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "device": _device_send,
        "fleet": _fleet,
    }
    command = commands.get(getattr(namespace, "command", ""))
    if command is None:
        return _fail(f"unknown command {getattr(namespace, 'command', None)!r}", 2)
    try:
        return _loop_run(command(namespace))
    except SimulatorError as error:
        return _fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        return 130
