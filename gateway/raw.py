"""What the raw TCP and UDP listeners share: replies and the handler they call.

Replies follow spec B3/B4: ASCII ``201`` for each stored message, the bare status code as ASCII
(``400``, ``403``, ``413``, ``429``...) for a refusal. On the Unified Endpoint port a group may
ask for the Unified format instead (``gateway.unified``). Anything that arrives over TCP or UDP
is binary (spec A1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway.unified import ResponseFormat, raw_unified_reply, response_format
from harvest.domain import Group, Transport, Upload
from harvest.errors import Dropped, HarvestError
from harvest.ingest import Accepted, IngestService
from harvest.web import dumps

log = logging.getLogger(__name__)

CREATED = b"201"
#: Answered when the emulator is saturated (too many connections or datagrams in flight).
BUSY = b"503"
#: Answered when storage failed; the write was not stored.
FAILED = b"500"


@dataclass(frozen=True, slots=True)
class RawReply:
    """The bytes to send back, and whether to hang up afterwards."""

    payload: bytes
    hang_up: bool = False


def upload(transport: Transport, peer: str, body: bytes, listener: str = "") -> Upload:
    """A raw message: binary, named in the request log by the ``listener`` it came in on."""
    return Upload(transport=transport, peer=peer, body=body, content_type=None, target=listener)


class Replies:
    """Shapes the reply of one raw listener: Harvest's own, or the Unified format when the
    listener is the Unified Endpoint's and the SIM's group asks for it."""

    def __init__(self, ingest: IngestService, *, unified: bool, unified_created: int = 201) -> None:
        """``unified_created``: Harvest's ``statusCode`` for a stored write inside a Unified
        reply (setting ``unified_harvest_status``)."""
        self.ingest = ingest
        self.unified = unified
        self.unified_created = unified_created

    def _unified(self, group: Group | None) -> bool:
        return self.unified and response_format(group) is ResponseFormat.UNIFIED

    def accepted(self, accepted: Accepted) -> RawReply:
        if self._unified(accepted.group):
            return RawReply(raw_unified_reply(self.unified_created, ""))
        return RawReply(CREATED)

    def refused(self, error: HarvestError, peer: str) -> RawReply:
        """A refusal as its ASCII status; an oversized message also ends a TCP stream, whose
        framing can no longer be trusted."""
        hang_up = error.status == 413
        if self._unified(self.ingest.group_of(peer)):
            body = dumps(error.body())
            return RawReply(raw_unified_reply(error.status, body), hang_up)
        return RawReply(str(error.status).encode("ascii"), hang_up)


class RawHandler:
    """Turns one raw TCP message into one reply through the ingest service (which reports
    each message: the request log and the metrics)."""

    def __init__(
        self,
        ingest: IngestService,
        transport: Transport,
        *,
        unified: bool,
        unified_created: int = 201,
    ) -> None:
        self.ingest = ingest
        self.transport = transport
        self.replies = Replies(ingest, unified=unified, unified_created=unified_created)

    def admits(self, peer: str) -> bool:
        """Whether a new connection from ``peer`` may proceed; a SIM without a data session
        gets it closed at once, as the network would give it none (spec B12)."""
        return self.ingest.screen(upload(self.transport, peer, b"", self.endpoint))

    @property
    def endpoint(self) -> str:
        return "unified" if self.replies.unified else "harvest"

    async def __call__(self, body: bytes, peer: str) -> RawReply:
        try:
            accepted = await self.ingest.ingest(upload(self.transport, peer, body, self.endpoint))
            return self.replies.accepted(accepted)
        except HarvestError as error:
            return self.replies.refused(error, peer)
        except Dropped:
            return RawReply(b"", hang_up=True)  # no answer: the connection is closed
        except Exception:
            log.exception("storing a %s message from %s failed", self.transport, peer)
            return RawReply(FAILED)
