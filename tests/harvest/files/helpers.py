"""Shared steps of the Harvest Files tests: switching Files on for a SIM's group, device
requests on ``harvest-files.soracom.io`` and API calls that check SORACOM's shapes."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Emulator
from tests.harvest.api_helpers import DEFAULT_ADDRESS, DEFAULT_IMSI, group_of
from tests.support import openapi
from tests.support.clients import ApiClient, Reply

FILES_HOST = "harvest-files.soracom.io"


async def enable_files(api: ApiClient, imsi: str = DEFAULT_IMSI, **settings: Any) -> str:
    """Switch Harvest Files on for the SIM's group (with more keys, e.g. ``defaultPath``)."""
    group_id = await group_of(api, imsi)
    body = [{"key": "enabled", "value": True}] + [
        {"key": k, "value": v} for k, v in settings.items()
    ]
    reply = await api.call(
        "PUT", f"/v1/groups/{group_id}/configuration/SoracomHarvestFiles", json_body=body
    )
    assert reply.status == 200, reply.raw
    return group_id


async def device(
    emulator: Emulator,
    method: str,
    path: str,
    body: bytes | str = b"",
    *,
    address: str = DEFAULT_ADDRESS,
    headers: dict[str, str] | None = None,
    content_type: str | None = None,
) -> tuple[int, bytes]:
    """One device request to the Harvest Files host from ``address``."""
    sent = {"Host": FILES_HOST, **(headers or {})}
    return await emulator.device(address).send(
        body, content_type, path=path, method=method, headers=sent
    )


def entries(reply: Reply) -> list[dict[str, Any]]:
    """A listing's entries, each checked against SORACOM's ``FileEntry``."""
    assert reply.status == 200, reply.raw
    items = json.loads(reply.raw)
    for item in items:
        openapi.validate_schema("FileEntry", item)
    return list(items)


async def api_put(
    api: ApiClient, path: str, body: bytes, content_type: str = "text/plain"
) -> Reply:
    return await api.call(
        "PUT", "/v1/files/private" + path, data=body, headers={"Content-Type": content_type}
    )


async def api_download(api: ApiClient, path: str, **headers: str) -> tuple[int, bytes, Any]:
    """``getFile``'s redirect, followed as clients do: the status, body and headers."""
    reply = await api.call("GET", "/v1/files/private" + path, allow_redirects=False)
    assert reply.status == 302, reply.raw
    location = reply.headers["Location"]
    async with api.session.get(location, headers=headers) as response:
        return response.status, await response.read(), response.headers
