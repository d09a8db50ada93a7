"""Query-parameter parsing and paging, with the wire names kept in one place (spec A4).

Every ``/v1`` handler reads its query through :func:`query_value` (directly or through the
typed helpers here), so every parameter gets the same rules: given at most once, never empty,
and a number within what the code after it can represent. A bad parameter is ``400 HEM1001``
naming it, before anything else runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Final, TypeVar

from aiohttp import web

from harvest import errors
from harvest.errors import HarvestError
from harvest.web import json_response
from harvest.wire import INT64_MAX
from quotas.calendar import LATEST_MS

#: Wire names of SORACOM's paging (notes real-service.md section 3.1).
LAST_EVALUATED_KEY: Final = "last_evaluated_key"
NEXT_KEY_HEADER: Final = "x-soracom-next-key"
LINK_HEADER: Final = "link"

#: The largest integer a time or key may name: entry times are signed 64-bit milliseconds.
#: The last UNIX second :class:`datetime` can name (9999-12-31T23:59:59Z): a time in seconds
#: that is turned into a calendar day must not pass it.
DATETIME_MAX_S: Final = LATEST_MS // 1000

E = TypeVar("E", bound=StrEnum)


def bad(message: str) -> HarvestError:
    return HarvestError(errors.INVALID_PARAMETER, message)


def parse_int(raw: str) -> int | None:
    """Plain decimal ASCII digits with an optional ``-``; ``None`` for anything else.

    Python's ``int()`` would also take ``+1``, `` 1 ``, ``1_000`` and non-ASCII digits, none of
    which a query or path parameter should carry.
    """
    digits = raw[1:] if raw.startswith("-") else raw
    if not (digits.isascii() and digits.isdigit()):
        return None
    return int(raw, 10)


def query_value(request: web.Request, name: str) -> str | None:
    """The one value of the query parameter ``name``; ``None`` when it is absent.

    400 naming it when it is repeated (``?limit=1&limit=2``: which one counts would be a guess)
    or empty (``?sort=``: a client that means the default leaves the parameter out).
    """
    values = request.query.getall(name, [])
    if not values:
        return None
    if len(values) > 1:
        raise bad(f"'{name}' must be given once, not {len(values)} times.")
    if values[0] == "":
        raise bad(f"'{name}' must not be empty.")
    return values[0]


def int_param(
    request: web.Request,
    name: str,
    *,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    """An integer query parameter, or 400 naming the parameter and the accepted range."""
    raw = query_value(request, name)
    if raw is None:
        return default
    value = parse_int(raw)
    if value is None:
        raise bad(f"'{name}' must be an integer, not {raw!r}.")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else f" from {minimum}"
        high = "" if maximum is None else f" to {maximum}"
        raise bad(f"'{name}' must be{low}{high}, not {value}.")
    return value


def int_path(request: web.Request, name: str) -> int:
    """A non-negative 64-bit integer path parameter (an entry time), or 400 naming it."""
    raw = request.match_info[name]
    value = parse_int(raw)
    if value is None:
        raise bad(f"'{name}' must be an integer, not {raw!r}.")
    if not 0 <= value <= INT64_MAX:
        raise bad(f"'{name}' must be from 0 to {INT64_MAX}, not {value}.")
    return value


def enum_value(kind: type[E], raw: str, name: str) -> E:
    try:
        return kind(raw)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise bad(f"'{name}' must be one of {choices}, not {raw!r}.") from None


def enum_param(request: web.Request, kind: type[E], name: str) -> E | None:
    raw = query_value(request, name)
    return None if raw is None else enum_value(kind, raw, name)


def optional_choice(request: web.Request, name: str, choices: Sequence[str]) -> str | None:
    """One of ``choices``, ``None`` when absent, or 400 naming the parameter."""
    raw = query_value(request, name)
    if raw is not None and raw not in choices:
        raise bad(f"'{name}' must be one of {', '.join(choices)}, not {raw!r}.")
    return raw


def choice_param(request: web.Request, name: str, choices: Sequence[str], default: str) -> str:
    """One of ``choices``, ``default`` when absent, or 400 naming the parameter."""
    raw = optional_choice(request, name, choices)
    return default if raw is None else raw


def page(request: web.Request, items: list[Any], next_key: str | None) -> web.Response:
    """A JSON array, with ``x-soracom-next-key`` and ``link: <url>; rel=next`` while more exist.

    ``rel=next`` is unquoted: soracom-sdk-go compares the bare value (notes section 3.1), and
    the URL carries no literal ``,`` or ``;``, on which that client splits the header.
    """
    headers: dict[str, str] = {}
    if next_key is not None:
        url = str(request.url.update_query({LAST_EVALUATED_KEY: next_key}))
        # soracom-sdk-go splits the header on "," and then on ";" before it reads the URL, so
        # neither may appear literally (yarl leaves "," in a query and ";" in a path as they
        # are); percent-encoded they mean the same to the server.
        url = url.replace(",", "%2C").replace(";", "%3B")
        headers[NEXT_KEY_HEADER] = next_key
        headers[LINK_HEADER] = f"<{url}>; rel=next"
    return json_response(items, headers=headers)
