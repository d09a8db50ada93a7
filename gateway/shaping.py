"""Link profiles applied to real sockets (issue 12, item 4): every protocol a SIM speaks.

:class:`Shaper` wraps the protocols of the HTTP edge, the raw TCP listeners and the raw UDP
sockets, below aiohttp and the gateway's own code, which see the traffic as it arrives over the
SIM's link (:mod:`harvest.links` says when):

- a TCP connection (HTTP or raw) from a SIM whose link has a profile **when it connects** gets
  a :class:`ShapedStream`: each chunk it sends reaches the protocol after the uplink's delay,
  each write leaves after the downlink's, in order, and a close follows the last write. Any
  other connection is handed to its protocol at once (``set_protocol``): no cost at all (a
  raw TCP connection that keeps its SIM online is told to release it when it is lost,
  :class:`Holding`, rather than watched per chunk);
- each UDP datagram is looked up as it comes and goes: a profiled SIM's datagram is delayed
  or lost (then never stored, or stored but never answered).

The link belongs to the SIM the *peer address* names, so a Beam forward (from SORACOM's cloud,
not over the cellular link) is not shaped by the IMSI it carries.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

from aiohttp import web

from harvest.domain import Sim
from harvest.links import DOWN, UP, Link, LinkProfile, LinkTable
from harvest.metrics import Metrics
from harvest.sessions import SessionTracker

Factory = Callable[[], asyncio.BaseProtocol]


class Holding(Protocol):
    """What the protocol of a connection that keeps its SIM online (``Shaper.stream(...,
    holds=True)``) offers: a call back when the connection is lost, so an unshaped one is
    handed to it outright, with no pass-through per chunk."""

    def on_lost(self, release: Callable[[], None]) -> None:
        """Call ``release()`` once, when the connection is lost."""


Address = Any


class Shaper:
    """Finds the link of a peer and wraps protocols; see the module docstring."""

    def __init__(
        self,
        table: LinkTable,
        resolve: Callable[[str], Sim | None],
        *,
        metrics: Metrics | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sessions: SessionTracker | None = None,
    ) -> None:
        """``sessions``: told of every TCP connection a SIM opens and closes (a SIM holding
        one is online, harvest/sessions.py)."""
        self.table = table
        self.resolve = resolve
        self.metrics = metrics
        self.monotonic = monotonic
        self.sessions = sessions if sessions is not None and sessions.tracking else None

    def link_of(self, peer: str) -> tuple[LinkProfile, Link] | None:
        """The profile and link of the SIM at ``peer``, or ``None`` (not shaped)."""
        if not self.table.active:
            return None
        return self.link_for(self.resolve(peer))

    def link_for(self, sim: Sim | None) -> tuple[LinkProfile, Link] | None:
        if sim is None:
            return None
        profile = self.table.profile_for(sim.imsi, sim.group_id)
        if profile is None:
            return None
        return profile, self.table.link(sim.imsi)

    def plan(
        self,
        found: tuple[LinkProfile, Link],
        direction: str,
        size: int,
        *,
        reliable: bool,
    ) -> float | None:
        """Seconds until a chunk arrives, ``None`` if it is lost; counted in the metrics."""
        profile, link = found
        delivery = link.send(profile, direction, size, self.monotonic(), reliable=reliable)
        if self.metrics is not None:
            if delivery.lost or delivery.retransmitted:
                protocol = "tcp" if reliable else "udp"
                self.metrics.link_lost.labels(direction, protocol).inc()
            if not delivery.lost:
                self.metrics.link_delay.labels(direction).observe(delivery.delay_s)
        return None if delivery.lost else delivery.delay_s

    def stream(self, factory: Factory, *, holds: bool = False) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` whose connections are shaped; with
        ``holds`` (the raw TCP listeners, where firmware keeps its connection) an open
        connection also keeps its SIM online, and ``factory``'s protocols must be
        :class:`Holding`."""
        return lambda: ShapedStream(self, cast(asyncio.Protocol, factory()), holds=holds)

    def datagram(self, endpoint: asyncio.DatagramProtocol) -> asyncio.DatagramProtocol:
        """``endpoint`` behind a shaped socket."""
        return ShapedDatagram(self, endpoint)


