"""The raw UDP listener: one datagram is one message (spec A1, B4).

Datagrams that arrive together are checked one by one without awaiting, and the accepted ones
are stored with one storage call, then each sender gets its ``201``. This keeps the per-message
cost low enough for tens of thousands of messages a second on one core. Work in flight is
bounded: past the bound, datagrams are answered ``503`` and dropped, as a saturated network
service would drop them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from gateway.raw import BUSY, RawHandler, RawReply
from harvest.domain import Transport
from harvest.ingest import IngestService
from harvest.logcaps import LogThrottle

log = logging.getLogger(__name__)

Address = tuple[str, int] | tuple[str, int, int, int]


class UdpEndpoint(asyncio.DatagramProtocol):
    """One UDP socket; see the module docstring."""

    def __init__(
        self,
        ingest: IngestService,
        *,
        max_in_flight: int,
        name: str,
        unified: bool = False,
        unified_created: int = 201,
        throttle: LogThrottle | None = None,
    ) -> None:
        """``throttle`` keeps the saturation warning to one line per interval, with a count."""
        self.throttle = throttle
        self.handler = RawHandler[Address](
            ingest,
            Transport.UDP,
            listener=name,
            unified=unified,
            deliver=self._send,
            unified_created=unified_created,
        )
        self.max_in_flight = max_in_flight
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None
        self.dropped = 0
        self._closing = False
        #: The socket is closed or closing: nothing can be sent (read per reply, where the
        #: transport's own is_closing() goes through the link shaper's proxy).
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, so no isinstance check here.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if self._closing:
            return
        handler = self.handler
        if handler.in_flight + handler.waiting >= self.max_in_flight:
            self.dropped += 1
            if self.throttle is not None:
                self.throttle.log(
                    log, logging.WARNING, f"{self.name}: dropped datagrams", "all sources",
                    "%s: saturated, dropping datagrams (%d so far)", self.name, self.dropped,
                )  # fmt: skip
            self._send(addr, RawReply(BUSY))
            return
        handler.submit(data, addr[0], addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("%s: %s", self.name, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True

    def _send(self, addr: Address, reply: RawReply) -> None:
        if reply.payload and not self._closed and self.transport is not None:
            self.transport.sendto(reply.payload, addr)

    async def close(self, drain_s: float) -> None:
        """Stop receiving; datagrams already accepted get ``drain_s`` seconds to be stored."""
        self._closing = True
        await self.handler.close(drain_s)
        self._closed = True
        if self.transport is not None:
            self.transport.close()
