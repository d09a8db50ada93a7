"""The console's one live-update stream: ``GET /console/stream``, server-sent events.

Every request the emulator records (a device write, an API call, a DNS query) reaches each open
stream as part of a ``requests`` event: the request log's records (harvest/requestlog.py), the
same ones ``GET /_emulator/requests`` answers, so the stream says *that* something happened and
the page reads *what* through ``/v1``. A ``clock`` event carries the emulator clock at the start
and every :data:`HEARTBEAT_S` (it also keeps idle proxies from closing the connection).

Bounded: at most ``console_clients`` streams (one more is ``503 HEM9010``); a stream that falls
more than :data:`MAX_BACKLOG` records behind skips the oldest and is told so (a ``gap`` event,
the page reloads); shutdown ends every stream before the server waits for its handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from harvest import errors
from harvest.clock import EmulatorClock
from harvest.context import CLOCK, SETTINGS
from harvest.control import authorize
from harvest.errors import HarvestError
from harvest.requestlog import REQUEST_LOG, RequestLog

#: Seconds between two ``clock`` events when nothing else is sent.
HEARTBEAT_S = 5.0
#: Seconds between two looks at whether the page is still there.
CHECK_S = 1.0
#: Records one stream may fall behind before the oldest are skipped.
MAX_BACKLOG = 500
#: Seconds a woken stream waits for more records, so a burst goes out as one event.
BATCH_S = 0.1
#: How long the browser waits before it reconnects (the SSE ``retry`` field), ms.
RETRY_MS = 2000


@dataclass(eq=False, slots=True)
class _Client:
    pending: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class StreamHub:
    """The open streams. It listens to the request log only while a stream is open, so an
    emulator nobody watches pays nothing per request."""

    def __init__(self, requests: RequestLog, clock: EmulatorClock, max_clients: int) -> None:
        self._requests = requests
        self._clock = clock
        self._max = max_clients
        self._clients: set[_Client] = set()
        self.closing = False

    @property
    def clients(self) -> int:
        return len(self._clients)

    def _observe(self, protocol: str, peer: str, imsi: str | None, status: int) -> None:
        for client in self._clients:
            client.pending += 1
            client.wake.set()

    def join(self) -> _Client:
        """A new stream, or ``503 HEM9010`` when every place is taken or shutdown has begun."""
        if self.closing or len(self._clients) >= self._max:
            raise HarvestError(
                errors.CONSOLE_BUSY,
                f"The web console allows {self._max} live streams at once (console_clients).",
            )
        client = _Client()
        if not self._clients:
            self._requests.observers.append(self._observe)
        self._clients.add(client)
        return client

    def leave(self, client: _Client) -> None:
        self._clients.discard(client)
        if not self._clients and self._observe in self._requests.observers:
            self._requests.observers.remove(self._observe)

    def close(self) -> None:
        """End every stream (each handler returns at its next wake-up, which is now)."""
        self.closing = True
        for client in self._clients:
            client.wake.set()

    def take(self, client: _Client) -> list[bytes]:
        """The events due to ``client``: its new records (oldest first), a ``gap`` before
        them when some were skipped."""
        pending, client.pending = client.pending, 0
        client.wake.clear()
        if not pending:
            return []
        events = []
        if pending > MAX_BACKLOG:
            events.append(event("gap", {"skipped": pending - MAX_BACKLOG}))
        records = self._requests.query(limit=min(pending, MAX_BACKLOG))
        records.reverse()
        events.append(event("requests", [r.view() for r in records]))
        return events

    def clock_event(self) -> bytes:
        state = self._clock.state()
        return event("clock", {"now": state.now_ms, "frozen": state.frozen})


def event(name: str, data: object) -> bytes:
    """One server-sent event (the data is one line of JSON)."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


CONSOLE_HUB = web.AppKey("console_hub", StreamHub)


async def stream_context(app: web.Application) -> AsyncIterator[None]:
    """The hub lives from start to cleanup; :func:`end_streams` (on shutdown, before the
    server waits for handlers to finish) makes every open stream return."""
    app[CONSOLE_HUB] = hub = StreamHub(app[REQUEST_LOG], app[CLOCK], app[SETTINGS].console_clients)
    try:
        yield
    finally:
        hub.close()


async def end_streams(app: web.Application) -> None:
    """``on_shutdown``: a stream would otherwise hold the server's bounded shutdown wait."""
    hub = app.get(CONSOLE_HUB)
    if hub is not None:
        hub.close()


async def get_stream(request: web.Request) -> web.StreamResponse:
    """``GET /console/stream``: server-sent events, behind the control plane's token."""
    authorize(request)
    hub = request.config_dict[CONSOLE_HUB]
    client = hub.join()
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
    )
    try:
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MS}\n\n".encode() + hub.clock_event())
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.wake.wait(), CHECK_S)
            transport = request.transport
            if hub.closing or transport is None or transport.is_closing():
                break  # shutdown, or the page went away
            if client.pending:
                await asyncio.sleep(BATCH_S)
                await response.write(b"".join(hub.take(client)))
            elif loop.time() - quiet_since >= HEARTBEAT_S:
                await response.write(hub.clock_event())
            else:
                continue
            quiet_since = loop.time()
    except ConnectionError:  # the page went away
        pass
    finally:
        hub.leave(client)
    return response
