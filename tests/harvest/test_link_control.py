"""The control plane's link profile calls (issue 12, item 4; docs/link-profiles.md)."""

from __future__ import annotations

import pytest

from tests.conftest import Emulator


async def test_profiles_are_set_listed_overridden_and_reset(emulator: Emulator) -> None:
    status, builtin = await emulator.control("GET", "/links")
    assert status == 200
    assert set(builtin["builtin"]) == {"lte", "lte-m", "nb-iot", "3g"}
    assert (builtin["sims"], builtin["groups"], builtin["seed"]) == ({}, {}, 0)

    status, body = await emulator.control(
        "PUT", "/sims/001010000000001/link", {"profile": "nb-iot", "loss": 0.05}
    )
    assert status == 200
    assert body["link"] == {**builtin["builtin"]["nb-iot"], "loss": 0.05}
    group_id = (await emulator.control("GET", "/sims/001010000000001"))[1]["groupId"]
    status, body = await emulator.control("PUT", f"/groups/{group_id}/link", {"rttMs": 300})
    assert (status, body["link"]["name"], body["link"]["rttMs"]) == (200, "custom", 300)
    listed = (await emulator.control("GET", "/links"))[1]
    assert listed["sims"]["001010000000001"]["name"] == "nb-iot"
    assert listed["groups"][group_id]["rttMs"] == 300

    assert (await emulator.control("DELETE", "/sims/001010000000001/link"))[0] == 204
    assert (await emulator.control("GET", "/links"))[1]["sims"] == {}
    assert (await emulator.control("POST", "/reset"))[0] == 200
    assert (await emulator.control("GET", "/links"))[1]["groups"] == {}


@pytest.mark.parametrize(
    ("path", "body", "status", "text"),
    [
        ("/sims/999999999999/link", {"profile": "lte"}, 404, "No such SIM"),
        ("/groups/nope/link", {"profile": "lte"}, 404, "No such group"),
        ("/sims/001010000000001/link", {"profile": "5g"}, 400, "no built-in link profile"),
        ("/sims/001010000000001/link", {"profile": 3}, 400, "profile must be"),
        ("/sims/001010000000001/link", {"jitterMs": 5}, 400, "needs rttMs"),
        ("/sims/001010000000001/link", {"rttMs": 5, "loss": 2}, 400, "loss"),
    ],
)
async def test_bad_calls_are_refused(
    emulator: Emulator, path: str, body: dict[str, object], status: int, text: str
) -> None:
    got, answer = await emulator.control("PUT", path, body)
    assert got == status
    assert text in answer["message"]


@pytest.mark.settings(link_seed=42)
async def test_the_seed_is_the_settings(emulator: Emulator) -> None:
    assert (await emulator.control("GET", "/links"))[1]["seed"] == 42
