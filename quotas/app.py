"""How the quotas package plugs into the application: housekeeping (Harvest days, retention
sweep, clock jumps) in a cleanup context, and the bills and stats routes of the ``/v1`` API."""

from __future__ import annotations

from aiohttp import web

from harvest.context import API_APP
from harvest.settings import Settings
from quotas import api
from quotas.housekeeping import housekeeping_context


def setup_quotas(app: web.Application, settings: Settings) -> None:
    """Housekeeping after the services it uses; bills and stats on the ``/v1`` API."""
    app.cleanup_ctx.append(housekeeping_context)
    api.add_routes(app[API_APP].router)
