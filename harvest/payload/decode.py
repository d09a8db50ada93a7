"""A device payload as Harvest stores it: JSON kept as its text, text as text, everything else
binary, stored as ``{"payload":"<base64>"}`` unless the group's Binary Parser is on (spec A1, B5).
Pure: no I/O."""

from __future__ import annotations

import base64
import json

from harvest import errors
from harvest.domain import Group, json_keys
from harvest.errors import HarvestError

JSON = "application/json"
#: The top-level keys of binary's plain stored form ``{"payload": ...}``.
PAYLOAD_KEYS = ("payload",)
AIR_NAMESPACE = "SoracomAir"
_TEXT_TYPES = frozenset({"application/x-www-form-urlencoded", "application/xml"})


def decode_typed(
    body: bytes, content_type: str | None, *, strict_json: bool = True
) -> tuple[str, str, tuple[str, ...]] | None:
    """The stored ``(contentType, content, keys)`` of a typed payload, or ``None`` if it is
    binary; ``keys`` are the content's top-level keys (``domain.content_keys``), taken from the
    parse that checks the JSON, so the writer need not parse it again.

    JSON is kept as the JSON text (a string, not an object, spec A1); text as text. Everything
    else is binary, including every raw TCP/UDP payload (``content_type`` ``None``). A body sent
    as JSON that does not parse is refused (``400``), or with ``strict_json=False`` kept as its
    text (binary if it is not UTF-8), with no keys: the real service's answer is not documented.
    """
    if content_type is not None:
        mime = content_type.partition(";")[0].strip().lower()
        if mime == JSON or mime.endswith("+json"):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                if strict_json:
                    raise HarvestError(errors.INVALID_JSON) from None
                return None
            try:
                keys = json_keys(json.loads(text))
            except (ValueError, RecursionError):  # 1 KiB of "[" nests too deep to parse
                if strict_json:
                    raise HarvestError(errors.INVALID_JSON) from None
                keys = ()
            return JSON, text, keys
        if mime.startswith("text/") or mime in _TEXT_TYPES:
            try:
                return mime, body.decode("utf-8"), ()
            except UnicodeDecodeError:
                pass
    return None


def payload_form(body: bytes) -> str:
    """Binary as stored without a parser: ``{"payload":"<base64>"}`` (spec B5)."""
    return '{"payload":"' + base64.b64encode(body).decode("ascii") + '"}'


def binary_parser_format(group: Group) -> str | None:
    """The group's Binary Parser format when it is on (namespace ``SoracomAir``, notes 1.1)."""
    air = group.configuration.get(AIR_NAMESPACE)
    if not air or air.get("binaryParserEnabled") is not True:
        return None
    fmt = air.get("binaryParserFormat")
    return fmt if isinstance(fmt, str) and fmt else None
