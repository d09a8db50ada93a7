"""SIM identity by session address (issue 2, item 5; spec B2)."""

from __future__ import annotations

import asyncio

import pytest

from harvest.domain import Sim, SimStatus, normalise_address
from harvest.identity import LoopbackAllocator, SessionTable, loopback_address
from tests.conftest import Emulator


def test_loopback_addresses_skip_network_and_broadcast_hosts() -> None:
    assert loopback_address(0) == "127.0.0.1"
    assert loopback_address(253) == "127.0.0.254"
    assert loopback_address(254) == "127.0.1.1"
    with pytest.raises(ValueError, match="out of range"):
        loopback_address(-1)


def test_the_allocator_never_hands_out_a_taken_address() -> None:
    allocator = LoopbackAllocator()
    taken = {"127.0.0.2", "127.0.0.4"}
    got = [allocator.allocate(taken) for _ in range(3)]
    assert got == ["127.0.0.3", "127.0.0.5", "127.0.0.6"]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("::ffff:127.0.0.5", "127.0.0.5"),
        ("127.000.0.1".replace("000", "0"), "127.0.0.1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_addresses_are_normalised(raw: str, canonical: str) -> None:
    assert normalise_address(raw) == canonical


class Directory:
    def __init__(self, sims: list[Sim]) -> None:
        self.by_address = {s.session_address: s for s in sims}

    def sim_by_address(self, address: str) -> Sim | None:
        return self.by_address.get(address)

    def sim_by_imsi(self, imsi: str) -> Sim | None:
        return next((s for s in self.by_address.values() if s.imsi == imsi), None)


def test_the_session_table_finds_mapped_ipv6_peers() -> None:
    sim = Sim(
        "001010000000009", "x", "x", "x", "OP1", SimStatus.ACTIVE, None, {}, "127.0.0.9", 0, 0
    )
    table = SessionTable(Directory([sim]))
    assert table.resolve("127.0.0.9") is sim
    assert table.resolve("::ffff:127.0.0.9") is sim
    assert table.resolve("127.0.0.10") is None
    assert table.resolve("not an address") is None


async def test_each_device_writes_as_the_sim_whose_address_it_binds(emulator: Emulator) -> None:
    sims = [await emulator.new_sim() for _ in range(12)]
    addresses = {s["sessionAddress"] for s in sims}
    assert len(addresses) == 12
    results = await asyncio.gather(
        *(emulator.device(s["sessionAddress"]).send(f'{{"imsi":"{s["imsi"]}"}}') for s in sims)
    )
    assert all(status == 201 for status, _ in results)
    api = await emulator.api()
    for sim in sims:
        [entry] = (await api.get(f"/v1/subscribers/{sim['imsi']}/data")).json
        assert entry["content"] == f'{{"imsi":"{sim["imsi"]}"}}'
