"""Writes forwarded by SORACOM Beam: a verified signature names the SIM (issue 3, item 6a)."""

from __future__ import annotations

import base64
import json

import pytest

from gateway.beam import sign_http
from tests.conftest import Emulator

PSK = "topsecret"


def beam_headers(imsi: str, timestamp: str = "1608251959862", psk: str = PSK) -> dict[str, str]:
    headers = {
        "X-Soracom-IMSI": imsi,
        "X-Soracom-Timestamp": timestamp,
        "X-Soracom-Signature-Version": "20151001",
    }
    headers["X-Soracom-Signature"] = sign_http(psk, headers)
    return headers


@pytest.fixture(autouse=True)
async def clock_after_the_vectors(emulator: Emulator) -> None:
    """The signature vectors' timestamps (2020) become entry times: keep them in retention."""
    await emulator.control("PUT", "/clock", {"now": 1608251959862 + 3_600_000, "frozen": True})


@pytest.mark.settings(beam_psk=PSK)
async def test_a_signed_write_is_attributed_to_the_signed_imsi(emulator: Emulator) -> None:
    sim = await emulator.new_sim()
    # sent from 127.0.0.1 (the default SIM's address), but Beam vouches for the other SIM
    status, _ = await emulator.device().send('{"via":"beam"}', headers=beam_headers(sim["imsi"]))
    assert status == 201
    api = await emulator.api()
    [entry] = (await api.get(f"/v1/subscribers/{sim['imsi']}/data", **{"from": 0})).json
    assert entry["content"] == '{"via":"beam"}'
    assert entry["time"] == 1608251959862
    assert (await api.get("/v1/subscribers/001010000000001/data", **{"from": 0})).json == []


@pytest.mark.settings(beam_psk=PSK)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(
            {**beam_headers("001010000000001"), "X-Soracom-IMSI": "001010000000002"},
            id="tampered-imsi",
        ),
        pytest.param(beam_headers("001010000000001", psk="wrong"), id="wrong-key"),
        pytest.param({"X-Soracom-IMSI": "001010000000001"}, id="unsigned"),
        pytest.param(
            {**beam_headers("001010000000001"), "X-Soracom-Signature-Version": "1"},
            id="old-version",
        ),
    ],
)
async def test_a_bad_signature_is_403(emulator: Emulator, headers: dict[str, str]) -> None:
    status, body = await emulator.device().send('{"a":1}', headers=headers)
    assert status == 403
    assert json.loads(body)["code"] == "HEM4011"


@pytest.mark.settings(beam_psk=PSK)
async def test_beams_payload_wrapping_is_unwrapped(emulator: Emulator) -> None:
    raw = b"\x01\x02\x03"
    body = json.dumps({"payload": base64.b64encode(raw).decode()})
    headers = {**beam_headers("001010000000001"), "User-Agent": "SORACOM Beam"}
    assert (await emulator.device().send(body, headers=headers))[0] == 201
    api = await emulator.api()
    [entry] = (await api.get("/v1/subscribers/001010000000001/data", **{"from": 0})).json
    # unwrapped to raw bytes, which are binary: stored in the payload form of those bytes
    assert entry["content"] == '{"payload":"AQID"}'


@pytest.mark.settings(beam_psk=PSK)
async def test_a_signed_unknown_imsi_is_403(emulator: Emulator) -> None:
    status, body = await emulator.device().send('{"a":1}', headers=beam_headers("999999999999"))
    assert status == 403
    assert json.loads(body)["code"] == "HEM4003"


async def test_without_a_key_beam_headers_are_ignored(emulator: Emulator) -> None:
    sim = await emulator.new_sim()
    assert (await emulator.device().send('{"a":1}', headers=beam_headers(sim["imsi"])))[0] == 201
    api = await emulator.api()
    assert (await api.get(f"/v1/subscribers/{sim['imsi']}/data", **{"from": 0})).json == []
