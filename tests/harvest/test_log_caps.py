"""Logs that stay useful (issue 9, item 6): nothing a client does makes the emulator's own
output grow without bound, and what was held back is counted in the log.

The reproducer: the request log grew ~104 bytes a write with no cap (37 MB in a 3-minute soak at
2,000 writes/s); every unparseable HTTP request wrote a traceback (tests/gateway/test_lockout.py
has that one).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from harvest.app import create_app
from harvest.logcaps import (
    MAX_TRACKED_SOURCES,
    OTHER_SOURCES,
    LineBudget,
    LogThrottle,
    RotatingLineFile,
    clip,
)
from harvest.netguard import ConnectionLimits, source_of
from harvest.requestlog import REQUEST_LOG
from harvest.settings import Settings, SettingsError
from tests.conftest import AiohttpClient, Emulator
from tests.gateway.test_raw_listeners import UdpClient, port

LOG = logging.getLogger("tests.log_caps")
COUNTED = re.compile(r": (\d+) more in the last")


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


def test_the_file_cap_has_a_floor() -> None:
    with pytest.raises(SettingsError, match="request_log_file_bytes"):
        Settings(request_log_file_bytes=1000)


async def udp_flood(
    emulator: Emulator, count: int, *, every: int = 250, check: Callable[[], None] | None = None
) -> None:
    """``count`` datagrams from the default SIM, ``every`` at a time, each batch answered
    before the next (and ``check`` run after it)."""
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        UdpClient, local_addr=("127.0.0.1", 0), remote_addr=("127.0.0.1", port(emulator))
    )
    try:
        for start in range(0, count, every):
            batch = min(every, count - start)
            for n in range(batch):
                transport.sendto(f'{{"n":{start + n}}}'.encode())
            for _ in range(batch):
                await asyncio.wait_for(client.replies.get(), 10)
            if check is not None:
                check()
    finally:
        transport.close()


CAP = 64 * 1024


@pytest.mark.slow
@pytest.mark.settings(memory=True, rate_limits=False, request_log_file_bytes=CAP)
async def test_a_request_log_soak_stays_within_its_disk_cap(
    aiohttp_client: AiohttpClient, settings: Settings, tmp_path: Path
) -> None:
    """The issue's soak, shortened: 12,000 writes (~104 bytes of log each: 1.2 MB unbounded)
    leave at most ``request_log_file_bytes`` on disk, checked after every 250; the newest
    lines are kept, at least half the cap of them."""
    log_file = tmp_path / "logs" / "requests.log"
    settings = dataclasses.replace(settings, request_log_file=str(log_file))
    emulator = Emulator(await aiohttp_client(create_app(settings)), settings)
    peak = 0

    def within_cap() -> None:
        nonlocal peak
        peak = max(peak, disk_use(log_file))
        assert peak <= CAP

    await udp_flood(emulator, 12_000, check=within_cap)
    assert CAP // 2 <= disk_use(log_file) <= CAP
    lines = log_file.read_text().splitlines()
    assert lines[-1].startswith("udp 127.0.0.1 001010000000001 201 ")
    earlier = log_file.with_name("requests.log.1").read_text().splitlines()
    assert (len(earlier) + len(lines)) * 110 > CAP // 2
    assert emulator.app[REQUEST_LOG].query(limit=1)[0].protocol == "udp"  # the ring still works
    print(f"12,000 writes: at most {peak} bytes on disk (cap {CAP})")


@pytest.mark.settings(memory=True, rate_limits=False, request_log_rate=50)
async def test_request_log_lines_to_the_log_are_capped_and_counted(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="harvest.requests")
    started = asyncio.get_running_loop().time()
    await udp_flood(emulator, 2000)
    elapsed = asyncio.get_running_loop().time() - started
    requests = emulator.app[REQUEST_LOG]
    requests.summarize()
    lines = [r.getMessage() for r in caplog.records if r.name == "harvest.requests"]
    shown = [line for line in lines if line.startswith("udp ")]
    assert len(shown) <= 50 + 50 * elapsed + 1
    assert lines[-1].startswith(f"request log: {2000 - len(shown)} lines not shown")
    assert requests.hidden == 2000 - len(shown)


@pytest.mark.settings(memory=True, request_log="json")
async def test_json_lines_still_parse(emulator: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="harvest.requests")
    await udp_flood(emulator, 1, every=1)
    [line] = [r.getMessage() for r in caplog.records if r.name == "harvest.requests"]
    assert json.loads(line)["protocol"] == "udp"


@pytest.mark.settings(memory=True, log_repeat_interval=0.2)
async def test_refused_writes_are_one_line_per_source_then_a_count(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A write from an address with no SIM is refused and logged with the address (spec B2),
    but a flood of them is one line and a count, summed up by the periodic flush."""
    caplog.set_level(logging.INFO, logger="harvest.ingest")
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        UdpClient, local_addr=("127.0.0.99", 0), remote_addr=("127.0.0.1", port(emulator))
    )
    try:
        for _ in range(6):  # in batches the socket buffers hold
            for _ in range(50):
                transport.sendto(b"x")
            for _ in range(50):
                assert await asyncio.wait_for(client.replies.get(), 5) == b"403"
    finally:
        transport.close()
    await asyncio.sleep(0.6)  # the flush runs every log_repeat_interval
    lines = [m for m in messages(caplog) if "127.0.0.99" in m]
    assert lines[0].startswith("refused udp write from 127.0.0.99: HEM")
    counted = sum(int(m.group(1)) for line in lines if (m := COUNTED.search(line)))
    assert len(lines) - sum(1 for line in lines if COUNTED.search(line)) + counted == 300
    assert len(lines) <= 4
