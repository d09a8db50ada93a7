"""The one ingest service every transport hands its uploads to.

It identifies the SIM by its session address, applies the SIM's status and its group's
settings, enforces the size limit, turns the payload into a Harvest Data entry and stores it.
It knows nothing of HTTP, TCP or UDP: transports only build an :class:`~harvest.domain.Upload`
and render the :class:`~harvest.errors.HarvestError` it may raise.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.identity import Resolver
from harvest import errors
from harvest.clock import Clock
from harvest.domain import DataEntry, Group, ResourceType, Sim, SimStatus, Upload
from harvest.errorlog import ErrorLog
from harvest.errors import HarvestError
from harvest.registry import Registry
from harvest.storage.base import PutEntries, Store
from quotas.calendar import utc_day
from quotas.limits import check_payload_size

log = logging.getLogger(__name__)

JSON = "application/json"
_TEXT_TYPES = frozenset({"application/x-www-form-urlencoded", "application/xml"})


def encode_content(body: bytes, content_type: str | None) -> tuple[str, str]:
    """The stored ``(contentType, content)`` of a payload (spec A1, B5).

    JSON is kept as the JSON text (a string, not an object); text as text; anything else,
    including every raw TCP/UDP payload (``content_type`` ``None``), is binary and stored as
    ``{"payload":"<base64>"}`` with content type ``application/json``.
    """
    if content_type is not None:
        mime = content_type.partition(";")[0].strip().lower()
        if mime == JSON or mime.endswith("+json"):
            try:
                text = body.decode("utf-8")
                json.loads(text)
            except ValueError:
                raise HarvestError(errors.INVALID_JSON) from None
            return JSON, text
        if mime.startswith("text/") or mime in _TEXT_TYPES:
            try:
                return mime, body.decode("utf-8")
            except UnicodeDecodeError:
                pass
    payload = base64.b64encode(body).decode("ascii")
    return JSON, '{"payload":"' + payload + '"}'


@dataclass(frozen=True, slots=True)
class Accepted:
    """An upload that passed every check, ready to be stored.

    ``group`` is kept so transports can shape their reply by the group's settings (the Unified
    Endpoint's response format).
    """

    sim: Sim
    group: Group
    mutation: PutEntries

    @property
    def entries(self) -> int:
        return len(self.mutation.entries)


class IngestService:
    """See the module docstring.

    :meth:`ingest` serves one upload. Transports that receive bursts (UDP) call :meth:`prepare`
    for each upload, which runs every check without awaiting, and :meth:`commit` once for the
    accepted ones, so a burst costs one storage call.
    """

    def __init__(
        self,
        *,
        registry: Registry,
        store: Store,
        clock: Clock,
        resolve: Resolver,
        max_payload_bytes: int,
        error_log: ErrorLog,
    ) -> None:
        self._registry = registry
        self._error_log = error_log
        self._store = store
        self._clock = clock
        self._resolve = resolve
        self.max_payload_bytes = max_payload_bytes

    def identify(self, peer: str) -> Sim:
        """The SIM whose session is at ``peer``, or 403 (spec B2)."""
        sim = self._resolve(peer)
        if sim is None:
            raise HarvestError(errors.NO_SESSION, f"No SIM has a session at address {peer}.")
        return sim

    async def ingest(self, upload: Upload) -> Accepted:
        """Store one upload; raises :class:`HarvestError` for every refusal."""
        accepted = self.prepare(upload)
        await self.commit([accepted])
        return accepted

    def prepare(self, upload: Upload) -> Accepted:
        """Every check and conversion, without storing; raises :class:`HarvestError`."""
        try:
            return self._prepare(upload)
        except HarvestError as error:
            log.info(
                "refused %s write from %s: %s %s",
                upload.transport,
                upload.peer,
                error.code,
                error.message,
            )
            sim = self._resolve(upload.peer)
            if sim is not None:  # with no SIM there is no operator to show it to
                self._error_log.record(
                    sim.operator_id,
                    sim.imsi,
                    error.message,
                    code=error.code,
                    status=error.status,
                    protocol=upload.transport.value,
                )
            raise

    async def commit(self, accepted: Sequence[Accepted]) -> None:
        """Store accepted uploads in one call; durable when this returns."""
        if not accepted:
            return
        await self._store.apply([a.mutation for a in accepted])
        for imsi in {a.sim.imsi for a in accepted if a.sim.status is not SimStatus.ACTIVE}:
            await self._registry.activate_on_traffic(imsi)

    def _prepare(self, upload: Upload) -> Accepted:
        sim = self.identify(upload.peer)
        if not sim.status.allows_data:
            raise HarvestError(
                errors.SIM_NOT_USABLE, f"SIM {sim.imsi} is {sim.status}: no data communication."
            )
        if sim.barred:
            raise HarvestError(
                errors.SIM_BARRED, f"SIM {sim.imsi} is barred (logging-service-terms 11.7)."
            )
        check_payload_size(len(upload.body), self.max_payload_bytes)
        group = None if sim.group_id is None else self._registry.group_by_id(sim.group_id)
        if group is None:
            raise HarvestError(errors.NO_GROUP, f"SIM {sim.imsi} does not belong to a group.")
        if not group.harvest_enabled:
            raise HarvestError(
                errors.HARVEST_DISABLED, f"Harvest Data is not enabled for group {group.group_id}."
            )
        content_type, content = encode_content(upload.body, upload.content_type)
        now = self._clock.now_ms()
        time = now if upload.timestamp_ms is None else upload.timestamp_ms
        entry = DataEntry(
            sim.operator_id, ResourceType.SUBSCRIBER, sim.imsi, time, content_type, content
        )
        mutation = PutEntries((entry,), now, ((sim.operator_id, sim.imsi, utc_day(now), 1),))
        return Accepted(sim, group, mutation)
