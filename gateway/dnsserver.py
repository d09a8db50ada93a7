"""The DNS responder's listeners (setting ``dns``): UDP and TCP on one address and port.

The answers are :mod:`gateway.dns`'s. What this module adds is the one fact the answers need
from the network, the address each query arrived on: a TCP connection's own name; for UDP on a
wildcard address (``0.0.0.0``, ``::``), the packet's destination from ``IP_PKTINFO`` /
``IPV6_PKTINFO`` (Linux ip(7), ipv6(7)), which also becomes the reply's source, so a resolver
that asked one of several addresses hears back from that one. Forwarded queries go to the
upstream over UDP, one socket each, and get ``SERVFAIL`` after :data:`UPSTREAM_TIMEOUT_S`.

Each query is one line of the request log (protocol ``dns``; the SIM whose session address
asked, when there is one) and counts in ``harvest_dns_queries_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from gateway.dns import Answer, DnsAnswers, rcode_name
from harvest import wire
from harvest.context import INGEST, LISTENERS, METRICS, SETTINGS
from harvest.domain import Transport, Upload
from harvest.requestlog import REQUEST_LOG
from harvest.settings import Settings

log = logging.getLogger(__name__)

#: Linux's ``IP_PKTINFO`` and ``IPV6_PKTINFO`` (<linux/in.h>, <linux/in6.h>): Python 3.11's
#: socket module exports neither on every build.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
#: RFC 1035 4.2.1 limits UDP messages to 512 bytes without EDNS; with EDNS a query may be up to
#: 65,535 bytes, but none of ours is: 4 KiB is plenty, and more is truncated and FORMERR.
MAX_UDP_QUERY = 4096
#: How long a forwarded query waits for the upstream before ``SERVFAIL``.
UPSTREAM_TIMEOUT_S = 2.0
#: A TCP client that sends nothing for this long is closed (RFC 7766 section 6.2.3 leaves it to
#: the server; a few seconds is the common choice).
TCP_IDLE_TIMEOUT_S = 10.0

Observer = Callable[[str, str, int, float, Answer], None]


def _ancillary_local(ancillary: list[tuple[int, int, bytes]]) -> tuple[str, bytes] | None:
    """The packet's local address from its ``*_PKTINFO``, with the raw bytes to echo back."""
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            # struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
            return socket.inet_ntop(socket.AF_INET, data[4:8]), data[4:8]
        if level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO and len(data) >= 16:
            # struct in6_pktinfo { in6_addr ipi6_addr; unsigned int ipi6_ifindex; }
            return socket.inet_ntop(socket.AF_INET6, data[:16]), data[:16]
    return None


class DnsUdp:
    """One UDP socket: reads queries with their local address, answers from that address."""

    def __init__(self, server: DnsServer, host: str, port: int) -> None:
        self.server = server
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.family = family
        self.wildcard = ipaddress.ip_address(host).is_unspecified
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.wildcard and family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            elif self.wildcard:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)  # IPv4 on a dual-stack socket
            sock.setblocking(False)
            sock.bind((host, port))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(64):  # a burst at a time, then let the loop breathe
            try:
                query, ancillary, _, peer = self.sock.recvmsg(MAX_UDP_QUERY, socket.CMSG_SPACE(32))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # an ICMP error reported on the socket: nothing to read
                log.debug("dns: %s", error)
                return
            found = _ancillary_local(ancillary) if self.wildcard else None
            local, raw_local = found if found is not None else (self.host, b"")
            self.server.received(query, str(peer[0]), local, self._replier(peer, raw_local))

    def _replier(self, peer: Any, raw_local: bytes) -> Callable[[bytes], None]:
        return lambda reply: self._send(reply, peer, raw_local)

    def _send(self, reply: bytes, peer: Any, raw_local: bytes) -> None:
        """Send from the address the query arrived on (the PKTINFO it came with)."""
        if not reply:
            return
        try:
            if raw_local and len(raw_local) == 4 and self.family == socket.AF_INET:
                info = struct.pack("=i4s4s", 0, raw_local, b"\0" * 4)
                self.sock.sendmsg([reply], [(socket.IPPROTO_IP, IP_PKTINFO, info)], 0, peer)
            elif raw_local and len(raw_local) == 16:
                info = raw_local + struct.pack("=I", 0)
                self.sock.sendmsg([reply], [(socket.IPPROTO_IPV6, IPV6_PKTINFO, info)], 0, peer)
            else:
                self.sock.sendto(reply, peer)
        except OSError as error:
            log.debug("dns: reply to %s failed: %s", peer, error)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


