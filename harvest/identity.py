"""SIM identity by session address (spec B2).

On the real network the gateway knows which SIM sent a packet from the IP address of its data
session. The emulator does the same with a session table: every SIM with a session has one
address. On loopback each SIM gets its own ``127.x.y.z`` (Linux routes all of 127/8 to the
loopback device), so a simulated device that binds that address *is* that SIM.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Container, Sequence
from typing import Protocol

from harvest.domain import Sim, normalise_address

log = logging.getLogger(__name__)

# 127.0.0.0/8 less the .0 and .255 hosts of every /24, which some tools treat specially.
_HOSTS_PER_24 = 254
_LOOPBACK_SIZE = 256 * 256 * _HOSTS_PER_24


def loopback_address(index: int) -> str:
    """The ``index``-th usable loopback address: 0 is 127.0.0.1, 1 is 127.0.0.2, ..."""
    if not 0 <= index < _LOOPBACK_SIZE:
        raise ValueError(f"loopback index {index} out of range")
    high, rest = divmod(index, 256 * _HOSTS_PER_24)
    middle, low = divmod(rest, _HOSTS_PER_24)
    return f"127.{high}.{middle}.{low + 1}"


class LoopbackAllocator:
    """Hands out loopback addresses no SIM uses, in order, from 127.0.0.2.

    A cursor makes each allocation O(1) in the usual case (addresses are rarely released), so
    provisioning 10,000 SIMs stays linear.
    """

    def __init__(self) -> None:
        self._cursor = 1

    def allocate(self, taken: Container[str]) -> str:
        for _ in range(_LOOPBACK_SIZE):
            candidate = loopback_address(self._cursor)
            self._cursor = (self._cursor + 1) % _LOOPBACK_SIZE
            if candidate not in taken:
                return candidate
        raise RuntimeError("every loopback address has a SIM")

    def rewind(self) -> None:
        self._cursor = 1


class SimDirectory(Protocol):
    """Where the session table looks SIMs up (the registry)."""

    def sim_by_address(self, address: str) -> Sim | None: ...

    def sim_by_imsi(self, imsi: str) -> Sim | None: ...


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SessionTable:
    """Resolves the peer address of a device connection to the SIM whose session it is.

    ``routes`` is the private-core map (setting ``ue_map``): addresses or CIDR ranges of a real
    core's UE pool, each mapped to an IMSI, most specific first. A SIM's own session address
    wins over a route.
    """

    def __init__(self, directory: SimDirectory, routes: Sequence[tuple[Network, str]] = ()) -> None:
        self._directory = directory
        self._routes = tuple(routes)

    def resolve(self, peer: str) -> Sim | None:
        """The SIM with a session at ``peer``, or ``None``.

        The exact text is tried first (the common case costs one dictionary lookup); then the
        canonical form, so ``::ffff:127.0.0.5`` finds the SIM at ``127.0.0.5``; then the routes.
        """
        sim = self._directory.sim_by_address(peer)
        if sim is not None:
            return sim
        try:
            canonical = normalise_address(peer)
        except ValueError:
            return None
        if canonical != peer:
            sim = self._directory.sim_by_address(canonical)
            if sim is not None:
                return sim
        if self._routes:
            address = ipaddress.ip_address(canonical)
            for network, imsi in self._routes:
                if address.version == network.version and address in network:
                    return self._directory.sim_by_imsi(imsi)
        return None


Resolver = Callable[[str], Sim | None]
