"""The request log: one structured line per request, and the last N for ``/_emulator/requests``.

Each device write and management API call is recorded with its protocol, SIM (when known),
status, size and latency. The line goes to the ``harvest.requests`` logger as plain text or
JSON (setting ``request_log``; ``off`` keeps only the in-memory ring, which tests query).

Nothing here grows without bound (docs/security.md, "Log caps"): the ring keeps the last
``request_log_size`` records; lines to the logger are capped at ``request_log_rate`` a second,
the others counted and summed up; with ``request_log_file`` every line goes to that file
instead, which rotates so that it and its predecessor stay within ``request_log_file_bytes``.
The cleanup context here opens that file and logs the counts of what was held back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from harvest import errors
from harvest.clock import Clock
from harvest.errors import HarvestError
from harvest.logcaps import LineBudget, LogThrottle, RotatingLineFile
from harvest.web import json_response

log = logging.getLogger("harvest.requests")

FORMATS = ("off", "plain", "json")
#: What a record's ``protocol`` says: a device write's transport, an API call, a DNS query.
PROTOCOLS = ("http", "tcp", "udp", "api", "dns")


#: What a request log observer is called with: protocol, peer, SIM, status.
Observer = Callable[[str, str, str | None, int], None]
#: What an observer of stored writes is called with: protocol, (peer, IMSI, bytes) of each
#: write, the time they were stored (emulator clock).
StoredObserver = Callable[[str, Sequence[tuple[str, str, int]], int], None]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    time: int
    protocol: str
    peer: str
    imsi: str | None
    status: int
    bytes: int
    latencyMs: float  # the wire name, as in the JSON line
    target: str  # the path for HTTP, the operation for the API, the listener for TCP/UDP
    #: Why a device write was refused (its error code), also when no reply was sent (status
    #: 0: a SIM without a data session, a drop fault); ``None`` otherwise.
    reason: str | None = None
    #: Entries this write replaced: a second write of the resource at the same millisecond
    #: (the real service keeps the last one, spec A1).
    replaced: int = 0

    def view(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """A ring of the last ``capacity`` requests, and the log line of each: to the
    ``harvest.requests`` logger, at most ``lines_per_second`` (the rest counted, see
    :meth:`summarize`), or, once :meth:`open` has opened it, every one to ``file`` (see
    :class:`~harvest.logcaps.RotatingLineFile`, capped at ``file_bytes``)."""

    def __init__(
        self,
        clock: Clock,
        capacity: int,
        line_format: str,
        *,
        lines_per_second: float,
        file: Path | None,
        file_bytes: int,
    ) -> None:
        if line_format not in FORMATS:
            raise ValueError(f"request log format must be one of {FORMATS}")
        self._clock = clock
        self._ring: deque[tuple[Any, ...]] = deque(maxlen=capacity)
        self._format = line_format
        self._budget = LineBudget(lines_per_second)
        self._path = file
        self._file_bytes = file_bytes
        self._file: RotatingLineFile | None = None
        #: Lines held back from the logger since start (the tests read it).
        self.hidden = 0
        #: Called with every request's protocol, peer, SIM and status (the session tracker
        #: learns who is online from them); see :meth:`add_observer`.
        self.observers: list[Observer] = []
        self._stored_observers: dict[Observer, StoredObserver] = {}

    def add_observer(self, observe: Observer, stored: StoredObserver | None = None) -> None:
        """Call ``observe`` with every request's protocol, peer, SIM and status; with
        ``stored``, that instead, once, with the protocol, the ``(peer, IMSI, bytes)`` and the
        time (emulator clock) of writes stored together (:meth:`record_stored`)."""
        self.observers.append(observe)
        if stored is not None:
            self._stored_observers[observe] = stored

    def open(self) -> None:
        """Open the file, if there is one; lines before this go to the logger."""
        if self._path is not None and self._file is None:
            self._file = RotatingLineFile(self._path, self._file_bytes)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def summarize(self) -> None:
        """Log how many lines the rate cap held back since the last call, if any."""
        hidden = self._budget.take_hidden()
        if hidden:
            self.hidden += hidden
            log.info(
                "request log: %d lines not shown (more than %g a second); the last %d requests"
                " are in GET /_emulator/requests",
                hidden,
                self._budget.rate,
                self._ring.maxlen,
            )

    def record(
        self, protocol: str, peer: str, imsi: str | None, status: int, size: int,
        latency_s: float, target: str, reason: str | None = None, replaced: int = 0,
    ) -> None:  # fmt: skip
        """Keep the request in the ring (as a tuple: a record is built only when queried) and
        write its line, if the format asks for one and the cap allows it."""
        row = (
            self._clock.now_ms(), protocol, peer, imsi, status, size,
            round(latency_s * 1000, 3), target, reason, replaced,
        )  # fmt: skip
        self._ring.append(row)
        for observer in self.observers:
            observer(protocol, peer, imsi, status)
        if self._format != "off":
            self._line(row)

    def record_stored(
        self,
        protocol: str,
        target: str,
        latency_s: float,
        writes: Sequence[tuple[str, str, int]],
        replaced: Mapping[int, int],
    ) -> None:
        """:meth:`record` of a ``201`` for each of ``writes`` (peer, IMSI, bytes received),
        answered together after ``latency_s``; ``replaced`` the entries each replaced, by
        position. The clock is read once for all of them."""
        now, latency_ms = self._clock.now_ms(), round(latency_s * 1000, 3)
        rows = [
            (now, protocol, peer, imsi, 201, size, latency_ms, target, None, 0)
            for peer, imsi, size in writes
        ]
        for position, count in replaced.items():
            rows[position] = (*rows[position][:9], count)
        self._ring.extend(rows)
        for observer in self.observers:
            stored = self._stored_observers.get(observer)
            if stored is not None:
                stored(protocol, writes, now)
            else:
                for row in rows:
                    observer(protocol, row[2], row[3], 201)
        if self._format != "off":
            for row in rows:
                self._line(row)

    def _line(self, row: tuple[Any, ...]) -> None:
        """Write the line of a record, if the format asks for one and the cap allows it."""
        if self._format == "off" or (self._file is None and not self._budget.allows()):
            return
        protocol, peer, imsi, status, size = row[1:6]
        target, reason, replaced = row[7:]
        if self._format == "json":
            line = json.dumps(RequestRecord(*row).view(), separators=(",", ":"))
        else:
            line = (
                f"{protocol} {peer} {imsi or '-'} {status} {size}B {row[6]:.1f}ms"
                f" {target}{'' if reason is None else ' ' + reason}"
                f"{f' replaced={replaced}' if replaced else ''}"
            )
        if self._file is not None:
            self._file.write(line)
        else:
            log.info("%s", line)

    def query(
        self, *, imsi: str | None = None, protocol: str | None = None, limit: int = 100
    ) -> list[RequestRecord]:
        """The newest matching records first."""
        found = []
        for row in reversed(self._ring):
            if (imsi is None or row[3] == imsi) and (protocol is None or row[1] == protocol):
                found.append(RequestRecord(*row))
                if len(found) >= limit:
                    break
        return found

    def reset(self) -> None:
        """Forget the kept requests (a control-plane reset)."""
        self._ring.clear()


REQUEST_LOG = web.AppKey("request_log", RequestLog)
#: The one throttle of the lines about abuse (refused connections, malformed requests, refused
#: writes): one per kind per source per ``log_repeat_interval``.
LOG_THROTTLE = web.AppKey("log_throttle", LogThrottle)


async def log_caps_context(app: web.Application) -> AsyncIterator[None]:
    """Open the request log's file (setting ``request_log_file``), and log what the caps held
    back once per throttle interval (``log_repeat_interval``); at the end, log what is left and
    close the file.

    It is the first cleanup context, so it closes last: the listeners' last lines still count.
    """
    requests, throttle = app[REQUEST_LOG], app[LOG_THROTTLE]
    requests.open()

    async def summarize() -> None:
        while True:
            await asyncio.sleep(throttle.interval)
            throttle.flush()
            requests.summarize()

    task = asyncio.get_running_loop().create_task(summarize())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        throttle.flush(everything=True)
        requests.summarize()
        requests.close()


async def get_requests(request: web.Request) -> web.Response:
    """``GET /_emulator/requests?imsi=&protocol=&limit=``: the newest requests first."""
    raw_limit = request.query.get("limit", "100")
    if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= 100_000:
        raise HarvestError(errors.INVALID_PARAMETER, "limit must be from 1 to 100000.")
    protocol = request.query.get("protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        raise HarvestError(
            errors.INVALID_PARAMETER, f"protocol must be one of {', '.join(PROTOCOLS)}."
        )
    found = request.config_dict[REQUEST_LOG].query(
        imsi=request.query.get("imsi"), protocol=protocol, limit=int(raw_limit)
    )
    return json_response([entry.view() for entry in found])


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/requests", get_requests)
