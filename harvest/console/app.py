"""How the console plugs into the application: its pages at ``/console/``, the live-update
stream, and the redirect of a browser that opens the emulator's root.

The console is part of the control plane: with ``control`` or ``console`` off nothing here is
served (``/console/`` then answers as any other path of the edge). The pages themselves hold no
data and are served without the control token; everything they show comes from calls that
need it (docs/console.md, "The control token").
"""

from __future__ import annotations

import importlib.resources
from typing import Final

from aiohttp import web

from harvest.console.stream import end_streams, get_stream, stream_context
from harvest.context import SETTINGS
from harvest.settings import Settings

#: Where the console lives on the HTTP edge.
PATH: Final = "/console/"

_TYPES: Final = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
#: The page may load and call only the emulator itself: nothing from the internet, no inline
#: script, no frames (a check the browser enforces, and the browser tests rely on).
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every file of the console's ``static`` package data, by its path under
    ``/console/``, with its content type."""
    found: dict[str, tuple[bytes, str]] = {}
    pending = [(importlib.resources.files(__package__) / "static", "")]
    while pending:
        folder, prefix = pending.pop()
        for item in folder.iterdir():
            if item.is_dir():
                pending.append((item, f"{prefix}{item.name}/"))
                continue
            suffix = item.name[item.name.rfind(".") :]
            if suffix in _TYPES:
                found[prefix + item.name] = (item.read_bytes(), _TYPES[suffix])
    return found


#: The console's files by path under ``/console/``: (content, content type).
STATIC: web.AppKey[dict[str, tuple[bytes, str]]] = web.AppKey("console_static", dict)


def wants_console(request: web.Request) -> bool:
    """Whether a request to the edge's root is a browser's (it accepts HTML) and the console
    is served: then it is redirected to :data:`PATH`. Devices and ``curl`` are not browsers."""
    return (
        request.method == "GET"
        and request.path == "/"
        and "text/html" in request.headers.get("Accept", "")
        and request.config_dict[SETTINGS].console_on
    )


async def to_console(request: web.Request) -> web.Response:
    raise web.HTTPFound(PATH)


async def get_file(request: web.Request) -> web.Response:
    name = request.match_info.get("name") or "index.html"
    found = request.config_dict[STATIC].get(name)
    if found is None:
        raise web.HTTPNotFound()
    body, content_type = found
    return web.Response(
        body=body, content_type=content_type, charset="utf-8", headers=SECURITY_HEADERS
    )


def setup_console(app: web.Application, settings: Settings) -> None:
    """The console's routes and its stream's lifetime, when the console is on. Added before
    the device catch-all, so ``/console/`` is matched first; the device hosts never see it."""
    if not settings.console_on:
        return
    app[STATIC] = static_files()
    app.cleanup_ctx.append(stream_context)
    app.on_shutdown.append(end_streams)
    app.router.add_get("/console", to_console)
    app.router.add_get(PATH, get_file)
    app.router.add_get(PATH + "stream", get_stream)
    app.router.add_get(PATH + "{name:[A-Za-z0-9_./-]+}", get_file)
