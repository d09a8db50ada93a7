"""Running the application: the HTTP edge site, the start-up banner and a bounded shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from typing import TextIO

from aiohttp import web

from harvest.app import create_app
from harvest.context import LISTENERS, REGISTRY, SETTINGS
from harvest.settings import Settings

log = logging.getLogger(__name__)

#: How long shutdown waits for in-flight requests before closing connections.
SHUTDOWN_TIMEOUT_S = 10.0
#: Allocations between young-generation collections (CPython's default is 700).
GC_THRESHOLD = 50_000


def _url(address: object) -> str:
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    return str(address)


def banner(app: web.Application, settings: Settings) -> str:
    """What the emulator serves, where, and the credentials to use it."""
    registry = app[REGISTRY]
    addresses = app[LISTENERS].addresses
    http = addresses.get("http", [])
    lines = ["SORACOM Harvest emulator is running"]
    lines += [f"  HTTP edge        {url}   (device writes, /v1 API, /_emulator)" for url in http]
    for name, label in (("harvest", "Harvest TCP/UDP"), ("unified", "Unified TCP/UDP")):
        for tcp, udp in zip(
            addresses.get(f"{name}-tcp", []), addresses.get(f"{name}-udp", []), strict=True
        ):
            lines.append(f"  {label:<16} {tcp}  {udp}")
    lines.append(f"  storage          {settings.database_path or 'memory (nothing on disk)'}")
    operator = registry.operator(settings.operator_id)
    if operator is not None:
        lines.append(f"  operator         {operator.operator_id}")
        lines.append(f"    auth key       {settings.auth_key_id} / {settings.auth_key}")
        lines.append(f"    root login     {settings.email} / {settings.password}")
    if settings.control_token and settings.exposed:
        lines.append(f"  control token    {settings.control_token}")
        lines.append(
            "    (/_emulator needs the header X-Emulator-Token: <token>; the listeners are"
            " reachable off loopback)"
        )
    sim = registry.find_sim(settings.operator_id, settings.default_imsi)
    if sim is not None:
        lines.append(f"  default SIM      {sim.imsi} ({sim.status}) at {sim.session_address}")
    if http:
        lines.append(
            f"  try: curl -H 'Content-Type: application/json' -d '{{\"temp\":21.5}}' {http[0]}/"
        )
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[web.Application, int]]:
    """Build the app, start it (its cleanup contexts bind the raw listeners) and bind the HTTP
    edge on every host; yield the app and the HTTP port actually bound. Bound off loopback
    without a control token, the control plane gets a generated one (:meth:`Settings.secured`;
    the app's ``SETTINGS`` hold it). On exit the emulator
    reports itself draining, then stops within a bound: no new connections, in-flight writes
    finished, pending commits flushed."""
    settings = settings.secured(lambda: secrets.token_urlsafe(24))
    app = create_app(settings)
    runner = web.AppRunner(
        app,
        keepalive_timeout=settings.keepalive_timeout,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    await runner.setup()
    try:
        port = settings.port
        for host in settings.hosts:
            site = web.TCPSite(runner, host, port, reuse_address=True)
            await site.start()
            port = port or runner.addresses[-1][1]
        app[LISTENERS].up("http", [_url(a) for a in runner.addresses])
        yield app, port
        app[LISTENERS].draining = True
    finally:
        await runner.cleanup()


async def run(
    settings: Settings, *, out: TextIO = sys.stdout, stop: asyncio.Event | None = None
) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set), then shut down within a bound."""
    async with serving(settings) as (app, _):
        # Everything allocated so far lives as long as the process: move it out of the
        # collector's way, and collect the young generation less often. Both cut the pauses
        # that showed in the page-read p99 (tests/bench) and the per-write cost.
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, 20, 20)
        print(banner(app, app[SETTINGS]), file=out, flush=True)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down: no longer ready, finishing in-flight writes")
