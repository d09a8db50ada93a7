"""Fixtures: an emulator on a real socket with a real SQLite file, and clients for it.

``@pytest.mark.settings(**overrides)`` changes the emulator's settings for one test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from harvest.app import create_app
from harvest.settings import Settings
from tests.support.clients import ApiClient, Device, device_session

AiohttpClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "settings(**overrides): emulator settings for one test")


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    marker = request.node.get_closest_marker("settings")
    overrides: dict[str, Any] = dict(marker.kwargs) if marker else {}
    overrides.setdefault("data_dir", tmp_path / "data")
    return Settings(port=0, harvest_port=0, unified_port=0, **overrides)


@dataclass
class Emulator:
    """A running emulator and ways to talk to it."""

    client: TestClient[web.Request, web.Application]
    settings: Settings
    _sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    @property
    def app(self) -> web.Application:
        return self.client.app

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    def _session(self, session: aiohttp.ClientSession) -> aiohttp.ClientSession:
        self._sessions.append(session)
        return session

    def api_client(self) -> ApiClient:
        return ApiClient(self._session(aiohttp.ClientSession()), self.base_url)

    async def api(
        self, key_id: str = "keyId-harvest-emulator", key: str = "secret-harvest-emulator"
    ) -> ApiClient:
        """An API client logged in (as the default operator unless told otherwise)."""
        return await self.api_client().login(key_id, key)

    def device(self, address: str = "127.0.0.1") -> Device:
        return Device(self._session(device_session(address)), self.base_url, address)

    async def control(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        async with self.client.request(
            method, "/_emulator" + path, json=body, headers=headers
        ) as response:
            raw = await response.read()
            return response.status, (await response.json() if raw else None)

    async def new_sim(self, **fields: Any) -> dict[str, Any]:
        status, sim = await self.control("POST", "/sims", fields)
        assert status == 201, sim
        return dict(sim)

    async def new_operator(self, **fields: Any) -> ApiClient:
        status, operator = await self.control("POST", "/operators", fields)
        assert status == 201, operator
        return await self.api(operator["authKeyId"], operator["authKey"])

    async def close(self) -> None:
        for session in self._sessions:
            await session.close()


@pytest.fixture
async def emulator(aiohttp_client: AiohttpClient, settings: Settings) -> AsyncIterator[Emulator]:
    client = await aiohttp_client(create_app(settings))
    emulator = Emulator(client, settings)
    yield emulator
    await emulator.close()
