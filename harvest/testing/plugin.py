"""The pytest plugin, registered by the package (the ``pytest11`` entry point): the
``harvest_emulator`` fixture and the ``harvest_settings`` marker.

Installing ``harvest-emulator`` registers this module with pytest, so any test suite in the same
environment can ask for ``harvest_emulator``. Nothing starts until a test asks for it. Then one
emulator starts for the whole session, in this process, on a background thread with its own
event loop (:class:`~harvest.testing.server.HarvestEmulatorServer`): in-memory store, free ports
on 127.0.0.1 for the HTTP edge and the raw TCP/UDP Harvest and Unified Endpoint ports. Before
each test it is reset (``POST /_emulator/reset``) and the fixture hands the test a
:class:`~harvest.testing.client.HarvestEmulator`.

``@pytest.mark.harvest_settings(**overrides)`` gives one test a dedicated emulator started with
those settings (the fields of :class:`harvest.settings.Settings`); overriding the session-scoped
``harvest_emulator_settings`` fixture in a ``conftest.py`` changes the shared one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

# pytest imports this module when it starts, in every suite of the environment (and before
# coverage starts): the client and the server are imported only once a test asks for them.
if TYPE_CHECKING:
    from harvest.testing.client import HarvestEmulator
    from harvest.testing.server import HarvestEmulatorServer

__all__ = [
    "MARKER",
    "harvest_emulator",
    "harvest_emulator_server",
    "harvest_emulator_settings",
    "pytest_configure",
]

MARKER = "harvest_settings"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**overrides): run this test on its own Harvest emulator with these settings",
    )


@pytest.fixture(scope="session")
def harvest_emulator_settings() -> dict[str, Any]:
    """Settings for the session's emulator, over the fixture's defaults (free ports, memory).

    Override this fixture in a ``conftest.py`` to change them for every test.
    """
    return {}


@pytest.fixture(scope="session")
def harvest_emulator_server(
    harvest_emulator_settings: dict[str, Any],
) -> Iterator[HarvestEmulatorServer]:
    """The session's emulator, started on first use and stopped at the end of the session."""
    from harvest.testing.server import HarvestEmulatorServer, emulator_settings

    with HarvestEmulatorServer(emulator_settings(**harvest_emulator_settings)) as server:
        yield server


@pytest.fixture
def harvest_emulator(request: pytest.FixtureRequest) -> Iterator[HarvestEmulator]:
    """A Harvest emulator reset for this test: see :class:`HarvestEmulator`.

    With ``@pytest.mark.harvest_settings(**overrides)`` the test gets its own emulator, started
    with those settings and stopped after it.
    """
    from harvest.testing.client import HarvestEmulator
    from harvest.testing.server import HarvestEmulatorServer, emulator_settings

    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        server: HarvestEmulatorServer = request.getfixturevalue("harvest_emulator_server")
        emulator = HarvestEmulator(server)
        emulator.reset()
        yield emulator
        return
    if marker.args:
        pytest.fail(f"@pytest.mark.{MARKER} takes keyword arguments only", pytrace=False)
    overrides = {**request.getfixturevalue("harvest_emulator_settings"), **marker.kwargs}
    with HarvestEmulatorServer(emulator_settings(**overrides)) as dedicated:
        emulator = HarvestEmulator(dedicated)
        emulator.login_default()
        yield emulator
