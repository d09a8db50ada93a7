"""The raw TCP listener (Harvest port 8514, Unified Endpoint port 23080; spec A1, B3, B4).

A message is what one read delivers, up to the size limit; the device waits for the reply before
sending the next one, as real firmware does (spec B3). Each connection handles one message at a
time, in order: what a sender sends before its reply waits, and past ``MAX_WAITING`` such
messages reading pauses until the replies catch up, so a fast sender cannot queue unbounded
work.

No client can lock the others out (docs/security.md): connections are capped in total and per
source address (:class:`~harvest.netguard.ConnectionLimits`; one past either cap gets ``503``
and is closed); one that sends nothing is closed after the first-byte timeout, one that falls
silent between messages after the idle timeout; an oversized message cuts the connection. The
lines about each are throttled per source (:class:`~harvest.logcaps.LogThrottle`).

Behind SORACOM Beam (setting ``beam_psk``) a connection may start with Beam's signed first line
(``imsi=... timestamp=...;signature=...``): it is read and verified before any message
(:class:`~gateway.raw.BeamEntry`), and the IMSI it names, not the peer address, is the sender of
every message on the connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from gateway.beam import TcpFirstLine
from gateway.raw import BUSY, BeamEntry, RawHandler, RawReply
from harvest.logcaps import LogThrottle
from harvest.netguard import ConnectionLimits, source_of

log = logging.getLogger(__name__)

#: Messages of one connection that may wait for their turn (sent before the previous reply, which
#: a device should not do) before reading pauses: the work one sender can queue stays bounded.
MAX_WAITING = 8


class TcpServer:
    """The connections of one TCP listener, their limits, and their bounded shutdown."""

    def __init__(
        self,
        handler: RawHandler[TcpConnection],
        *,
        idle_timeout: float,
        max_connections: int,
        name: str,
        throttle: LogThrottle,
        max_per_source: int | None = None,
        first_byte_timeout: float | None = None,
        screen: Callable[[str], bool] | None = None,
        beam: BeamEntry | None = None,
    ) -> None:
        """``screen(peer)`` says whether a new connection may proceed; one it refuses is
        closed at once, with no reply (a SIM without a data session, spec B12). A connection
        that has sent nothing is closed after ``first_byte_timeout`` or ``idle_timeout``,
        whichever is shorter; after its first byte, after ``idle_timeout`` without one.
        ``max_per_source`` defaults to ``max_connections`` (no per-source cap). ``beam``
        reads Beam's first line off each connection (see the module docstring)."""
        self.handler = handler
        self.beam = beam
        self.screen = screen
        self.idle_timeout = idle_timeout
        self.first_byte_timeout = min(first_byte_timeout or idle_timeout, idle_timeout)
        self.name = name
        self.throttle = throttle
        self.limits = ConnectionLimits(
            name,
            total=max_connections,
            per_source=max_per_source or max_connections,
            throttle=throttle,
            log=log,
        )
        self.connections: set[TcpConnection] = set()

    def protocol(self) -> TcpConnection:
        return TcpConnection(self)

    def note(self, kind: str, peer: str, message: str, *args: object) -> None:
        """An INFO line about ``peer``, throttled per source."""
        self.throttle.log(
            log, logging.INFO, f"{self.name}: {kind}", source_of(peer), message, *args
        )

    async def close(self, drain_s: float) -> None:
        """Stop every connection; in-flight messages get ``drain_s`` seconds to be stored."""
        await self.handler.close(drain_s)
        for connection in list(self.connections):
            connection.abort()


