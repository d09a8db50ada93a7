"""What the batching listeners share (gateway.raw, gateway.devicehttp): one call at the next turn
of the loop for everything that arrived in this one, and the storing tasks a close waits for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


class NextTurn:
    """Calls ``callback`` once, at the next turn of the loop, however often :meth:`ask` is
    called during this one: what arrived meanwhile is handled as one batch."""

    __slots__ = ("_asked", "_callback")

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._asked = False

    def ask(self) -> None:
        if not self._asked:
            self._asked = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self._asked = False
        self._callback()


class Tasks:
    """Tasks started per batch, kept until they are done so that a close can wait for them."""

    __slots__ = ("_running",)

    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def __len__(self) -> int:
        return len(self._running)

    async def wait(self, timeout_s: float) -> None:
        """Until every task has finished, or ``timeout_s`` seconds."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=timeout_s)
