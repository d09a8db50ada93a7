"""The DNS responder (issue 12, item 1): SORACOM's names answer the emulator's own address as
the asker reaches it; other names are refused or forwarded; every query is logged and counted.

The answers are checked as pure functions first, then through real UDP and TCP sockets of a
running emulator (loopback: every 127/8 address reaches it, so a query sent to 127.0.0.7 must be
answered ``127.0.0.7`` and come back *from* 127.0.0.7).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSHeader, DNSRecord

from gateway.dns import DnsAnswers
from gateway.dnsserver import DNS_SERVER
from harvest.settings import Settings, SettingsError
from tests.conftest import Emulator
from tests.harvest.test_metrics import scrape, value

NAMES = ("harvest.soracom.io", "uni.soracom.io", "api.soracom.io")


def ask(answers: DnsAnswers, name: str, qtype: str, local: str) -> DNSRecord:
    answer = answers.answer(bytes(DNSRecord.question(name, qtype).pack()), local)
    assert answer.reply is not None
    return DNSRecord.parse(answer.reply)


# --- the answers, as pure functions ----------------------------------------------------------
@pytest.mark.parametrize(
    ("qtype", "local", "expected"),
    [
        pytest.param("A", "10.45.0.1", ["10.45.0.1"], id="A-over-ipv4"),
        pytest.param("AAAA", "fd00::1", ["fd00::1"], id="AAAA-over-ipv6"),
        pytest.param("A", "::ffff:10.45.0.1", ["10.45.0.1"], id="A-over-dual-stack"),
        pytest.param("AAAA", "10.45.0.1", [], id="AAAA-over-ipv4-is-nodata"),
        pytest.param("A", "fd00::1", [], id="A-over-ipv6-is-nodata"),
        pytest.param("MX", "10.45.0.1", [], id="other-type-is-nodata"),
        pytest.param("ANY", "10.45.0.1", ["10.45.0.1"], id="ANY"),
    ],
)
def test_our_names_answer_the_local_address(qtype: str, local: str, expected: list[str]) -> None:
    reply = ask(DnsAnswers(NAMES, ttl=60, forward=False), "harvest.soracom.io", qtype, local)
    assert reply.header.rcode == RCODE.NOERROR
    assert reply.header.aa == 1
    assert [str(rr.rdata) for rr in reply.rr] == expected
    assert all(rr.ttl == 60 for rr in reply.rr)


def test_names_match_whatever_their_case_and_keep_it_in_the_answer() -> None:
    # resolvers randomize the case of the name they ask (the "0x20" defence): echo it as asked
    reply = ask(DnsAnswers(NAMES, ttl=5, forward=False), "HaRvEsT.SoRaCoM.iO.", "A", "10.0.0.1")
    assert [str(rr.rname) for rr in reply.rr] == ["HaRvEsT.SoRaCoM.iO."]


@pytest.mark.parametrize("name", ["example.com", "x.harvest.soracom.io", "soracom.io"])
def test_other_names_are_refused(name: str) -> None:
    reply = ask(DnsAnswers(NAMES, ttl=60, forward=False), name, "A", "10.45.0.1")
    assert reply.header.rcode == RCODE.REFUSED
    assert reply.rr == []


def test_with_forwarding_other_names_go_upstream_unchanged() -> None:
    query = bytes(DNSRecord.question("example.com", "A").pack())
    answer = DnsAnswers(NAMES, ttl=60, forward=True).answer(query, "10.45.0.1")
    assert answer.forward
    assert answer.reply is None
    assert answer.outcome == "forwarded"


def test_malformed_queries() -> None:
    answers = DnsAnswers(NAMES, ttl=60, forward=False)
    assert answers.answer(b"\x12", "10.0.0.1").reply is None  # no header: nothing to answer
    garbage = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff"
    reply = answers.answer(garbage, "10.0.0.1")
    assert reply.reply is not None
    header = DNSRecord.parse(reply.reply).header
    assert (header.id, header.qr, header.rcode) == (0xABCD, 1, RCODE.FORMERR)
    # a response is never answered (two responders must not ping-pong)
    response = DNSRecord.question("harvest.soracom.io").reply()
    assert answers.answer(bytes(response.pack()), "10.0.0.1").reply is None
    # an inverse query (opcode 1) is not implemented
    inverse = DNSRecord(DNSHeader(opcode=1), q=DNSRecord.question("harvest.soracom.io").q)
    assert DNSRecord.parse(
        answers.answer(bytes(inverse.pack()), "10.0.0.1").reply
    ).header.rcode == (RCODE.NOTIMP)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"dns": "localhost:53"}, "not an IP address", id="host-name"),
        pytest.param({"dns": "127.0.0.1"}, "HOST:PORT", id="no-port"),
        pytest.param({"dns": "127.0.0.1:70000"}, "not a port", id="bad-port"),
        pytest.param({"dns_other": "nxdomain"}, "refuse or forward", id="bad-policy"),
        pytest.param({"dns_other": "forward"}, "needs dns_upstream", id="forward-nowhere"),
        pytest.param({"dns_names": "a..b"}, "not a host name", id="bad-name"),
        pytest.param({"dns_ttl": -1}, "dns_ttl", id="bad-ttl"),
    ],
)
def test_bad_dns_settings_fail_at_start(fields: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings(**fields)  # type: ignore[arg-type]


# --- a running responder, through real sockets -------------------------------------------------
def dns_port(emulator: Emulator) -> int:
    return emulator.app[DNS_SERVER].port


async def udp_query(
    host: str, port: int, name: str, qtype: str = "A", *, source: str | None = None
) -> DNSRecord:
    """Ask over UDP from a socket *connected* to ``host``: the kernel hands it only replies
    that come from ``host``, so an answer from any other address times out."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    got: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if not got.done():
                got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(
        Client,
        remote_addr=(host, port),
        local_addr=None if source is None else (source, 0),
        family=family,
    )
    try:
        transport.sendto(bytes(DNSRecord.question(name, qtype).pack()))
        return DNSRecord.parse(await asyncio.wait_for(got, 5))
    finally:
        transport.close()


