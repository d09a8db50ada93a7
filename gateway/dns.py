"""The DNS responder's answers (issue 12, item 1): SORACOM's host names resolve to the emulator.

On a private cellular core the core hands its UEs a DNS server (DHCP, or the PCO of the PDN
connection). Pointing that at the emulator makes ``harvest.soracom.io``, ``uni.soracom.io``,
``api.soracom.io`` and the other names in :data:`harvest.wire.SORACOM_NAMES` resolve to the
emulator, so firmware is tested with its real host names, unmodified (docs/real-modems.md).

Each name is answered with the address the query **arrived on**: the emulator as the asker sees
it, which is the right answer on every link of a multi-homed host (the core's UE side, a LAN,
loopback). ``A`` is answered over IPv4 and ``AAAA`` over IPv6; the other family, and any other
type of one of these names, is ``NOERROR`` with no record (NODATA, RFC 2308 section 2.2), so a
client that asks both uses the one that works. Other names are refused (``REFUSED``, RFC 1035
section 4.1.1) or forwarded to an upstream resolver (setting ``dns_other``).

Pure functions over wire bytes with dnslib (no sockets, no event loop); the listeners are in
:mod:`gateway.dnsserver`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSError, DNSHeader, DNSRecord
from dnslib.buffer import Buffer

#: RFC 1035 section 4.1.1: the header is 12 bytes; anything shorter has no ID to answer to.
HEADER_BYTES = 12
#: The outcomes counted in ``harvest_dns_queries_total{answer}`` and shown in the request log.
OUTCOMES = ("own", "nodata", "forwarded", "refused", "servfail", "formerr", "notimp")
#: Query types with their own label in the metrics; every other one counts as ``other``.
COUNTED_TYPES = ("A", "AAAA")


@dataclass(frozen=True, slots=True)
class Answer:
    """What to do with one query.

    ``reply`` is the response's wire bytes, or ``None``: with ``forward`` the query goes to the
    upstream resolver unchanged; otherwise nothing is sent (not a query at all). ``name`` is the
    question's name as asked (``""`` when it did not parse), ``qtype`` its type's mnemonic.
    """

    reply: bytes | None
    outcome: str
    rcode: int
    name: str = ""
    qtype: str = ""
    forward: bool = False

    @property
    def type_label(self) -> str:
        return self.qtype if self.qtype in COUNTED_TYPES else "other"


def canonical_name(name: str) -> str:
    """A name as the responder compares it: lowercase, without the root's trailing dot."""
    return name.lower().rstrip(".")


def local_address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address a query arrived on; an IPv4-mapped IPv6 address (a dual-stack socket's view
    of IPv4) is the IPv4 address it maps."""
    parsed = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


class DnsAnswers:
    """Answers queries for ``names`` (compared by :func:`canonical_name`) with the local
    address; see the module docstring. ``forward``: other names go upstream, else ``REFUSED``.
    """

    def __init__(self, names: Iterable[str], *, ttl: int, forward: bool) -> None:
        self.names = frozenset(canonical_name(n) for n in names)
        self.ttl = ttl
        self.forward = forward

    def answer(self, query: bytes, local: str) -> Answer:
        """The answer to ``query`` (wire bytes) that arrived on the address ``local``."""
        try:
            record = DNSRecord.parse(query)
        except (DNSError, ValueError, IndexError, UnicodeDecodeError):
            return self._unparsable(query)
        if record.header.qr:  # a response, not a query: never answer it (no loops)
            return Answer(None, "formerr", RCODE.FORMERR)
        if record.header.opcode != 0 or len(record.questions) != 1:
            # RFC 1035 4.1.1: only standard queries; one question is what every resolver sends.
            code = RCODE.NOTIMP if record.header.opcode != 0 else RCODE.FORMERR
            return self._error(record, code, "notimp" if code == RCODE.NOTIMP else "formerr")
        question = record.q
        name = str(question.qname)
        qtype = QTYPE.get(question.qtype, str(question.qtype))
        if canonical_name(name) not in self.names:
            if self.forward:
                return Answer(None, "forwarded", RCODE.NOERROR, name, qtype, forward=True)
            return self._error(record, RCODE.REFUSED, "refused")
        reply = record.reply(ra=int(self.forward))  # authoritative (aa=1) for our names
        address = local_address(local)
        if address.version == 4 and question.qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(str(address)), ttl=self.ttl))
        elif address.version == 6 and question.qtype in (QTYPE.AAAA, QTYPE.ANY):
            reply.add_answer(RR(question.qname, QTYPE.AAAA, rdata=AAAA(str(address)), ttl=self.ttl))
        outcome = "own" if reply.rr else "nodata"
        return Answer(bytes(reply.pack()), outcome, RCODE.NOERROR, name, qtype)

    def servfail(self, query: bytes) -> bytes:
        """``SERVFAIL`` for a forwarded query the upstream did not answer (RFC 1035 4.1.1)."""
        record = DNSRecord.parse(query)
        reply = record.reply(ra=1)
        reply.header.aa = 0
        reply.header.rcode = RCODE.SERVFAIL
        return bytes(reply.pack())

    def _error(self, record: DNSRecord, rcode: int, outcome: str) -> Answer:
        reply = record.reply(ra=int(self.forward))
        reply.header.aa = 0
        reply.header.rcode = rcode
        qtype = QTYPE.get(record.q.qtype, str(record.q.qtype)) if record.questions else ""
        name = str(record.q.qname) if record.questions else ""
        return Answer(bytes(reply.pack()), outcome, rcode, name, qtype)

    def _unparsable(self, query: bytes) -> Answer:
        """``FORMERR`` echoing the ID when there is a header to echo, else nothing at all."""
        if len(query) < HEADER_BYTES:
            return Answer(None, "formerr", RCODE.FORMERR)
        try:
            header = DNSHeader.parse(Buffer(query))
        except (DNSError, ValueError, IndexError):
            return Answer(None, "formerr", RCODE.FORMERR)
        if header.qr:
            return Answer(None, "formerr", RCODE.FORMERR)
        reply = DNSRecord(DNSHeader(id=header.id, qr=1, opcode=header.opcode, rcode=RCODE.FORMERR))
        return Answer(bytes(reply.pack()), "formerr", RCODE.FORMERR)


def rcode_name(rcode: int) -> str:
    """``REFUSED`` for 5, ...: the request log's reason for a query not answered NOERROR."""
    return str(RCODE.get(rcode, str(rcode)))
