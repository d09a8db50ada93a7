"""Cellular link profiles (issue 12, item 4): how a SIM's radio link delays, loses and throttles
its traffic, as a pure, seeded model that the transports apply (gateway/shaping.py).

A profile has a round-trip time distribution (its median ``rtt_ms`` and its standard deviation
``jitter_ms``; ``normal`` or the right-skewed ``lognormal`` that cellular delays show), a loss
probability per packet and direction, and a bandwidth per direction. The built-in ``lte``,
``lte-m``, ``nb-iot`` and ``3g`` profiles take their figures from published measurements and
3GPP evaluations, cited in docs/link-profiles.md.

Each SIM's link is its own :class:`Link`: a random generator seeded by the emulator's
``link_seed`` and the SIM's IMSI (so one SIM's draws do not depend on another's traffic) and,
per direction, the time the link is busy until. A chunk of traffic of ``size`` bytes leaves
after the ones before it (the radio bearer is first in, first out), takes ``size * 8 /
bandwidth`` to send, and arrives one one-way delay later: half the round-trip time, drawn per
direction (for ``normal`` the two halves add up to a round trip of exactly the profile's
median and deviation). A lost datagram is gone; a lost TCP segment arrives one retransmission
timeout late (TCP resends it; RFC 6298 section 2).

No clock or random source is read here: the caller passes the monotonic time, and the
generator is made from the seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

DISTRIBUTIONS: Final = ("normal", "lognormal")
#: Linux's smallest TCP retransmission timeout (``TCP_RTO_MIN``, 200 ms); RFC 6298 section 2.4
#: rounds up to 1 s, Linux and most stacks use this floor.
TCP_RTO_MIN_S: Final = 0.2
UP: Final = "up"
DOWN: Final = "down"
#: Chunks sent within this many seconds of each other in one direction are one burst and share
#: one delay draw (HTTP headers and body written back to back do not each get their own).
BURST_S: Final = 0.002


class LinkProfileError(ValueError):
    """A profile's figures are out of range; the message names the field."""


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """One link's figures; see the module docstring. ``None`` bandwidth is unlimited."""

    name: str
    rtt_ms: float
    jitter_ms: float = 0.0
    loss: float = 0.0
    uplink_kbps: float | None = None
    downlink_kbps: float | None = None
    distribution: str = "lognormal"

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 64:
            raise LinkProfileError("name must be 1 to 64 characters")
        if not (math.isfinite(self.rtt_ms) and 0 <= self.rtt_ms <= 600_000):
            raise LinkProfileError("rttMs must be from 0 to 600000")
        if not (math.isfinite(self.jitter_ms) and 0 <= self.jitter_ms <= 600_000):
            raise LinkProfileError("jitterMs must be from 0 to 600000")
        if not 0 <= self.loss < 1:
            raise LinkProfileError("loss must be from 0 up to (not including) 1")
        for label, kbps in (("uplinkKbps", self.uplink_kbps), ("downlinkKbps", self.downlink_kbps)):
            if kbps is not None and not (math.isfinite(kbps) and 0.1 <= kbps <= 10_000_000):
                raise LinkProfileError(f"{label} must be from 0.1 to 10000000, or null")
        if self.distribution not in DISTRIBUTIONS:
            raise LinkProfileError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}")
        if self.distribution == "lognormal" and self.rtt_ms == 0 and self.jitter_ms > 0:
            raise LinkProfileError("a lognormal link needs rttMs above 0 to spread around")

    def view(self) -> dict[str, Any]:
        """The control plane's JSON of this profile (camelCase, as the API's)."""
        return {
            "name": self.name,
            "rttMs": self.rtt_ms,
            "jitterMs": self.jitter_ms,
            "loss": self.loss,
            "uplinkKbps": self.uplink_kbps,
            "downlinkKbps": self.downlink_kbps,
            "distribution": self.distribution,
        }

    @classmethod
    def from_view(cls, body: Mapping[str, Any]) -> LinkProfile:
        """A custom profile from its JSON (:meth:`view`'s names; ``name`` defaults to
        ``custom``); raises :class:`LinkProfileError`."""
        names = {
            "name": "name",
            "rttMs": "rtt_ms",
            "jitterMs": "jitter_ms",
            "loss": "loss",
            "uplinkKbps": "uplink_kbps",
            "downlinkKbps": "downlink_kbps",
            "distribution": "distribution",
        }
        unknown = set(body) - set(names)
        if unknown:
            raise LinkProfileError(f"unknown field(s): {', '.join(sorted(unknown))}")
        if "rttMs" not in body:
            raise LinkProfileError("a custom profile needs rttMs")
        values: dict[str, Any] = {"name": "custom"}
        for wire_name, value in body.items():
            kind = str if wire_name in ("name", "distribution") else float
            nullable = wire_name in ("uplinkKbps", "downlinkKbps")
            if value is None and nullable:
                values[names[wire_name]] = None
            elif kind is str and isinstance(value, str):
                values[names[wire_name]] = value
            elif kind is float and isinstance(value, int | float) and not isinstance(value, bool):
                values[names[wire_name]] = float(value)
            else:
                expected = "a string" if kind is str else "a number"
                raise LinkProfileError(f"{wire_name} must be {expected}")
        return cls(**values)


