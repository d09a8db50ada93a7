"""Where the server's Python time goes per device write: each stage of the ingest timed alone.

    python -m tests.bench.ingest_stages [--sims 200] [--writes 40000] [--rounds 5]

Builds the emulator in this process (``create_app`` with ``--memory``, rate limits off, the
request log ``off``, i.e. the ring only) and provisions ``--sims`` SIMs in the default group,
then times, on the CPU clock, each stage a UDP message goes through, over ``--writes`` 60-byte
binary messages from the SIMs in turn:

* ``upload``: the transport's :class:`~harvest.domain.Upload`;
* ``identify``: the SIM by session address;
* ``prepare``: every check and conversion (identify, decode, group options, quota admission,
  the entry, its usage, the metrics of arrival) without storing;
* ``commit``: :meth:`IngestService.commit` of batches of 100 prepared writes on the in-memory
  store (quota bookkeeping, the report: request-log ring and latency, the stored metrics);
* ``reply``: the listener's reply bytes.

Medians over ``--rounds``, in microseconds per write, with the same loop doing nothing as the
baseline (the cost of the loop itself). The SQLite store's own cost is what
``tests.bench.raw_ingest`` shows as "other threads".
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable

from aiohttp.test_utils import TestClient, TestServer

from gateway.raw import Replies, upload
from harvest.app import create_app
from harvest.context import INGEST
from harvest.domain import Transport, Upload
from harvest.ingest import Accepted
from harvest.server import GC_THRESHOLD
from harvest.settings import Settings
from tests.bench._common import machine_note, run_loop

BODY = b"\x01" * 60


async def measure(sims: int, writes: int, rounds: int) -> dict[str, list[float]]:
    settings = Settings(
        memory=True, port=0, harvest_port=0, unified_port=0, rate_limits=False,
        request_log="off",
    )  # fmt: skip
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        addresses = []
        for _ in range(sims):
            async with client.post("/_emulator/sims", json={"status": "active"}) as created:
                addresses.append((await created.json())["sessionAddress"])
        ingest = client.app[INGEST]
        gc.freeze()  # as `serve` does once started (harvest/server.py)
        gc.set_threshold(GC_THRESHOLD, 20, 20)
        replies = Replies(ingest, unified=False)
        peers = [addresses[i % sims] for i in range(writes)]
        figures: dict[str, list[float]] = {}

        def timed(name: str, step: Callable[..., object], *args: object) -> None:
            started = time.process_time()
            step(*args)
            figures.setdefault(name, []).append((time.process_time() - started) / writes * 1e6)

        def nothing(peers: list[str]) -> object:
            return [None for _ in peers]

        def uploads_of(peers: list[str]) -> list[Upload]:
            return [upload(Transport.UDP, p, BODY, "harvest-udp") for p in peers]

        def identify(uploads: list[Upload]) -> object:
            return [ingest.identify(u) for u in uploads]

        def prepare(uploads: list[Upload], into: list[Accepted]) -> None:
            into.extend(ingest.prepare(u) for u in uploads)

        def reply(accepted: list[Accepted]) -> object:
            return [replies.accepted(a) for a in accepted]

        for _ in range(rounds):
            timed("loop", nothing, peers)
            uploads = uploads_of(peers)
            timed("upload", uploads_of, peers)
            timed("identify", identify, uploads)
            accepted: list[Accepted] = []
            timed("prepare", prepare, uploads, accepted)
            started = time.process_time()
            for start in range(0, writes, 100):
                await ingest.commit(accepted[start : start + 100])
            spent = time.process_time() - started
            figures.setdefault("commit", []).append(spent / writes * 1e6)
            timed("reply", reply, accepted)
        return figures
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--writes", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(machine_note())
    figures = run_loop(measure(args.sims, args.writes, args.rounds))
    loop = statistics.median(figures.pop("loop"))
    print(f"{'stage':10} {'us/write':>9}   (median of {args.rounds} rounds, loop {loop:.2f} us)")
    total = 0.0
    for name, values in figures.items():
        value = statistics.median(values) - loop
        if name != "identify":  # inside prepare
            total += value
        print(f"{name:10} {value:9.2f}")
    print(f"{'total':10} {total:9.2f}   (upload + prepare + commit + reply)")


if __name__ == "__main__":
    main()
