"""What the raw TCP and UDP listeners share: replies and the handler they call.

Replies follow spec B3/B4: ASCII ``201`` for each stored message, the bare status code as ASCII
(``400``, ``403``, ``413``, ``429``...) for a refusal. Anything that arrives over TCP or UDP is
binary (spec A1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from harvest.domain import Transport, Upload
from harvest.errors import HarvestError
from harvest.ingest import Accepted, IngestService

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


def refusal(error: HarvestError) -> RawReply:
    """A refusal as its ASCII status; an oversized message also ends a TCP stream, whose
    framing can no longer be trusted."""
    return RawReply(str(error.status).encode("ascii"), hang_up=error.status == 413)


def upload(transport: Transport, peer: str, body: bytes) -> Upload:
    return Upload(transport=transport, peer=peer, body=body, content_type=None)


def accepted_reply(accepted: Accepted) -> RawReply:
    return RawReply(CREATED)


class RawHandler:
    """Turns one raw message into one reply through the ingest service."""

    def __init__(self, ingest: IngestService, transport: Transport) -> None:
        self.ingest = ingest
        self.transport = transport

    async def __call__(self, body: bytes, peer: str) -> RawReply:
        try:
            accepted = await self.ingest.ingest(upload(self.transport, peer, body))
        except HarvestError as error:
            return refusal(error)
        except Exception:
            log.exception("storing a %s message from %s failed", self.transport, peer)
            return RawReply(FAILED)
        return accepted_reply(accepted)
