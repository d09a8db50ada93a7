"""The real service's host names, and which of them are device endpoints (spec A1, B1).

The real endpoints are separate hosts, so the emulator routes by ``Host`` before it looks at the
path: every request to a device host is a device request whatever its path (``/v1/...`` and
``/_emulator/...`` included), and the management API, the control plane and ``/metrics`` answer
only on other hosts (``api.soracom.io``, the emulator's own address, anything else). A port in
``Host`` is ignored. The table is in ``docs/routing.md``.
"""

from __future__ import annotations

from typing import Final

#: Harvest Data's device endpoint: HTTP on port 80, raw TCP and UDP on 8514.
HARVEST_HOST: Final = "harvest.soracom.io"
#: The Unified Endpoint: HTTP on port 80, raw TCP and UDP on 23080 (both names are SORACOM's).
UNIFIED_HOSTS: Final = ("uni.soracom.io", "unified.soracom.io")
#: Harvest Files' device endpoint (upload and download by path).
FILES_HOST: Final = "harvest-files.soracom.io"
#: The management API's host; like any host that is not a device host, it reaches ``/v1``.
API_HOST: Final = "api.soracom.io"

#: Every device host.
DEVICE_HOSTS: Final = (HARVEST_HOST, *UNIFIED_HOSTS, FILES_HOST)
