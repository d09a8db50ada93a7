"""A private cellular core: the UE pool's addresses map to IMSIs (issue 3, item 6b)."""

from __future__ import annotations

import pytest

from tests.conftest import Emulator
from tests.gateway.test_raw_listeners import udp_exchange


@pytest.mark.settings(ue_map="127.0.3.0/24=001010000000002,127.0.3.7=001010000000003")
async def test_addresses_and_ranges_map_to_sims(emulator: Emulator) -> None:
    await emulator.new_sim(imsi="001010000000002", sessionAddress="127.0.9.2")
    await emulator.new_sim(imsi="001010000000003", sessionAddress="127.0.9.3")
    assert (await emulator.device("127.0.3.20").send('{"range":1}'))[0] == 201
    assert await udp_exchange(emulator, [b"exact"], source="127.0.3.7") == [b"201"]
    api = await emulator.api()
    [by_range] = (await api.get("/v1/subscribers/001010000000002/data")).json
    assert by_range["content"] == '{"range":1}'
    [exact] = (await api.get("/v1/subscribers/001010000000003/data")).json
    assert exact["content"] == '{"payload":"ZXhhY3Q="}'
    # outside the map: no session
    assert (await emulator.device("127.0.4.1").send('{"x":1}'))[0] == 403


@pytest.mark.settings(ue_map="127.0.3.0/24=001010000000009")
async def test_a_route_to_an_unknown_imsi_is_no_session(emulator: Emulator) -> None:
    assert (await emulator.device("127.0.3.5").send('{"x":1}'))[0] == 403
