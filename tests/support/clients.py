"""Clients the tests talk to the emulator with: a SORACOM API client that checks every
response against the OpenAPI document, and device clients bound to a SIM's session address."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from tests.support import openapi

DEFAULT_KEY_ID = "keyId-harvest-emulator"
DEFAULT_KEY = "secret-harvest-emulator"


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def next_key(self) -> str | None:
        return self.headers.get("x-soracom-next-key")


@dataclass
class ApiClient:
    """Calls ``/v1``; every answer on a path of the OpenAPI document is validated against it."""

    session: aiohttp.ClientSession
    base_url: str
    api_key: str | None = None
    token: str | None = None
    operator_id: str | None = None
    checked: list[tuple[str, str, int]] = field(default_factory=list)

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        authenticated: bool = True,
        allow_redirects: bool = True,
    ) -> Reply:
        sent = dict(headers or {})
        if authenticated and self.token is not None:
            sent.setdefault("X-Soracom-API-Key", self.api_key or "")
            sent.setdefault("X-Soracom-Token", self.token)
        query = {k: str(v) for k, v in (params or {}).items()}
        # aiohttp warns about large raw bodies; a stream is what a real client would send.
        body: bytes | io.BytesIO | None = data
        if data is not None and len(data) > 65536:
            body = io.BytesIO(data)
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method,
            self.base_url + path,
            params=query,
            data=body,
            headers=sent,
            allow_redirects=allow_redirects,
        ) as response:
            raw = await response.read()
            reply = Reply(response.status, response.headers, raw)
        self.check(method, path, query, reply)
        return reply

    def check(self, method: str, path: str, query: dict[str, str], reply: Reply) -> None:
        content_type = reply.headers.get("Content-Type", "").split(";")[0]
        openapi.validate(method, path, query, reply.status, content_type, reply.raw)
        self.checked.append((method, path, reply.status))

    async def login(self, key_id: str = DEFAULT_KEY_ID, key: str = DEFAULT_KEY) -> ApiClient:
        reply = await self.call(
            "POST",
            "/v1/auth",
            json_body={"authKeyId": key_id, "authKey": key},
            authenticated=False,
        )
        assert reply.status == 200, reply.raw
        self.api_key = reply.json["apiKey"]
        self.token = reply.json["token"]
        self.operator_id = reply.json["operatorId"]
        return self

    async def get(self, path: str, **params: Any) -> Reply:
        return await self.call("GET", path, params=params)

    async def all_pages(self, path: str, **params: Any) -> list[Any]:
        """Follow ``x-soracom-next-key`` as soracom-cli's ``--fetch-all`` does."""
        items: list[Any] = []
        while True:
            reply = await self.get(path, **params)
            assert reply.status == 200, reply.raw
            items.extend(reply.json)
            if reply.next_key is None:
                return items
            params["last_evaluated_key"] = reply.next_key


#: The "status" of a request whose connection was closed without an answer: what a SIM without a
#: data session sees (spec B12), or a drop fault.
NO_REPLY = 0


@dataclass
class Device:
    """A simulated device: HTTP from its SIM's session address (spec B2). :meth:`send` gives
    :data:`NO_REPLY` when the connection is closed without an answer."""

    session: aiohttp.ClientSession
    base_url: str
    address: str

    async def send(
        self,
        body: bytes | str,
        content_type: str | None = "application/json",
        *,
        path: str = "/",
        headers: dict[str, str] | None = None,
        method: str = "POST",
    ) -> tuple[int, bytes]:
        sent = dict(headers or {})
        if content_type is not None:
            sent["Content-Type"] = content_type
        payload = body.encode() if isinstance(body, str) else body
        # aiohttp warns about large raw bodies; a stream is what a real client would send.
        data: bytes | io.BytesIO = io.BytesIO(payload) if len(payload) > 65536 else payload
        try:
            async with self.session.request(
                method, self.base_url + path, data=data, headers=sent
            ) as response:
                return response.status, await response.read()
        except aiohttp.ServerDisconnectedError:
            return NO_REPLY, b""


def device_session(address: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))
