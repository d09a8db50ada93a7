"""Session state as the emulator sees it (issue 12, item 6): ``sessionStatus`` of the API.

On SORACOM's network a SIM is ``online`` while it has a data session, and ``ueIpAddress`` is
the address the session gave it (OpenAPI ``SessionStatus``). The emulator has no radio network
to ask, so it reports what it sees (setting ``session_status = "traffic"``): a SIM is online
while it holds a TCP connection to the emulator, or sent anything (a write on any protocol, a
DNS query) within ``session_idle_timeout`` seconds of the emulator clock; ``ueIpAddress`` is the
address it last sent from (its session address, or a UE address the ``ue_map`` names; for a
write forwarded by Beam, Beam's);
``lastUpdatedAt`` is when that last changed. A SIM that may not use data (inactive, suspended,
terminated, barred) is never online. With ``session_status = "address"`` a SIM is online
whenever it has a session address and may use data, as before this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harvest.clock import Clock
from harvest.domain import Sim

MODES = ("traffic", "address")


@dataclass(frozen=True, slots=True)
class SessionState:
    """What ``sessionStatus`` says of a SIM."""

    online: bool
    ue_address: str | None
    last_updated_ms: int


@dataclass(slots=True)
class _Seen:
    address: str
    last_ms: int
    held: int = 0
    changed_ms: int = 0


class SessionTracker:
    """Traffic and TCP connections per IMSI; see the module docstring. A state holder: a
    reset forgets everything (every SIM offline until it sends again)."""

    def __init__(self, clock: Clock, *, idle_s: float, mode: str = "traffic") -> None:
        if mode not in MODES:
            raise ValueError(f"session mode must be one of {MODES}")
        self.clock = clock
        self.idle_ms = round(idle_s * 1000)
        self.mode = mode
        self._seen: dict[str, _Seen] = {}

    @property
    def tracking(self) -> bool:
        return self.mode == "traffic"

    def seen(self, imsi: str, address: str) -> None:
        """Traffic from ``imsi`` at ``address`` now."""
        self._seen_at(imsi, address, self.clock.now_ms())

    def _seen_at(self, imsi: str, address: str, now: int) -> None:
        entry = self._seen.get(imsi)
        if entry is None:
            self._seen[imsi] = _Seen(address, now, changed_ms=now)
            return
        if not self._online(entry, now) or entry.address != address:
            entry.changed_ms = now
        entry.address, entry.last_ms = address, now

    def observe(self, protocol: str, peer: str, imsi: str | None, status: int) -> None:
        """A request log record: device traffic of a known SIM is traffic, except a write
        that got no answer (status 0: a SIM without a data session, a dropped request)."""
        if imsi is None or protocol == "api" or (protocol != "dns" and status == 0):
            return
        self.seen(imsi, peer)

    def observe_stored(
        self, protocol: str, writes: Sequence[tuple[str, str, int]], now_ms: int
    ) -> None:
        """Writes of known SIMs stored together at ``now_ms`` (request log records of
        ``(peer, IMSI, bytes)``): each is traffic, as :meth:`observe` would have it."""
        for peer, imsi, _ in writes:
            self._seen_at(imsi, peer, now_ms)

    def opened(self, imsi: str, address: str) -> None:
        """``imsi`` opened a TCP connection from ``address``."""
        self.seen(imsi, address)
        self._seen[imsi].held += 1

    def closed(self, imsi: str) -> None:
        """One of ``imsi``'s TCP connections closed: from now, its idle time counts."""
        entry = self._seen.get(imsi)
        if entry is not None and entry.held > 0:
            entry.held -= 1
            entry.last_ms = self.clock.now_ms()

    def _online(self, entry: _Seen, now: int) -> bool:
        return entry.held > 0 or now - entry.last_ms <= self.idle_ms

    def state(self, sim: Sim) -> SessionState:
        if not self.tracking:
            address = sim.session_address if sim.has_session else None
            return SessionState(sim.has_session, address, sim.modified_ms)
        entry = self._seen.get(sim.imsi)
        usable = sim.status.allows_data and not sim.barred
        if entry is None:
            return SessionState(False, None, sim.modified_ms)
        now = self.clock.now_ms()
        online = usable and self._online(entry, now)
        # offline since the idle window closed (or the SIM lost its right to data)
        went_idle = entry.last_ms + self.idle_ms
        updated = min(entry.changed_ms if online else max(went_idle, entry.changed_ms), now)
        return SessionState(online, entry.address if online else None, updated)

    def reset(self) -> None:
        self._seen.clear()
