"""The lean path of device HTTP writes: the edge serves a plain device write itself, without
aiohttp's application layer (setting ``device_http``: ``lean``, the default; ``aiohttp`` turns
it off).

A device write needs none of what aiohttp builds around a request (router, middlewares,
``Request`` and ``Response`` objects, a task per request): :class:`LeanConnection` reads the
request heads of its connection with :func:`gateway.httphead.read_head`, and serves each one
that is the plain shape of a device write (``POST``, HTTP/1.1, ``Content-Length``, a plain path
on a device host, or ``/`` and ``/_unified`` on the edge's other hosts) through the same ingest
and the same checks as :mod:`gateway.http`, with the same answers byte for byte (status line,
header fields and their order, body; ``tests/gateway/test_lean_http.py`` compares the two
paths). The first request that is anything else (the API, the control plane, Harvest Files, a
chunked body, ``Expect``, a Beam-signed write, a malformed request...) hands the connection to
aiohttp for good, with every byte not served yet: aiohttp then answers it exactly as when there
is no lean path.

Writes that arrive in one turn of the loop, over any number of connections, are stored with
one :meth:`IngestService.commit <harvest.ingest.IngestService.commit>` (a write with an injected
delay alone), and each is answered once stored: a ``201`` is durable, as on every path. A
connection's requests are answered in order: the next waits while one is being stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Final

from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from gateway.http import BEAM_MARKERS, parse_timestamp
from gateway.httphead import OTHER, Head, read_head
from gateway.turns import NextTurn, Tasks
from gateway.unified import PATH_PREFIX, answers_unified, unified_reply
from harvest import errors
from harvest.domain import Group, Transport, Upload
from harvest.edge import EdgeConnection
from harvest.errors import Dropped, HarvestError
from harvest.ingest import Accepted, IngestService
from harvest.settings import Settings
from harvest.web import dumps
from harvest.wire import FILES_HOST, HARVEST_HOST, TIMESTAMP_HEADER, UNIFIED_HOSTS

log = logging.getLogger(__name__)

_HARVEST: Final = "harvest"
_UNIFIED: Final = "unified"
_BEAM_FIELDS: Final = frozenset(name.lower() for name in BEAM_MARKERS)
_TIMESTAMP_FIELD: Final = TIMESTAMP_HEADER.lower()
#: A connection stops reading while this much waits behind a request being stored.
_BACKLOG_BYTES: Final = 64 * 1024


class Replies:
    """The bytes of an answer, as aiohttp writes a ``web.Response`` (fields in its order:
    the handler's own, ``Content-Type``, ``Content-Length``, ``Date``, ``Server``)."""

    def __init__(self) -> None:
        self._second = -1
        self._tail = b""
        self._created = b""

    def _refresh(self) -> None:
        second = int(time.time())
        if second != self._second:
            self._second = second
            date = formatdate(second, usegmt=True)
            self._tail = f"Date: {date}\r\nServer: {SERVER_SOFTWARE}\r\n\r\n".encode("ascii")
            self._created = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n" + self._tail

    def created(self) -> bytes:
        """``201`` with an empty body: a stored Harvest write."""
        self._refresh()
        return self._created

    def json(self, status: int, body: object, headers: dict[str, str] | None = None) -> bytes:
        """``status`` with a JSON body (``harvest.web.json_response``)."""
        return self.reply(status, dumps(body).encode(), headers, "application/json; charset=utf-8")

    def reply(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> bytes:
        self._refresh()
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
        lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
        if content_type is not None:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}\r\n")
        return "\r\n".join(lines).encode("latin-1") + self._tail + body


class DeviceHttp:
    """The lean path of one edge: what its connections share (the ingest, the answers, the
    writes of this turn of the loop), and a :class:`LeanConnection` for each connection
    (it is the :data:`harvest.edge.LeanPath` the edge calls)."""

    def __init__(self, settings: Settings, *, max_body: int) -> None:
        """``max_body``: the largest body the application itself would read (its
        ``client_max_size``); a larger one goes to aiohttp, which refuses it as always.
        Serves once :meth:`start` has given it the ingest."""
        self.ingest: IngestService
        self.max_body = max_body
        self.bare = settings.device_error_body == "empty"
        self.unified_created = settings.unified_harvest_status
        self.keepalive_timeout = settings.keepalive_timeout
        self.beam = bool(settings.beam_psk)
        self.replies = Replies()
        self.connections: set[LeanConnection] = set()
        self.tasks = Tasks()
        self._pending: list[tuple[Accepted, LeanConnection, bool]] = []
        self._next_turn = NextTurn(self._drain)
        #: Requests served, connections handed over to aiohttp (tests, benchmarks).
        self.served = 0
        self.handed_over = 0

    def start(self, ingest: IngestService) -> None:
        """Serve through ``ingest`` (the application's, once started)."""
        self.ingest = ingest

    def __call__(self, connection: EdgeConnection) -> LeanConnection:
        return LeanConnection(self, connection)

    def endpoint(self, head: Head) -> str | None:
        """Which device endpoint ``head`` writes to, as aiohttp's router would send it
        (``gateway.app``: device hosts first, matched as aiohttp's ``Domain`` does, then the
        edge's own paths); ``None`` when it is not a device write the lean path serves."""
        fields = head.fields
        if self.beam and not _BEAM_FIELDS.isdisjoint(fields):
            return None  # Beam-signed: gateway.http verifies it
        host = fields["host"].lower().partition(":")[0]
        if host == HARVEST_HOST:
            return _HARVEST
        if host in UNIFIED_HOSTS:
            return _UNIFIED
        if host == FILES_HOST:
            return None
        path = head.path
        if path == "/":
            return _HARVEST
        if path == PATH_PREFIX or path.startswith(PATH_PREFIX + "/"):
            return _UNIFIED
        return None

    def refusal(self, error: HarvestError, group: Group | None, unified: bool) -> bytes:
        """A device refusal (``gateway.http.refusal``), or the Unified format when the
        group asks for it on the Unified Endpoint."""
        if answers_unified(unified, group):
            text = "" if self.bare else dumps(error.body())
            status, body = unified_reply(error.status, text)
            return self.replies.json(status, body)
        if self.bare:
            return self.replies.reply(error.status, headers=error.headers or None)
        return self.replies.json(error.status, error.body(), error.headers or None)

    def stored(self, accepted: Accepted, unified: bool) -> bytes:
        if answers_unified(unified, accepted.group):
            status, body = unified_reply(self.unified_created, "")
            return self.replies.json(status, body)
        return self.replies.created()

    def submit(self, accepted: Accepted, connection: LeanConnection, unified: bool) -> None:
        """Store ``accepted`` with the other writes of this turn of the loop (alone when a
        fault delays it: the delay is its own), then answer ``connection``."""
        item = (accepted, connection, unified)
        if accepted.delay_ms:
            self.tasks.start(self._commit([item]))
            return
        self._pending.append(item)
        self._next_turn.ask()

    def _drain(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self.tasks.start(self._commit(batch))

    async def _commit(self, batch: list[tuple[Accepted, LeanConnection, bool]]) -> None:
        try:
            await self.ingest.commit([accepted for accepted, _, _ in batch])
        except Exception:
            # As harvest.web.error_middleware answers a failure of the handler.
            log.exception("internal error storing %d device HTTP writes", len(batch))
            failed = HarvestError(errors.INTERNAL)
            reply = self.replies.json(failed.status, failed.body())
            for _, connection, _ in batch:
                connection.answer(reply)
            return
        stored = self.stored
        for accepted, connection, unified in batch:
            connection.answer(stored(accepted, unified))

    async def shutdown(self, drain_s: float) -> None:
        """Finish the writes being stored (within ``drain_s`` seconds), then close every
        connection the lean path still serves. The listeners are closed already."""
        if self._pending:
            self._drain()
        await self.tasks.wait(drain_s)
        for connection in list(self.connections):
            connection.close()


#: The edge's lean path, when ``device_http`` is ``lean`` (set by ``harvest.server.serving``).
DEVICE_HTTP = web.AppKey("device_http", DeviceHttp)


class LeanConnection:
    """One edge connection while the lean path serves it (:class:`harvest.edge.LeanSession`);
    see the module docstring."""

    def __init__(self, path: DeviceHttp, connection: EdgeConnection) -> None:
        assert connection.transport is not None
        self.path = path
        self.edge = connection
        self.transport = connection.transport
        self.buffer = bytearray()
        #: A request is being stored: the next one waits for its answer.
        self.busy = False
        self.ended = False  # the client sent EOF: close once answered
        self.paused = False
        self.loop = asyncio.get_running_loop()
        self.last_answer = self.loop.time()
        self.idle: asyncio.TimerHandle | None = self.loop.call_later(
            path.keepalive_timeout, self._idle
        )
        path.connections.add(self)

    # -- what the edge connection calls

    def received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._serve()
        elif len(self.buffer) > _BACKLOG_BYTES and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def eof(self) -> None:
        """The client will send nothing more: close once answered; a request cut short goes
        to aiohttp, which answers it as it answers any request cut short."""
        self.ended = True
        if not self.busy:
            self._hand_over_or_close()

    def lost(self) -> None:
        self._leave()

    # -- serving

    def _serve(self) -> None:
        """Serve the complete requests in the buffer, until one is being stored, one needs
        more bytes, or one is not the lean path's."""
        path = self.path
        buffer = self.buffer
        while buffer and not self.busy:
            head = read_head(buffer, 0, min(path.ingest.max_payload_bytes, path.max_body))
            if head is None:
                return
            if head is OTHER:
                self._hand_over()
                return
            assert isinstance(head, Head)
            endpoint = path.endpoint(head)
            if endpoint is None:
                self._hand_over()
                return
            if head.body_end > len(buffer):
                return
            body = bytes(buffer[head.body_start : head.body_end])
            del buffer[: head.body_end]
            path.served += 1
            if not self._write(head, body, endpoint == _UNIFIED):
                return
        if self.ended and not self.busy:
            self.close()

    def _write(self, head: Head, body: bytes, unified: bool) -> bool:
        """One device write (``gateway.http.write_data``): answered now when refused, once
        stored when accepted. ``False`` when the connection was closed without an answer (a
        SIM without a data session, a drop fault)."""
        path = self.path
        ingest = path.ingest
        fields = head.fields
        upload = Upload(
            Transport.HTTP, self.edge.peer, body, fields.get("content-type"), None, None,
            head.path, len(body),
        )  # fmt: skip
        if not ingest.screen(upload):  # no data session: the network carries nothing
            self.close()
            return False
        if not unified:
            try:
                upload.timestamp_ms = parse_timestamp(fields.get(_TIMESTAMP_FIELD))
            except HarvestError as error:
                ingest.refuse(upload, error)
                self.transport.write(path.refusal(error, None, unified=False))
                return True
        try:
            accepted = ingest.prepare(upload)
        except HarvestError as error:
            group = ingest.group_of(upload.peer) if unified else None
            self.transport.write(path.refusal(error, group, unified))
            return True
        except Dropped:
            self.close()
            return False
        self.busy = True
        path.submit(accepted, self, unified)
        return True

    def answer(self, reply: bytes) -> None:
        """The answer to the request being stored; then the next request, if any."""
        self.busy = False
        self.last_answer = self.loop.time()
        if self.transport.is_closing():
            return
        self.transport.write(reply)
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        if self.buffer:
            self._serve()
        elif self.ended:
            self.close()

    def _hand_over(self) -> None:
        """aiohttp serves the connection from here on, starting with the unserved bytes."""
        rest = bytes(self.buffer)
        self.buffer.clear()
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        self._leave()
        self.path.handed_over += 1
        self.edge.hand_over(rest)

    def _idle(self) -> None:
        """The keep-alive timeout (spec A1): an idle connection is closed; one in the middle
        of a request goes to aiohttp, whose own timers then apply as they always did."""
        self.idle = None
        if self.busy:
            self.idle = self.loop.call_later(self.path.keepalive_timeout, self._idle)
            return
        waited = self.loop.time() - self.last_answer
        if waited < self.path.keepalive_timeout:
            self.idle = self.loop.call_later(self.path.keepalive_timeout - waited, self._idle)
        else:
            self._hand_over_or_close()

    def _hand_over_or_close(self) -> None:
        """A request begun and not served yet goes to aiohttp; with none, the connection is
        closed."""
        if self.buffer:
            self._hand_over()
        else:
            self.close()

    def close(self) -> None:
        self._leave()
        self.transport.close()

    def _leave(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        self.path.connections.discard(self)
