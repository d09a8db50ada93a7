"""The HTTP edge's connections: limits, a first-byte timeout, and one-line malformed requests.

aiohttp caps nothing per connection source and logs every request it cannot parse as an ERROR
with a traceback. The edge therefore listens with its own protocol factory: each connection is
an :class:`EdgeConnection`, which

- on accept, has :class:`~harvest.netguard.ConnectionLimits` admit it or answers ``503`` and
  closes it (a cap in total, ``http_max_connections``, and per source address,
  ``http_max_connections_per_source``);
- closes a connection that sends no byte within ``first_byte_timeout`` (aiohttp's own timer
  closes one that never completes a request after ``keepalive_timeout``, and an idle
  keep-alive connection after the same, spec A1);
- gives its bytes to the lean device path (``gateway.devicehttp``, setting ``device_http``)
  while they are plain device writes, and otherwise, for good, to an :class:`EdgeHandler`:
  aiohttp's own request handler (same parser, keep-alive and graceful shutdown, registered
  with the runner's ``web.Server``), under which a request aiohttp cannot parse still gets
  aiohttp's ``400`` but is logged as one WARNING line, peer and reason, at most once per source
  per ``log_repeat_interval`` with a count.

The edge serves device writes, the API and the control plane on one port: a client flooding
from 127.0.0.1 fills 127.0.0.1's share, which the API and control plane from that address then
share with it (docs/security.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from harvest.logcaps import LogThrottle, clip
from harvest.netguard import ConnectionLimits, source_of
from harvest.settings import Settings

log = logging.getLogger(__name__)

#: What a connection past a cap gets before it is closed, without reading its request.
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
    b"Connection: close\r\n\r\n"
)


class EdgeGuard:
    """What every connection of the edge shares: its limits, timeouts and log throttle."""

    def __init__(self, settings: Settings, throttle: LogThrottle) -> None:
        self.limits = ConnectionLimits(
            "http",
            total=settings.http_max_connections,
            per_source=settings.http_max_connections_per_source,
            throttle=throttle,
            log=log,
        )
        self.throttle = throttle
        self.first_byte_timeout = min(settings.first_byte_timeout, settings.keepalive_timeout)
        self.keepalive_timeout = settings.keepalive_timeout

    def note(self, level: int, kind: str, source: str, message: str, *args: object) -> None:
        """A line about ``source``, throttled per source."""
        self.throttle.log(log, level, f"http: {kind}", source, message, *args)


#: The edge's guard, set by ``harvest.server.serving`` before the app starts (tests read its
#: counts).
EDGE_GUARD = web.AppKey("edge_guard", EdgeGuard)


class LeanSession(Protocol):
    """The requests of one connection that a lean path serves itself (gateway.devicehttp):
    it gets the connection's bytes until it hands the connection over to aiohttp."""

    def received(self, data: bytes) -> None: ...

    def eof(self) -> None: ...

    def lost(self) -> None: ...


#: A lean path: one session per connection.
LeanPath = Callable[["EdgeConnection"], LeanSession]


class EdgeConnection(asyncio.Protocol):
    """One HTTP edge connection: admitted by the limits (or answered ``503``), closed when it
    sends nothing within the first-byte timeout; its requests go to the lean path, when there
    is one, until it hands the connection over (:meth:`hand_over`), then to aiohttp's handler
    (:class:`EdgeHandler`) for good."""

    def __init__(self, manager: web.Server, edge: EdgeGuard, lean: LeanPath | None) -> None:
        self._manager = manager
        self._edge = edge
        self._lean = lean
        self.session: LeanSession | None = None
        self.handler: EdgeHandler | None = None
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self._source: str | None = None  # set while it holds a slot of the limits
        self._first_byte: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass asyncio's
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if peername else ""
        self._source = self._edge.limits.admit(self.peer)
        if self._source is None:
            # Handed to nobody: no task, no parser, nothing for shutdown to wait on.
            self.transport.write(REFUSAL)
            self.transport.close()
            return
        self._first_byte = asyncio.get_running_loop().call_later(
            self._edge.first_byte_timeout, self._silent
        )
        if self._lean is None:
            self.hand_over(b"")
        else:
            self.session = self._lean(self)

    def hand_over(self, data: bytes) -> None:
        """From now on aiohttp serves the connection, starting with ``data`` (what the lean
        path received and did not serve)."""
        assert self.transport is not None
        self.session = None
        self.handler = EdgeHandler(self._manager, self._edge)
        self.handler.connection_made(self.transport)
        if data:
            self.handler.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self._first_byte is not None:
            self._first_byte.cancel()
            self._first_byte = None
        if self.handler is not None:
            self.handler.data_received(data)
        elif self.session is not None:
            self.session.received(data)

    def eof_received(self) -> bool | None:
        if self.session is not None:
            self.session.eof()  # it may hand the connection over
        if self.handler is not None:
            self.handler.eof_received()
            return None  # as when aiohttp's handler is the protocol: the transport closes
        return True  # the session closes the transport once it has answered

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._source is None:
            return  # refused: nobody saw it
        if self._first_byte is not None:
            self._first_byte.cancel()
            self._first_byte = None
        self._edge.limits.release(self._source)
        self._source = None
        if self.handler is not None:
            self.handler.connection_lost(exc)
        elif self.session is not None:
            self.session.lost()
            self.session = None

    def _silent(self) -> None:
        self._first_byte = None
        if self._source is None:
            return
        self._edge.note(
            logging.INFO,
            "closed silent connections",
            self._source,
            "http: closing %s, which sent nothing in %g s",
            self.peer,
            self._edge.first_byte_timeout,
        )
        if self.handler is not None:
            self.handler.force_close()
        elif self.transport is not None:
            self.transport.close()


