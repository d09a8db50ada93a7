"""The HTTP transport's shared pieces: typed app keys, error rendering, JSON in and out.

Every error of every HTTP path (device writes, ``/v1``, ``/_emulator``) is rendered by the one
middleware here as SORACOM's ``{"code","message"}`` body (spec A4).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, Final, NoReturn, TypeVar

from aiohttp import web

from harvest import errors
from harvest.errors import Dropped, HarvestError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
J = TypeVar("J")

_HTTP_STATUS_ERRORS = {
    404: errors.NO_SUCH_API,
    405: errors.METHOD_NOT_ALLOWED,
    413: errors.PAYLOAD_TOO_LARGE,
}


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=dumps(data), status=status, headers=headers, content_type="application/json"
    )


def error_response(error: HarvestError) -> web.Response:
    return json_response(error.body(), status=error.status, headers=error.headers or None)


def as_harvest_error(exc: Exception, request: web.Request) -> HarvestError:
    """Any failure of a handler as the :class:`HarvestError` to answer with.

    The router's own answers (404 no such path, 405 with its ``Allow`` header, 413) become
    catalogue errors; anything unexpected is logged with its traceback and becomes ``500``.
    A ``web.HTTPException`` below 400 (a redirect) is not a failure: re-raise it instead.
    """
    if isinstance(exc, HarvestError):
        return exc
    if isinstance(exc, web.HTTPException):
        spec = _HTTP_STATUS_ERRORS.get(exc.status)
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        if spec is None:
            return HarvestError(
                errors.INVALID_PARAMETER, exc.reason, status=exc.status, headers=allow
            )
        return HarvestError(spec, headers=allow)
    log.exception("internal error on %s %s", request.method, request.path, exc_info=exc)
    return HarvestError(errors.INTERNAL)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure in SORACOM's error format; the one ``except`` of the HTTP side."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(as_harvest_error(exc, request))
    except Dropped:
        # The transport is closed already: this answer is never sent.
        return web.Response(status=503)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        return error_response(as_harvest_error(exc, request))


#: The operation of a ``/v1`` request that matched no route (a 404 or 405).
UNMATCHED = "unmatched"


def operation_of(request: web.Request) -> str:
    """The SORACOM operationId of a ``/v1`` request: its route's name (every ``/v1`` route is
    named after its operationId), or :data:`UNMATCHED`."""
    resource = request.match_info.route.resource
    name = None if resource is None else resource.name
    return name or UNMATCHED


#: How many arrays and objects deep a body may nest. No SORACOM body comes near it (a group's
#: configuration is three levels); far below it are the depths at which writing the value out
#: again fails (Python's JSON encoder near 1,000 levels, msgpack snapshots at 512).
MAX_BODY_DEPTH: Final = 100
#: The integers a body may hold: signed 64-bit, as SORACOM's API takes them and as every store
#: and snapshot of the emulator can write them.
_INT64: Final = range(-(2**63), 2**63)


def _refuse(message: str) -> NoReturn:
    raise HarvestError(errors.INVALID_BODY, message)


def _parse_int(text: str) -> int:
    value = int(text)
    if value not in _INT64:
        _refuse("The body holds an integer outside the signed 64-bit range.")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        _refuse(f"The body holds the number {text[:40]}, too large for a double.")
    return value


def _parse_constant(name: str) -> NoReturn:
    _refuse(f"The body holds {name}, which is not JSON.")


def valid_json(value: J, what: str = "The body") -> J:
    """``value`` (parsed JSON) unchanged, or 400 if any string or key in it is not text, or it
    nests deeper than :data:`MAX_BODY_DEPTH`.

    JSON may escape a lone UTF-16 surrogate (``"\\ud800"``), which Python parses into a ``str``
    that cannot be encoded again: stored in a group it would make every later answer that
    shows the group fail, and echoed in an error message it would fail that answer. The walk
    is iterative: a body nested as deep as the JSON parser allows must not overflow the stack.
    """
    # (value, how many arrays and objects hold it)
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list) and depth >= MAX_BODY_DEPTH:
            _refuse(f"{what} nests deeper than {MAX_BODY_DEPTH} levels.")
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise HarvestError(
                    errors.INVALID_BODY,
                    f"{what} holds a lone UTF-16 surrogate, which is not text.",
                ) from None
        elif isinstance(item, dict):
            pending.extend((key, depth) for key in item)
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
    return value


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    """The request's JSON body, or 400 with what is wrong; ``None`` when empty and optional.

    ``required`` is what SORACOM's OpenAPI document says of the operation's ``requestBody``:
    where it is ``required: true`` a call without a body is refused, not read as ``{}``.
    Every value must be one the emulator can store and answer with again: ``NaN`` and
    ``Infinity`` (which Python's parser takes, though JSON has neither), numbers that overflow a
    double, integers outside 64 bits and deeper nesting than :data:`MAX_BODY_DEPTH` are 400.
    """
    raw = await request.read()
    if not raw.strip():
        if required:
            raise HarvestError(errors.INVALID_BODY, "The request needs a JSON body.")
        return None
    try:
        parsed = json.loads(
            raw,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except (ValueError, UnicodeDecodeError) as error:
        raise HarvestError(errors.INVALID_BODY, f"The body is not valid JSON: {error}") from None
    except RecursionError:
        raise HarvestError(errors.INVALID_BODY, "The body's JSON is nested too deeply.") from None
    return valid_json(parsed)


async def read_json_object(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request's body as a JSON object (``{}`` when absent and optional); a ``null`` body
    is not an object, so it is refused like any other."""
    if not required and not (await request.read()).strip():
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise HarvestError(errors.INVALID_BODY, "The body must be a JSON object.")
    return body
