"""Shared steps of the management API tests: the emulator's clock, device writes, and checks
of SORACOM's error body. Everything goes through the running server."""

from __future__ import annotations

from typing import Any

from harvest.errors import ErrorSpec
from tests.conftest import Emulator
from tests.support.clients import ApiClient, Reply

DEFAULT_OPERATOR = "OP0000000000"
DEFAULT_IMSI = "001010000000001"
DEFAULT_ADDRESS = "127.0.0.1"

#: A fixed "now" for tests that freeze the emulator clock (2023-11-14T22:13:20Z).
NOW = 1_700_000_000_000
DAY_MS = 86_400_000
#: Reads with no ``from`` start this long before now (40 days of retention, spec A2/B7).
RETENTION_MS = 40 * DAY_MS


async def set_clock(emulator: Emulator, now_ms: int, *, frozen: bool = True) -> None:
    status, body = await emulator.control("PUT", "/clock", {"now": now_ms, "frozen": frozen})
    assert status == 200, body
    assert body["now"] == now_ms


async def advance(emulator: Emulator, seconds: float) -> int:
    """Move the emulator clock forward; answers the new now."""
    status, body = await emulator.control("POST", "/clock/advance", {"seconds": seconds})
    assert status == 200, body
    return int(body["now"])


async def write(
    emulator: Emulator,
    body: str | bytes,
    *,
    at: int | None = None,
    address: str = DEFAULT_ADDRESS,
    content_type: str = "application/json",
) -> None:
    """One device write from ``address`` (at ``at`` ms with ``X-Soracom-Timestamp``); 201."""
    headers = {} if at is None else {"X-Soracom-Timestamp": str(at)}
    status, reply = await emulator.device(address).send(body, content_type, headers=headers)
    assert (status, reply) == (201, b""), reply


async def device_status(emulator: Emulator, address: str = DEFAULT_ADDRESS) -> int:
    """The status a device write from ``address`` answers with."""
    status, _ = await emulator.device(address).send('{"probe":1}')
    return status


def expect_error(reply: Reply, spec: ErrorSpec, *mentions: str) -> str:
    """``reply`` is ``spec``'s status and code, and its message names each of ``mentions``."""
    assert reply.status == spec.status, (reply.status, reply.raw)
    body = reply.json
    assert body["code"] == spec.code, body
    for mention in mentions:
        assert mention in body["message"], (mention, body)
    return str(body["message"])


async def sim_id_of(api: ApiClient, imsi: str) -> str:
    reply = await api.get(f"/v1/subscribers/{imsi}")
    assert reply.status == 200, reply.raw
    return str(reply.json["simId"])


async def group_of(api: ApiClient, imsi: str) -> str:
    reply = await api.get(f"/v1/subscribers/{imsi}")
    assert reply.status == 200, reply.raw
    return str(reply.json["groupId"])


async def create_group(api: ApiClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    reply = await api.call("POST", "/v1/groups", json_body=body or {})
    assert reply.status == 201, reply.raw
    return dict(reply.json)


async def harvest_group(api: ApiClient, name: str = "harvest") -> str:
    """A new group of ``api``'s operator with Harvest Data on; answers its id."""
    group = await create_group(
        api, {"tags": {"name": name}, "configuration": {"SoracomHarvest": {"enabled": True}}}
    )
    return str(group["groupId"])


def times(entries: list[Any]) -> list[int]:
    return [int(entry["time"]) for entry in entries]