class EdgeHandler(web.RequestHandler):
    """aiohttp's own handler for an edge connection (admitted by :class:`EdgeConnection`),
    with the malformed-request answer the module docstring describes."""

    __slots__ = ("_edge",)

    def __init__(self, manager: web.Server, edge: EdgeGuard) -> None:
        super().__init__(
            manager,
            loop=asyncio.get_running_loop(),
            keepalive_timeout=edge.keepalive_timeout,
            # None turns aiohttp's access log off (the request log replaces it), as
            # AppRunner(access_log=None) does; aiohttp's annotation omits it.
            access_log=None,  # type: ignore[arg-type]
        )
        self._edge = edge

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request aiohttp could not parse gets aiohttp's ``400`` (its reason as text) and
        one throttled WARNING line; one whose client left before it was read (a device losing
        coverage mid-upload, or a client giving up) one throttled INFO line. Neither is logged
        with a traceback. Anything else is a bug: aiohttp's own answer and traceback."""
        if isinstance(exc, HttpProcessingError):
            reason = clip(message or exc.message or type(exc).__name__)
            kind, level, line = "malformed requests", logging.WARNING, "malformed request"
        elif isinstance(exc, ConnectionError):
            reason = clip(str(exc) or type(exc).__name__)
            kind, level, line = "requests cut short", logging.INFO, "request cut short"
        else:
            return super().handle_error(request, status, exc, message)
        peer = self.transport_peer()
        self._edge.note(level, kind, source_of(peer), f"http: {line} from %s: %s", peer, reason)
        if request.writer.output_size > 0:  # as aiohttp: a response is on the wire already
            raise ConnectionError("a response was sent already; the connection is broken")
        response = web.Response(status=status, text=message or reason, content_type="text/plain")
        response.force_close()
        return response

    def transport_peer(self) -> str:
        """The client's address, as aiohttp knows it."""
        transport = self.transport
        peername = None if transport is None else transport.get_extra_info("peername")
        return str(peername[0]) if peername else ""


Wrap = Callable[[Callable[[], asyncio.BaseProtocol]], Callable[[], asyncio.Protocol]]


async def listen(
    runner: web.AppRunner,
    hosts: tuple[str, ...],
    port: int,
    guard: EdgeGuard,
    wrap: Wrap | None = None,
    lean: LeanPath | None = None,
) -> list[asyncio.Server]:
    """Listen on ``port`` (0: a free one, then the same on every other host) on each host, one
    :class:`EdgeConnection` per connection (through ``wrap``, the link profiles' shaper, when
    given), served by ``lean`` first when given. The caller closes the servers, then cleans up
    the runner, whose ``web.Server`` tracks every connection handed to aiohttp for a graceful
    shutdown (the lean path's own are the caller's to drain first)."""
    manager = runner.server
    assert manager is not None, "the runner is set up first"
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []

    def connection() -> EdgeConnection:
        return EdgeConnection(manager, guard, lean)

    factory = connection if wrap is None else wrap(connection)
    try:
        for host in hosts:
            server = await loop.create_server(factory, host, port, reuse_address=True)
            servers.append(server)
            port = port or server.sockets[0].getsockname()[1]
    except BaseException:
        for server in servers:
            server.close()
        raise
    return servers
