"""Connection limits that keep one client from locking every other one out (issue 9, item 5).

Each listener that keeps connections (the raw TCP listeners, the HTTP edge) has a
:class:`ConnectionLimits`: a cap on its open connections in total, and a lower one on those of a
single *source*. A client that opens connections in a loop, or leaks them, fills its own share
and is refused there, while devices at other addresses still get in. Refusals are logged through
a :class:`~harvest.logcaps.LogThrottle`: one line per source per interval, then a count.

A source is an IPv4 address, or an IPv6 /64 (see :func:`source_of`). The figures are settings
(``tcp_max_connections[_per_source]``, ``http_max_connections[_per_source]``); what they guard
against, and what they do not, is in docs/security.md.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Final

from harvest.logcaps import LogThrottle

#: IPv6 peers are counted per /64 prefix: a cellular UE is given a whole /64 (3GPP TS 23.401
#: 5.3.1.2.2, stateless address autoconfiguration), so one device is one /64, and cycling the
#: 2**64 addresses inside it does not buy a client more connections.
IPV6_SOURCE_PREFIX: Final = 64


def source_of(peer: str) -> str:
    """The source ``peer`` (an address as the socket gives it) is counted under.

    IPv4 addresses, and IPv4-mapped IPv6 ones, are their own source; another IPv6 address
    counts as its /64 (``2001:db8::/64``), except loopback (``::1``). Anything that does not
    parse (a Unix socket's empty name) is its own source.
    """
    if ":" not in peer:
        return peer
    try:
        address = ipaddress.IPv6Address(peer.split("%", 1)[0])
    except ValueError:
        return peer
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    if address.is_loopback:
        return str(address)
    return str(ipaddress.IPv6Network((address, IPV6_SOURCE_PREFIX), strict=False))


class ConnectionLimits:
    """The open connections of one listener, counted in total and per source.

    :meth:`admit` is called as a connection is accepted and says whether it may stay;
    :meth:`release` is called once for every admitted connection when it closes. The
    per-source cap is never above the total one. Memory is bounded by the open connections:
    a source is forgotten when its last connection closes.
    """

    def __init__(
        self,
        name: str,
        *,
        total: int,
        per_source: int,
        throttle: LogThrottle,
        log: logging.Logger,
    ) -> None:
        self.name = name
        self.total = total
        self.per_source = min(per_source, total)
        self.throttle = throttle
        self.log = log
        self.open = 0
        #: Connections refused since start, for tests and the curious.
        self.refused = 0
        self._by_source: dict[str, int] = {}

    def held_by(self, source: str) -> int:
        """How many connections ``source`` (see :func:`source_of`) has open."""
        return self._by_source.get(source, 0)

    def admit(self, peer: str) -> str | None:
        """The source to :meth:`release` later if a connection from ``peer`` may stay; ``None``
        (and a throttled WARNING) if it is over either cap and must be closed."""
        source = source_of(peer)
        held = self._by_source.get(source, 0)
        if self.open < self.total and held < self.per_source:
            self._by_source[source] = held + 1
            self.open += 1
            return source
        self.refused += 1
        if self.open >= self.total:
            why = f"{self.open} connections are open, the listener's cap"
        else:
            why = f"{held} are open from {source}, the per-source cap"
        self.throttle.log(
            self.log,
            logging.WARNING,
            f"{self.name}: refused connections",
            source,
            "%s: refused a connection from %s: %s",
            self.name,
            peer,
            why,
        )
        return None

    def release(self, source: str) -> None:
        """One connection that :meth:`admit` let in, under ``source``, has closed."""
        self.open -= 1
        held = self._by_source[source] - 1
        if held:
            self._by_source[source] = held
        else:
            del self._by_source[source]