class TcpConnection(asyncio.Protocol):
    """One device connection; see the module docstring."""

    def __init__(self, server: TcpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        #: A message of this connection is with the handler (its reply not written yet).
        self.busy = False
        self._idle: asyncio.TimerHandle | None = None
        #: When the peer last sent something (loop time): the idle timer, armed once per
        #: period rather than once per message, checks it when it fires.
        self._last_heard = 0.0
        #: Reading is paused: for the backlog bound, or because the peer reads no replies.
        self._paused = False
        self._source: str | None = None  # set while it holds a slot of the limits
        self._heard = False  # sent a byte yet
        self._closing = False
        self._writable = True
        self._backlog: list[bytes] = []
        #: Beam's first line, until it is read; then the IMSI it named, if any.
        self._entry: TcpFirstLine | None = None
        self.imsi: str | None = None
        self._on_lost: Callable[[], None] | None = None

    # --- asyncio callbacks --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, so no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if peername else ""
        if self.server.screen is not None and not self.server.screen(self.peer):
            self._closing = True
            self.transport.abort()
            return
        self._source = self.server.limits.admit(self.peer)
        if self._source is None:
            self.transport.write(BUSY)
            self.transport.close()
            self._closing = True
            return
        self.server.connections.add(self)
        if self.server.beam is not None:
            self._entry = self.server.beam.reader()
        self._arm_idle_timer(self.server.first_byte_timeout)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if not self._heard:
            self._heard = True
            self._arm_idle_timer(self.server.idle_timeout)
        self._last_heard = asyncio.get_running_loop().time()
        if self._entry is not None:
            entry = self._entry.feed(data)
            if entry is None:
                return  # the rest of Beam's line is still to come
            self._entry = None
            if entry.error is not None:
                assert self.server.beam is not None
                assert self.transport is not None
                self.transport.write(self.server.beam.refused(self.peer, entry.error).payload)
                self.abort()
                return
            if entry.identity is not None:
                self.imsi = entry.identity.imsi
            data = entry.rest
            if not data:
                return
        if self.busy:
            # Sent before our reply (the device should wait): handle it next, in order; past
            # MAX_WAITING such messages, stop reading until the replies catch up.
            self._backlog.append(data)
            if len(self._backlog) >= MAX_WAITING:
                self._pause()
            return
        self._start(data)

    def on_lost(self, release: Callable[[], None]) -> None:
        """Call ``release()`` once, when this connection is lost (gateway.shaping.Holding)."""
        self._on_lost = release

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        release, self._on_lost = self._on_lost, None
        if release is not None:
            release()
        if self._idle is not None:
            self._idle.cancel()
        self.server.connections.discard(self)
        if self._source is not None:
            self.server.limits.release(self._source)
            self._source = None

    def pause_writing(self) -> None:
        # The peer is not reading its replies: stop reading its messages until it does.
        self._writable = False
        self._pause()

    def resume_writing(self) -> None:
        self._writable = True
        self._resume()

    def _pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        """Read on, unless the peer reads no replies or too many messages wait."""
        if (
            self._paused
            and self._writable
            and len(self._backlog) < MAX_WAITING
            and not self._closing
            and self.transport is not None
        ):
            self._paused = False
            self.transport.resume_reading()

    # --- work ---------------------------------------------------------------------------------
    def _start(self, data: bytes) -> None:
        # Reading goes on meanwhile (no pause and resume per message: two system calls each);
        # what arrives before the reply waits in the bounded backlog (data_received).
        self.busy = True
        self.server.handler.submit(data, self.peer, self, self.imsi)

    def replied(self, reply: RawReply) -> None:
        """The handler's reply to this connection's message: write it, then read on."""
        self.busy = False
        if self._closing or self.transport is None:
            return  # the peer left; the message was still stored if it was valid
        self.transport.write(reply.payload)
        if reply.hang_up:
            self.server.note(
                "cut off connections",
                self.peer,
                "%s: cut off %s after reply %s",
                self.server.name,
                self.peer,
                reply.payload,
            )
            self._closing = True
            self.transport.close()
            return
        if self._backlog:
            self._start(self._backlog.pop(0))
        if self._paused:
            self._resume()

    def _arm_idle_timer(self, timeout: float) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(timeout, self._idle_out)

    def _idle_out(self) -> None:
        if self.busy:  # still storing: give it a fresh period
            self._arm_idle_timer(self.server.idle_timeout)
            return
        if self._heard:  # heard from since the timer was armed: wait out the rest
            left = self._last_heard + self.server.idle_timeout - asyncio.get_running_loop().time()
            if left > 0:
                self._arm_idle_timer(left)
                return
        if self._heard:
            self.server.note(
                "closed idle connections",
                self.peer,
                "%s: closing %s, idle for %.0f s",
                self.server.name,
                self.peer,
                self.server.idle_timeout,
            )
        else:
            self.server.note(
                "closed silent connections",
                self.peer,
                "%s: closing %s, which sent nothing in %g s",
                self.server.name,
                self.peer,
                self.server.first_byte_timeout,
            )
        self.abort()

    def abort(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.close()
