"""Rate ceilings: a per-SIM token bucket on device writes and a per-key minute budget on the
management API (spec A2, B9). Pure code: time comes from an injected :class:`Clock`.

SORACOM publishes neither figure nor algorithm. For the management API it says only that each
"API group" (per operator and API path, https://users.soracom.io/ja-jp/tools/api/limitations/)
has a maximum number of requests per minute, that a client over it gets ``429`` and must wait
up to one minute, and that every response carries the ``X-Soracom-Ratelimit-*`` headers (notes
real-service.md section 2, source S8). For device writes it publishes no ceiling at all. Every
default below is therefore **the emulator's choice**.

**What the ceilings measure** (spec B9; issue 8, item 2). They exist to stop runaway devices
and clients, so they measure real throughput: the server passes a monotonic clock, never the
emulator clock, so freezing, setting or advancing the emulator clock does not touch them. And
by default (``counting="concurrent"``) they count only the requests that *overlap*: a request
that arrives while another request of the same SIM (device writes) or operator (API) is still
being served. A client that waits for each answer before it sends the next, as firmware does
(spec B3) and as a test suite's loop does, is therefore never limited, however fast loopback
lets it go; floods are (pipelined or parallel requests: many connections from one SIM, a
datagram burst, a parallel API crawler). ``counting="every"`` counts every request, for a test
that wants a sequential client to meet a lowered ceiling.

Nothing here awaits, so one call is atomic with respect to other asyncio tasks; the objects are
not thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Final

from harvest.clock import Clock

#: The emulator's choice (SORACOM publishes no per-SIM write ceiling, spec A2): 100 overlapping
#: writes per second per SIM sustained. A device on a cellular link waits for each ``201``
#: (spec B3), so its writes never overlap; only a flood (a device that pipelines, or a load
#: generator with many connections from one SIM) meets it.
DEFAULT_DEVICE_WRITES_PER_SECOND: Final = 100
#: The emulator's choice: a burst of 1,000 overlapping writes per SIM.
DEFAULT_DEVICE_WRITE_BURST: Final = 1000
#: The emulator's choice (SORACOM: "per minute, per API group", figure unpublished, spec A2):
#: 1,000 overlapping calls per minute per operator; soracom-cli and a test suite's client send
#: one call at a time and never meet it.
DEFAULT_API_CALLS_PER_MINUTE: Final = 1000
#: Which requests the ceilings count (see the module docstring).
COUNTING: Final = ("concurrent", "every")
#: The emulator's choice: how many keys a limiter holds before it forgets the idle ones.
DEFAULT_PRUNE_THRESHOLD: Final = 10_000

#: Response headers on every management API reply (notes real-service.md section 2, S8).
LIMIT_HEADER: Final = "X-Soracom-Ratelimit-Limit"
REMAINING_HEADER: Final = "X-Soracom-Ratelimit-Remaining"
SECONDS_BEFORE_REFRESH_HEADER: Final = "X-Soracom-Ratelimit-Seconds-Before-Refresh"

MINUTE_MS: Final = 60_000


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class RateSettings:
    """The rate ceilings of spec B9; ``enabled=False`` turns both off.

    ``device_writes_per_second`` may be a :class:`~fractions.Fraction` (``Fraction(1, 10)`` is
    one write every ten seconds). The key of the API budget is the caller's: SORACOM counts per
    operator and API path (or "API group"). ``counting`` is ``concurrent`` (only overlapping
    requests count) or ``every``.
    """

    enabled: bool = True
    device_writes_per_second: int | Fraction = DEFAULT_DEVICE_WRITES_PER_SECOND
    device_write_burst: int = DEFAULT_DEVICE_WRITE_BURST
    api_calls_per_minute: int = DEFAULT_API_CALLS_PER_MINUTE
    counting: str = "concurrent"

    def __post_init__(self) -> None:
        if self.counting not in COUNTING:
            raise ValueError(f"counting must be one of {', '.join(COUNTING)}")
        if self.device_writes_per_second <= 0:
            raise ValueError("device_writes_per_second must be positive")
        if self.device_write_burst < 1:
            raise ValueError("device_write_burst must be at least 1")
        if self.api_calls_per_minute < 1:
            raise ValueError("api_calls_per_minute must be at least 1")


# --- device writes: a token bucket per SIM ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of :meth:`TokenBucket.take`.

    ``remaining`` is the whole tokens left after this take (rounded down). ``wait_ms`` is how
    long from now until a take of the same size would be allowed, assuming no other take of the
    key: 0 when it would be allowed now; for a refused take, the time to retry.
    """

    allowed: bool
    remaining: int
    wait_ms: int

    @property
    def retry_after(self) -> int:
        """``wait_ms`` in whole seconds, rounded up (``Retry-After`` takes an integer,
        RFC 9110 section 10.2.3): at least 1 whenever there is anything to wait for."""
        return _ceil_div(self.wait_ms, 1000)


