"""The raw listeners' batch path (harvest/ingest/batch.py): the messages of one turn of the loop,
accepted and refused together, stored with one commit, reported as the object path reports."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gateway.app import RAW_LISTENERS
from gateway.raw import RawHandler
from gateway.udp import Address
from harvest.context import QUOTAS, STORE
from harvest.storage.base import UsageKind
from tests.conftest import Emulator
from tests.gateway.test_raw_listeners import UdpClient, contents, payload
from tests.harvest.test_metrics import scrape, value
from tests.harvest.test_options_ingest import configure
from tests.harvest.test_sessions import session

IMSI = "001010000000001"
T0 = 1_800_000_000_000
DAY = "2027-01-15"  # the UTC day of T0
OPERATOR = "OP0000000000"


def udp_handler(emulator: Emulator) -> RawHandler[Address]:
    return emulator.app[RAW_LISTENERS].udp["harvest"][0].handler


@asynccontextmanager
async def one_turn(
    emulator: Emulator, messages: list[tuple[bytes, str]]
) -> AsyncIterator[list[asyncio.Queue[bytes]]]:
    """Hand ``messages`` (body, sender address) to the UDP listener's handler in one turn of
    the loop, as datagrams that arrived together; each reply goes to a socket of its own,
    whose queue is yielded in the messages' order."""
    loop = asyncio.get_running_loop()
    sockets = [
        await loop.create_datagram_endpoint(UdpClient, local_addr=("127.0.0.1", 0))
        for _ in messages
    ]
    try:
        handler = udp_handler(emulator)
        for (body, sender), (transport, _) in zip(messages, sockets, strict=True):
            handler.submit(body, sender, transport.get_extra_info("sockname"))
        assert handler.waiting == len(messages)  # not checked yet: one batch
        yield [client.replies for _, client in sockets]
    finally:
        for transport, _ in sockets:
            transport.close()


async def replies_of(queues: list[asyncio.Queue[bytes]]) -> list[bytes | None]:
    """Each socket's reply, ``None`` where none came (a message that gets no answer)."""
    found: list[bytes | None] = []
    for queue in queues:
        try:
            found.append(await asyncio.wait_for(queue.get(), 2))
        except TimeoutError:
            found.append(None)
    return found


async def requests(emulator: Emulator) -> list[dict[str, Any]]:
    _, logged = await emulator.control("GET", "/requests?protocol=udp&limit=100")
    return list(reversed(logged))  # oldest first


async def test_one_turn_of_accepted_and_refused_messages(emulator: Emulator) -> None:
    await emulator.control("PUT", "/clock", {"now": T0, "frozen": True})
    other = await emulator.new_sim(status="active")
    address = other["sessionAddress"]
    big = b"x" * (emulator.settings.max_payload_bytes + 1)
    messages = [
        (b"first", "127.0.0.1"),
        (b"from nowhere", "127.0.0.250"),
        (b"other", address),
        (big, address),
        (b"second", "127.0.0.1"),  # the same frozen millisecond: replaces "first"
    ]
    async with one_turn(emulator, messages) as queues:
        assert await replies_of(queues) == [b"201", b"403", b"201", b"413", b"201"]

    assert await contents(emulator) == [payload(b"second")]
    assert await contents(emulator, other["imsi"]) == [payload(b"other")]
    logged = await requests(emulator)
    assert [(r["imsi"], r["status"], r["bytes"], r["reason"], r["replaced"]) for r in logged] == [
        (None, 403, 12, "HEM4003", 0),
        (other["imsi"], 413, len(big), "HEM4004", 0),
        (IMSI, 201, 5, None, 0),
        (other["imsi"], 201, 5, None, 0),
        (IMSI, 201, 6, None, 1),
    ]
    assert {r["target"] for r in logged} == {"harvest-udp"}
    samples, _ = await scrape(emulator)
    assert value(samples, "harvest_device_writes_received_total", protocol="udp") == 5
    assert value(samples, "harvest_device_writes_stored_total", protocol="udp") == 3
    assert value(samples, "harvest_entries_replaced_total", protocol="udp") == 1
    for histogram in ("harvest_device_write_duration_seconds", "harvest_device_payload_size_bytes"):
        assert value(samples, f"{histogram}_count", protocol="udp") == 5  # each write once
    stored = sum(len(payload(body)) for body in (b"first", b"other", b"second"))
    assert value(samples, "harvest_stored_bytes_total") == stored
    store = emulator.app[STORE]
    assert await store.usage_count(OPERATOR, IMSI, DAY, UsageKind.WRITE) == 2
    assert emulator.app[QUOTAS].quota(IMSI).used == 2
    # a stored write is traffic: its SIM is online at the address it sent from
    status = await session(emulator, IMSI)
    assert (status["online"], status["ueIpAddress"], status["lastUpdatedAt"]) == (
        True,
        "127.0.0.1",
        T0,
    )


