"""Where the server's Python time goes per device write: each stage of the ingest timed alone.

    python -m tests.bench.ingest_stages [--sims 200] [--writes 40000] [--rounds 5]
                                        [--path raw|object] [--store memory|sqlite]

Builds the emulator in this process (``create_app`` with ``--memory``, rate limits off, the
request log ``off``, i.e. the ring only) and provisions ``--sims`` SIMs in the default group,
then times, on the CPU clock, each stage a UDP message goes through, over ``--writes`` 60-byte
binary messages from the SIMs in turn, in batches of 100 (one turn of the listener's loop):

* ``upload``: what the listener hands over per message (``--path raw``: the
  :data:`~harvest.ingest.Message` tuple ``RawHandler.submit`` queues; ``object``: the
  transport's :class:`~harvest.domain.Upload`);
* ``identify``: the SIM by session address (inside ``prepare``; for reference);
* ``prepare``: every check and conversion (identify, decode, group options, quota admission,
  the entry rows or objects, their usage, the metrics of arrival) without storing: ``raw``,
  :meth:`RawIngest.check` of each batch; ``object``, :meth:`IngestService.prepare` per write;
* ``commit``: storing each batch on the in-memory store (quota bookkeeping, the report:
  request-log ring and latency, the stored metrics): :meth:`RawIngest.commit` or
  :meth:`IngestService.commit`;
* ``reply``: the listener's reply bytes.

``--path raw`` (the default) is what the raw listeners run; ``object`` is the path HTTP takes
(and the raw listeners while fault rules are in force). Medians over ``--rounds``, in
microseconds per write, with the same loop doing nothing as the baseline (the cost of the loop
itself). With ``--store sqlite`` (a file in a temporary directory, durable as ``serve`` has
it) ``commit`` is the CPU of the whole process, so it includes the SQLite writer thread's
appends, fsync'd commits and folds; what the event loop alone spends is the line ``(loop)``.
``tests.bench.raw_ingest`` shows the same split over real sockets ("main", "other threads").
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from gateway.raw import Replies, upload
from harvest.app import create_app
from harvest.context import INGEST
from harvest.domain import Group, Transport, Upload
from harvest.ingest import Accepted, Message, RawBatch, RawIngest
from harvest.server import GC_THRESHOLD
from harvest.settings import Settings
from tests.bench._common import machine_note, run_loop

BODY = b"\x01" * 60
#: Messages per turn of the listener's loop.
BATCH = 100


async def measure(
    sims: int, writes: int, rounds: int, path: str, store: str
) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as directory:
        return await _measure(sims, writes, rounds, path, store, Path(directory))


async def _measure(
    sims: int, writes: int, rounds: int, path: str, store: str, directory: Path
) -> dict[str, list[float]]:
    settings = Settings(
        memory=store == "memory", data_dir=directory, port=0, harvest_port=0, unified_port=0,
        rate_limits=False, request_log="off",
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
        raw = RawIngest(ingest, Transport.UDP, "harvest-udp")
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

        def messages_of(peers: list[str]) -> list[Message]:
            return [(BODY, p, None) for p in peers]

        def identify(uploads: list[Upload]) -> object:
            return [ingest.identify(u) for u in uploads]

        def prepare(uploads: list[Upload], into: list[Accepted]) -> None:
            into.extend(ingest.prepare(u) for u in uploads)

        def check(messages: list[Message], into: list[RawBatch]) -> None:
            into.extend(raw.check(messages[n : n + BATCH]) for n in range(0, writes, BATCH))

        def reply(groups: list[Group]) -> object:
            return [replies.accepted(g) for g in groups]

        for _ in range(rounds):
            timed("loop", nothing, peers)
            uploads = uploads_of(peers)
            if path == "raw":
                timed("upload", messages_of, peers)
            else:
                timed("upload", uploads_of, peers)
            timed("identify", identify, uploads)
            accepted: list[Accepted] = []
            batches: list[RawBatch] = []
            if path == "raw":
                timed("prepare", check, messages_of(peers), batches)
            else:
                timed("prepare", prepare, uploads, accepted)
            started, loop_started = time.process_time(), time.thread_time()
            if path == "raw":
                for batch in batches:
                    await raw.commit(batch)
            else:
                for start in range(0, writes, BATCH):
                    await ingest.commit(accepted[start : start + BATCH])
            spent = time.process_time() - started
            figures.setdefault("commit", []).append(spent / writes * 1e6)
            on_loop = time.thread_time() - loop_started
            figures.setdefault("  (loop)", []).append(on_loop / writes * 1e6)
            groups = [g for b in batches for g in b.groups] or [a.group for a in accepted]
            timed("reply", reply, groups)
        return figures
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--writes", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--path", choices=("raw", "object"), default="raw")
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    args = parser.parse_args()
    print(machine_note(), f"path {args.path}, store {args.store}")
    figures = run_loop(measure(args.sims, args.writes, args.rounds, args.path, args.store))
    loop = statistics.median(figures.pop("loop"))
    print(f"{'stage':10} {'us/write':>9}   (median of {args.rounds} rounds, loop {loop:.2f} us)")
    total = 0.0
    for name, values in figures.items():
        value = statistics.median(values) - loop
        if name not in ("identify", "  (loop)"):  # inside prepare, inside commit
            total += value
        print(f"{name:10} {value:9.2f}")
    print(f"{'total':10} {total:9.2f}   (upload + prepare + commit + reply)")


if __name__ == "__main__":
    main()
