"""Link profiles on real sockets (issue 12, item 4): a profiled SIM's writes take its link's
round-trip time and losses on every protocol, while a SIM without one is not slowed.

Measured, not timed to the millisecond: the checks compare **medians** of enough round trips
with the profile's, with tolerances wide enough for a busy two-core machine (the emulator's own
processing, a few ms, adds to every round trip), and the loss rate over hundreds of datagrams
within four standard deviations. The profile's own draws are seeded, so the link is the same
in every run; only the machine's noise varies.

Through the pytest plugin's emulator (:mod:`harvest.testing`): the same server as
``harvest-emulator serve``, HTTP edge included, and the plugin's own ``link_profile`` helper.
"""

from __future__ import annotations

import concurrent.futures
import socket
import statistics
import time
from collections.abc import Callable

import pytest

from harvest.simulator.fleet import FleetConfig, provision
from harvest.simulator.target import SimulatorError
from harvest.testing.client import HarvestEmulator

pytestmark = pytest.mark.slow

#: The profile under test: a log-normal RTT of median 150 ms, deviation 30 ms, no loss or
#: bandwidth cap (so the expected round trip is the profile's alone).
RTT_MS = 150.0
JITTER_MS = 30.0
SAMPLES = 21
#: The profile's median is within 2 % of RTT_MS (log-normal halves, tests/harvest/test_links.py);
#: the emulator adds its processing and the machine its noise: 15 % plus 20 ms either way.
TOLERANCE_MS = 0.15 * RTT_MS + 20
#: A SIM without a profile answers at loopback speed: well under a third of the profile's RTT
#: even on a loaded machine.
UNSHAPED_CEILING_MS = RTT_MS / 3


def median_ms(send: Callable[[], object], count: int = SAMPLES) -> tuple[float, list[float]]:
    rtts = []
    for _ in range(count):
        started = time.perf_counter()
        send()
        rtts.append((time.perf_counter() - started) * 1000)
    return statistics.median(rtts), rtts


def protocols(emulator: HarvestEmulator, imsi: str) -> dict[str, Callable[[], object]]:
    """One write of each protocol from the SIM's address (looked up once, here: a control-plane
    call from a profiled address would itself go over the link)."""
    source = emulator.session_address(imsi)

    def http() -> None:
        assert emulator.send({"t": 1}, source=source).status == 201

    def tcp() -> None:
        assert emulator.send_tcp(b"t", source=source) == "201"

    def udp() -> None:
        assert emulator.send_udp(b"u", source=source) == "201"

    return {"http": http, "tcp": tcp, "udp": udp}


def test_a_profiled_sims_round_trips_follow_its_profile_and_others_are_not_slowed(
    harvest_emulator: HarvestEmulator,
) -> None:
    shaped = harvest_emulator.create_sim()["imsi"]
    plain = harvest_emulator.create_sim()["imsi"]
    link = harvest_emulator.link_profile(imsi=shaped, rtt_ms=RTT_MS, jitter_ms=JITTER_MS)
    assert link is not None
    assert link["rttMs"] == RTT_MS

    measured: dict[str, tuple[float, float]] = {}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for name, send in protocols(harvest_emulator, shaped).items():
            # the unprofiled SIM sends at the same time, through the same listeners
            other = pool.submit(median_ms, protocols(harvest_emulator, plain)[name], 3 * SAMPLES)
            profiled, rtts = median_ms(send)
            unshaped, _ = other.result()
            measured[name] = (profiled, unshaped)
            assert abs(profiled - RTT_MS) <= TOLERANCE_MS, (name, sorted(rtts))
            assert unshaped < UNSHAPED_CEILING_MS, (name, unshaped)
    print("medians (profiled, unprofiled) in ms:", measured)  # shown with -s, for the record

    # taken away, the SIM is at loopback speed again
    assert harvest_emulator.link_profile(imsi=shaped) is None
    assert median_ms(protocols(harvest_emulator, shaped)["udp"])[0] < UNSHAPED_CEILING_MS


LOSS = 0.2
DATAGRAMS = 400


def test_a_lossy_links_datagrams_are_lost_at_its_rate_and_tcp_resends(
    harvest_emulator: HarvestEmulator,
) -> None:
    """Loss is per packet and direction: a datagram is stored with probability 1 - p and
    answered with probability (1 - p)**2. TCP loses nothing: a lost segment comes late."""
    sim = harvest_emulator.create_sim()
    harvest_emulator.link_profile(imsi=sim["imsi"], rtt_ms=10, loss=LOSS)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((sim["sessionAddress"], 0))
        sock.settimeout(1.0)
        target = (harvest_emulator.host, harvest_emulator.harvest_port)
        for i in range(DATAGRAMS):
            sock.sendto(b"d%d" % i, target)
            time.sleep(0.002)  # paced: the per-SIM write ceiling counts overlapping writes
        answered = 0
        try:
            while True:
                sock.recvfrom(100)
                answered += 1
        except TimeoutError:
            pass
    stored = harvest_emulator.sim(sim["imsi"])["writesToday"]

    def sigma(p: float) -> float:  # the binomial deviation of a rate over DATAGRAMS
        return float((p * (1 - p) / DATAGRAMS) ** 0.5)

    answered_rate, stored_rate = answered / DATAGRAMS, stored / DATAGRAMS
    print(f"stored {stored_rate:.3f} (expected 0.8), answered {answered_rate:.3f} (0.64)")
    assert abs(stored_rate - (1 - LOSS)) <= 4 * sigma(1 - LOSS)
    assert abs(answered_rate - (1 - LOSS) ** 2) <= 4 * sigma((1 - LOSS) ** 2)

    replies = [harvest_emulator.send_tcp(b"t", sim["imsi"]) for _ in range(20)]
    assert replies == ["201"] * 20


def test_a_groups_profile_applies_to_its_sims(
    harvest_emulator: HarvestEmulator,
) -> None:
    group_id = harvest_emulator.sim()["groupId"]
    sim = harvest_emulator.create_sim()["imsi"]
    send = protocols(harvest_emulator, sim)["udp"]
    # the default SIM (127.0.0.1, where the control plane is called from) is in the group too:
    # its calls go over lte-m from here on, as that SIM's traffic would
    harvest_emulator.link_profile("lte-m", group_id=group_id, loss=0)
    profiled, _ = median_ms(send, 9)
    assert abs(profiled - 200) <= 0.15 * 200 + 20  # lte-m's median (bandwidth: 3 bytes)
    status = harvest_emulator.control("GET", "/links")
    assert status.body["groups"][group_id]["name"] == "lte-m"
    harvest_emulator.link_profile(group_id=group_id)
    assert median_ms(send, 5)[0] < UNSHAPED_CEILING_MS


async def test_the_fleet_gives_its_sims_a_profile(harvest_emulator: HarvestEmulator) -> None:
    config = FleetConfig(endpoint=harvest_emulator.url, sims=3, link_profile="nb-iot")
    config.check()
    sims, _ = await provision(config)
    links = harvest_emulator.control("GET", "/links").body["sims"]
    assert {links[s.imsi]["name"] for s in sims} == {"nb-iot"}
    with pytest.raises(SimulatorError, match="lte, lte-m, nb-iot, 3g"):
        FleetConfig(link_profile="5g").check()