async def test_batch_writes_become_one_entry_and_one_write_per_element(
    emulator: Emulator,
) -> None:
    await configure(
        emulator, "SoracomAir", {"binaryParserEnabled": True, "binaryParserFormat": "@json"}
    )
    timestamp = {"type": "jsonpointer", "value": "/t", "format": "unixtime-milliseconds"}
    await configure(
        emulator,
        "SoracomHarvest",
        {
            "customTimestamp": timestamp,
            "batchWrite": {"enabled": True, "pointer": "/data"},
            "category": "c",
        },
    )
    await emulator.control("PUT", "/clock", {"now": T0, "frozen": True})
    other = await emulator.new_sim(status="active")
    messages = [
        (f'{{"data":[{{"t":{T0 - 2},"v":1}},{{"t":{T0 - 1},"v":2}}]}}'.encode(), "127.0.0.1"),
        (b'{"data":{"t":1}}', other["sessionAddress"]),  # not an array: refused
        (f'{{"data":[{{"t":{T0 - 5},"w":3}}]}}'.encode(), other["sessionAddress"]),
    ]
    async with one_turn(emulator, messages) as queues:
        assert await replies_of(queues) == [b"201", b"400", b"201"]

    assert await contents(emulator) == [f'{{"t":{T0 - 2},"v":1}}', f'{{"t":{T0 - 1},"v":2}}']
    assert await contents(emulator, other["imsi"]) == [f'{{"t":{T0 - 5},"w":3}}']
    api = await emulator.api()
    names = {
        meta["resourceId"]: sorted(meta["attributeNames"])
        for meta in (await api.get("/v1/data/metadata/resources")).json
    }
    assert names == {IMSI: ["t", "v"], other["imsi"]: ["t", "w"]}
    samples, _ = await scrape(emulator)
    assert value(samples, "harvest_device_writes_stored_total", protocol="udp") == 3
    store = emulator.app[STORE]
    assert await store.usage_count(OPERATOR, IMSI, DAY, UsageKind.WRITE) == 2
    assert await store.usage_count(OPERATOR, other["imsi"], DAY, UsageKind.WRITE) == 1


async def test_a_batch_that_cannot_be_stored_is_answered_500_and_not_counted(
    emulator: Emulator,
) -> None:
    """Storing fails (the journal is gone): every write of the batch gets ``500``, is reported
    so, and its quota reservation is released; nothing was acknowledged."""
    database = emulator.settings.data_dir / "harvest.sqlite3"

    def rename(old: str, new: str) -> None:
        with sqlite3.connect(database) as db:
            db.execute(f"ALTER TABLE {old} RENAME TO {new}")

    await asyncio.to_thread(rename, "journal", "journal_away")
    try:
        async with one_turn(emulator, [(b"a", "127.0.0.1"), (b"b", "127.0.0.1")]) as queues:
            assert await replies_of(queues) == [b"500", b"500"]
    finally:
        await asyncio.to_thread(rename, "journal_away", "journal")
    logged = await requests(emulator)
    assert [(r["imsi"], r["status"], r["bytes"]) for r in logged] == [(IMSI, 500, 1)] * 2
    assert emulator.app[QUOTAS].quota(IMSI).used == 0
    async with one_turn(emulator, [(b"c", "127.0.0.1")]) as queues:
        assert await replies_of(queues) == [b"201"]
    assert await contents(emulator) == [payload(b"c")]
