"""The baseline of ``http_ingest``: a bare aiohttp server whose handler only answers ``201``.

Run as ``python -m tests.bench.baseline_server [--port 0]``; it prints a banner line in the
emulator's format (``  HTTP edge        http://127.0.0.1:PORT``) and serves until SIGTERM/SIGINT.
It is set up as the emulator's edge is (same ``AppRunner`` options, uvloop where available), so
the two differ only in what happens between reading the request and answering it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from aiohttp import web

from tests.bench._common import run_loop


async def created(request: web.Request) -> web.Response:
    return web.Response(status=201)


async def serve(host: str, port: int) -> None:
    app = web.Application()
    app.router.add_post("/{path:.*}", created)
    runner = web.AppRunner(app, keepalive_timeout=65.0, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        for address in runner.addresses:
            print(f"  HTTP edge        http://{address[0]}:{address[1]}   (baseline)", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    run_loop(serve(args.host, args.port))


if __name__ == "__main__":
    main()
