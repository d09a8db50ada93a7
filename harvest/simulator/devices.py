"""One device's message: sent from a SIM's address over HTTP, raw TCP or raw UDP, and the
emulator's reply read back (``device send``, and the sockets a fleet's SIMs hold).

A raw reply is the ASCII status, three digits (spec B3, B4), or on the Unified Endpoint port a
JSON object in the Unified format; either way the status Harvest gave is what counts.
"""

from __future__ import annotations

import asyncio
import collections
import json
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import aiohttp

from harvest import wire
from harvest.simulator.target import ProtocolName, SimulatorError, Target, describe, family

T = TypeVar("T")

TIMESTAMP_HEADER = wire.TIMESTAMP_HEADER
#: A raw reply is the ASCII status: three digits (spec B3, B4).
_RAW_REPLY_BYTES = 3


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


def raw_status(reply: bytes) -> int | None:
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


def http_status(status: int, body: bytes) -> int:
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


def expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


async def await_within(future: asyncio.Future[T], seconds: float) -> T:
    """``future``'s result, or ``TimeoutError`` after ``seconds`` (cheaper than wait_for)."""
    handle = asyncio.get_running_loop().call_later(seconds, expire, future)
    try:
        return await future
    finally:
        handle.cancel()


class Disconnected(ConnectionError):
    """The emulator closed the connection before replying."""


class TcpDevice(asyncio.Protocol):
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
            waiter.set_exception(Disconnected("the emulator closed the connection"))

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
            future.set_exception(Disconnected("the connection is closed"))
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


class UdpDevice(asyncio.DatagramProtocol):
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
                future.set_exception(Disconnected("the socket was closed"))

    def request(self, body: bytes) -> asyncio.Future[bytes]:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if self.transport is None or self.transport.is_closing():
            future.set_exception(Disconnected("the socket is closed"))
            return future
        self.pending.append(future)
        self.transport.sendto(body)
        return future


async def connect_tcp(target: Target, unified: bool, source: str | None) -> TcpDevice:
    loop = asyncio.get_running_loop()
    kwargs: dict[str, Any] = {}
    if source is not None:
        kwargs = {"local_addr": (source, 0), "family": family(source)}
    _, device = await loop.create_connection(
        TcpDevice, target.host, target.raw_port(unified), **kwargs
    )
    return device


async def open_udp(target: Target, unified: bool, source: str | None) -> UdpDevice:
    loop = asyncio.get_running_loop()
    kwargs: dict[str, Any] = {}
    if source is not None:
        kwargs = {"local_addr": (source, 0), "family": family(source)}
    _, device = await loop.create_datagram_endpoint(
        UdpDevice, remote_addr=(target.host, target.raw_port(unified)), **kwargs
    )
    return device


def http_session(source: str | None, timeout: float) -> aiohttp.ClientSession:
    kwargs: dict[str, Any] = {}
    if source is not None:
        kwargs = {"local_addr": (source, 0), "family": family(source)}
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1, **kwargs),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


def http_headers(content_type: str | None, timestamp: int | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if content_type:
        headers["Content-Type"] = content_type
    if timestamp is not None:
        headers[TIMESTAMP_HEADER] = str(timestamp)
    return headers


def skip_headers(content_type: str | None) -> tuple[str, ...]:
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
                http_session(source, wait_s) as session,
                session.post(
                    target.write_url(unified),
                    data=body,
                    headers=http_headers(content_type, timestamp),
                    skip_auto_headers=skip_headers(content_type),
                ) as response,
            ):
                raw = await response.read()
                text = f"{response.status} {response.reason or ''}".rstrip()
                if raw:
                    text += "\n" + raw.decode("utf-8", "replace")
                return DeviceReply(http_status(response.status, raw), text)
        if protocol == "tcp":
            tcp = await asyncio.wait_for(connect_tcp(target, unified, source), wait_s)
            try:
                reply = await await_within(tcp.request(body), wait_s)
            finally:
                tcp.abort()
        else:
            udp = await open_udp(target, unified, source)
            try:
                reply = await await_within(udp.request(body), wait_s)
            finally:
                if udp.transport is not None:
                    udp.transport.close()
        return DeviceReply(raw_status(reply), _raw_text(reply))
    except TimeoutError:
        raise SimulatorError(f"no reply from {where}{origin} within {wait_s:g} s", 2) from None
    except (aiohttp.ClientError, OSError) as error:
        raise SimulatorError(f"cannot send to {where}{origin}: {describe(error)}", 2) from None
