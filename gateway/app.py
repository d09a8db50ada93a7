"""How the gateway plugs into the application: the device-facing listeners."""

from __future__ import annotations

from aiohttp import web

from gateway import http
from harvest.settings import Settings


def setup_gateway(app: web.Application, settings: Settings) -> None:
    """Device HTTP writes on every path the API and control plane do not claim."""
    app.router.add_post("/{path:.*}", http.write_data)
    app.router.add_route("*", "/{path:.*}", http.wrong_method)
