"""Bounds on what the emulator writes about itself, so abuse cannot drown or fill its logs
(issue 9, item 6), while a reader still sees what happened.

- :class:`LogThrottle`: a line about one kind of event from one source (a refused connection,
  a malformed request, a refused write) at most once per interval; the others are counted and
  the count is logged when the interval ends.
- :class:`LineBudget`: a rate cap on the request log's lines to the ``harvest.requests`` logger
  (stderr by default); the lines over it are counted and summed up the same way.
- :class:`RotatingLineFile`: the request log's own file, whose size, with the one rotated file
  it keeps, never passes a cap.

Time here is real (monotonic) time, never the emulator clock, which tests freeze and move.
docs/security.md lists every bound.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: Sources a throttle tracks at once, per kind of event; past it, new sources share one entry
#: (``other sources``). Bounds its memory whatever the number of addresses a client has (an
#: IPv6 /64 alone has 2**64) while the usual case, a few noisy sources, keeps its own lines.
MAX_TRACKED_SOURCES: Final = 1024
#: The shared entry of the sources past :data:`MAX_TRACKED_SOURCES`.
OTHER_SOURCES: Final = "other sources"
#: Longest sender-supplied text (a malformed request's reason) put in a log line.
MAX_REASON_CHARS: Final = 160
#: Smallest ``request_log_file_bytes``: each of the two files holds at least ~70 lines.
MIN_REQUEST_LOG_FILE_BYTES: Final = 16 * 1024


def clip(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` on one line and at most ``limit`` characters (``...`` marks a cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@dataclass(slots=True)
class _Window:
    started: float
    logger: logging.Logger
    level: int
    suppressed: int = 0


class LogThrottle:
    """Log a kind of event from a source at most once per ``interval`` seconds, with counts.

    The first event of a (kind, source) pair is logged as given and opens a window of
    ``interval`` seconds; the events inside it are only counted. When the window has ended, the
    next event or :meth:`flush` (called periodically, and with ``everything`` at shutdown)
    logs ``<kind> from <source>: N more in the last T s`` at the same level, so nothing goes
    unseen. At most :data:`MAX_TRACKED_SOURCES` sources per kind are tracked.
    """

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}
        self._sources: dict[str, int] = {}  # tracked sources per kind
        #: Events only counted since start (the tests read it).
        self.suppressed = 0

    def log(
        self,
        logger: logging.Logger,
        level: int,
        kind: str,
        source: str,
        message: str,
        *args: object,
    ) -> bool:
        """Log ``message % args`` unless (``kind``, ``source``) was logged less than an interval
        ago; say whether it was logged. ``kind`` reads as a noun phrase in the count's line."""
        if not logger.isEnabledFor(level):
            return False
        now = self._clock()
        key = (kind, source)
        window = self._windows.get(key)
        if window is None and self._sources.get(kind, 0) >= MAX_TRACKED_SOURCES:
            key = (kind, OTHER_SOURCES)
            window = self._windows.get(key)
        if window is not None:
            if now - window.started < self.interval:
                window.suppressed += 1
                self.suppressed += 1
                return False
            self._close(key, window, now)
        self._windows[key] = _Window(now, logger, level)
        self._sources[kind] = self._sources.get(kind, 0) + 1
        logger.log(level, message, *args)
        return True

    def flush(self, *, everything: bool = False) -> None:
        """Log the count of every window that has ended (or of all, with ``everything``), and
        forget those windows."""
        now = self._clock()
        for key, window in list(self._windows.items()):
            if everything or now - window.started >= self.interval:
                self._close(key, window, now)

    def _close(self, key: tuple[str, str], window: _Window, now: float) -> None:
        del self._windows[key]
        kind, source = key
        left = self._sources[kind] - 1
        if left:
            self._sources[kind] = left
        else:
            del self._sources[kind]
        if window.suppressed:
            window.logger.log(
                window.level,
                "%s from %s: %d more in the last %.1f s (one line per %g s per source)",
                kind,
                source,
                window.suppressed,
                now - window.started,
                self.interval,
            )


class LineBudget:
    """At most ``rate`` lines a second on average, ``rate`` at once (a token bucket); the lines
    refused are counted until :meth:`take_hidden` collects the count."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = rate
        self._at = clock()
        self._hidden = 0

    def allows(self) -> bool:
        """Spend one line if the budget has one."""
        now = self._clock()
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self._hidden += 1
        return False

    def take_hidden(self) -> int:
        """Lines refused since the last call."""
        hidden, self._hidden = self._hidden, 0
        return hidden


class RotatingLineFile:
    """Lines appended to ``path``; ``path`` and its predecessor ``path.1`` never hold more than
    ``max_bytes`` together.

    A line that would take ``path`` past half of ``max_bytes`` first moves it to ``path.1``
    (replacing the older one) and starts an empty ``path``: so at least the last half of the
    cap, less one line, is always kept. Each line is written with one unbuffered ``write``, so
    a crash loses none that were written. A line longer than half the cap is cut to fit.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.rotated = path.with_name(path.name + ".1")
        self.half = max_bytes // 2
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab", buffering=0)
        self._size = os.fstat(self._file.fileno()).st_size
        #: Times the file was moved to ``path.1``.
        self.rotations = 0

    def write(self, line: str) -> None:
        data = line.encode("utf-8", "replace")[: self.half - 1] + b"\n"
        if self._size + len(data) > self.half:
            self._file.close()
            os.replace(self.path, self.rotated)
            self._file = self.path.open("ab", buffering=0)
            self._size = 0
            self.rotations += 1
        self._file.write(data)
        self._size += len(data)

    def close(self) -> None:
        self._file.close()
