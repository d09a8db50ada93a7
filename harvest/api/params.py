"""Query-parameter parsing and paging, with the wire names kept in one place (spec A4)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Final, TypeVar

from aiohttp import web

from harvest import errors
from harvest.errors import HarvestError
from harvest.web import json_response

#: Wire names of SORACOM's paging (notes real-service.md section 3.1).
LAST_EVALUATED_KEY: Final = "last_evaluated_key"
NEXT_KEY_HEADER: Final = "x-soracom-next-key"
LINK_HEADER: Final = "link"

E = TypeVar("E", bound=StrEnum)


def bad(message: str) -> HarvestError:
    return HarvestError(errors.INVALID_PARAMETER, message)


def int_param(
    request: web.Request,
    name: str,
    *,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    """An integer query parameter, or 400 naming the parameter and the accepted range."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise bad(f"'{name}' must be an integer, not {raw!r}.") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else f" from {minimum}"
        high = "" if maximum is None else f" to {maximum}"
        raise bad(f"'{name}' must be{low}{high}, not {value}.")
    return value


def int_path(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    try:
        value = int(raw, 10)
    except ValueError:
        raise bad(f"'{name}' must be an integer, not {raw!r}.") from None
    if value < 0:
        raise bad(f"'{name}' must not be negative.")
    return value


def enum_value(kind: type[E], raw: str, name: str) -> E:
    try:
        return kind(raw)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise bad(f"'{name}' must be one of {choices}, not {raw!r}.") from None


def enum_param(request: web.Request, kind: type[E], name: str) -> E | None:
    raw = request.query.get(name)
    return None if raw is None or raw == "" else enum_value(kind, raw, name)


def choice_param(request: web.Request, name: str, choices: Sequence[str], default: str) -> str:
    raw = request.query.get(name) or default
    if raw not in choices:
        raise bad(f"'{name}' must be one of {', '.join(choices)}, not {raw!r}.")
    return raw


def page(request: web.Request, items: list[Any], next_key: str | None) -> web.Response:
    """A JSON array, with ``x-soracom-next-key`` and ``link: <url>; rel=next`` while more exist.

    ``rel=next`` is unquoted: soracom-sdk-go compares the bare value (notes section 3.1).
    """
    headers: dict[str, str] = {}
    if next_key is not None:
        url = request.url.update_query({LAST_EVALUATED_KEY: next_key})
        headers[NEXT_KEY_HEADER] = next_key
        headers[LINK_HEADER] = f"<{url}>; rel=next"
    return json_response(items, headers=headers)
