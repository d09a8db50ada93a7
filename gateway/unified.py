"""The Unified Endpoint's reply formats (spec A1; notes binary-parser-timestamps-beam-unified.md
section 4).

A group chooses how ``uni.soracom.io`` answers with ``UnifiedEndpoint.response.format``:

* absent or ``Auto`` (the default): with one destination service the reply is that service's own
  reply. The emulator has one service, Harvest, so Auto answers as Harvest does.
* ``SoracomHarvest``: Harvest's own reply (the one value seen in a real group, notes 4.2).
* ``Unified``: ``{"result": "ok"|"ng", "detail": {"harvest": {"statusCode", "body"}}}``, with HTTP
  status 200 when every service succeeded and 207 otherwise (notes 4.4).

SORACOM's API strings for Auto and Unified are unpublished; the emulator takes ``Auto`` and
``Unified`` in any letter case. Over raw TCP/UDP the Unified reply is the whole object
``{"statusCode": ..., "body": {...}}`` as JSON text (notes 4.4: the least certain part).
"""

from __future__ import annotations

import enum
import json
from typing import Any

from harvest.domain import Group
from harvest.wire import UNIFIED_PATH

NAMESPACE = "UnifiedEndpoint"
#: The edge path prefix for HTTP clients that cannot set the Host header (emulator's choice).
PATH_PREFIX = UNIFIED_PATH


class ResponseFormat(enum.Enum):
    AUTO = "Auto"
    HARVEST = "SoracomHarvest"
    UNIFIED = "Unified"


def response_format(group: Group | None) -> ResponseFormat:
    """The group's chosen format; anything unset or unknown is Auto."""
    if group is None:
        return ResponseFormat.AUTO
    response = group.configuration.get(NAMESPACE, {}).get("response")
    chosen = response.get("format") if isinstance(response, dict) else None
    if not isinstance(chosen, str):
        return ResponseFormat.AUTO
    for candidate in ResponseFormat:
        if chosen.lower() == candidate.value.lower():
            return candidate
    return ResponseFormat.AUTO


def answers_unified(unified: bool, group: Group | None) -> bool:
    """Whether a write to the ``unified`` endpoint (or not) gets the Unified format: only the
    Unified Endpoint answers in it, and only when the SIM's group asks for it."""
    return unified and response_format(group) is ResponseFormat.UNIFIED


def unified_reply(harvest_status: int, harvest_body: str) -> tuple[int, dict[str, Any]]:
    """The Unified format: (HTTP status, body) for Harvest's own (status, body)."""
    ok = 200 <= harvest_status < 300
    return (200 if ok else 207), {
        "result": "ok" if ok else "ng",
        "detail": {"harvest": {"statusCode": harvest_status, "body": harvest_body}},
    }


def raw_unified_reply(harvest_status: int, harvest_body: str) -> bytes:
    """The Unified format over TCP/UDP: the whole ``{"statusCode","body"}`` object."""
    status, body = unified_reply(harvest_status, harvest_body)
    return json.dumps({"statusCode": status, "body": body}, separators=(",", ":")).encode()
