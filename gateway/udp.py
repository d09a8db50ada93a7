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

from gateway.raw import BUSY, FAILED, RawReply, Replies, upload
from harvest.domain import Transport
from harvest.errors import Dropped, HarvestError
from harvest.ingest import Accepted, IngestService
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
        self.ingest = ingest
        self.throttle = throttle
        self.replies = Replies(ingest, unified=unified, unified_created=unified_created)
        self.max_in_flight = max_in_flight
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        self.dropped = 0
        self._pending: list[tuple[bytes, Address]] = []
        self._scheduled = False
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, so no isinstance check here.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if self._closing:
            return
        if self.in_flight + len(self._pending) >= self.max_in_flight:
            self.dropped += 1
            if self.throttle is not None:
                self.throttle.log(
                    log, logging.WARNING, f"{self.name}: dropped datagrams", "all sources",
                    "%s: saturated, dropping datagrams (%d so far)", self.name, self.dropped,
                )  # fmt: skip
            self._send(RawReply(BUSY), addr)
            return
        self._pending.append((data, addr))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)

    def error_received(self, exc: Exception) -> None:
        log.debug("%s: %s", self.name, exc)

    def _send(self, reply: RawReply, addr: Address) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply.payload, addr)

    def _drain(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        accepted: list[tuple[Accepted, Address]] = []
        for data, addr in batch:
            try:
                accepted.append(
                    (self.ingest.prepare(upload(Transport.UDP, addr[0], data, self.name)), addr)
                )
            except HarvestError as error:
                self._send(self.replies.refused(error, addr[0]), addr)
            except Dropped:  # no reply at all
                pass
        if accepted:
            self.in_flight += len(accepted)
            task = asyncio.get_running_loop().create_task(self._commit(accepted))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _commit(self, accepted: list[tuple[Accepted, Address]]) -> None:
        try:
            await self.ingest.commit([a for a, _ in accepted])
        except Exception:
            log.exception("%s: storing %d datagrams failed", self.name, len(accepted))
            for _, addr in accepted:
                self._send(RawReply(FAILED), addr)
        else:
            for item, addr in accepted:
                self._send(self.replies.accepted(item), addr)
        finally:
            self.in_flight -= len(accepted)

    async def close(self, drain_s: float) -> None:
        """Stop receiving; datagrams already accepted get ``drain_s`` seconds to be stored."""
        self._closing = True
        if self._pending:
            self._drain()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=drain_s)
        if self.transport is not None:
            self.transport.close()
