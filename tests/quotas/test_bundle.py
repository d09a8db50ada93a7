"""The daily write bundle: 2,000 writes per SIM per UTC day (spec A2, A3, B8)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quotas.bundle import (
    INCLUDED_WRITES_PER_DAY,
    CountSource,
    DailyBundle,
    Quota,
    QuotaPolicy,
    Reservation,
    StaticCounts,
)
from quotas.calendar import DAY_MS, utc_day

#: 2025-03-31T00:00:00Z, a UTC midnight.
MIDNIGHT = 1_743_379_200_000
#: Noon of that day.
NOON = MIDNIGHT + DAY_MS // 2
DAY = "2025-03-31"
A, B = "001010000000001", "001010000000002"


class FakeClock:
    """The clock seam: a time that only the test moves."""

    def __init__(self, now: int = NOON) -> None:
        self.now = now

    def now_ms(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


class CountingSource:
    """A :class:`CountSource` that remembers which days it was asked for."""

    def __init__(self, days: Mapping[str, Mapping[str, int]]) -> None:
        self.static = StaticCounts(days)
        self.asked: list[str] = []

    def counts_for_day(self, day: str) -> Mapping[str, int]:
        self.asked.append(day)
        return self.static.counts_for_day(day)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def bundle_with(
    clock: FakeClock, used: Mapping[str, int], policy: QuotaPolicy = QuotaPolicy.BILL
) -> DailyBundle:
    """A bundle whose SIMs have already written ``used`` today."""
    return DailyBundle(clock, StaticCounts({DAY: used}), policy)


# --- the bundle --------------------------------------------------------------------------------


def test_the_bundle_is_2000_writes_per_sim_per_day(clock: FakeClock) -> None:
    assert INCLUDED_WRITES_PER_DAY == 2000
    assert DailyBundle(clock).usage(A) == Quota(
        imsi=A, day=DAY, used=0, remaining=2000, included=2000, next_reset_ms=MIDNIGHT + DAY_MS
    )


@pytest.mark.parametrize("policy", list(QuotaPolicy), ids=str)
@pytest.mark.parametrize(
    ("before", "included", "overage"),
    [
        pytest.param(1998, 1, 0, id="1999th"),
        pytest.param(1999, 1, 0, id="2000th"),
        pytest.param(2000, 0, 1, id="2001st"),
        pytest.param(2001, 0, 1, id="2002nd"),
    ],
)
def test_one_write_at_the_edge(
    clock: FakeClock, policy: QuotaPolicy, before: int, included: int, overage: int
) -> None:
    bundle = bundle_with(clock, {A: before}, policy)
    reservation = bundle.reserve(A, 1)
    refused = overage > 0 and policy is QuotaPolicy.REJECT
    assert (reservation.included, reservation.overage, reservation.refused) == (
        included,
        overage,
        refused,
    )
    assert reservation.accepted is not refused
    after = bundle.usage(A)
    assert after.used == before + (0 if refused else 1)
    assert after.remaining == max(0, 2000 - after.used)
    assert after.overage == max(0, after.used - 2000)


def test_counting_up_to_the_bundle_one_write_at_a_time(clock: FakeClock) -> None:
    bundle = DailyBundle(clock, policy=QuotaPolicy.REJECT)
    assert all(bundle.reserve(A, 1).included == 1 for _ in range(1999))
    assert bundle.usage(A).remaining == 1
    assert bundle.reserve(A, 1).accepted
    assert bundle.usage(A).remaining == 0
    assert bundle.reserve(A, 1).refused
    assert bundle.usage(A).used == 2000


@pytest.mark.parametrize(
    ("policy", "expected", "used"),
    [
        pytest.param(QuotaPolicy.BILL, (10, 10, False), 2010, id="bill-splits"),
        pytest.param(QuotaPolicy.REJECT, (10, 10, True), 1990, id="reject-refuses-all"),
    ],
)
def test_a_batch_crossing_the_bundle(
    clock: FakeClock, policy: QuotaPolicy, expected: tuple[int, int, bool], used: int
) -> None:
    bundle = bundle_with(clock, {A: 1990}, policy)
    reservation = bundle.reserve(A, 20)
    assert reservation == Reservation(
        A, DAY, 20, *expected, stamp=reservation.stamp, exhausted=reservation.exhausted
    )
    assert bundle.usage(A).used == used


def test_under_reject_a_batch_that_fits_exactly_is_accepted(clock: FakeClock) -> None:
    bundle = bundle_with(clock, {A: 1990}, QuotaPolicy.REJECT)
    assert bundle.reserve(A, 11).refused
    fits = bundle.reserve(A, 10)
    assert (fits.included, fits.overage, fits.refused) == (10, 0, False)
    assert bundle.usage(A).remaining == 0


def test_the_policy_can_be_chosen_per_send(clock: FakeClock) -> None:
    bundle = bundle_with(clock, {A: 2000})
    assert bundle.reserve(A, 1, QuotaPolicy.REJECT).refused
    assert bundle.reserve(A, 1).accepted
    assert DailyBundle(clock, policy=QuotaPolicy("reject")).policy is QuotaPolicy.REJECT
    with pytest.raises(ValueError, match="not a valid QuotaPolicy"):
        QuotaPolicy("cap")


@pytest.mark.parametrize("n", [0, -1])
def test_reserving_no_writes_is_an_error(clock: FakeClock, n: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DailyBundle(clock).reserve(A, n)


def test_a_negative_bundle_is_an_error(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="negative"):
        DailyBundle(clock, included=-1)


def test_sims_do_not_share_the_bundle(clock: FakeClock) -> None:
    bundle = bundle_with(clock, {A: 2000}, QuotaPolicy.REJECT)
    assert bundle.reserve(A, 1).refused
    assert bundle.reserve(B, 100).included == 100
    assert bundle.usage(A).used == 2000
    assert bundle.usage(B).used == 100


# --- release -----------------------------------------------------------------------------------


def test_release_undoes_a_reservation_whose_writes_were_not_stored(clock: FakeClock) -> None:
    bundle = bundle_with(clock, {A: 1995}, QuotaPolicy.REJECT)
    first = bundle.reserve(A, 5)
    assert bundle.reserve(A, 1).refused  # the first reservation holds the last five
    bundle.release(first)
    assert bundle.usage(A).used == 1995
    assert bundle.reserve(A, 5).accepted


def test_a_release_leaves_other_reservations_counted(clock: FakeClock) -> None:
    bundle = bundle_with(clock, {A: 1998})
    early = bundle.reserve(A, 5)  # 2 included, 3 over
    late = bundle.reserve(A, 1)  # over
    assert (early.included, early.overage, late.overage) == (2, 3, 1)
    bundle.release(early)
    assert bundle.usage(A).used == 1999  # the late write now falls within the bundle
    bundle.release(late)
    assert bundle.usage(A) == bundle_with(clock, {A: 1998}).usage(A)


def test_releasing_a_refused_reservation_does_nothing(clock: FakeClock) -> None:
    bundle = bundle_with(clock, {A: 2000}, QuotaPolicy.REJECT)
    bundle.release(bundle.reserve(A, 3))
    assert bundle.usage(A).used == 2000


def test_a_second_release_is_an_error(clock: FakeClock) -> None:
    bundle = DailyBundle(clock)
    reservation = bundle.reserve(A, 3)
    bundle.release(reservation)
    with pytest.raises(ValueError, match="released more"):
        bundle.release(reservation)


def test_a_release_after_midnight_undoes_the_day_it_was_reserved_on(clock: FakeClock) -> None:
    bundle = DailyBundle(clock)
    reservation = bundle.reserve(A, 4)
    bundle.reserve(A, 1)
    clock.advance(DAY_MS)
    bundle.reserve(A, 2)
    bundle.release(reservation)
    assert bundle.usage(A).used == 2
    clock.advance(-DAY_MS)
    assert bundle.usage(A).used == 1


def test_a_release_of_counts_that_are_gone_does_nothing(clock: FakeClock) -> None:
    bundle = DailyBundle(clock)
    reset_sim = bundle.reserve(A, 1)
    bundle.reset(A)
    bundle.reserve(A, 2)
    bundle.release(reset_sim)
    assert bundle.usage(A).used == 2

    reset_all = bundle.reserve(A, 1)
    bundle.reset()
    bundle.reserve(A, 2)
    bundle.release(reset_all)
    assert bundle.usage(A).used == 2


# --- days --------------------------------------------------------------------------------------


def test_a_new_utc_day_starts_at_zero(clock: FakeClock) -> None:
    clock.now = MIDNIGHT + DAY_MS - 1  # 23:59:59.999
    bundle = DailyBundle(clock, policy=QuotaPolicy.REJECT)
    assert bundle.reserve(A, 2000).accepted
    assert bundle.reserve(A, 1).refused
    assert bundle.usage(A).next_reset_ms == MIDNIGHT + DAY_MS
    clock.advance(1)
    assert bundle.usage(A) == Quota(A, "2025-04-01", 0, 2000, 2000, MIDNIGHT + 2 * DAY_MS)
    assert bundle.reserve(A, 1).accepted


def test_no_carry_over_of_unused_writes(clock: FakeClock) -> None:
    bundle = DailyBundle(clock, policy=QuotaPolicy.REJECT)
    bundle.reserve(A, 1)
    clock.advance(DAY_MS)
    assert bundle.reserve(A, 2001).refused
    assert bundle.usage(A).remaining == 2000


def test_a_day_is_loaded_from_the_source_once(clock: FakeClock) -> None:
    source = CountingSource({DAY: {A: 1500, B: 0}, "2025-04-01": {B: 7}})
    bundle = DailyBundle(clock, source)
    assert source.asked == []
    assert bundle.usage(A).used == 1500
    assert bundle.reserve(A, 600).overage == 100
    assert bundle.usage(B).used == 0
    assert source.asked == [DAY]
    clock.advance(DAY_MS)
    assert bundle.usage(B).used == 7
    clock.advance(-DAY_MS)
    assert bundle.usage(A).used == 2100
    assert source.asked == [DAY, "2025-04-01"]


def test_forgotten_and_reset_days_are_loaded_afresh(clock: FakeClock) -> None:
    source = CountingSource({DAY: {A: 10}})
    bundle = DailyBundle(clock, source)
    bundle.reserve(A, 5)
    assert bundle.usage(A).used == 15
    bundle.reset(A)  # its counts on the loaded days are zeroed
    assert bundle.usage(A).used == 0
    bundle.reset()  # every day is loaded afresh from the source
    assert bundle.usage(A).used == 10
    bundle.reserve(B, 1)
    bundle.reset(B)
    assert (bundle.usage(A).used, bundle.usage(B).used) == (10, 0)
    bundle.reset()
    assert bundle.usage(A).used == 10
    assert source.asked == [DAY, DAY, DAY]


def test_a_negative_stored_count_is_an_error(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="negative"):
        bundle_with(clock, {A: -1}).usage(A)


def test_a_static_source_is_a_count_source() -> None:
    source: CountSource = StaticCounts()
    assert source.counts_for_day(DAY) == {}


# --- property: the bundle agrees with a plain dict of counts -----------------------------------

SIMS = (A, B, "001010000000003")
DAYS = [utc_day(MIDNIGHT + i * DAY_MS) for i in range(-2, 4)]

reserve_op = st.tuples(
    st.just("reserve"),
    st.sampled_from(SIMS),
    st.integers(1, 3) | st.integers(1, 150),
    st.sampled_from([None, QuotaPolicy.BILL, QuotaPolicy.REJECT]),
)
release_op = st.tuples(st.just("release"), st.integers(0, 1000))
advance_op = st.tuples(st.just("advance"), st.integers(0, 2 * DAY_MS))
set_op = st.tuples(st.just("set"), st.integers(MIDNIGHT - 2 * DAY_MS, MIDNIGHT + 4 * DAY_MS - 1))
reset_op = st.tuples(st.just("reset"), st.sampled_from([None, *SIMS]))
stored = st.dictionaries(
    st.sampled_from(DAYS),
    # Often right at the bundle, so that sends cross it by exactly one write.
    st.dictionaries(st.sampled_from(SIMS), st.integers(0, 2100) | st.integers(1990, 2010)),
)


@settings(max_examples=300, deadline=None)
@given(
    days=stored,
    default=st.sampled_from(list(QuotaPolicy)),
    ops=st.lists(st.one_of(reserve_op, release_op, advance_op, set_op, reset_op), max_size=60),
)
def test_the_bundle_agrees_with_a_naive_count(
    days: dict[str, dict[str, int]], default: QuotaPolicy, ops: list[tuple[object, ...]]
) -> None:
    """Under any sequence of reserves, releases, resets and clock jumps, each answer is what a
    plain dict of counts per (day, SIM), seeded from the same stored counts, says."""
    clock = FakeClock()
    source = CountingSource(days)
    bundle = DailyBundle(clock, source, default)
    counts: dict[tuple[str, str], int] = {}
    loaded: set[str] = set()
    # Accepted reservations not yet released, each with whether it still holds counts.
    pending: list[tuple[Reservation, bool]] = []
    loads: list[str] = []

    def used(day: str, imsi: str) -> int:
        if day not in loaded:
            loaded.add(day)
            loads.append(day)
            for sim, count in days.get(day, {}).items():
                counts[day, sim] = count
        return counts.get((day, imsi), 0)

    for op in ops:
        today = utc_day(clock.now)
        match op:
            case ("reserve", str(imsi), int(n), policy):
                before = used(today, imsi)
                included = max(0, min(n, 2000 - before))
                rule = default if policy is None else policy
                refused = included < n and rule is QuotaPolicy.REJECT
                reservation = bundle.reserve(imsi, n, policy)  # type: ignore[arg-type]
                assert (reservation.imsi, reservation.day, reservation.count) == (imsi, today, n)
                assert (reservation.included, reservation.overage) == (included, n - included)
                assert reservation.refused is refused
                if not refused:
                    counts[today, imsi] = before + n
                    pending.append((reservation, True))
            case ("release", int(index)) if pending:
                reservation, live = pending.pop(index % len(pending))
                bundle.release(reservation)
                if live:
                    counts[reservation.day, reservation.imsi] -= reservation.count
            case ("advance", int(ms)):
                clock.advance(ms)
            case ("set", int(ms)):
                clock.now = ms
            case ("reset", imsi):
                bundle.reset(imsi)  # type: ignore[arg-type]
                pending = [(r, live and imsi not in (None, r.imsi)) for r, live in pending]
                if imsi is None:
                    counts.clear()
                    loaded.clear()
                else:
                    counts = {key: c for key, c in counts.items() if key[1] != imsi}
        today = utc_day(clock.now)
        for imsi in SIMS:
            expected = used(today, imsi)
            assert bundle.usage(imsi) == Quota(
                imsi=imsi,
                day=today,
                used=expected,
                remaining=max(0, 2000 - expected),
                included=2000,
                next_reset_ms=(clock.now // DAY_MS + 1) * DAY_MS,
            )
    assert source.asked == loads  # the source is asked once per day, and again after a reset


@pytest.mark.parametrize(
    ("before", "n", "exhausted"),
    [(0, 1999, False), (0, 2000, True), (1999, 1, True), (1999, 5, True), (2000, 1, False)],
)
def test_exhausted_marks_the_send_that_used_up_the_bundle(
    clock: FakeClock, before: int, n: int, exhausted: bool
) -> None:
    assert bundle_with(clock, {A: before}).reserve(A, n).exhausted is exhausted
