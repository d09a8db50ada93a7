"""The wire format's names and figures, in one place: header names, host names, ports, paths,
the int64 bound and the IMSI's shape. The server, the transports and the client-side tools all
import them from here.

Sources: SORACOM's developer documentation for device hosts, ports and headers
(https://developers.soracom.io/en/docs/harvest/, docs/routing.md), SORACOM's OpenAPI document
for the API's names (tests/support/harvest-subset.yaml); the emulator's own names are marked so.
"""

from __future__ import annotations

from typing import Final

# --- hosts (docs/routing.md) -------------------------------------------------------------------
#: Harvest Data's device endpoint: HTTP on port 80, raw TCP and UDP on 8514.
HARVEST_HOST: Final = "harvest.soracom.io"
#: The Unified Endpoint: HTTP on port 80, raw TCP and UDP on 23080 (both names are SORACOM's).
UNIFIED_HOSTS: Final = ("uni.soracom.io", "unified.soracom.io")
#: Harvest Files' device endpoint (upload and download by path).
FILES_HOST: Final = "harvest-files.soracom.io"
#: The management API's host; like any host that is not a device host, it reaches ``/v1``.
API_HOST: Final = "api.soracom.io"
#: Every device host: every request to them is a device request, whatever its path.
DEVICE_HOSTS: Final = (HARVEST_HOST, *UNIFIED_HOSTS, FILES_HOST)
#: SORACOM Beam's entry point; a device that sends there reaches the emulator only through a
#: private core's DNS (the emulator then stands in for Beam's destination, docs/real-modems.md).
BEAM_HOST: Final = "beam.soracom.io"
#: The names the emulator's DNS responder answers with its own address (docs/real-modems.md).
SORACOM_NAMES: Final = (*DEVICE_HOSTS, BEAM_HOST, API_HOST)

# --- ports ---------------------------------------------------------------------------------------
#: Raw TCP and UDP of ``harvest.soracom.io``.
HARVEST_PORT: Final = 8514
#: Raw TCP and UDP of the Unified Endpoint.
UNIFIED_PORT: Final = 23080
#: The emulator's HTTP edge (the real endpoints are on 80; docs/routing.md says how to use it).
EDGE_PORT: Final = 8080
#: The real device endpoints' HTTP port (``harvest.soracom.io:80``, ``uni.soracom.io:80``).
DEVICE_HTTP_PORT: Final = 80
#: DNS (RFC 1035 section 4.2), UDP and TCP.
DNS_PORT: Final = 53

# --- paths ---------------------------------------------------------------------------------------
#: The management API's base path.
API_PATH: Final = "/v1"
#: The emulator's control plane (its own, not SORACOM's).
CONTROL_PATH: Final = "/_emulator"
#: The edge path prefix of the Unified Endpoint for clients that cannot set ``Host`` (the
#: emulator's own).
UNIFIED_PATH: Final = "/_unified"
#: Where ``getFile``'s redirect sends a client: a signed, expiring download URL on the edge
#: (the emulator's own; SORACOM's is a storage service's).
FILES_DOWNLOAD_PATH: Final = "/_harvest_files"

# --- headers -------------------------------------------------------------------------------------
#: A device's entry time in UNIX milliseconds, honoured on Harvest's own HTTP endpoint.
TIMESTAMP_HEADER: Final = "X-Soracom-Timestamp"
#: The management API's credentials (``POST /v1/auth`` answers them).
API_KEY_HEADER: Final = "X-Soracom-API-Key"
API_TOKEN_HEADER: Final = "X-Soracom-Token"
#: The API's paging (SORACOM's OpenAPI document).
NEXT_KEY_HEADER: Final = "X-Soracom-Next-Key"
#: The control plane's token (the emulator's own).
CONTROL_TOKEN_HEADER: Final = "X-Emulator-Token"

# --- numbers -------------------------------------------------------------------------------------
#: The largest time in milliseconds (and any other int64) the API and the store take.
INT64_MAX: Final = 2**63 - 1


def is_imsi(text: str) -> bool:
    """Whether ``text`` has an IMSI's shape: 6 to 15 ASCII digits (ITU-T E.212 allows up to 15;
    the emulator accepts short test IMSIs from 6)."""
    return text.isascii() and text.isdigit() and 6 <= len(text) <= 15
