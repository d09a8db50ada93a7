"""Running the application: the HTTP edge's listeners, the start-up banner and a bounded
shutdown."""

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

from gateway.devicehttp import DEVICE_HTTP, DeviceHttp
from gateway.shaping import SHAPER
from harvest import edge, wire
from harvest.app import API_MAX_BODY, create_app
from harvest.context import INGEST, LISTENERS, REGISTRY, SETTINGS
from harvest.requestlog import LOG_THROTTLE
from harvest.settings import Settings

log = logging.getLogger(__name__)

#: How long shutdown waits for in-flight requests before closing connections.
SHUTDOWN_TIMEOUT_S = 10.0
#: Allocations between young-generation collections (CPython's default is 700).
GC_THRESHOLD = 50_000
#: File descriptors needed besides the capped connections: listening and UDP sockets, SQLite's
#: files, the event loop's own, the request log file, a test's clients in the same process.
RESERVED_FILES = 256


def open_files_needed(settings: Settings) -> int:
    """Descriptors the connection caps can take: the HTTP edge's, each raw TCP listener's
    (Harvest and Unified Endpoint), and :data:`RESERVED_FILES`."""
    return settings.http_max_connections + 2 * settings.tcp_max_connections + RESERVED_FILES


def ensure_open_files(needed: int) -> int | None:
    """Raise the soft ``RLIMIT_NOFILE`` towards ``needed``, never past the hard limit and never
    lower (Go's runtime raises it at every start for the same reason); the soft limit now in
    force, ``None`` where there is no such limit.

    Past the soft limit the kernel refuses to accept connections before the caps can answer
    ``503``, for every client alike: the lock-out the caps are there to prevent. Where the hard
    limit is too low, a WARNING says which figure to lower.
    """
    if sys.platform == "win32":
        return None
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    if soft != unlimited and soft < needed:
        target = needed if hard == unlimited else min(needed, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != unlimited and soft < needed:
        log.warning(
            "only %d open files are allowed (hard limit) but the connection caps need %d:"
            " lower http_max_connections or tcp_max_connections, or raise the limit",
            soft,
            needed,
        )
    return None if soft == unlimited else soft


def _url(address: object) -> str:
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    return str(address)


#: The real endpoints each listener stands for (docs/routing.md, docs/real-modems.md).
REAL_HTTP = (
    f"{wire.HARVEST_HOST}:{wire.DEVICE_HTTP_PORT}",
    *(f"{host}:{wire.DEVICE_HTTP_PORT}" for host in wire.UNIFIED_HOSTS),
    f"{wire.FILES_HOST}:{wire.DEVICE_HTTP_PORT}",
    f"{wire.API_HOST} (/v1)",
)
REAL_RAW = {
    "harvest": f"{wire.HARVEST_HOST}:{wire.HARVEST_PORT}",
    "unified": f"{wire.UNIFIED_HOSTS[0]}:{wire.UNIFIED_PORT}",
}


def banner(app: web.Application, settings: Settings) -> str:
    """What the emulator serves, where, and the credentials to use it."""
    registry = app[REGISTRY]
    addresses = app[LISTENERS].addresses
    http = addresses.get("http", [])
    lines = ["SORACOM Harvest emulator is running"]
    lines += [f"  HTTP edge        {url}   (device writes, /v1 API, /_emulator)" for url in http]
    if http:
        lines.append(f"    stands for     {', '.join(REAL_HTTP)}")
        if settings.console_on:
            lines.append(f"  web console      {http[0]}/console/   (open it in a browser)")
    for name, label in (("harvest", "Harvest TCP/UDP"), ("unified", "Unified TCP/UDP")):
        for tcp, udp in zip(
            addresses.get(f"{name}-tcp", []), addresses.get(f"{name}-udp", []), strict=True
        ):
            lines.append(f"  {label:<16} {tcp}  {udp}")
        if addresses.get(f"{name}-tcp"):
            lines.append(f"    stands for     {REAL_RAW[name]} (TCP and UDP)")
    dns = addresses.get("dns", [])
    if dns:
        lines.append(f"  DNS              {'  '.join(dns)}")
        names = ", ".join((*wire.SORACOM_NAMES, *settings.dns_extra_names))
        lines.append(f"    answers        {names}: this host, as the asker reaches it")
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
    finished, pending commits flushed.

    The edge listens through :mod:`harvest.edge` (connection limits, first-byte timeout,
    malformed requests in one line); the open-file limit is raised to what the caps need."""
    ensure_open_files(open_files_needed(settings))
    settings = settings.secured(lambda: secrets.token_urlsafe(24))
    app = create_app(settings)
    app[edge.EDGE_GUARD] = guard = edge.EdgeGuard(settings, app[LOG_THROTTLE])
    lean = None
    if settings.device_http == "lean":
        app[DEVICE_HTTP] = lean = DeviceHttp(settings, max_body=API_MAX_BODY)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    servers: list[asyncio.Server] = []
    try:
        shaper = app.get(SHAPER)
        wrap = None if shaper is None else shaper.stream
        if lean is not None:  # the started application's services exist only from here
            lean.start(app[INGEST])
        servers = await edge.listen(runner, settings.hosts, settings.port, guard, wrap, lean)
        addresses = [sock.getsockname() for server in servers for sock in server.sockets]
        app[LISTENERS].up("http", [_url(a) for a in addresses])
        yield app, addresses[0][1]
        app[LISTENERS].draining = True
    finally:
        for server in servers:
            server.close()
        if lean is not None:  # its writes are stored while the store is still open
            await lean.shutdown(SHUTDOWN_TIMEOUT_S)
        await runner.cleanup()
        for server in servers:
            await server.wait_closed()


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
