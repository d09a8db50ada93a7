"""What the raw TCP and UDP listeners share: replies and the handler they call.

Replies follow spec B3/B4: ASCII ``201`` for each stored message, the bare status code as ASCII
(``400``, ``403``, ``413``, ``429``...) for a refusal. On the Unified Endpoint port a group may
ask for the Unified format instead (``gateway.unified``). Anything that arrives over TCP or UDP
is binary (spec A1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.beam import BeamSignatureError, TcpFirstLine
from gateway.turns import NextTurn, Tasks
from gateway.unified import answers_unified, raw_unified_reply
from harvest import errors
from harvest.domain import Group, Transport, Upload
from harvest.errors import Dropped, HarvestError
from harvest.ingest import IngestService, Message, RawBatch, RawIngest
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


_CREATED = RawReply(CREATED)
#: No answer at all: nothing is sent, a TCP connection is closed.
UNANSWERED = RawReply(b"", hang_up=True)
#: Where a reply goes: a TCP connection, a UDP sender's address.
To = TypeVar("To")


def upload(
    transport: Transport, peer: str, body: bytes, listener: str = "", imsi: str | None = None
) -> Upload:
    """A raw message: binary, named in the request log by the ``listener`` it came in on;
    ``imsi`` when Beam's signed first line named the SIM."""
    return Upload(
        transport=transport, peer=peer, body=body, content_type=None, target=listener, imsi=imsi
    )


class BeamEntry:
    """Beam's signed first line on a raw TCP listener (notes 3.1, 3.4; setting ``beam_psk``):
    a reader for each connection, and the answer to a line that does not verify: ``403`` and
    the connection closed (what follows cannot be attributed), with ``HEM4011`` and the reason
    reported by the ingest (request log, metrics, ``GET /v1/logs``), as an HTTP forward with a
    bad signature gets."""

    def __init__(
        self,
        psk: str,
        *,
        max_skew_ms: int | None,
        now_ms: Callable[[], int],
        ingest: IngestService,
        endpoint: str,
    ) -> None:
        self.psk = psk
        self.max_skew_ms = max_skew_ms
        self.now_ms = now_ms
        self.ingest = ingest
        self.endpoint = endpoint

    def reader(self) -> TcpFirstLine:
        return TcpFirstLine(self.psk, max_skew_ms=self.max_skew_ms, now_ms=self.now_ms)

    def refused(self, peer: str, error: BeamSignatureError) -> RawReply:
        log.info("refused a Beam TCP connection from %s: %s", peer, error)
        self.ingest.refuse(
            upload(Transport.TCP, peer, b"", self.endpoint),
            HarvestError(errors.BEAM_SIGNATURE_INVALID, f"Beam signature: {error}."),
        )
        return RawReply(b"403", hang_up=True)


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
        return answers_unified(self.unified, group)

    def accepted(self, group: Group) -> RawReply:
        """The reply to a stored write of a SIM in ``group``."""
        if self._unified(group):
            return RawReply(raw_unified_reply(self.unified_created, ""))
        return _CREATED

    def refused(self, error: HarvestError, peer: str) -> RawReply:
        """A refusal as its ASCII status; an oversized message also ends a TCP stream, whose
        framing can no longer be trusted."""
        hang_up = error.status == 413
        if self._unified(self.ingest.group_of(peer)):
            body = dumps(error.body())
            return RawReply(raw_unified_reply(error.status, body), hang_up)
        return RawReply(str(error.status).encode("ascii"), hang_up)


class RawHandler(Generic[To]):
    """The ingest side of one raw listener (TCP or UDP): messages that arrive in one turn of
    the loop are checked together without awaiting (:class:`~harvest.ingest.RawIngest`), the
    accepted ones stored with one commit, and each sender gets its reply through
    ``deliver(to, reply)``. A burst from many connections or datagrams costs one storage call;
    the ingest reports each message.

    A message that gets no answer (a drop fault, a SIM without a data session) is delivered an
    empty reply that hangs up; a UDP listener sends nothing for it.
    """

    def __init__(
        self,
        ingest: IngestService,
        transport: Transport,
        *,
        listener: str,
        unified: bool,
        deliver: Callable[[To, RawReply], None],
        unified_created: int = 201,
    ) -> None:
        """``listener`` names the listener in the request log."""
        self.ingest = ingest
        self.transport = transport
        self.listener = listener
        self.deliver = deliver
        self.replies = Replies(ingest, unified=unified, unified_created=unified_created)
        self.raw = RawIngest(ingest, transport, listener)
        self.tasks = Tasks()
        #: Messages accepted and not answered yet (being stored).
        self.in_flight = 0
        self._pending: list[Message] = []
        self._to: list[To] = []
        self._next_turn = NextTurn(self._drain)

    def admits(self, peer: str) -> bool:
        """Whether a new connection from ``peer`` may proceed; a SIM without a data session
        gets it closed at once, as the network would give it none (spec B12)."""
        return self.ingest.screen(upload(self.transport, peer, b"", self.listener))

    @property
    def waiting(self) -> int:
        """Messages submitted and not checked yet (this turn of the loop)."""
        return len(self._pending)

    def submit(self, body: bytes, peer: str, to: To, imsi: str | None = None) -> None:
        """Handle one message from ``peer`` (sent as ``imsi`` when Beam vouched for one); its
        reply goes to ``to``, later in this turn of the loop or once stored."""
        self._pending.append((body, peer, imsi))
        self._to.append(to)
        self._next_turn.ask()

    def _drain(self) -> None:
        messages, self._pending = self._pending, []
        to, self._to = self._to, []
        batch = self.raw.check(messages)
        deliver = self.deliver
        for position, error in batch.refused:
            if isinstance(error, HarvestError):
                deliver(to[position], self.replies.refused(error, messages[position][1]))
            elif isinstance(error, Dropped):  # no answer: the connection is closed
                deliver(to[position], UNANSWERED)
            else:
                log.error(
                    "checking a %s message from %s failed", self.transport,
                    messages[position][1], exc_info=error,
                )  # fmt: skip
                deliver(to[position], RawReply(FAILED))
        if batch.accepted:
            self.in_flight += len(batch.accepted)
            self.tasks.start(self._commit(batch, to))

    async def _commit(self, batch: RawBatch, to: list[To]) -> None:
        try:
            await self.raw.commit(batch)
        except Exception:
            log.exception("%s: storing %d messages failed", self.listener, len(batch.accepted))
            for position in batch.accepted:
                self.deliver(to[position], RawReply(FAILED))
        else:
            reply, deliver = self.replies.accepted, self.deliver
            last: Group | None = None
            answer = _CREATED
            for position, group in zip(batch.accepted, batch.groups, strict=True):
                if group is not last:  # the SIMs of a batch share a few groups
                    last, answer = group, reply(group)
                deliver(to[position], answer)
        finally:
            self.in_flight -= len(batch.accepted)

    async def close(self, drain_s: float) -> None:
        """Check what is waiting; what is being stored gets ``drain_s`` seconds."""
        if self._pending:
            self._drain()
        await self.tasks.wait(drain_s)
