"""How the quotas package plugs into the application.

Issue 2 needs only the pure limits (``quotas.limits``), which the ingest service and the read
API call directly; quota counters, rate ceilings and billing (a later issue) add their routes
and background tasks here.
"""

from __future__ import annotations

from aiohttp import web

from harvest.settings import Settings


def setup_quotas(app: web.Application, settings: Settings) -> None:
    """Nothing to add yet; kept so the composition root has one call per package."""
