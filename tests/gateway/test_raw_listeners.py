"""Raw TCP and UDP on the Harvest and Unified Endpoint ports (issue 3, item 1; spec A1, B3, B4)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
from pathlib import Path

import pytest

from gateway.app import RAW_LISTENERS, UDP_RECEIVE_BUFFER
from tests.conftest import Emulator

IMSI = "001010000000001"


def port(emulator: Emulator, endpoint: str = "harvest") -> int:
    return emulator.app[RAW_LISTENERS].ports[endpoint]


async def tcp_exchange(
    emulator: Emulator,
    messages: list[bytes],
    *,
    source: str = "127.0.0.1",
    endpoint: str = "harvest",
    host: str = "127.0.0.1",
) -> list[bytes]:
    """Send each message and wait for its reply, as firmware does (spec B3)."""
    reader, writer = await asyncio.open_connection(
        host, port(emulator, endpoint), local_addr=(source, 0)
    )
    replies = []
    try:
        for message in messages:
            writer.write(message)
            await writer.drain()
            replies.append(await asyncio.wait_for(reader.read(4096), 5))
    finally:
        writer.close()
        await writer.wait_closed()
    return replies


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.replies.put_nowait(data)


async def udp_exchange(
    emulator: Emulator,
    messages: list[bytes],
    *,
    source: str = "127.0.0.1",
    endpoint: str = "harvest",
    host: str = "127.0.0.1",
    wait_s: float = 5.0,
) -> list[bytes]:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    transport, client = await loop.create_datagram_endpoint(
        UdpClient,
        local_addr=(source, 0),
        remote_addr=(host, port(emulator, endpoint)),
        family=family,
    )
    try:
        replies = []
        for message in messages:
            transport.sendto(message)
            replies.append(await asyncio.wait_for(client.replies.get(), wait_s))
        return replies
    finally:
        transport.close()


async def contents(emulator: Emulator, imsi: str = IMSI) -> list[str]:
    api = await emulator.api()
    reply = await api.get(f"/v1/subscribers/{imsi}/data", sort="asc", limit=100)
    return [entry["content"] for entry in reply.json]


def payload(raw: bytes) -> str:
    return json.dumps({"payload": base64.b64encode(raw).decode()}, separators=(",", ":"))


@pytest.mark.parametrize("endpoint", ["harvest", "unified"])
async def test_tcp_answers_201_per_message_and_stores_binary(
    emulator: Emulator, endpoint: str
) -> None:
    await emulator.control("PUT", "/clock", {"now": 1_800_000_000_000, "frozen": True})
    messages = [b'{"looks":"like json"}', b"\x00\x01\x02"]
    replies = []
    for message in messages:  # one connection per message, and the clock moves between them
        replies += await tcp_exchange(emulator, [message], endpoint=endpoint)
        await emulator.control("POST", "/clock/advance", {"seconds": 1})
    assert replies == [b"201", b"201"]
    # anything over TCP is binary, even if it looks like JSON (spec A1)
    assert await contents(emulator) == [payload(m) for m in messages]


async def test_several_messages_on_one_tcp_connection(emulator: Emulator) -> None:
    await emulator.control("PUT", "/clock", {"now": 1_800_000_000_000, "frozen": True})
    replies = await tcp_exchange(emulator, [b"a", b"b", b"c"])
    assert replies == [b"201"] * 3
    _, sim = await emulator.control("GET", f"/sims/{IMSI}")
    assert sim["writesToday"] == 3  # same frozen millisecond: one entry, three writes


@pytest.mark.parametrize("endpoint", ["harvest", "unified"])
async def test_udp_answers_201_per_datagram(emulator: Emulator, endpoint: str) -> None:
    replies = await udp_exchange(emulator, [b"\xca\xfe"], endpoint=endpoint)
    assert replies == [b"201"]
    assert await contents(emulator) == [payload(b"\xca\xfe")]


async def test_refusals_are_the_ascii_status(emulator: Emulator) -> None:
    assert await tcp_exchange(emulator, [b"x"], source="127.0.0.99") == [b"403"]
    assert await udp_exchange(emulator, [b"x"], source="127.0.0.99") == [b"403"]
    sim = await emulator.new_sim(groupId=None)
    assert await udp_exchange(emulator, [b"x"], source=sim["sessionAddress"]) == [b"400"]
    assert await contents(emulator) == []


async def test_each_sim_is_identified_by_its_source_address(emulator: Emulator) -> None:
    sims = [await emulator.new_sim() for _ in range(3)]
    for i, sim in enumerate(sims):
        send = tcp_exchange if i % 2 else udp_exchange
        assert await send(emulator, [f"sim{i}".encode()], source=sim["sessionAddress"]) == [b"201"]
    for i, sim in enumerate(sims):
        assert await contents(emulator, sim["imsi"]) == [payload(f"sim{i}".encode())]


@pytest.mark.settings(max_payload_bytes=8)
async def test_an_oversized_tcp_message_is_413_and_the_connection_is_cut(
    emulator: Emulator,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port(emulator))
    writer.write(b"x" * 9)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(100), 5) == b"413"
    assert await asyncio.wait_for(reader.read(100), 5) == b""  # cut off
    writer.close()
    assert await udp_exchange(emulator, [b"y" * 9]) == [b"413"]
    assert await udp_exchange(emulator, [b"y" * 8]) == [b"201"]


@pytest.mark.settings(tcp_idle_timeout=0.3)
async def test_an_idle_tcp_connection_is_closed(emulator: Emulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port(emulator))
    assert await asyncio.wait_for(reader.read(100), 5) == b""
    writer.close()


@pytest.mark.settings(tcp_max_connections=2)
async def test_the_connection_cap_refuses_extra_clients_without_stalling_the_others(
    emulator: Emulator,
) -> None:
    held = [await asyncio.open_connection("127.0.0.1", port(emulator)) for _ in range(2)]
    reader, writer = await asyncio.open_connection("127.0.0.1", port(emulator))
    assert await asyncio.wait_for(reader.read(100), 5) == b"503"
    assert await asyncio.wait_for(reader.read(100), 5) == b""
    writer.close()
    # the connections inside the cap still work
    held_reader, held_writer = held[0]
    held_writer.write(b"ok")
    assert await asyncio.wait_for(held_reader.read(100), 5) == b"201"
    for _, w in held:
        w.close()


async def test_a_client_that_sends_without_waiting_gets_every_reply_in_order(
    emulator: Emulator,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port(emulator))
    for i in range(20):
        writer.write(f"m{i}".encode())
        await asyncio.sleep(0)  # may merge into one read, which is then one message (spec B3)
    await writer.drain()
    received = b""
    while len(received) < 3 or len(received) % 3:
        chunk = await asyncio.wait_for(reader.read(100), 5)
        assert chunk
        received += chunk
        if len(received) >= 3 * 20:
            break
        try:
            received += await asyncio.wait_for(reader.read(100), 0.3)
        except TimeoutError:
            break
    assert set(received.replace(b"201", b"")) == set()  # only 201s, none lost or garbled
    writer.close()


@pytest.mark.settings(host="127.0.0.1,::1")
async def test_ipv6_listeners(emulator: Emulator) -> None:
    if not socket.has_ipv6:
        pytest.skip("this machine has no IPv6")
    await emulator.new_sim(sessionAddress="::1")
    assert await tcp_exchange(emulator, [b"v6"], source="::1", host="::1") == [b"201"]
    assert await udp_exchange(emulator, [b"v6u"], source="::1", host="::1") == [b"201"]


async def test_health_lists_the_raw_listeners(emulator: Emulator) -> None:
    _, health = await emulator.control("GET", "/health")
    assert set(health["listeners"]) >= {"harvest-tcp", "harvest-udp", "unified-tcp", "unified-udp"}
    assert health["listeners"]["harvest-udp"] == [f"udp://127.0.0.1:{port(emulator)}"]


async def test_udp_listeners_take_a_fleets_burst(emulator: Emulator) -> None:
    """10,000 SIMs' first datagrams arrive together: the kernel's default receive buffer
    (~208 KiB) dropped ~10 % of them (tests/bench/scale.py); the listeners ask for 8 MiB,
    which Linux caps at net.core.rmem_max."""
    cap = int(await asyncio.to_thread(Path("/proc/sys/net/core/rmem_max").read_text))
    for endpoint in emulator.app[RAW_LISTENERS].udp["harvest"]:
        assert endpoint.transport is not None
        sock = endpoint.transport.get_extra_info("socket")
        size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert size >= 2 * min(cap, UDP_RECEIVE_BUFFER)  # Linux reports double the request


async def test_a_tcp_sender_that_does_not_wait_queues_a_bounded_backlog(
    emulator: Emulator,
) -> None:
    """A device should wait for each reply (spec B3); one that does not gets its messages
    handled in order, one at a time, and once MAX_WAITING wait, the emulator stops reading it
    until the replies catch up: what one sender queues stays bounded. Nothing is lost."""
    from gateway.tcp import MAX_WAITING

    status, _ = await emulator.control(
        "POST", "/faults", {"effect": "delay", "delayMs": 400, "protocol": "tcp", "count": 1}
    )
    assert status == 201
    reader, writer = await asyncio.open_connection("127.0.0.1", port(emulator, "harvest"))
    sent = 3 * MAX_WAITING
    for i in range(sent):
        writer.write(b"m%03d" % i)
        await writer.drain()
        await asyncio.sleep(0.01)  # separate reads, as separate sends from a device
    (connection,) = emulator.app[RAW_LISTENERS].tcp["harvest"].connections
    waiting = len(connection._backlog)
    assert 0 < waiting <= MAX_WAITING  # the first message is still delayed: the rest wait
    replies = b""
    logged: list[dict[str, object]] = []
    for _ in range(100):  # every byte sent is handled once the replies catch up
        with contextlib.suppress(TimeoutError):
            replies += await asyncio.wait_for(reader.read(1000), 0.05)
        _, logged = await emulator.control("GET", "/requests?protocol=tcp&limit=1000")
        if sum(int(str(r["bytes"])) for r in logged) >= 4 * sent:
            break
    writer.close()
    await writer.wait_closed()
    assert sum(int(str(r["bytes"])) for r in logged) == 4 * sent
    assert {r["status"] for r in logged} == {201}
    assert replies == b"201" * len(logged)  # one reply per message handled, in order
