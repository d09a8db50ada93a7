"""The request log: one structured line per request, and the last N for ``/_emulator/requests``.

Each device write and management API call is recorded with its protocol, SIM (when known),
status, size and latency. The line goes to the ``harvest.requests`` logger as plain text or
JSON (setting ``request_log``; ``off`` keeps only the in-memory ring, which tests query).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from harvest import errors
from harvest.clock import Clock
from harvest.errors import HarvestError
from harvest.web import json_response

log = logging.getLogger("harvest.requests")

FORMATS = ("off", "plain", "json")


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
    """A ring of the last ``capacity`` requests, and the log line of each."""

    def __init__(self, clock: Clock, capacity: int, line_format: str) -> None:
        if line_format not in FORMATS:
            raise ValueError(f"request log format must be one of {FORMATS}")
        self._clock = clock
        self._ring: deque[RequestRecord] = deque(maxlen=capacity)
        self._format = line_format

    def record(
        self, protocol: str, peer: str, imsi: str | None, status: int, size: int,
        latency_s: float, target: str, reason: str | None = None, replaced: int = 0,
    ) -> None:  # fmt: skip
        entry = RequestRecord(
            self._clock.now_ms(), protocol, peer, imsi, status, size,
            round(latency_s * 1000, 3), target, reason, replaced,
        )  # fmt: skip
        self._ring.append(entry)
        if self._format == "json":
            log.info(json.dumps(entry.view(), separators=(",", ":")))
        elif self._format == "plain":
            log.info(
                "%s %s %s %s %dB %.1fms %s%s%s", protocol, peer, imsi or "-", status, size,
                entry.latencyMs, target, "" if reason is None else f" {reason}",
                f" replaced={replaced}" if replaced else "",
            )  # fmt: skip

    def query(
        self, *, imsi: str | None = None, protocol: str | None = None, limit: int = 100
    ) -> list[RequestRecord]:
        """The newest matching records first."""
        found = []
        for entry in reversed(self._ring):
            if (imsi is None or entry.imsi == imsi) and (
                protocol is None or entry.protocol == protocol
            ):
                found.append(entry)
                if len(found) >= limit:
                    break
        return found

    def clear(self) -> None:
        self._ring.clear()


REQUEST_LOG = web.AppKey("request_log", RequestLog)


async def get_requests(request: web.Request) -> web.Response:
    """``GET /_emulator/requests?imsi=&protocol=&limit=``: the newest requests first."""
    raw_limit = request.query.get("limit", "100")
    if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= 100_000:
        raise HarvestError(errors.INVALID_PARAMETER, "limit must be from 1 to 100000.")
    protocol = request.query.get("protocol")
    if protocol is not None and protocol not in ("http", "tcp", "udp", "api"):
        raise HarvestError(errors.INVALID_PARAMETER, "protocol must be http, tcp, udp or api.")
    found = request.config_dict[REQUEST_LOG].query(
        imsi=request.query.get("imsi"), protocol=protocol, limit=int(raw_limit)
    )
    return json_response([entry.view() for entry in found])


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/requests", get_requests)
