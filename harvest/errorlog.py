"""The error log behind ``GET /v1/logs`` (OpenAPI ``getLogs``; notes real-service.md 3.5).

The real service logs why a device's data was refused or could not be parsed, per SIM, for the
operator to read. The emulator keeps the most recent entries per operator in memory (a bounded
ring: a refusal flood cannot exhaust memory); they do not survive a restart.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from harvest.clock import Clock

#: Entries kept per operator; the oldest go first.
CAPACITY = 10_000


@dataclass(frozen=True, slots=True)
class LogEntry:
    """OpenAPI ``LogEntry``."""

    sequence: int
    time: int
    service: str
    resource_type: str
    resource_id: str
    operator_id: str
    level: str
    body: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "service": self.service,
            "resourceType": self.resource_type,
            "resourceId": self.resource_id,
            "operatorId": self.operator_id,
            "logLevel": self.level,
            "body": self.body,
        }


class ErrorLog:
    """Per-operator rings of :class:`LogEntry`, newest last."""

    def __init__(self, clock: Clock, capacity: int = CAPACITY) -> None:
        self._clock = clock
        self._capacity = capacity
        self._entries: dict[str, deque[LogEntry]] = {}
        self._sequence = 0

    def record(
        self,
        operator_id: str,
        imsi: str,
        message: str,
        *,
        service: str = "Harvest",
        level: str = "error",
        **details: Any,
    ) -> LogEntry:
        self._sequence += 1
        entry = LogEntry(
            sequence=self._sequence,
            time=self._clock.now_ms(),
            service=service,
            resource_type="Subscriber",
            resource_id=imsi,
            operator_id=operator_id,
            level=level,
            body={"message": message, **details},
        )
        ring = self._entries.setdefault(operator_id, deque(maxlen=self._capacity))
        ring.append(entry)
        return entry

    def query(
        self,
        operator_id: str,
        *,
        service: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        from_ms: int = 0,
        to_ms: int | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[LogEntry]:
        """At most ``limit`` matching entries, newest first.

        ``before`` is the sequence number of the previous page's last entry (the paging key).
        """
        found: list[LogEntry] = []
        for entry in reversed(self._entries.get(operator_id, ())):
            if len(found) >= limit:
                break
            if before is not None and entry.sequence >= before:
                continue
            if service is not None and entry.service != service:
                continue
            if resource_type is not None and entry.resource_type != resource_type:
                continue
            if resource_id is not None and entry.resource_id != resource_id:
                continue
            if entry.time < from_ms or (to_ms is not None and entry.time > to_ms):
                continue
            found.append(entry)
        return found

    def reset(self) -> None:
        """Forget every entry (a control-plane reset)."""
        self._entries.clear()
