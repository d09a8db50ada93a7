"""Testing against the emulator from a user's suite, as aiosmtpd's ``testing`` package does.

- :mod:`~harvest.testing.plugin`: the pytest plugin (the ``harvest_emulator`` fixture and the
  ``harvest_settings`` marker), registered by the ``pytest11`` entry point;
- :mod:`~harvest.testing.client`: :class:`HarvestEmulator`, the synchronous handle a test gets
  (addresses, a SORACOM API client, devices, the control plane);
- :mod:`~harvest.testing.server`: :class:`HarvestEmulatorServer`, the emulator in-process on a
  background thread, also usable outside pytest.

The names below load on first use: pytest imports this package with the plugin in every suite
of the environment, before any test asks for an emulator. Only the plugin imports pytest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harvest.control_client import Reply
    from harvest.testing.client import (
        HarvestEmulator,
        HarvestEmulatorError,
        HarvestFaults,
        SoracomApi,
    )
    from harvest.testing.files import HarvestFiles
    from harvest.testing.server import HarvestEmulatorServer, emulator_settings

__all__ = [
    "HarvestEmulator",
    "HarvestEmulatorError",
    "HarvestEmulatorServer",
    "HarvestFaults",
    "HarvestFiles",
    "Reply",
    "SoracomApi",
    "emulator_settings",
]

_HOMES = {
    "HarvestEmulator": "harvest.testing.client",
    "HarvestEmulatorError": "harvest.testing.client",
    "HarvestFaults": "harvest.testing.client",
    "HarvestFiles": "harvest.testing.files",
    "SoracomApi": "harvest.testing.client",
    "Reply": "harvest.control_client",
    "HarvestEmulatorServer": "harvest.testing.server",
    "emulator_settings": "harvest.testing.server",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
