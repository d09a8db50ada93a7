"""How the gateway plugs into the application: the device-facing listeners.

The HTTP edge shares the application's port; the raw TCP and UDP listeners of the Harvest port
(8514) and the Unified Endpoint port (23080) live in a cleanup context that binds them before the
first request and closes them, with a bounded wait for in-flight messages, after the last.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from gateway import files, http
from gateway.dnsserver import setup_dns
from gateway.raw import BeamEntry, RawHandler
from gateway.shaping import SHAPER, Shaper
from gateway.tcp import TcpConnection, TcpServer
from gateway.udp import UdpEndpoint
from harvest import wire
from harvest.context import CLOCK, INGEST, LISTENERS, METRICS, SESSIONS, SETTINGS
from harvest.domain import Transport, Upload
from harvest.linkcontrol import LINKS
from harvest.requestlog import LOG_THROTTLE
from harvest.settings import Settings

log = logging.getLogger(__name__)

#: The raw endpoints: name and the setting that holds its port.
ENDPOINTS = (("harvest", "harvest_port"), ("unified", "unified_port"))
#: How long shutdown waits for messages being stored.
DRAIN_TIMEOUT_S = 5.0


@dataclass(slots=True)
class RawListeners:
    """Every raw listener, by endpoint name."""

    tcp: dict[str, TcpServer] = field(default_factory=dict)
    udp: dict[str, list[UdpEndpoint]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)


RAW_LISTENERS = web.AppKey("raw_listeners", RawListeners)


def _same(endpoint: asyncio.DatagramProtocol) -> asyncio.DatagramProtocol:
    return endpoint


#: The UDP listeners' receive buffer: a fleet's first datagrams arrive together (10,000 SIMs
#: at once dropped ~10 % in the kernel's default 208 KiB; tests/bench/scale.py). Linux caps a
#: request at ``net.core.rmem_max``.
UDP_RECEIVE_BUFFER = 8 * 1024 * 1024


def _widen_receive_buffer(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)


def _where(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


async def raw_listeners_context(app: web.Application) -> AsyncIterator[None]:
    """Bind TCP and UDP on each endpoint's port (UDP on the port TCP got when it was 0)."""
    settings = app[SETTINGS]
    ingest = app[INGEST]
    loop = asyncio.get_running_loop()
    raw = RawListeners()
    servers: list[asyncio.Server] = []
    app[SHAPER] = shaper = Shaper(
        app[LINKS],
        lambda peer: ingest.sim_of(Upload(Transport.TCP, peer, b"")),
        metrics=app[METRICS],
        sessions=app[SESSIONS],
    )
    try:
        for name, port_setting in ENDPOINTS:
            port = getattr(settings, port_setting)
            handler = RawHandler[TcpConnection](
                ingest,
                Transport.TCP,
                listener=name,
                unified=name == "unified",
                deliver=TcpConnection.replied,
                unified_created=settings.unified_harvest_status,
            )
            tcp = TcpServer(
                handler,
                idle_timeout=settings.tcp_idle_timeout,
                first_byte_timeout=settings.first_byte_timeout,
                max_connections=settings.tcp_max_connections,
                max_per_source=settings.tcp_max_connections_per_source,
                name=f"{name}-tcp",
                throttle=app[LOG_THROTTLE],
                screen=handler.admits,
                beam=None
                if not settings.beam_psk
                else BeamEntry(
                    settings.beam_psk,
                    max_skew_ms=settings.beam_max_skew_ms or None,
                    now_ms=app[CLOCK].now_ms,
                    ingest=ingest,
                    endpoint=name,
                ),
            )
            for host in settings.hosts:
                server = await loop.create_server(
                    shaper.stream(tcp.protocol, holds=True), host, port, reuse_address=True
                )
                servers.append(server)
                port = port or server.sockets[0].getsockname()[1]
            raw.tcp[name] = tcp
            raw.ports[name] = port
            raw.udp[name] = []
            for host in settings.hosts:
                endpoint = UdpEndpoint(
                    ingest,
                    max_in_flight=settings.udp_max_in_flight,
                    name=f"{name}-udp",
                    unified=name == "unified",
                    unified_created=settings.unified_harvest_status,
                    throttle=app[LOG_THROTTLE],
                )
                transport, _ = await loop.create_datagram_endpoint(
                    functools.partial(_same, shaper.datagram(endpoint)), local_addr=(host, port)
                )
                _widen_receive_buffer(transport)
                raw.udp[name].append(endpoint)
            listeners = app[LISTENERS]
            listeners.up(f"{name}-tcp", [_where("tcp", h, port) for h in settings.hosts])
            listeners.up(f"{name}-udp", [_where("udp", h, port) for h in settings.hosts])
        app[RAW_LISTENERS] = raw
        yield
    finally:
        for server in servers:
            server.close()
        for name in raw.ports:
            app[LISTENERS].down(f"{name}-tcp")
            app[LISTENERS].down(f"{name}-udp")
        await asyncio.gather(
            *(tcp.close(DRAIN_TIMEOUT_S) for tcp in raw.tcp.values()),
            *(udp.close(DRAIN_TIMEOUT_S) for eps in raw.udp.values() for udp in eps),
        )
        for server in servers:
            await server.wait_closed()


def device_app(endpoint: str) -> web.Application:
    """The routes of one device host: every path is a device request (spec B1)."""
    app = web.Application()
    if endpoint == "files":
        app.router.add_route("*", "/{path:.*}", files.files_request)
        return app
    app[http.ENDPOINT] = endpoint
    app.router.add_post("/{path:.*}", http.write_data)
    app.router.add_route("*", "/{path:.*}", http.wrong_method)
    return app


def setup_gateway(app: web.Application, settings: Settings) -> None:
    """Raw TCP/UDP listeners; the device hosts, routed by ``Host`` before any path (so
    ``/v1`` on ``harvest.soracom.io`` is a Harvest write, not the API); and device HTTP writes
    on every path of the other hosts that the API and control plane do not claim."""
    for name, _ in ENDPOINTS:
        app[LISTENERS].expect(f"{name}-tcp")
        app[LISTENERS].expect(f"{name}-udp")
    app.cleanup_ctx.append(raw_listeners_context)
    setup_dns(app, settings)
    app.add_domain(wire.HARVEST_HOST, device_app("harvest"))
    for host in wire.UNIFIED_HOSTS:
        app.add_domain(host, device_app("unified"))
    app.add_domain(wire.FILES_HOST, device_app("files"))
    app.router.add_post("/{path:.*}", http.write_data)
    app.router.add_route("*", "/{path:.*}", http.wrong_method)