class TokenBucket:
    """A token bucket per key (spec B9: the per-SIM device write ceiling).

    Each key's bucket holds at most ``capacity`` tokens (the burst), refills at ``per_second``
    tokens per second of its clock and starts full. A take of ``n`` tokens is allowed when
    the bucket holds ``n``; a refused take removes nothing. Over any stretch of time a key is
    therefore allowed at most ``capacity + per_second * elapsed`` tokens.

    Arithmetic is exact: a rate of ``p/q`` tokens per second is kept in integer units of
    ``1/(1000 q)`` token, so one millisecond refills exactly ``p`` units and nothing drifts.

    Memory is bounded: when more than ``prune_threshold`` keys are held, the buckets that are
    full now are forgotten. While the clock moves forward that changes no answer (a new bucket
    starts full); after the clock is set back, a forgotten bucket answers as a full one, which
    stays within the bound above. The next prune
    waits until the count doubles, so the cost per take stays constant on average and memory
    stays under about twice the number of keys active within ``capacity / per_second`` seconds
    (or ``prune_threshold``, whichever is larger).
    """

    def __init__(
        self,
        clock: Clock,
        capacity: int,
        per_second: int | Fraction,
        prune_threshold: int = DEFAULT_PRUNE_THRESHOLD,
    ) -> None:
        rate = Fraction(per_second)
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if rate <= 0:
            raise ValueError("per_second must be positive")
        if prune_threshold < 1:
            raise ValueError("prune_threshold must be at least 1")
        self._clock = clock
        self.capacity = capacity
        self.per_second = rate
        #: Units per token, and units refilled per millisecond.
        self._unit = 1000 * rate.denominator
        self._per_ms = rate.numerator
        self._full = capacity * self._unit
        self._prune_threshold = prune_threshold
        self._prune_at = prune_threshold
        #: key -> (level in units, the last instant the level was brought up to date)
        self._buckets: dict[str, tuple[int, int]] = {}

    def __len__(self) -> int:
        """How many keys are held (full buckets may have been forgotten)."""
        return len(self._buckets)

    def _level(self, key: str, now: int) -> int:
        state = self._buckets.get(key)
        if state is None:
            return self._full
        level, since = state
        if now <= since:
            return level
        return min(self._full, level + (now - since) * self._per_ms)

    def take(self, key: str, n: int = 1) -> Decision:
        """Take ``n`` tokens (``1 <= n <= capacity``) from ``key``'s bucket now.

        Raises :class:`ValueError` for an ``n`` outside that range: it could never be allowed.
        """
        if not 1 <= n <= self.capacity:
            raise ValueError(f"n must be between 1 and the capacity ({self.capacity})")
        now = self._clock.now_ms()
        level = self._level(key, now)
        need = n * self._unit
        allowed = level >= need
        if allowed:
            level -= need
        # The level is below full now (n >= 1 was taken, or fewer than n <= capacity are held).
        fresh = key not in self._buckets
        self._buckets[key] = (level, now)
        if fresh and len(self._buckets) > self._prune_at:
            self._prune(now)
        short = need - level
        wait = _ceil_div(short, self._per_ms) if short > 0 else 0
        return Decision(allowed, level // self._unit, wait)

    def peek(self, key: str) -> int:
        """The whole tokens ``key`` holds now, taking nothing."""
        return self._level(key, self._clock.now_ms()) // self._unit

    def _prune(self, now: int) -> None:
        for key in [k for k in self._buckets if self._level(k, now) == self._full]:
            del self._buckets[key]
        self._prune_at = max(self._prune_threshold, 2 * len(self._buckets))

    def reset(self, key: str | None = None) -> None:
        """Refill one key's bucket, or every bucket (``None``)."""
        if key is None:
            self._buckets.clear()
            self._prune_at = self._prune_threshold
        else:
            self._buckets.pop(key, None)


# --- management API: a per-minute budget per key ---------------------------------------------
@dataclass(frozen=True, slots=True)
class BudgetDecision:
    """The answer of :meth:`MinuteBudget.take`, and what the ``X-Soracom-Ratelimit-*`` headers
    say: the ``limit`` per window, the calls ``remaining`` in it after this one, and the whole
    seconds until the window ends (rounded up, so always between 1 and 60)."""

    allowed: bool
    limit: int
    remaining: int
    seconds_before_refresh: int


def headers(decision: BudgetDecision) -> dict[str, str]:
    """The three ``X-Soracom-Ratelimit-*`` response headers for ``decision`` (S8)."""
    return {
        LIMIT_HEADER: str(decision.limit),
        REMAINING_HEADER: str(decision.remaining),
        SECONDS_BEFORE_REFRESH_HEADER: str(decision.seconds_before_refresh),
    }


def _seconds_before_refresh(now: int) -> int:
    return _ceil_div(MINUTE_MS - now % MINUTE_MS, 1000)


class MinuteBudget:
    """At most ``limit`` calls per key in each minute of its clock (spec A2, B9).

    The window is fixed and aligned to the clock's minute (``now_ms // 60000``): **the
    emulator's choice**, since SORACOM's algorithm is unpublished. It matches what SORACOM says
    a client sees: a count that refreshes at a moment the ``Seconds-Before-Refresh`` header
    names, and a wait of at most one minute after a ``429``. A refused call does not count.
    A key whose window has passed is forgotten once more than ``prune_threshold`` keys are
    held; that changes no answer.
    """

    def __init__(
        self, clock: Clock, limit: int, prune_threshold: int = DEFAULT_PRUNE_THRESHOLD
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if prune_threshold < 1:
            raise ValueError("prune_threshold must be at least 1")
        self._clock = clock
        self.limit = limit
        self._prune_threshold = prune_threshold
        self._prune_at = prune_threshold
        #: key -> (window number, calls counted in it)
        self._counts: dict[str, tuple[int, int]] = {}

    def __len__(self) -> int:
        """How many keys are held (keys of past windows may have been forgotten)."""
        return len(self._counts)

    def take(self, key: str) -> BudgetDecision:
        """Count one call of ``key`` now, unless its budget for this minute is spent."""
        now = self._clock.now_ms()
        window = now // MINUTE_MS
        state = self._counts.get(key)
        used = state[1] if state is not None and state[0] == window else 0
        allowed = used < self.limit
        if allowed:
            used += 1
            self._counts[key] = (window, used)
            if state is None and len(self._counts) > self._prune_at:
                self._prune(window)
        return BudgetDecision(allowed, self.limit, self.limit - used, _seconds_before_refresh(now))

    def peek(self, key: str) -> BudgetDecision:
        """What :meth:`take` would report for ``key`` now, counting nothing."""
        now = self._clock.now_ms()
        state = self._counts.get(key)
        used = state[1] if state is not None and state[0] == now // MINUTE_MS else 0
        return BudgetDecision(
            used < self.limit, self.limit, self.limit - used, _seconds_before_refresh(now)
        )

    def _prune(self, window: int) -> None:
        for key in [k for k, (w, _) in self._counts.items() if w != window]:
            del self._counts[key]
        self._prune_at = max(self._prune_threshold, 2 * len(self._counts))

    def reset(self, key: str | None = None) -> None:
        """Restore one key's budget, or every key's (``None``)."""
        if key is None:
            self._counts.clear()
            self._prune_at = self._prune_threshold
        else:
            self._counts.pop(key, None)


# --- requests being served ----------------------------------------------------------------------
class InFlight:
    """How many requests of each key are being served right now."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def begin(self, key: str) -> int:
        """Count one more request of ``key``; how many were already in flight."""
        count = self._counts.get(key, 0)
        self._counts[key] = count + 1
        return count

    def end(self, key: str) -> None:
        """One request of ``key`` has been answered (a key not held is ignored: a reset)."""
        count = self._counts.get(key, 0) - 1
        if count > 0:
            self._counts[key] = count
        else:
            self._counts.pop(key, None)

    def __len__(self) -> int:
        return len(self._counts)

    def reset(self) -> None:
        self._counts.clear()


# --- both, switched by RateSettings ----------------------------------------------------------
class RateLimiter:
    """The two ceilings of spec B9 as :class:`RateSettings` configures them.

    Every call of :meth:`device_write` that is allowed, and every call of :meth:`api_call`
    whatever its answer, must be matched by one call of :meth:`device_done` or
    :meth:`api_done` once the request is answered: that is how the limiter tells a request that
    overlaps another of its key from one that does not (see the module docstring).

    With ``enabled=False`` nothing is counted and every call is allowed; the API decision then
    still reports the configured limit, with the whole budget remaining.
    """

    def __init__(
        self,
        settings: RateSettings,
        clock: Clock,
        prune_threshold: int = DEFAULT_PRUNE_THRESHOLD,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._every = settings.counting == "every"
        self.device_writes = TokenBucket(
            clock,
            settings.device_write_burst,
            settings.device_writes_per_second,
            prune_threshold,
        )
        #: The one answer while ceilings are off (immutable: shared, not made per write).
        self._unlimited = Decision(True, self.device_writes.capacity, 0)
        self.api_calls = MinuteBudget(clock, settings.api_calls_per_minute, prune_threshold)
        self.writes_in_flight = InFlight()
        self.calls_in_flight = InFlight()

    def device_write(self, imsi: str, n: int = 1) -> Decision:
        """Admit one write request of the SIM: ``n`` tokens from its bucket when it counts (see
        :meth:`TokenBucket.take`). A refused request is over at once; an allowed one is in
        flight until :meth:`device_done`."""
        if not self.settings.enabled:
            return self._unlimited
        overlapping = self.writes_in_flight.begin(imsi) > 0
        if not (overlapping or self._every):
            return Decision(True, self.device_writes.peek(imsi), 0)
        decision = self.device_writes.take(imsi, n)
        if not decision.allowed:
            self.writes_in_flight.end(imsi)
        return decision

    def device_done(self, imsi: str) -> None:
        """An allowed write of the SIM has been answered."""
        if self.settings.enabled:
            self.writes_in_flight.end(imsi)

    def api_call(self, key: str) -> BudgetDecision:
        """One management API call of ``key`` (operator, or operator and API group) begins;
        counted against its budget when it counts (see :meth:`MinuteBudget.take`). Call
        :meth:`api_done` when it has been answered, whatever this said."""
        if not self.settings.enabled:
            limit = self.api_calls.limit
            return BudgetDecision(True, limit, limit, _seconds_before_refresh(self._clock.now_ms()))
        overlapping = self.calls_in_flight.begin(key) > 0
        if not (overlapping or self._every):
            return replace(self.api_calls.peek(key), allowed=True)
        return self.api_calls.take(key)

    def api_done(self, key: str) -> None:
        if self.settings.enabled:
            self.calls_in_flight.end(key)

    def reset(self) -> None:
        """Refill every bucket and budget (requests in flight stay counted: they are)."""
        self.device_writes.reset()
        self.api_calls.reset()