#: The built-in profiles; their sources are in docs/link-profiles.md.
BUILTIN: Final[Mapping[str, LinkProfile]] = {
    p.name: p
    for p in (
        LinkProfile("lte", 50, 15, 0.001, uplink_kbps=5_000, downlink_kbps=20_000),
        LinkProfile("lte-m", 200, 60, 0.005, uplink_kbps=100, downlink_kbps=100),
        LinkProfile("nb-iot", 840, 300, 0.01, uplink_kbps=62, downlink_kbps=26),
        LinkProfile("3g", 150, 50, 0.005, uplink_kbps=1_000, downlink_kbps=3_000),
    )
}


def profile_named(name: str) -> LinkProfile:
    """A built-in profile by name; raises :class:`LinkProfileError` naming the choices."""
    try:
        return BUILTIN[name]
    except KeyError:
        raise LinkProfileError(
            f"no built-in link profile {name!r}; choose one of {', '.join(BUILTIN)} or give"
            " rttMs (a custom profile)"
        ) from None


@dataclass(frozen=True, slots=True)
class Delivery:
    """When a chunk arrives (seconds from now), whether it was lost (a datagram: never
    arrives) or delayed by a retransmission (a TCP segment)."""

    delay_s: float
    lost: bool = False
    retransmitted: bool = False


def _one_way_spread(profile: LinkProfile) -> tuple[float, float]:
    """Median and deviation of one direction's delay, in seconds: half the RTT's median, and
    the deviation that makes two independent halves spread as the round trip does."""
    return profile.rtt_ms / 2000, profile.jitter_ms / 1000 / math.sqrt(2)


def lognormal_sigma(median: float, deviation: float) -> float:
    """The ``sigma`` of the log-normal with this median and standard deviation:
    ``deviation**2 = median**2 * u * (u - 1)`` with ``u = exp(sigma**2)``."""
    if deviation <= 0 or median <= 0:
        return 0.0
    ratio = deviation / median
    u = (1 + math.sqrt(1 + 4 * ratio * ratio)) / 2
    return math.sqrt(math.log(u))


@dataclass(slots=True)
class Link:
    """One SIM's link: its generator and, per direction, when the link is free and when the
    last chunk arrived (arrivals keep their order)."""

    rng: random.Random
    busy_until: dict[str, float] = field(default_factory=lambda: {UP: 0.0, DOWN: 0.0})
    last_arrival: dict[str, float] = field(default_factory=lambda: {UP: 0.0, DOWN: 0.0})
    #: When the last burst in each direction began, and the delay it drew.
    burst: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {UP: (-1.0, 0.0), DOWN: (-1.0, 0.0)}
    )

    def one_way(self, profile: LinkProfile) -> float:
        median, deviation = _one_way_spread(profile)
        if deviation == 0:
            return median
        if profile.distribution == "normal":
            return max(0.0, self.rng.gauss(median, deviation))
        return median * math.exp(lognormal_sigma(median, deviation) * self.rng.gauss(0, 1))

    def send(
        self, profile: LinkProfile, direction: str, size: int, now: float, *, reliable: bool
    ) -> Delivery:
        """Plan one chunk of ``size`` bytes sent at ``now`` (monotonic seconds)."""
        kbps = profile.uplink_kbps if direction == UP else profile.downlink_kbps
        start = max(now, self.busy_until[direction])
        sent = start + (0.0 if kbps is None else size * 8 / (kbps * 1000))
        self.busy_until[direction] = sent
        began, drawn = self.burst[direction]
        if 0 <= now - began < BURST_S:
            latency = drawn
        else:
            latency = self.one_way(profile)
            self.burst[direction] = (now, latency)
        lost = profile.loss > 0 and self.rng.random() < profile.loss
        if lost and not reliable:
            return Delivery(sent - now, lost=True)
        if lost:  # TCP sends it again after a retransmission timeout (RFC 6298 2.2, 2.3)
            rto = max(TCP_RTO_MIN_S, (profile.rtt_ms + 4 * profile.jitter_ms) / 1000)
            latency += rto
        arrival = max(sent + latency, self.last_arrival[direction])
        self.last_arrival[direction] = arrival
        return Delivery(arrival - now, retransmitted=lost)


class LinkTable:
    """Which SIMs and groups have a profile, and each SIM's :class:`Link`; the state holder
    the control plane sets and a reset clears (back to no profile anywhere)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.by_imsi: dict[str, LinkProfile] = {}
        self.by_group: dict[str, LinkProfile] = {}
        self._links: dict[str, Link] = {}

    @property
    def active(self) -> bool:
        """Whether any profile is set (transports skip every lookup when none is)."""
        return bool(self.by_imsi or self.by_group)

    def profile_for(self, imsi: str, group_id: str | None) -> LinkProfile | None:
        """The SIM's own profile, else its group's, else ``None`` (an unshaped link)."""
        profile = self.by_imsi.get(imsi)
        if profile is None and group_id is not None:
            profile = self.by_group.get(group_id)
        return profile

    def link(self, imsi: str) -> Link:
        link = self._links.get(imsi)
        if link is None:
            link = self._links[imsi] = Link(random.Random(f"{self.seed}:{imsi}"))
        return link

    def set_sim(self, imsi: str, profile: LinkProfile | None) -> None:
        """Give a SIM its own profile (``None``: back to its group's, or none); its generator
        starts again from the seed, so a test that sets a profile gets the same draws."""
        if profile is None:
            self.by_imsi.pop(imsi, None)
        else:
            self.by_imsi[imsi] = profile
        self._links.pop(imsi, None)

    def set_group(self, group_id: str, profile: LinkProfile | None) -> None:
        if profile is None:
            self.by_group.pop(group_id, None)
        else:
            self.by_group[group_id] = profile

    def reset(self) -> None:
        self.by_imsi.clear()
        self.by_group.clear()
        self._links.clear()