class DnsServer:
    """The responder: UDP and TCP on ``host``:``port``, answers from ``answers``, forwarding to
    ``upstream`` when the answers say so; ``observe(peer, local, size, seconds, answer)`` is
    called once per query."""

    def __init__(
        self, answers: DnsAnswers, *, upstream: tuple[str, int] | None, observe: Observer
    ) -> None:
        self.answers = answers
        self.upstream = upstream
        self.observe = observe
        self.tasks: set[asyncio.Task[None]] = set()
        self.udp: DnsUdp | None = None
        self.tcp: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        """Bind TCP, then UDP on the same port; port 0 is a free one for both (tried again
        a few times when another process holds the UDP port of a free TCP port)."""
        for attempt in range(10):
            self.tcp = await asyncio.start_server(self._tcp, host, port, reuse_address=True)
            self.port = self.tcp.sockets[0].getsockname()[1]
            try:
                self.udp = DnsUdp(self, host, self.port)
                return
            except OSError:
                self.tcp.close()
                await self.tcp.wait_closed()
                self.tcp = None
                if port or attempt == 9:
                    raise

    async def close(self) -> None:
        if self.tcp is not None:
            self.tcp.close()
        if self.udp is not None:
            self.udp.close()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=1.0)
        if self.tcp is not None:
            await self.tcp.wait_closed()

    def received(self, query: bytes, peer: str, local: str, send: Callable[[bytes], None]) -> None:
        """One query: answered at once, or (forwarded) by a task."""
        started = time.perf_counter()
        answer = self.answers.answer(query, local)
        if answer.forward:
            self._spawn(self._forward(query, peer, local, send, started, answer))
            return
        send(answer.reply or b"")  # b"": nothing to answer (TCP then hangs up)
        self.observe(peer, local, len(query), time.perf_counter() - started, answer)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _forward(
        self,
        query: bytes,
        peer: str,
        local: str,
        send: Callable[[bytes], None],
        started: float,
        answer: Answer,
    ) -> None:
        assert self.upstream is not None
        reply = await ask_upstream(query, self.upstream)
        if reply is None:
            reply = self.answers.servfail(query)
            answer = Answer(reply, "servfail", 2, answer.name, answer.qtype)
        send(reply)
        self.observe(peer, local, len(query), time.perf_counter() - started, answer)

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """RFC 1035 4.2.2 / RFC 7766: two-byte length, then the message; several per
        connection; closed after :data:`TCP_IDLE_TIMEOUT_S` of silence."""
        peer = str(writer.get_extra_info("peername")[0])
        local = str(writer.get_extra_info("sockname")[0])
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_TIMEOUT_S):
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    query = await reader.readexactly(length)
                done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
                self.received(query, peer, local, done.set_result)
                reply = await done
                if not reply:
                    return
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if task is not None:
                self.tasks.discard(task)
            writer.close()


async def ask_upstream(query: bytes, upstream: tuple[str, int]) -> bytes | None:
    """The upstream resolver's reply to ``query`` (same ID), or ``None`` after the timeout."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in upstream[0] else socket.AF_INET
    got: asyncio.Future[bytes] = loop.create_future()
    expected_id = query[:2]

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if data[:2] == expected_id and not got.done():
                got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=upstream, family=family)
    try:
        transport.sendto(query)
        async with asyncio.timeout(UPSTREAM_TIMEOUT_S):
            return await got
    except TimeoutError:
        return None
    finally:
        transport.close()


DNS_SERVER = web.AppKey("dns_server", DnsServer)


def make_answers(settings: Settings) -> DnsAnswers:
    return DnsAnswers(
        (*wire.SORACOM_NAMES, *settings.dns_extra_names),
        ttl=settings.dns_ttl,
        forward=settings.dns_other == "forward",
    )


async def dns_context(app: web.Application) -> AsyncIterator[None]:
    """Bind the responder's UDP and TCP sockets; close them, and cancel forwards, at the end."""
    settings = app[SETTINGS]
    address = settings.dns_address
    assert address is not None
    ingest, requests, metrics = app[INGEST], app[REQUEST_LOG], app[METRICS]

    def observe(peer: str, local: str, size: int, seconds: float, answer: Answer) -> None:
        sim = ingest.sim_of(Upload(Transport.UDP, peer, b"", None))
        reason = None if answer.rcode == 0 else rcode_name(answer.rcode)
        if answer.outcome == "forwarded":
            reason = "forwarded"
        target = f"{answer.name} {answer.qtype}".strip() or "(unparsable)"
        requests.record(
            "dns", peer, None if sim is None else sim.imsi, answer.rcode, size, seconds,
            target, reason,
        )  # fmt: skip
        metrics.dns_queries.labels(answer.type_label, answer.outcome).inc()

    upstream = settings.dns_upstream_address
    server = DnsServer(make_answers(settings), upstream=upstream, observe=observe)
    try:
        await server.start(*address)
        app[DNS_SERVER] = server
        where = f"[{address[0]}]" if ":" in address[0] else address[0]
        app[LISTENERS].up("dns", [f"udp://{where}:{server.port}", f"tcp://{where}:{server.port}"])
        yield
    finally:
        app[LISTENERS].down("dns")
        await server.close()


def setup_dns(app: web.Application, settings: Settings) -> None:
    """The DNS responder, when the ``dns`` setting names an address (off by default)."""
    if settings.dns_address is None:
        return
    app[LISTENERS].expect("dns")
    app.cleanup_ctx.append(dns_context)
