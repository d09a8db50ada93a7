"""Beam over TCP (issue 12, item 5): Beam's signed first line names the SIM of a raw TCP
connection, verified with the pre-shared key by SORACOM's algorithm (notes 3.2, vector S3)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from gateway.beam import MAX_TCP_FIRST_LINE, TcpFirstLine
from tests.conftest import Emulator
from tests.gateway.test_beam import S3_LINE, S3_PSK
from tests.gateway.test_raw_listeners import port

S3_IMSI = "440101234567890"
S3_TIME = 1608251959862


def signed_line(fields: str, psk: str = S3_PSK) -> bytes:
    signature = hashlib.sha256((psk + fields).encode()).hexdigest()
    return f"{fields};signature={signature}\r\n".encode()


# --- the first-line reader, as a pure object -------------------------------------------------
def test_the_documented_vector_names_its_imsi_and_leaves_the_message() -> None:
    entry = TcpFirstLine(S3_PSK).feed(S3_LINE.encode() + b"\r\nhello")
    assert entry is not None
    assert entry.error is None
    assert entry.identity is not None
    assert (entry.identity.imsi, entry.identity.timestamp_ms) == (S3_IMSI, S3_TIME)
    assert entry.rest == b"hello"


def test_a_line_that_arrives_a_byte_at_a_time_is_read_whole() -> None:
    reader = TcpFirstLine(S3_PSK)
    stream = S3_LINE.encode() + b"\n"
    for byte in stream[:-1]:
        assert reader.feed(bytes([byte])) is None
    entry = reader.feed(stream[-1:])
    assert entry is not None
    assert entry.identity is not None
    assert entry.rest == b""


@pytest.mark.parametrize(
    "data", [b"\x01\x02", b"hello", b"ims", b'{"imsi":1}'], ids=["binary", "text", "x", "json"]
)
def test_a_device_speaking_directly_is_passed_through(data: bytes) -> None:
    reader = TcpFirstLine(S3_PSK)
    entry = reader.feed(data)
    if data == b"ims":  # could still become "imsi=": wait for more
        assert entry is None
        entry = reader.feed(b"!")
        data += b"!"
    assert entry is not None
    assert (entry.identity, entry.rest, entry.error) == (None, data, None)


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        pytest.param(S3_LINE.replace("4401", "4402").encode() + b"\n", "mismatch", id="tampered"),
        pytest.param(signed_line("imsi=1 timestamp=2", psk="wrong"), "mismatch", id="wrong-key"),
        pytest.param(b"imsi=440101234567890 timestamp=1\n", "no ;signature=", id="unsigned"),
        pytest.param(
            signed_line("imei=359675070019530 timestamp=1"), "names no IMSI", id="no-imsi"
        ),
        pytest.param(b"imsi=" + b"1" * MAX_TCP_FIRST_LINE, "no end of line", id="endless"),
    ],
)
def test_a_line_that_does_not_verify_is_an_error(stream: bytes, reason: str) -> None:
    entry = TcpFirstLine(S3_PSK).feed(stream)
    assert entry is not None
    assert entry.error is not None
    assert reason in str(entry.error)


def test_the_skew_is_checked_against_the_clock_when_asked() -> None:
    late = TcpFirstLine(S3_PSK, max_skew_ms=1000, now_ms=lambda: S3_TIME + 5000)
    entry = late.feed(S3_LINE.encode() + b"\n")
    assert entry is not None
    assert entry.error is not None
    on_time = TcpFirstLine(S3_PSK, max_skew_ms=1000, now_ms=lambda: S3_TIME + 500)
    entry = on_time.feed(S3_LINE.encode() + b"\n")
    assert entry is not None
    assert entry.error is None


# --- the raw TCP listener ----------------------------------------------------------------------
@pytest.fixture(autouse=True)
async def vector_sim(emulator: Emulator) -> None:
    """S3's SIM, and the clock just after S3's timestamp (entry times stay in retention)."""
    await emulator.control("PUT", "/clock", {"now": S3_TIME + 3_600_000, "frozen": False})
    await emulator.new_sim(imsi=S3_IMSI, sessionAddress="127.0.9.9")


async def converse(emulator: Emulator, first: bytes, *messages: bytes) -> list[bytes]:
    """Connect from 127.0.0.1 (Beam's stand-in: the default SIM's address), send ``first``,
    then each message after the reply to the one before; the replies, ``b""`` once closed."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port(emulator), local_addr=("127.0.0.1", 0)
    )
    replies = []
    try:
        for chunk in (first, *messages):
            writer.write(chunk)
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(100), 5)
            replies.append(reply)
            if not reply:
                break
    finally:
        writer.close()
    return replies


async def contents(emulator: Emulator, imsi: str) -> list[str]:
    api = await emulator.api()
    reply = await api.get(f"/v1/subscribers/{imsi}/data", sort="asc", **{"from": 0})
    return [entry["content"] for entry in reply.json]


@pytest.mark.settings(beam_psk=S3_PSK)
async def test_a_verified_line_names_the_sim_of_every_message_on_the_connection(
    emulator: Emulator,
) -> None:
    replies = await converse(emulator, S3_LINE.encode() + b"\r\none", b"two")
    assert replies == [b"201", b"201"]
    assert await contents(emulator, S3_IMSI) == [
        '{"payload":"b25l"}',  # "one", then "two": binary, as everything over TCP
        '{"payload":"dHdv"}',
    ]
    assert await contents(emulator, "001010000000001") == []  # not the sender's address's SIM


@pytest.mark.settings(beam_psk=S3_PSK)
async def test_the_line_may_come_alone_before_the_first_message(emulator: Emulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port(emulator))
    try:
        writer.write(S3_LINE.encode() + b"\n")
        await writer.drain()
        await asyncio.sleep(0.05)  # its own segment: no reply to the line itself
        writer.write(b"data")
        assert await asyncio.wait_for(reader.read(100), 5) == b"201"
    finally:
        writer.close()
    assert await contents(emulator, S3_IMSI) == ['{"payload":"ZGF0YQ=="}']


@pytest.mark.settings(beam_psk=S3_PSK)
async def test_a_bad_line_is_403_and_the_connection_closed(emulator: Emulator) -> None:
    tampered = S3_LINE.replace("1608251959862", "1608251959863").encode() + b"\nx"
    assert await converse(emulator, tampered, b"more") == [b"403", b""]
    assert await contents(emulator, S3_IMSI) == []
    status, [record] = await emulator.control("GET", "/requests?protocol=tcp&limit=1")
    assert status == 200
    # Not the signed IMSI: the line did not verify. The record names the SIM whose session
    # address the connection came from, as for an HTTP forward with a bad signature (here the
    # default SIM's 127.0.0.1; Beam's real addresses are no SIM's, so none).
    assert (record["status"], record["reason"]) == (403, "HEM4011")
    assert record["imsi"] != S3_IMSI


@pytest.mark.settings(beam_psk=S3_PSK)
async def test_a_device_speaking_directly_is_still_known_by_its_address(
    emulator: Emulator,
) -> None:
    assert await converse(emulator, b"plain") == [b"201"]
    assert await contents(emulator, "001010000000001") == ['{"payload":"cGxhaW4="}']


async def test_without_a_key_the_line_is_not_read(emulator: Emulator) -> None:
    # as for HTTP: with no key nothing Beam says is trusted; the bytes are the device's data
    assert await converse(emulator, S3_LINE.encode() + b"\n") == [b"201"]
    assert await contents(emulator, S3_IMSI) == []
    [stored] = await contents(emulator, "001010000000001")
    assert "payload" in stored
