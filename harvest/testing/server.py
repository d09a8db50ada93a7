"""The emulator in this process, on a background thread with its own event loop: what the
``harvest_emulator`` fixture starts, and a context manager outside pytest.

Settings are the fixture's defaults (127.0.0.1, free ports, in-memory store) unless overridden;
the server is :func:`harvest.server.serving`, as ``harvest-emulator serve`` runs it, without
signals or the banner.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from types import TracebackType
from typing import Any

from harvest.settings import Settings

__all__ = ["HarvestEmulatorServer", "emulator_settings"]

#: How long a helper waits for the emulator (start, stop, one request or reply), in seconds.
TIMEOUT_S = 10.0
#: How long shutdown waits for in-flight requests: tests have none worth waiting for.
SHUTDOWN_TIMEOUT_S = 2.0


def emulator_settings(**overrides: Any) -> Settings:
    """The fixture's settings: 127.0.0.1, free ports, in-memory store, then ``overrides``."""
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "harvest_port": 0,
        "unified_port": 0,
        "memory": True,
    }
    return Settings(**{**base, **overrides})


def _client_host(host: str) -> str:
    """Where a client on this machine reaches a listener bound to ``host``."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class HarvestEmulatorServer:
    """The emulator in this process, on a background thread with its own event loop.

    ``start()`` returns once every listener is up; ``stop()`` shuts it down within a bound. Also
    a context manager. The ports are known after ``start()`` (port 0 in the settings is a free
    port, the same one for raw TCP and UDP).
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or emulator_settings()
        self.host = _client_host(self.settings.hosts[0])
        self.port = 0
        self.harvest_port = 0
        self.unified_port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return _http_url(self.host, self.port)

    def start(self) -> HarvestEmulatorServer:
        if self._thread is not None:
            raise RuntimeError("the emulator is already started")
        started: concurrent.futures.Future[tuple[int, int, int]] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="harvest-emulator", daemon=True
        )
        self._thread.start()
        try:
            self.port, self.harvest_port, self.unified_port = started.result(TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stop.set)
        thread.join(TIMEOUT_S + SHUTDOWN_TIMEOUT_S)
        self._thread = self._loop = self._stop = None
        error, self._error = self._error, None
        if thread.is_alive():
            raise RuntimeError("the Harvest emulator did not stop in time")
        if error is not None:
            raise RuntimeError("the Harvest emulator failed") from error

    def __enter__(self) -> HarvestEmulatorServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, started: concurrent.futures.Future[tuple[int, int, int]]) -> None:
        try:
            asyncio.run(self._serve(started))
        except BaseException as error:  # reported by stop(), not as an unhandled thread error
            if not started.done():
                started.set_exception(error)
            else:
                self._error = error

    async def _serve(self, started: concurrent.futures.Future[tuple[int, int, int]]) -> None:
        """Serve until :meth:`stop`; as ``harvest.server.run`` without signals or the banner."""
        from gateway.app import RAW_LISTENERS
        from harvest.server import serving

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serving(self.settings) as (app, port):
            raw = app[RAW_LISTENERS]
            started.set_result((port, raw.ports["harvest"], raw.ports["unified"]))
            await self._stop.wait()
