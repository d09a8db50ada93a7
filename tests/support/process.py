"""The emulator as a separate process, started the way a user starts it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

EDGE_LINE = re.compile(r"HTTP edge\s+(http://\S+)")


@dataclass
class Process:
    popen: subprocess.Popen[str]
    base_url: str
    banner: list[str]
    #: What the emulator printed after the banner (its request log), the last lines only.
    output: deque[str] = field(default_factory=lambda: deque(maxlen=2000))
    #: Every line it printed at level ERROR or with a traceback, over the whole run (the first
    #: 100 of them) and how many there were.
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def drain(self) -> None:
        """Keep reading the emulator's output in the background: a pipe nobody reads fills up
        after ~64 KiB and then blocks the emulator on its next log line."""

        def pump() -> None:
            assert self.popen.stdout is not None
            for line in self.popen.stdout:
                line = line.rstrip("\n")
                self.output.append(line)
                if " ERROR " in line or "Traceback" in line:
                    self.error_count += 1
                    if len(self.errors) < 100:
                        self.errors.append(line)

        threading.Thread(target=pump, name="emulator-output", daemon=True).start()


def start(
    args: Sequence[str],
    env: dict[str, str] | None = None,
    timeout: float = 20.0,
    prefix: Sequence[str] = (),
) -> Process:
    """Run ``python -m harvest serve ARGS`` (after ``prefix``, e.g. ``ip netns exec NS``) and
    wait for the banner's HTTP edge line."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HARVEST_")}
    # free raw ports unless a test names them, so a running emulator never collides
    environment.update({"HARVEST_HARVEST_PORT": "0", "HARVEST_UNIFIED_PORT": "0"})
    environment.update(env or {})
    popen = subprocess.Popen(
        [*prefix, sys.executable, "-m", "harvest", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )
    assert popen.stdout is not None
    banner: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = popen.stdout.readline()
        if not line:
            break
        banner.append(line.rstrip("\n"))
        found = EDGE_LINE.search(line)
        if found:
            # the rest of the banner (raw listeners, credentials) follows at once
            while popen.stdout.readable():
                more = popen.stdout.readline()
                if not more:
                    break
                banner.append(more.rstrip("\n"))
                if more.startswith("  try:"):
                    break
            process = Process(popen, found.group(1), banner)
            process.drain()
            return process
    popen.kill()
    popen.wait()
    raise AssertionError("the emulator did not start:\n" + "\n".join(banner))


@contextmanager
def running(
    args: Sequence[str], env: dict[str, str] | None = None, prefix: Sequence[str] = ()
) -> Iterator[Process]:
    process = start(args, env, prefix=prefix)
    try:
        yield process
    finally:
        if process.popen.poll() is None:
            process.popen.kill()
        process.popen.wait()
        if process.popen.stdout is not None:
            process.popen.stdout.close()
