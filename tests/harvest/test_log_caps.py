"""Logs that stay useful (issue 9, item 6): nothing a client does makes the emulator's own
output grow without bound, and what was held back is counted in the log.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from harvest.logcaps import (
    MAX_TRACKED_SOURCES,
    OTHER_SOURCES,
    LineBudget,
    LogThrottle,
    RotatingLineFile,
    clip,
)
from harvest.netguard import ConnectionLimits, source_of

LOG = logging.getLogger("tests.log_caps")


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


# --- the throttle ---------------------------------------------------------------------------


def test_the_throttle_logs_once_per_source_per_interval_then_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeTime()
    throttle = LogThrottle(10.0, clock=clock)
    for n in range(5):
        throttle.log(LOG, logging.WARNING, "refusals", "127.0.0.9", "refused %d", n)
        throttle.log(LOG, logging.WARNING, "refusals", "127.0.0.8", "other %d", n)
        throttle.log(LOG, logging.WARNING, "odd bytes", "127.0.0.9", "odd %d", n)
    assert messages(caplog) == ["refused 0", "other 0", "odd 0"]
    assert throttle.suppressed == 12

    clock.now += 9.9
    throttle.flush()  # no window has ended
    assert len(caplog.records) == 3
    clock.now += 0.1
    throttle.log(LOG, logging.WARNING, "refusals", "127.0.0.9", "refused %d", 5)
    assert messages(caplog)[3:] == [
        "refusals from 127.0.0.9: 4 more in the last 10.0 s (one line per 10 s per source)",
        "refused 5",
    ]
    assert caplog.records[3].levelno == logging.WARNING
    throttle.flush()  # the windows of .8 and of odd bytes have ended; .9's new one has not
    assert sorted(messages(caplog)[5:]) == [
        "odd bytes from 127.0.0.9: 4 more in the last 10.0 s (one line per 10 s per source)",
        "refusals from 127.0.0.8: 4 more in the last 10.0 s (one line per 10 s per source)",
    ]
    throttle.flush(everything=True)  # nothing counted in .9's new window: nothing to say
    assert len(caplog.records) == 7


def test_the_throttle_tracks_a_bounded_number_of_sources(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An abuser with many addresses (an IPv6 /64 has 2**64) cannot grow its memory."""
    caplog.set_level(logging.INFO)
    throttle = LogThrottle(10.0, clock=FakeTime())
    for n in range(MAX_TRACKED_SOURCES + 500):
        throttle.log(LOG, logging.INFO, "refusals", f"source {n}", "refused %d", n)
    assert len(throttle._windows) == MAX_TRACKED_SOURCES + 1
    assert len(caplog.records) == MAX_TRACKED_SOURCES + 1  # the rest share one line
    throttle.flush(everything=True)
    assert messages(caplog)[-1].startswith(f"refusals from {OTHER_SOURCES}: 499 more")
    assert throttle._windows == {}
    assert throttle._sources == {}


def test_a_throttled_line_below_the_level_costs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    throttle = LogThrottle(10.0)
    assert not throttle.log(LOG, logging.INFO, "quiet", "a", "not shown")
    assert throttle._windows == {}
    assert caplog.records == []


def test_clip_keeps_sender_text_on_one_short_line() -> None:
    assert clip("a\r\nb\tc") == "a b c"
    assert clip("x" * 500) == "x" * 157 + "..."


def test_the_line_budget_refills_at_its_rate() -> None:
    clock = FakeTime()
    budget = LineBudget(10, clock=clock)
    assert sum(budget.allows() for _ in range(50)) == 10
    assert budget.take_hidden() == 40
    assert budget.take_hidden() == 0
    clock.now += 0.5
    assert sum(budget.allows() for _ in range(50)) == 5
    clock.now += 100
    assert sum(budget.allows() for _ in range(50)) == 10  # never more than one second's worth


# --- the source of a connection ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "source"),
    [
        ("127.0.0.5", "127.0.0.5"),
        ("::1", "::1"),
        ("::ffff:10.0.0.7", "10.0.0.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("", ""),
    ],
    ids=["ipv4", "ipv6-loopback", "ipv4-mapped", "ipv6", "same-64", "scoped", "unnamed"],
)
def test_a_source_is_an_ipv4_address_or_an_ipv6_64(peer: str, source: str) -> None:
    assert source_of(peer) == source


def test_connection_limits_count_per_source_and_release(caplog: pytest.LogCaptureFixture) -> None:
    throttle = LogThrottle(10.0, clock=FakeTime())
    limits = ConnectionLimits("t", total=5, per_source=2, throttle=throttle, log=LOG)
    assert [limits.admit("10.0.0.1") for _ in range(3)] == ["10.0.0.1", "10.0.0.1", None]
    assert [limits.admit("2001:db8::1"), limits.admit("2001:db8::2")] == ["2001:db8::/64"] * 2
    assert limits.admit("2001:db8::3") is None
    assert limits.admit("10.0.0.2") == "10.0.0.2"
    assert limits.admit("10.0.0.3") is None  # the total
    assert (limits.open, limits.refused) == (5, 3)
    limits.release("10.0.0.1")
    assert limits.held_by("10.0.0.1") == 1
    assert limits.admit("10.0.0.3") == "10.0.0.3"
    for source in ("10.0.0.1", "2001:db8::/64", "2001:db8::/64", "10.0.0.2"):
        limits.release(source)
    assert limits._by_source == {"10.0.0.3": 1}  # memory follows the open connections
    assert ConnectionLimits("t", total=2, per_source=9, throttle=throttle, log=LOG).per_source == 2


# --- the request log's file -----------------------------------------------------------------


def disk_use(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def test_the_file_and_its_rotated_one_never_pass_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "requests.log"
    log_file = RotatingLineFile(path, 1000)
    for n in range(500):
        log_file.write(f"line {n:04d} " + "x" * (n % 37))
        assert disk_use(path) <= 1000
    log_file.write("y" * 5000)  # one line longer than the cap: cut to fit
    assert disk_use(path) <= 1000
    log_file.close()
    assert log_file.rotations > 10
    previous = (tmp_path / "logs" / "requests.log.1").read_text().splitlines()
    assert previous[-1].startswith("line 0499")  # the newest lines are the ones kept
    assert path.read_text() == "y" * 499 + "\n"


def test_an_existing_file_counts_towards_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "requests.log"
    path.write_text("z" * 900)
    log_file = RotatingLineFile(path, 1000)
    log_file.write("new")
    log_file.close()
    assert path.read_text() == "new\n"
    assert disk_use(path) == 904
