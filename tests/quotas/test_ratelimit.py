"""Rate ceilings: the per-SIM write bucket and the per-minute API budget (spec A2, B9)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quotas.ratelimit import (
    DEFAULT_API_CALLS_PER_MINUTE,
    DEFAULT_DEVICE_WRITE_BURST,
    DEFAULT_DEVICE_WRITES_PER_SECOND,
    MINUTE_MS,
    BudgetDecision,
    Decision,
    MinuteBudget,
    RateLimiter,
    RateSettings,
    TokenBucket,
    headers,
)

#: 2025-03-31T00:00:00Z, the start of a minute.
START = 1_743_379_200_000


class FakeClock:
    """The clock seam: a time that only the test moves."""

    def __init__(self, now: int = START) -> None:
        self.now = now

    def now_ms(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- settings ----------------------------------------------------------------------------------


def test_default_settings_are_generous_and_on() -> None:
    defaults = RateSettings()
    assert defaults.enabled
    assert defaults.device_writes_per_second == DEFAULT_DEVICE_WRITES_PER_SECOND == 100
    assert defaults.device_write_burst == DEFAULT_DEVICE_WRITE_BURST == 1000
    assert defaults.api_calls_per_minute == DEFAULT_API_CALLS_PER_MINUTE == 1000
    assert defaults.counting == "concurrent"


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"device_writes_per_second": 0}, id="zero-rate"),
        pytest.param({"device_writes_per_second": Fraction(-1, 2)}, id="negative-rate"),
        pytest.param({"device_write_burst": 0}, id="zero-burst"),
        pytest.param({"api_calls_per_minute": 0}, id="zero-api-budget"),
        pytest.param({"counting": "sequential"}, id="unknown-counting"),
    ],
)
def test_settings_refuse_values_that_allow_nothing(fields: dict[str, int | Fraction]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RateSettings(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("capacity", "rate", "threshold"),
    [
        pytest.param(0, 1, 10, id="zero-capacity"),
        pytest.param(1, 0, 10, id="zero-rate"),
        pytest.param(1, 1, 0, id="zero-threshold"),
    ],
)
def test_bucket_refuses_bad_parameters(
    clock: FakeClock, capacity: int, rate: int, threshold: int
) -> None:
    with pytest.raises(ValueError, match="must be"):
        TokenBucket(clock, capacity, rate, threshold)


@pytest.mark.parametrize(
    ("limit", "threshold"),
    [pytest.param(0, 10, id="zero-limit"), pytest.param(1, 0, id="zero-threshold")],
)
def test_budget_refuses_bad_parameters(clock: FakeClock, limit: int, threshold: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        MinuteBudget(clock, limit, threshold)


# --- token bucket ------------------------------------------------------------------------------


def test_a_new_bucket_allows_its_whole_burst_then_refuses(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, capacity=5, per_second=2)
    decisions = [bucket.take("imsi") for _ in range(5)]
    assert [d.allowed for d in decisions] == [True] * 5
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    assert [d.wait_ms for d in decisions] == [0, 0, 0, 0, 500]
    refused = bucket.take("imsi")
    assert refused == Decision(allowed=False, remaining=0, wait_ms=500)
    assert refused.retry_after == 1


def test_a_refused_take_removes_nothing_and_the_wait_is_exact(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, capacity=1, per_second=4)
    assert bucket.take("imsi").allowed
    clock.advance(100)
    assert bucket.take("imsi") == Decision(False, 0, 150)
    clock.advance(149)
    assert bucket.take("imsi") == Decision(False, 0, 1)
    clock.advance(1)
    assert bucket.take("imsi") == Decision(True, 0, 250)


def test_refill_stops_at_the_capacity(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, capacity=3, per_second=10)
    for _ in range(3):
        bucket.take("imsi")
    clock.advance(3_600_000)
    assert [bucket.take("imsi").allowed for _ in range(4)] == [True, True, True, False]


def test_a_take_of_several_tokens_is_all_or_nothing(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, capacity=10, per_second=1)
    assert bucket.take("imsi", 7) == Decision(True, 3, 4000)
    assert bucket.take("imsi", 4) == Decision(False, 3, 1000)
    assert bucket.take("imsi", 3) == Decision(True, 0, 3000)


@pytest.mark.parametrize("n", [pytest.param(0, id="zero"), pytest.param(11, id="over-capacity")])
def test_a_take_that_could_never_be_allowed_is_an_error(clock: FakeClock, n: int) -> None:
    with pytest.raises(ValueError, match="between 1 and the capacity"):
        TokenBucket(clock, capacity=10, per_second=1).take("imsi", n)


def test_a_fractional_rate_refills_exactly(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, capacity=1, per_second=Fraction(1, 10))
    assert bucket.take("imsi").allowed
    refused = bucket.take("imsi")
    assert refused == Decision(False, 0, 10_000)
    assert refused.retry_after == 10
    clock.advance(9_999)
    assert not bucket.take("imsi").allowed
    clock.advance(1)
    assert bucket.take("imsi").allowed


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    assert Decision(True, 1, 0).retry_after == 0
    assert Decision(False, 0, 1).retry_after == 1
    assert Decision(False, 0, 1000).retry_after == 1
    assert Decision(False, 0, 1001).retry_after == 2


def test_keys_have_their_own_buckets(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, capacity=1, per_second=1)
    assert bucket.take("a").allowed
    assert not bucket.take("a").allowed
    assert bucket.take("b").allowed


def test_a_greedy_sender_gets_exactly_the_rate_over_a_long_run(clock: FakeClock) -> None:
    """No drift: 7/3 tokens per second, each taken as soon as it is due, for over 12 hours."""
    rate = Fraction(7, 3)
    bucket = TokenBucket(clock, capacity=2, per_second=rate)
    allowed = 0
    while allowed < 110_000:
        decision = bucket.take("imsi")
        if decision.allowed:
            allowed += 1
        else:
            clock.advance(decision.wait_ms)
    elapsed = clock.now - START
    assert elapsed > 12 * 3_600_000
    assert allowed == 2 + (rate * elapsed) // 1000


def test_setting_the_clock_back_refills_nothing(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, capacity=2, per_second=1)
    bucket.take("imsi", 2)
    clock.advance(-60_000)
    assert not bucket.take("imsi").allowed
    clock.advance(999)
    assert not bucket.take("imsi").allowed
    clock.advance(1)
    assert bucket.take("imsi") == Decision(True, 0, 1000)


def test_reset_refills_one_key_or_all(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, capacity=1, per_second=1)
    for key in ("a", "b", "c"):
        bucket.take(key)
    bucket.reset("a")
    assert bucket.take("a").allowed
    assert not bucket.take("b").allowed
    bucket.reset()
    assert len(bucket) == 0
    assert bucket.take("b").allowed
    assert bucket.take("c").allowed


def test_full_buckets_are_forgotten_past_the_threshold(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, capacity=2, per_second=1, prune_threshold=4)
    for key in ("a", "b", "c", "d"):
        bucket.take(key)
    assert len(bucket) == 4
    clock.advance(1000)  # a, b, c and d are full again
    bucket.take("e")  # a fifth key: the prune forgets a to d and keeps e
    assert len(bucket) == 1
    # Forgetting changed no answer: a forgotten key still has its whole burst.
    assert bucket.take("a", 2) == Decision(True, 0, 2000)
    assert bucket.take("e") == Decision(True, 0, 1000)


def test_busy_buckets_are_kept_and_pruning_backs_off(clock: FakeClock) -> None:
    bucket = TokenBucket(clock, capacity=100, per_second=1, prune_threshold=2)
    for i in range(10):
        bucket.take(f"k{i}")  # none refills within the test: all stay
    assert len(bucket) == 10
    for i in range(10):
        assert bucket.take(f"k{i}").remaining == 98


# --- minute budget -----------------------------------------------------------------------------


def test_the_budget_counts_down_then_refuses(clock: FakeClock) -> None:
    budget = MinuteBudget(clock, limit=3)
    clock.advance(15_000)
    decisions = [budget.take("op") for _ in range(4)]
    assert decisions == [
        BudgetDecision(True, 3, 2, 45),
        BudgetDecision(True, 3, 1, 45),
        BudgetDecision(True, 3, 0, 45),
        BudgetDecision(False, 3, 0, 45),
    ]


def test_the_window_is_the_clocks_minute(clock: FakeClock) -> None:
    budget = MinuteBudget(clock, limit=1)
    clock.advance(MINUTE_MS - 1)
    assert budget.take("op").allowed
    exhausted = budget.take("op")
    assert not exhausted.allowed
    assert exhausted.seconds_before_refresh == 1
    clock.advance(1)
    assert budget.take("op") == BudgetDecision(True, 1, 0, 60)


def test_calls_a_moment_apart_across_the_boundary_count_in_different_windows(
    clock: FakeClock,
) -> None:
    budget = MinuteBudget(clock, limit=2)
    clock.advance(59_900)
    assert budget.take("op").remaining == 1
    assert budget.take("op").remaining == 0
    clock.advance(200)
    assert budget.take("op").remaining == 1


@pytest.mark.parametrize(
    ("offset_ms", "seconds"),
    [
        pytest.param(0, 60, id="start"),
        pytest.param(500, 60, id="half-second-rounds-up"),
        pytest.param(1000, 59, id="one-second"),
        pytest.param(59_001, 1, id="last-second"),
        pytest.param(59_999, 1, id="last-millisecond"),
    ],
)
def test_seconds_before_refresh_rounds_up(clock: FakeClock, offset_ms: int, seconds: int) -> None:
    clock.advance(offset_ms)
    assert MinuteBudget(clock, limit=5).take("op").seconds_before_refresh == seconds


def test_headers_carry_soracoms_names() -> None:
    assert headers(BudgetDecision(False, 600, 0, 17)) == {
        "X-Soracom-Ratelimit-Limit": "600",
        "X-Soracom-Ratelimit-Remaining": "0",
        "X-Soracom-Ratelimit-Seconds-Before-Refresh": "17",
    }


def test_keys_have_their_own_budgets_and_peek_counts_nothing(clock: FakeClock) -> None:
    budget = MinuteBudget(clock, limit=1)
    assert budget.peek("a") == BudgetDecision(True, 1, 1, 60)
    assert budget.take("a").allowed
    assert budget.peek("a") == BudgetDecision(False, 1, 0, 60)
    assert budget.take("b").allowed
    budget.reset("a")
    assert budget.take("a").allowed
    budget.reset()
    assert len(budget) == 0
    assert budget.take("b").allowed


def test_a_clock_set_back_counts_in_its_new_minute(clock: FakeClock) -> None:
    budget = MinuteBudget(clock, limit=1)
    budget.take("op")
    clock.advance(-MINUTE_MS)
    assert budget.take("op").allowed


def test_keys_of_past_windows_are_forgotten_past_the_threshold(clock: FakeClock) -> None:
    budget = MinuteBudget(clock, limit=1, prune_threshold=2)
    budget.take("a")
    budget.take("b")
    clock.advance(MINUTE_MS)
    budget.take("c")
    assert len(budget) == 1
    assert not budget.take("c").allowed
    assert budget.take("a").allowed


def test_pruning_the_budget_backs_off_when_every_key_is_current(clock: FakeClock) -> None:
    budget = MinuteBudget(clock, limit=1, prune_threshold=1)
    for key in "abcdef":
        budget.take(key)
    assert len(budget) == 6
    assert not any(budget.take(key).allowed for key in "abcdef")


# --- both, from settings -----------------------------------------------------------------------


def test_the_limiter_applies_both_ceilings_to_every_request(clock: FakeClock) -> None:
    limiter = RateLimiter(
        RateSettings(
            device_writes_per_second=1, device_write_burst=2, api_calls_per_minute=2,
            counting="every",
        ),
        clock,
    )  # fmt: skip
    assert [limiter.device_write("imsi").allowed for _ in range(3)] == [True, True, False]
    assert [limiter.api_call("op").allowed for _ in range(3)] == [True, True, False]
    limiter.reset()
    assert limiter.device_write("imsi", 2).allowed
    assert limiter.api_call("op").remaining == 1


def test_by_default_only_overlapping_requests_count(clock: FakeClock) -> None:
    """A client that waits for each answer is never limited, however many requests it sends
    without the clock moving; requests that overlap another of their key are counted."""
    limiter = RateLimiter(
        RateSettings(device_writes_per_second=1, device_write_burst=2, api_calls_per_minute=2),
        clock,
    )
    for _ in range(10_000):  # sequential: each answered before the next
        assert limiter.device_write("imsi").allowed
        limiter.device_done("imsi")
        decision = limiter.api_call("op")
        assert (decision.allowed, decision.remaining) == (True, 2)
        limiter.api_done("op")
    # three at once: the first is free, the next two overlap and take the burst, then refused
    assert [limiter.device_write("imsi").allowed for _ in range(4)] == [True, True, True, False]
    assert limiter.device_write("other").allowed  # another SIM overlaps nothing
    for _ in range(3):
        limiter.device_done("imsi")
    assert limiter.device_write("imsi") == Decision(True, 0, 0)  # alone again: not counted
    limiter.device_done("imsi")
    calls = [limiter.api_call("op") for _ in range(4)]
    assert [c.allowed for c in calls] == [True, True, True, False]
    assert [c.remaining for c in calls] == [2, 1, 0, 0]
    for _ in range(4):  # refused calls end too
        limiter.api_done("op")
    assert len(limiter.calls_in_flight) == 0
    assert len(limiter.writes_in_flight) == 1  # "other" is still being served


def test_a_refused_write_is_over_at_once(clock: FakeClock) -> None:
    limiter = RateLimiter(
        RateSettings(device_write_burst=1, device_writes_per_second=1, counting="every"), clock
    )
    assert limiter.device_write("imsi").allowed
    assert not limiter.device_write("imsi").allowed  # not in flight: no device_done owed
    limiter.device_done("imsi")
    assert len(limiter.writes_in_flight) == 0


def test_a_disabled_limiter_allows_everything_and_counts_nothing(clock: FakeClock) -> None:
    limiter = RateLimiter(
        RateSettings(
            enabled=False, device_writes_per_second=1, device_write_burst=2, api_calls_per_minute=2
        ),
        clock,
    )
    clock.advance(30_000)
    for _ in range(1000):
        assert limiter.device_write("imsi") == Decision(True, 2, 0)
        assert limiter.api_call("op") == BudgetDecision(True, 2, 2, 30)
    assert len(limiter.device_writes) == 0
    assert len(limiter.api_calls) == 0


# --- properties --------------------------------------------------------------------------------

KEYS = ("a", "b", "c")
rates = st.fractions(min_value=Fraction(1, 10), max_value=50, max_denominator=10)
take_op = st.tuples(st.just("take"), st.sampled_from(KEYS), st.integers(1, 5))
move_op = st.tuples(st.just("move"), st.sampled_from(KEYS), st.integers(-3000, 5000))
forward_op = st.tuples(st.just("move"), st.sampled_from(KEYS), st.integers(0, 5000))
#: Move to 1 ms before, or exactly at, the moment the last answer said to wait for.
due_op = st.tuples(st.just("due"), st.sampled_from(KEYS), st.integers(-1, 0))


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 5),
    rate=rates,
    threshold=st.integers(1, 3),
    ops=st.lists(st.one_of(take_op, move_op), max_size=80),
)
def test_a_key_never_gets_more_than_its_burst_plus_the_rate_times_the_time(
    capacity: int,
    rate: Fraction,
    threshold: int,
    ops: list[tuple[str, str, int]],
) -> None:
    """Over any stretch of the run, the tokens allowed to a key are at most ``capacity`` plus
    ``rate`` times the forward distance the clock travelled (jumps back included)."""
    clock = FakeClock()
    bucket = TokenBucket(clock, capacity, rate, prune_threshold=threshold)
    travelled = 0
    allowed: dict[str, list[tuple[int, int]]] = {key: [] for key in KEYS}
    for kind, key, value in ops:
        if kind == "move":
            clock.advance(value)
            travelled += max(0, value)
        elif bucket.take(key, min(value, capacity)).allowed:
            allowed[key].append((travelled, min(value, capacity)))
    for takes in allowed.values():
        for i in range(len(takes)):
            total = 0
            for j in range(i, len(takes)):
                total += takes[j][1]
                assert total <= capacity + rate * (takes[j][0] - takes[i][0]) / 1000


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 5),
    rate=rates,
    threshold=st.integers(1, 3),
    ops=st.lists(st.one_of(take_op, forward_op, due_op), max_size=80),
)
def test_the_bucket_agrees_with_a_naive_fraction_model(
    capacity: int,
    rate: Fraction,
    threshold: int,
    ops: list[tuple[str, str, int]],
) -> None:
    """While the clock moves forward, the bucket answers as a model that keeps each key's level
    as a Fraction and never forgets a key: pruning is invisible."""
    clock = FakeClock()
    bucket = TokenBucket(clock, capacity, rate, prune_threshold=threshold)
    levels: dict[str, tuple[Fraction, int]] = {}
    wait = 0
    for kind, key, value in ops:
        if kind != "take":
            clock.advance(value if kind == "move" else max(0, wait + value))
            continue
        n = min(value, capacity)
        level, since = levels.get(key, (Fraction(capacity), clock.now))
        level = min(Fraction(capacity), level + rate * (clock.now - since) / 1000)
        allowed = level >= n
        if allowed:
            level -= n
        levels[key] = (level, clock.now)
        short = n - level
        wait = int(-(-short * 1000 // rate)) if short > 0 else 0
        assert bucket.take(key, n) == Decision(allowed, int(level), wait)