class _Timeline:
    """Things to do at given monotonic times, in the order they were queued: a single timer
    for the earliest, so two chunks due at the same instant keep their order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, monotonic: Callable[[], float]) -> None:
        self.loop = loop
        self.monotonic = monotonic
        self.items: collections.deque[tuple[float, Callable[[], None]]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.held = False  # paused: due items wait

    def push(self, delay: float, action: Callable[[], None]) -> None:
        at = self.monotonic() + delay
        if self.items:
            at = max(at, self.items[-1][0])
        self.items.append((at, action))
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None or not self.items or self.held:
            return
        wait = max(0.0, self.items[0][0] - self.monotonic())
        self.timer = self.loop.call_later(wait, self._due)

    def _due(self) -> None:
        self.timer = None
        now = self.monotonic()
        while self.items and self.items[0][0] <= now and not self.held:
            _, action = self.items.popleft()
            action()
        self._arm()

    def hold(self, held: bool) -> None:
        self.held = held
        if held and self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._arm()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.items.clear()


class ShapedStream(asyncio.Protocol):
    """A TCP connection over a SIM's link; see the module docstring."""

    def __init__(self, shaper: Shaper, inner: asyncio.Protocol, *, holds: bool = False) -> None:
        self.shaper = shaper
        self.inner = inner
        self.holds = holds
        self.found: tuple[LinkProfile, Link] | None = None
        self.real: asyncio.Transport | None = None
        self.inbound: _Timeline | None = None
        self.outbound: _Timeline | None = None
        self.held: str | None = None  # the IMSI whose session this connection holds

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        real = cast(asyncio.Transport, transport)  # uvloop's do not subclass asyncio's
        peername = real.get_extra_info("peername")
        shaper = self.shaper
        sessions = shaper.sessions if self.holds else None
        sim = None
        if peername and (shaper.table.active or sessions is not None):
            sim = shaper.resolve(str(peername[0]))
        self.found = shaper.link_for(sim) if shaper.table.active else None
        if sim is not None and sessions is not None:
            sessions.opened(sim.imsi, str(peername[0]))
            self.held = sim.imsi
        if self.found is None:
            real.set_protocol(self.inner)  # nothing to shape: out of the way for good
            if self.held is not None:  # the protocol says when the connection is lost
                cast(Holding, self.inner).on_lost(self._release)
            self.inner.connection_made(real)
            return
        self.real = real
        loop = asyncio.get_running_loop()
        self.inbound = _Timeline(loop, self.shaper.monotonic)
        self.outbound = _Timeline(loop, self.shaper.monotonic)
        self.inner.connection_made(cast(asyncio.Transport, ShapedTransport(self, real)))

    # From here on the connection is shaped: any other one was handed to its protocol.
    def data_received(self, data: bytes) -> None:
        assert self.found is not None
        assert self.inbound is not None
        delay = self.shaper.plan(self.found, UP, len(data), reliable=True)
        self.inbound.push(delay or 0.0, lambda: self.inner.data_received(data))

    def eof_received(self) -> bool | None:
        assert self.inbound is not None
        self.inbound.push(0.0, self._eof)
        return True  # keep the transport open until the protocol has seen the EOF

    def _eof(self) -> None:
        if not self.inner.eof_received() and self.real is not None:
            self.real.close()

    def _release(self) -> None:
        """The connection is gone: its SIM's idle time starts."""
        if self.held is not None and self.shaper.sessions is not None:
            self.shaper.sessions.closed(self.held)
            self.held = None

    def connection_lost(self, exc: Exception | None) -> None:
        assert self.inbound is not None
        assert self.outbound is not None
        self._release()
        self.outbound.cancel()  # nowhere to send it any more
        self.inbound.hold(False)
        self.inbound.push(0.0, lambda: self.inner.connection_lost(exc))

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class ShapedTransport:
    """What the protocol of a shaped connection writes to: writes and the close follow the
    downlink; everything else is the real transport's."""

    def __init__(self, stream: ShapedStream, real: asyncio.Transport) -> None:
        self._stream = stream
        self._real = real
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        stream = self._stream
        if self._closing or not data:
            return
        assert stream.found is not None
        assert stream.outbound is not None
        chunk = bytes(data)
        delay = stream.shaper.plan(stream.found, DOWN, len(chunk), reliable=True)
        stream.outbound.push(delay or 0.0, lambda: self._send(chunk))

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def _send(self, chunk: bytes) -> None:
        if not self._real.is_closing():
            self._real.write(chunk)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        assert self._stream.outbound is not None
        self._stream.outbound.push(0.0, self._real.close)

    def abort(self) -> None:
        self._closing = True
        if self._stream.outbound is not None:
            self._stream.outbound.cancel()
        self._real.abort()

    def is_closing(self) -> bool:
        return self._closing or self._real.is_closing()

    def pause_reading(self) -> None:
        if self._stream.inbound is not None:
            self._stream.inbound.hold(True)
        self._real.pause_reading()

    def resume_reading(self) -> None:
        if self._stream.inbound is not None:
            self._stream.inbound.hold(False)
        self._real.resume_reading()

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._stream.inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class ShapedDatagram(asyncio.DatagramProtocol):
    """A UDP socket whose profiled senders' datagrams are delayed or lost both ways."""

    def __init__(self, shaper: Shaper, inner: asyncio.DatagramProtocol) -> None:
        self.shaper = shaper
        self.inner = inner
        self.real: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.real = cast(asyncio.DatagramTransport, transport)
        self.inner.connection_made(cast(asyncio.DatagramTransport, ShapedDatagramTransport(self)))

    def datagram_received(self, data: bytes, addr: Address) -> None:
        found = self.shaper.link_of(addr[0])
        if found is None:
            self.inner.datagram_received(data, addr)
            return
        delay = self.shaper.plan(found, UP, len(data), reliable=False)
        if delay is not None:  # else lost on the way up: the emulator never sees it
            asyncio.get_running_loop().call_later(delay, self.inner.datagram_received, data, addr)

    def error_received(self, exc: Exception) -> None:
        self.inner.error_received(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)


class ShapedDatagramTransport:
    """What the endpoint sends through: replies to a profiled SIM follow its downlink."""

    def __init__(self, datagram: ShapedDatagram) -> None:
        self._datagram = datagram

    @property
    def _real(self) -> asyncio.DatagramTransport:
        assert self._datagram.real is not None
        return self._datagram.real

    def sendto(self, data: bytes, addr: Address = None) -> None:
        found = None if addr is None else self._datagram.shaper.link_of(addr[0])
        if found is None:
            self._real.sendto(data, addr)
            return
        delay = self._datagram.shaper.plan(found, DOWN, len(data), reliable=False)
        if delay is not None:  # else lost on the way down: stored, never answered
            asyncio.get_running_loop().call_later(delay, self._send_later, data, addr)

    def _send_later(self, data: bytes, addr: Address) -> None:
        if not self._real.is_closing():
            self._real.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


SHAPER = web.AppKey("shaper", Shaper)
