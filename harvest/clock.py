"""The one emulator clock (spec B10).

Every timestamp, token expiry, day boundary and retention cut-off reads :class:`Clock`. The
emulator's clock follows wall time with an offset, and tests can freeze it, set it or advance it
through the control plane. The rate ceilings alone measure real time (:class:`MonotonicClock`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current UNIX time in milliseconds."""

    def now_ms(self) -> int: ...


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class MonotonicClock:
    """Real elapsed time in milliseconds from an arbitrary origin, never set, frozen or moved:
    what the rate ceilings measure throughput with (spec B9)."""

    def now_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class ClockState:
    now_ms: int
    frozen: bool


class EmulatorClock:
    """Wall time plus an offset, which can be frozen, set and advanced.

    Frozen, it answers the same instant until it is set or advanced, so two writes at a frozen
    instant share one millisecond (and the second overwrites the first, spec A1).
    """

    def __init__(self, source: Callable[[], int] = wall_ms) -> None:
        self._source = source
        self._offset_ms = 0
        self._frozen_at: int | None = None

    def now_ms(self) -> int:
        if self._frozen_at is not None:
            return self._frozen_at
        return self._source() + self._offset_ms

    def state(self) -> ClockState:
        return ClockState(self.now_ms(), self._frozen_at is not None)

    def set(self, now_ms: int | None = None, frozen: bool | None = None) -> ClockState:
        """Jump to ``now_ms`` (if given) and freeze or unfreeze (if given)."""
        target = self.now_ms() if now_ms is None else now_ms
        freeze = (self._frozen_at is not None) if frozen is None else frozen
        if freeze:
            self._frozen_at = target
        else:
            self._frozen_at = None
            self._offset_ms = target - self._source()
        return self.state()

    def advance(self, milliseconds: int) -> ClockState:
        """Move forward; a frozen clock stays frozen at the new instant."""
        if milliseconds < 0:
            raise ValueError("the clock only moves forward")
        if self._frozen_at is not None:
            self._frozen_at += milliseconds
        else:
            self._offset_ms += milliseconds
        return self.state()

    def reset(self) -> None:
        self._offset_ms = 0
        self._frozen_at = None
