"""The raw listeners' batch path: one loop turn's TCP or UDP messages checked, stored with one
storage call, and reported, without an object per write.

Each message goes through :meth:`IngestService.check`, the checks HTTP's uploads go through,
in the same order and with the same refusals. What an accepted message becomes is built as
directly as it can be: its entries as rows of one :class:`~harvest.storage.base.AppendWrites`
(the journal's rows, usage included), its report as one tuple; the arrival metric, the stored
metrics, the quota bookkeeping and the request log are updated once per batch where a series
is shared. What is rare takes the object path (:meth:`IngestService.prepare` and
:meth:`IngestService.commit`): a batch that arrives while fault rules are in force (a delay, a
duplicate, a drop for one message can change what its neighbours get).

The outcome is the object path's: the same entries, ledger, bills, stats, metrics (a write's
latency is observed once per write), request-log records and error log, and a write is
acknowledged only once its batch is committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from harvest.domain import Group, Sim, Transport, Upload
from harvest.ingest.service import Accepted, IngestService
from harvest.storage.base import AppendWrites, WriteRow
from quotas.bundle import Reservation

#: A raw message as a listener received it: its bytes, its peer address, and the IMSI Beam's
#: signed first line named (``None``: the peer address tells the SIM).
Message = tuple[bytes, str, str | None]


class RawBatch:
    """One turn's messages after their checks (see :meth:`RawIngest.check`)."""

    __slots__ = (
        "_counts",
        "_reports",
        "_reservations",
        "_rows",
        "_sims",
        "_started",
        "accepted",
        "groups",
        "objects",
        "refused",
    )  # fmt: skip

    def __init__(self, started: float) -> None:
        #: The positions, among the messages checked, of those accepted, in order, and their
        #: SIMs' groups (the Unified Endpoint shapes its reply by them).
        self.accepted: list[int] = []
        self.groups: list[Group] = []
        #: The refused messages' positions and why: a :class:`~harvest.errors.HarvestError`
        #: (answer it), :class:`~harvest.errors.Dropped` (no answer) or any other exception
        #: (a failure of the emulator: 500). Each is reported already.
        self.refused: list[tuple[int, Exception]] = []
        #: The accepted messages on the object path (fault rules in force), else empty.
        self.objects: list[Accepted] = []
        self._started = started
        self._rows: list[WriteRow] = []
        self._sims: list[Sim] = []
        self._reservations: list[Reservation] = []
        #: Per accepted message: (peer, IMSI, bytes received), its request-log record's.
        self._reports: list[tuple[str, str, int]] = []
        #: Per accepted message, its entries when not one (a batch write's elements).
        self._counts: dict[int, int] = {}


class RawIngest:
    """The batch path of one raw listener: ``transport`` and the ``listener`` the request log
    names (see the module docstring)."""

    def __init__(self, ingest: IngestService, transport: Transport, listener: str) -> None:
        self.ingest = ingest
        self.transport = transport
        self.listener = listener

    def _upload(self, message: Message) -> Upload:
        body, peer, imsi = message
        return Upload(self.transport, peer, body, None, None, imsi, self.listener)

    def check(self, messages: Sequence[Message]) -> RawBatch:
        """Check every message; refusals are reported here, the accepted by :meth:`commit`.
        A write's latency runs from the start of its batch's checks (it had arrived by then)."""
        ingest = self.ingest
        batch = RawBatch(time.perf_counter())
        if ingest.faults_in_force:
            for position, message in enumerate(messages):
                try:
                    accepted = ingest.prepare(self._upload(message))
                except Exception as error:
                    batch.refused.append((position, error))
                else:
                    batch.objects.append(accepted)
                    batch.accepted.append(position)
                    batch.groups.append(accepted.group)
            return batch
        transport, check, started = self.transport, ingest.check, batch._started
        metrics = ingest.metrics
        if metrics is not None:
            series = metrics.protocol[transport]
            series.received.inc(len(messages))
            observe = series.payload_size.observe
            for body, _, _ in messages:
                observe(len(body))
        rows, sims, reservations, reports = batch._rows, batch._sims, batch._reservations, []
        positions, groups = batch.accepted, batch.groups
        last, day, bucket = -1, "", ""  # of the last write's millisecond: most share one
        for position, message in enumerate(messages):
            body, peer, imsi = message
            try:
                sim, group, now, content_type, content, stamped, keys, category, reserved, _ = (
                    check(transport, peer, imsi, body)
                )
            except Exception as error:
                ingest.failed(self._upload(message), error, started)
                batch.refused.append((position, error))
                continue
            if now != last:
                last, day, bucket = now, ingest.day(now), ingest.bucket(now)
            imsi = sim.imsi
            if len(stamped) == 1 and stamped[0][1] is content:
                rows.append(
                    (sim.operator_id, imsi, stamped[0][0], content_type, content, category, keys,
                     now, day, bucket)
                )  # fmt: skip
            else:  # a batch write: each element has its own keys (None: the store reads them)
                batch._counts[len(sims)] = len(stamped)
                rows.extend(
                    (sim.operator_id, imsi, at, content_type, text, category, None, now, day,
                     bucket)
                    for at, text in stamped
                )  # fmt: skip
            positions.append(position)
            groups.append(group)
            sims.append(sim)
            reservations.append(reserved)
            reports.append((peer, imsi, len(body)))
        batch._reports = reports
        return batch

    async def commit(self, batch: RawBatch) -> None:
        """Store the accepted messages of ``batch`` in one storage call and report them;
        durable when this returns. Raises what storing raised (each write reported ``500``)."""
        ingest = self.ingest
        if batch.objects:
            await ingest.commit(batch.objects)
            return
        sims = batch._sims
        if not sims:
            return
        mutation = AppendWrites(batch._rows)
        try:
            # One turn of the loop while admitted, as IngestService.commit (spec B9).
            await asyncio.sleep(0)
            await ingest.store.apply([mutation])
        except BaseException:
            for sim, reservation, message in zip(
                sims, batch._reservations, batch._reports, strict=True
            ):  # not stored: those writes do not count
                ingest.quotas.release(sim.operator_id, reservation)
                peer, imsi, size = message
                upload = Upload(self.transport, peer, b"", None, None, None, self.listener, size)
                ingest.report(upload, batch._started, 500, imsi)
            raise
        finally:  # answered either way: no longer in flight
            ingest.quotas.finish_all(sim.imsi for sim in sims)
        replaced = self._replaced(batch, mutation.replaced)
        ingest.report_stored(
            self.transport, self.listener, batch._started, batch._reports, replaced
        )
        metrics = ingest.metrics
        if metrics is not None:
            counts = batch._counts
            ingest.count_stored(
                metrics,
                [(self.transport, len(batch._rows), sum(replaced.values()))],
                sum(len(row[4]) for row in batch._rows),
                batch._reservations,
                ((sim.imsi, counts.get(n, 1)) for n, sim in enumerate(sims)),
            )
        await ingest.activate(sims)

    @staticmethod
    def _replaced(batch: RawBatch, rows: list[int]) -> dict[int, int]:
        """The entries each accepted message replaced, by its place among them (the rows
        ``rows`` replaced one; most batches none)."""
        if not rows:
            return {}
        counts = batch._counts
        owner = [n for n in range(len(batch._sims)) for _ in range(counts.get(n, 1))]
        found: dict[int, int] = {}
        for row in rows:
            found[owner[row]] = found.get(owner[row], 0) + 1
        return found