async def tcp_query(host: str, port: int, *questions: tuple[str, str]) -> list[DNSRecord]:
    """Several queries on one TCP connection (RFC 7766), each with its two-byte length."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        replies = []
        for name, qtype in questions:
            query = bytes(DNSRecord.question(name, qtype).pack())
            writer.write(struct.pack("!H", len(query)) + query)
            (length,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 5))
            replies.append(DNSRecord.parse(await reader.readexactly(length)))
        return replies
    finally:
        writer.close()
        await writer.wait_closed()


def addresses(record: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in record.rr]


@pytest.mark.settings(dns="0.0.0.0:0")
@pytest.mark.parametrize("asked", ["127.0.0.1", "127.0.0.7", "127.0.0.9"])
async def test_the_answer_is_the_address_the_query_arrived_on(
    emulator: Emulator, asked: str
) -> None:
    reply = await udp_query(asked, dns_port(emulator), "harvest.soracom.io")
    assert addresses(reply) == [asked]
    [by_tcp] = await tcp_query(asked, dns_port(emulator), ("uni.soracom.io", "A"))
    assert addresses(by_tcp) == [asked]


@pytest.mark.settings(dns="[::1]:0")
async def test_ipv6_askers_get_aaaa(emulator: Emulator) -> None:
    assert Settings(dns="[::1]:0").dns_address == ("::1", 0)
    assert addresses(await udp_query("::1", dns_port(emulator), "api.soracom.io", "AAAA")) == [
        "::1"
    ]
    assert addresses(await udp_query("::1", dns_port(emulator), "api.soracom.io", "A")) == []


@pytest.mark.settings(dns="127.0.0.1:0", dns_names="files.example.test", dns_ttl=7)
async def test_queries_are_logged_with_the_sim_and_counted(emulator: Emulator) -> None:
    sim = await emulator.new_sim()
    port = dns_port(emulator)
    assert addresses(
        await udp_query("127.0.0.1", port, "beam.soracom.io", source=sim["sessionAddress"])
    ) == ["127.0.0.1"]
    extra = await udp_query("127.0.0.1", port, "FILES.example.test")
    assert addresses(extra) == ["127.0.0.1"]
    assert extra.rr[0].ttl == 7
    refused, nodata = await tcp_query(
        "127.0.0.1", port, ("example.com", "A"), ("api.soracom.io", "AAAA")
    )
    assert refused.header.rcode == RCODE.REFUSED
    assert (nodata.header.rcode, nodata.rr) == (RCODE.NOERROR, [])

    status, records = await emulator.control("GET", "/requests?protocol=dns")
    assert status == 200
    assert [(r["target"], r["status"], r["reason"]) for r in records] == [
        ("api.soracom.io. AAAA", 0, None),
        ("example.com. A", 5, "REFUSED"),
        ("FILES.example.test. A", 0, None),
        ("beam.soracom.io. A", 0, None),
    ]
    assert records[-1]["imsi"] == sim["imsi"]  # asked from the SIM's session address
    assert records[-1]["peer"] == sim["sessionAddress"]
    samples, _ = await scrape(emulator)
    assert value(samples, "harvest_dns_queries_total", type="A", answer="own") == 2
    assert value(samples, "harvest_dns_queries_total", type="A", answer="refused") == 1
    assert value(samples, "harvest_dns_queries_total", type="AAAA", answer="nodata") == 1
    status, health = await emulator.control("GET", "/health")
    assert health["listeners"]["dns"] == [f"udp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port}"]


class Upstream(asyncio.DatagramProtocol):
    """A stand-in upstream resolver: answers every A query 192.0.2.1 (TEST-NET-1), or, when
    ``silent``, nothing."""

    def __init__(self, silent: bool) -> None:
        self.silent = silent
        self.transport: asyncio.DatagramTransport | None = None
        self.asked: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = DNSRecord.parse(data)
        self.asked.append(str(query.q.qname))
        if self.silent or self.transport is None:
            return
        reply = query.reply()
        reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A("192.0.2.1"), ttl=30))
        self.transport.sendto(bytes(reply.pack()), addr)


@pytest.fixture(params=[False, True], ids=["answering", "silent"])
async def upstream(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Upstream, int]]:
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: Upstream(silent=request.param), local_addr=("127.0.0.1", 0)
    )
    yield protocol, transport.get_extra_info("sockname")[1]
    transport.close()


async def test_other_names_are_forwarded_to_the_upstream(
    aiohttp_client: object, upstream: tuple[Upstream, int], tmp_path: object
) -> None:
    from harvest.app import create_app

    protocol, upstream_port = upstream
    settings = Settings(
        port=0,
        harvest_port=0,
        unified_port=0,
        memory=True,
        dns="127.0.0.1:0",
        dns_other="forward",
        dns_upstream=f"127.0.0.1:{upstream_port}",
    )
    client = await aiohttp_client(create_app(settings))  # type: ignore[operator]
    port = client.app[DNS_SERVER].port
    reply = await udp_query("127.0.0.1", port, "example.com")
    if protocol.silent:
        assert reply.header.rcode == RCODE.SERVFAIL
    else:
        assert addresses(reply) == ["192.0.2.1"]
    assert protocol.asked == ["example.com."]
    # our own names never go upstream
    assert addresses(await udp_query("127.0.0.1", port, "harvest.soracom.io")) == ["127.0.0.1"]
    assert protocol.asked == ["example.com."]
