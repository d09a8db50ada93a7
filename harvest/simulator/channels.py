"""A fleet SIM's socket: one keep-alive HTTP session, one TCP connection that sends a message
and waits for its reply (as firmware does, spec B3), or one UDP endpoint whose replies are
matched to datagrams in the order they were sent (spec B4); and the tally every outcome goes to.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import time
from typing import Protocol

import aiohttp

from harvest.simulator.devices import (
    TcpDevice,
    UdpDevice,
    await_within,
    connect_tcp,
    expire,
    http_headers,
    http_session,
    http_status,
    open_udp,
    raw_status,
    skip_headers,
)
from harvest.simulator.target import Target, describe

#: Refusal reasons that are not a status code.
TIMEOUT = "timeout"
DISCONNECTED = "disconnected"
CONNECT_FAILED = "connect failed"
BAD_REPLY = "bad reply"

#: Raw TCP replies after which the emulator closes the connection: an oversized message (its
#: framing is lost) and the connection cap.
_TCP_HANG_UPS = (413, 503)


class ChannelSettings(Protocol):
    """What a channel needs of the fleet's configuration (a FleetConfig has it)."""

    @property
    def unified(self) -> bool: ...

    #: Seconds to wait for each reply (per datagram for UDP).
    @property
    def timeout(self) -> float: ...

    @property
    def content_type(self) -> str: ...


class Tally:
    """Every outcome of a run, counted as it happens (one loop: no locks)."""

    def __init__(self) -> None:
        self.sent = 0
        self.stored = 0
        self.refused: collections.Counter[str] = collections.Counter()
        self.latencies = array.array("d")
        self.first_error: str | None = None

    def outcome(self, reason: str, latency: float | None) -> None:
        if reason == "201":
            self.stored += 1
        else:
            self.refused[reason] += 1
        if latency is not None:
            self.latencies.append(latency)

    def failure(self, reason: str, error: BaseException) -> None:
        self.refused[reason] += 1
        if self.first_error is None:
            self.first_error = f"{reason}: {describe(error)}"


def wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Channel:
    """One SIM's socket; ``exchange`` sends a message and classifies its reply."""

    def __init__(
        self, config: ChannelSettings, target: Target, source: str | None, tally: Tally
    ) -> None:
        self.config = config
        self.target = target
        self.source = source
        self.tally = tally
        self.loop = asyncio.get_running_loop()

    async def open(self) -> None:
        """Connect ahead of the run; a failure here is retried at the first message."""

    async def exchange(self, body: bytes) -> bool:
        """Send ``body``, wait for its reply, count the outcome; False if it could not be sent
        (the caller pauses before the next)."""
        raise NotImplementedError

    def submit(self, body: bytes) -> asyncio.Future[None] | None:
        """Send without waiting for the reply (UDP at a rate); the future ends when the
        outcome is counted. ``None``: not supported, use ``exchange``."""
        return None

    async def close(self) -> None:
        pass

    def _reply(self, reply: bytes, started: float) -> None:
        status = raw_status(reply)
        self.tally.outcome(str(status) if status is not None else BAD_REPLY, self._since(started))

    def _since(self, started: float) -> float:
        return time.perf_counter() - started


class HttpChannel(Channel):
    def __init__(
        self, config: ChannelSettings, target: Target, source: str | None, tally: Tally
    ) -> None:
        super().__init__(config, target, source, tally)
        self.session = http_session(source, config.timeout)
        self.url = target.write_url(config.unified)
        self.headers = http_headers(config.content_type, None)
        self.skip = skip_headers(config.content_type)

    async def exchange(self, body: bytes) -> bool:
        started = time.perf_counter()
        try:
            async with self.session.post(
                self.url, data=body, headers=self.headers, skip_auto_headers=self.skip
            ) as response:
                raw = await response.read()
                status = http_status(response.status, raw)
                self.tally.outcome(str(status), self._since(started))
                return True
        except TimeoutError as error:
            self.tally.failure(TIMEOUT, error)
        except aiohttp.ClientConnectorError as error:
            self.tally.failure(CONNECT_FAILED, error)
            return False
        except (aiohttp.ClientError, OSError) as error:
            self.tally.failure(DISCONNECTED, error)
        return True

    async def close(self) -> None:
        await self.session.close()


class TcpChannel(Channel):
    device: TcpDevice | None = None

    async def _connect(self) -> TcpDevice:
        return await asyncio.wait_for(
            connect_tcp(self.target, self.config.unified, self.source), self.config.timeout
        )

    async def open(self) -> None:
        with contextlib.suppress(OSError):  # TimeoutError included
            self.device = await self._connect()

    async def exchange(self, body: bytes) -> bool:
        device = self.device
        if device is None or device.closed:
            self.device = None
            try:
                device = self.device = await self._connect()
            except (OSError, TimeoutError) as error:
                self.tally.failure(CONNECT_FAILED, error)
                return False
        started = time.perf_counter()
        try:
            reply = await await_within(device.request(body), self.config.timeout)
        except TimeoutError as error:
            # The reply may still come and would answer the next message: start afresh.
            device.abort()
            self.tally.failure(TIMEOUT, error)
        except OSError as error:
            self.tally.failure(DISCONNECTED, error)
        else:
            self._reply(reply, started)
            if raw_status(reply) in _TCP_HANG_UPS:
                device.abort()  # the emulator hangs up after these: reconnect for the next
        return True

    async def close(self) -> None:
        if self.device is not None:
            self.device.abort()


class UdpChannel(Channel):
    device: UdpDevice | None = None

    async def open(self) -> None:
        with contextlib.suppress(OSError):
            self.device = await open_udp(self.target, self.config.unified, self.source)

    async def _device(self) -> UdpDevice | None:
        if self.device is None:
            try:
                self.device = await open_udp(self.target, self.config.unified, self.source)
            except OSError as error:
                self.tally.failure(CONNECT_FAILED, error)
        return self.device

    def _settle(self, future: asyncio.Future[bytes], started: float) -> None:
        try:
            reply = future.result()
        except TimeoutError as error:
            self.tally.failure(TIMEOUT, error)
        except asyncio.CancelledError:
            self.tally.outcome(DISCONNECTED, None)
        except ConnectionRefusedError as error:
            self.tally.failure(CONNECT_FAILED, error)
        except OSError as error:
            self.tally.failure(DISCONNECTED, error)
        else:
            self._reply(reply, started)

    async def exchange(self, body: bytes) -> bool:
        device = await self._device()
        if device is None:
            return False
        started = time.perf_counter()
        future = device.request(body)
        with contextlib.suppress(Exception):
            await await_within(future, self.config.timeout)
        self._settle(future, started)
        error = None if future.cancelled() else future.exception()
        return not isinstance(error, ConnectionRefusedError)

    def submit(self, body: bytes) -> asyncio.Future[None] | None:
        device = self.device
        if device is None:
            return None  # no socket yet: the caller falls back on exchange
        started = time.perf_counter()
        future = device.request(body)
        handle = self.loop.call_later(self.config.timeout, expire, future)
        settled: asyncio.Future[None] = self.loop.create_future()

        def done(f: asyncio.Future[bytes]) -> None:
            handle.cancel()
            self._settle(f, started)
            wake(settled)

        future.add_done_callback(done)
        return settled

    async def close(self) -> None:
        if self.device is not None and self.device.transport is not None:
            self.device.transport.close()


CHANNELS: dict[str, type[Channel]] = {
    "http": HttpChannel,
    "tcp": TcpChannel,
    "udp": UdpChannel,
}
