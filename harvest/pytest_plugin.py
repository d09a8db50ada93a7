"""The pytest plugin's former home, kept so that existing imports and ``-p
harvest.pytest_plugin`` go on working: everything now lives in :mod:`harvest.testing`."""

from harvest.testing.client import (
    HarvestEmulator,
    HarvestEmulatorError,
    HarvestFaults,
    Reply,
    SoracomApi,
)
from harvest.testing.files import HarvestFiles
from harvest.testing.plugin import (
    MARKER,
    harvest_emulator,
    harvest_emulator_server,
    harvest_emulator_settings,
    pytest_configure,
)
from harvest.testing.server import TIMEOUT_S, HarvestEmulatorServer, emulator_settings

__all__ = [
    "MARKER",
    "TIMEOUT_S",
    "HarvestEmulator",
    "HarvestEmulatorError",
    "HarvestEmulatorServer",
    "HarvestFaults",
    "HarvestFiles",
    "Reply",
    "SoracomApi",
    "emulator_settings",
    "harvest_emulator",
    "harvest_emulator_server",
    "harvest_emulator_settings",
    "pytest_configure",
]
