"""Page reads (``limit=1000``) at the newest end, the oldest end and the middle of one SIM's
series, on a 10-million-entry database and on a small one (the in-run baseline).

    python -m tests.bench.page_reads [--entries 10000000] [--samples 500] [--rebuild]

Both databases are built directly with the product's schema (``harvest.storage.sqlite.SCHEMA``)
under operator ``OP0000000000``, resource type ``Subscriber``, IMSIs 001010000000001, ...; each
entry's content is a 60-byte JSON string. One SIM, 001010000000001 (the emulator's default SIM),
holds ``--hot`` entries (default 1,000,000) one second apart, so page positions matter; the others
share the rest evenly. Every series starts 20 days before the build, so the data sits inside the
emulator's default 40-day retention (reads never reach past retention, whatever ``from`` says).
The files are cached under ``--cache-dir`` (``/tmp/harvest-bench``) and reused while their
shape and the product's ``SCHEMA_VERSION`` match, the hot series is intact and the data is under
38 days old; ``--rebuild`` builds them again. Building 10 million rows (a 1.4 GiB file) took
36-40 s on a 2-core machine; the script prints how long it takes.

Each position is read two ways:

* ``store``: :meth:`harvest.storage.sqlite.SqliteStore.query_entries` in this process, asked for
  ``limit + 1`` rows as the API handler does;
* ``http``: ``GET /v1/subscribers/{imsi}/data?limit=1000&from=..&to=..&sort=..`` (and
  ``last_evaluated_key``) against ``python -m harvest serve --data-dir <cached dir>``, logged in
  with the default auth key, one request at a time on a keep-alive connection.

Positions: ``newest`` (sort=desc over the whole series), ``oldest`` (sort=asc), ``middle/to``
(sort=desc, ``to`` at the series' midpoint), ``middle/key`` (sort=desc over the whole series,
``last_evaluated_key`` just above the midpoint) and ``random/to`` (sort=desc, ``to`` anywhere in
the series that leaves a full page, a new place for every sample, so reads leave SQLite's own page
cache; the file itself stays in the OS page cache, as it would on a machine with enough memory).
Samples of every (database, position) pair are interleaved in rounds so machine noise spreads
over all of them; p50/p99 are over all samples.

The emulator provisions its default operator in a cached database on first start (it finds no
``provisioned`` marker); that does not touch the entries.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp

from harvest.domain import ResourceType
from harvest.storage.base import EntryQuery
from harvest.storage.sqlite import SCHEMA, SCHEMA_VERSION, SqliteStore
from quotas.limits import DEFAULT_RETENTION_DAYS
from tests.bench._common import (
    emulator_args,
    machine_note,
    percentile,
    run_loop,
    start_server,
)

OPERATOR = "OP0000000000"
RESOURCE_TYPE = ResourceType.SUBSCRIBER
FIRST_IMSI = 1010000000001  # 001010000000001
KEY_ID = "keyId-harvest-emulator"
KEY = "secret-harvest-emulator"
PAGE = 1000
DAY_MS = 86_400_000
#: Every series starts this many days before the build (the start of that UTC day), so the hot
#: series (1,000,000 s, 11.6 days) ends days before the build and all of it is inside the default
#: retention; a cached database is rebuilt once its first entry leaves ``REUSE_DAYS``.
START_DAYS_BEFORE_BUILD = 20
REUSE_DAYS = DEFAULT_RETENTION_DAYS - 2
HOT_STEP_MS = 1_000
OTHER_STEP_MS = 60_000
CHUNK = 500_000


def imsi(index: int) -> str:
    return f"{FIRST_IMSI + index:015d}"


HOT_IMSI = imsi(0)


def content(seq: int) -> str:
    """A 60-byte JSON object."""
    return f'{{"temp":21.25,"humidity":48.25,"seq":"{seq:010d}","ok":true}}'


assert len(content(0)) == 60
assert json.loads(content(12345))["seq"] == "0000012345"


@dataclass(frozen=True)
class Shape:
    """What a database holds: ``entries`` over ``sims`` SIMs, ``hot`` of them on SIM 0."""

    entries: int
    sims: int
    hot: int

    def per_sim(self) -> Iterator[tuple[int, int]]:
        rest = self.entries - self.hot
        base, extra = divmod(rest, self.sims - 1)
        yield 0, self.hot
        for index in range(1, self.sims):
            yield index, base + (1 if index - 1 < extra else 0)

    @property
    def name(self) -> str:
        return f"{self.entries}-entries-{self.sims}-sims-{self.hot}-hot"


def _rows(shape: Shape, t0: int) -> Iterator[tuple[Any, ...]]:
    """Every entry in primary-key order (the fastest way to fill a clustered table)."""
    seq = 0
    for index, count in shape.per_sim():
        resource_id = imsi(index)
        step = HOT_STEP_MS if index == 0 else OTHER_STEP_MS
        for k in range(count):
            seq += 1
            yield (
                OPERATOR,
                RESOURCE_TYPE.value,
                resource_id,
                t0 + k * step,
                "application/json",
                content(seq),
                None,
            )


def build(shape: Shape, data_dir: Path, t0: int) -> float:
    """Build ``data_dir/harvest.sqlite3`` with series starting at ``t0``; the seconds it took."""
    started = time.perf_counter()
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / "harvest.sqlite3"
    building = data_dir / "harvest.sqlite3.building"
    for path in (target, building, *data_dir.glob("harvest.sqlite3-*"), data_dir / "bench.json"):
        path.unlink(missing_ok=True)
    db = sqlite3.connect(building, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -262144")  # 256 MiB
        db.executescript(SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        rows = _rows(shape, t0)
        done = 0
        while True:
            chunk = list(itertools.islice(rows, CHUNK))
            if not chunk:
                break
            db.execute("BEGIN")
            db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)", chunk)
            db.execute("COMMIT")
            done += len(chunk)
            if shape.entries >= 2_000_000 and done % 2_000_000 == 0:
                elapsed = time.perf_counter() - started
                print(f"  {done:>10,} rows, {elapsed:5.0f} s", flush=True)
        names = json.dumps(sorted(json.loads(content(0))))
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO resources VALUES (?, ?, ?, ?, ?)",
            (
                (
                    OPERATOR,
                    RESOURCE_TYPE.value,
                    imsi(index),
                    t0 + (count - 1) * (HOT_STEP_MS if index == 0 else OTHER_STEP_MS),
                    names,
                )
                for index, count in shape.per_sim()
            ),
        )
        db.execute("COMMIT")
        (stored,) = db.execute("SELECT count(*) FROM entries").fetchone()
        if stored != shape.entries:
            raise RuntimeError(f"built {stored} entries, expected {shape.entries}")
    finally:
        db.close()
    building.rename(target)
    seconds = time.perf_counter() - started
    (data_dir / "bench.json").write_text(
        json.dumps(
            {
                **asdict(shape),
                "schema_version": SCHEMA_VERSION,
                "t0": t0,
                "build_seconds": seconds,
            }
        )
    )
    return seconds


def _hot_count(database: Path, t0: int) -> int:
    with sqlite3.connect(database) as db:
        count = db.execute(
            "SELECT count(*) FROM entries WHERE operator_id = ? AND resource_type = ? "
            "AND resource_id = ? AND time >= ?",
            (OPERATOR, RESOURCE_TYPE.value, HOT_IMSI, t0),
        ).fetchone()[0]
    db.close()
    return int(count)


def ensure(shape: Shape, cache_dir: Path, rebuild: bool) -> tuple[Path, int]:
    """The data directory holding a database of ``shape`` and its series' start, built unless a
    cached one has the same shape and schema, is young enough and still holds its hot series."""
    data_dir = cache_dir / shape.name
    marker = data_dir / "bench.json"
    database = data_dir / "harvest.sqlite3"
    now = time.time_ns() // 1_000_000
    if not rebuild and marker.exists() and database.exists():
        built = json.loads(marker.read_text())
        t0 = int(built.get("t0", 0))
        if (
            Shape(built["entries"], built["sims"], built["hot"]) == shape
            and built.get("schema_version") == SCHEMA_VERSION
            and now - t0 <= REUSE_DAYS * DAY_MS
            and _hot_count(database, t0) == shape.hot
        ):
            size = database.stat().st_size
            print(
                f"{shape.entries:>12,} entries: cached {data_dir} ({size / 2**20:,.0f} MiB; "
                f"built in {built['build_seconds']:.0f} s)"
            )
            return data_dir, t0
    t0 = (now // DAY_MS - START_DAYS_BEFORE_BUILD) * DAY_MS
    print(f"{shape.entries:>12,} entries: building {data_dir} ...", flush=True)
    seconds = build(shape, data_dir, t0)
    size = database.stat().st_size
    print(f"{shape.entries:>12,} entries: built in {seconds:.0f} s ({size / 2**20:,.0f} MiB)")
    return data_dir, t0


# --- positions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Position:
    """One page: the query window and the time its first entry must have.

    A ``spread`` position is a family: each sample moves ``to`` (and the expected first time) by
    a random whole number of steps in ``[0, spread)``, so samples land on different leaf pages.
    """

    name: str
    ascending: bool
    from_ms: int
    to_ms: int
    after: int | None
    first_time: int
    spread: int = 0

    def pick(self, rng: random.Random) -> Position:
        if not self.spread:
            return self
        shift = rng.randrange(self.spread) * HOT_STEP_MS
        return replace(self, to_ms=self.to_ms + shift, first_time=self.first_time + shift)

    def params(self) -> dict[str, str]:
        params = {
            "limit": str(PAGE),
            "sort": "asc" if self.ascending else "desc",
            "from": str(self.from_ms),
            "to": str(self.to_ms),
        }
        if self.after is not None:
            params["last_evaluated_key"] = f"{self.after}_{HOT_IMSI}"
        return params


def positions(hot: int, t0: int) -> list[Position]:
    last = t0 + (hot - 1) * HOT_STEP_MS
    middle = t0 + (hot // 2) * HOT_STEP_MS
    low = t0 + PAGE * HOT_STEP_MS  # the lowest ``to`` that still leaves a full page and a next
    return [
        Position("newest", False, t0, last, None, last),
        Position("oldest", True, t0, last, None, t0),
        Position("middle/to", False, t0, middle, None, middle),
        Position("middle/key", False, t0, last, middle + HOT_STEP_MS, middle),
        Position("random/to", False, t0, low, None, low, spread=hot - PAGE - 1),
    ]


Sampler = Callable[[Position], Awaitable[None]]


async def measure(
    samplers: dict[str, tuple[Sampler, list[Position]]], samples: int, rounds: int
) -> dict[tuple[str, str], list[float]]:
    """Interleave every (database, position): ``rounds`` passes of ``samples / rounds`` each."""
    rng = random.Random(1)
    timings: dict[tuple[str, str], list[float]] = {}
    for sampler, chosen in samplers.values():
        for position in chosen:
            for _ in range(3):  # warm-up: page cache, statement cache, connections
                await sampler(position.pick(rng))
    per_round = max(1, samples // rounds)
    for _ in range(rounds):
        for label, (sampler, chosen) in samplers.items():
            for position in chosen:
                bucket = timings.setdefault((label, position.name), [])
                for _ in range(per_round):
                    concrete = position.pick(rng)
                    started = time.perf_counter_ns()
                    await sampler(concrete)
                    bucket.append((time.perf_counter_ns() - started) / 1e6)
    return timings


def report(title: str, timings: dict[tuple[str, str], list[float]], small: str, large: str) -> None:
    print(f"\n{title}: limit={PAGE} pages, latency in ms")
    print(
        f"{'position':12} {'small p50':>10} {'small p99':>10} {'large p50':>10} {'large p99':>10}"
        f" {'p50 large/small':>16} {'p99 large/small':>16}"
    )
    names = list(dict.fromkeys(name for _, name in timings))
    for name in names:
        s = sorted(timings[(small, name)])
        g = sorted(timings[(large, name)])
        s50, s99, g50, g99 = (
            percentile(s, 0.5),
            percentile(s, 0.99),
            percentile(g, 0.5),
            percentile(g, 0.99),
        )
        print(
            f"{name:12} {s50:10.2f} {s99:10.2f} {g50:10.2f} {g99:10.2f} {g50 / s50:16.2f} "
            f"{g99 / s99:16.2f}"
        )
    print(f"({len(timings[(small, names[0])])} samples per cell; small = {small}, large = {large})")


# --- the store ---------------------------------------------------------------------------------
def store_sampler(store: SqliteStore) -> Sampler:
    async def sample(position: Position) -> None:
        rows = await store.query_entries(
            EntryQuery(
                operator_id=OPERATOR,
                resource_type=RESOURCE_TYPE,
                resource_id=HOT_IMSI,
                from_ms=position.from_ms,
                to_ms=position.to_ms,
                ascending=position.ascending,
                limit=PAGE + 1,
                after=position.after,
            )
        )
        if len(rows) != PAGE + 1 or rows[0].time != position.first_time:
            raise AssertionError(f"{position.name}: {len(rows)} rows from {rows[0].time}")

    return sample


async def store_benchmark(
    dirs: dict[str, tuple[Path, list[Position]]], samples: int, rounds: int
) -> dict[tuple[str, str], list[float]]:
    stores: list[SqliteStore] = []
    try:
        samplers: dict[str, tuple[Sampler, list[Position]]] = {}
        for label, (data_dir, chosen) in dirs.items():
            store = SqliteStore(data_dir / "harvest.sqlite3")
            await store.open()
            stores.append(store)
            samplers[label] = (store_sampler(store), chosen)
        return await measure(samplers, samples, rounds)
    finally:
        for store in stores:
            await store.close()


# --- HTTP --------------------------------------------------------------------------------------
async def http_sampler(session: aiohttp.ClientSession, base_url: str) -> Sampler:
    async with session.post(
        f"{base_url}/v1/auth", json={"authKeyId": KEY_ID, "authKey": KEY}
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"auth: {response.status} {await response.text()}")
        auth = await response.json()
    headers = {"X-Soracom-API-Key": auth["apiKey"], "X-Soracom-Token": auth["token"]}
    url = f"{base_url}/v1/subscribers/{HOT_IMSI}/data"
    checked: set[str] = set()

    async def sample(position: Position) -> None:
        async with session.get(url, params=position.params(), headers=headers) as response:
            body = await response.read()
            if response.status != 200 or "x-soracom-next-key" not in response.headers:
                raise AssertionError(f"{position.name}: {response.status} {body[:200]!r}")
        if position.name not in checked:
            page = json.loads(body)
            if len(page) != PAGE or page[0]["time"] != position.first_time:
                raise AssertionError(f"{position.name}: {len(page)} entries from {page[0]}")
            checked.add(position.name)

    return sample


async def http_benchmark(
    urls: dict[str, tuple[str, list[Position]]], samples: int, rounds: int
) -> dict[tuple[str, str], list[float]]:
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        samplers: dict[str, tuple[Sampler, list[Position]]] = {}
        for label, (base_url, chosen) in urls.items():
            samplers[label] = (await http_sampler(session, base_url), chosen)
        return await measure(samplers, samples, rounds)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=10_000_000, help="large DB (10,000,000)")
    parser.add_argument("--sims", type=int, default=10_000, help="SIMs in each DB (10,000)")
    parser.add_argument("--hot", type=int, default=1_000_000, help="entries of SIM 0 (1,000,000)")
    parser.add_argument("--small-entries", type=int, default=100_000, help="small DB (100,000)")
    parser.add_argument(
        "--small-hot", type=int, default=10_000, help="entries of SIM 0 in the small DB (10,000)"
    )
    parser.add_argument("--samples", type=int, default=500, help="samples per cell (500)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/harvest-bench"))
    parser.add_argument("--rebuild", action="store_true", help="build the databases again")
    parser.add_argument("--no-http", action="store_true", help="only the store-level figures")
    args = parser.parse_args()
    large_shape = Shape(args.entries, args.sims, args.hot)
    small_shape = Shape(args.small_entries, args.sims, args.small_hot)
    for shape in (large_shape, small_shape):
        if not (3 * PAGE <= shape.hot <= shape.entries and shape.sims >= 2):
            parser.error("each database needs >= 2 SIMs and 3,000 <= hot <= entries")
        if (shape.entries - shape.hot) < shape.sims - 1:
            parser.error("each database needs at least one entry per SIM")

    print(f"machine: {machine_note()}")
    small_dir, small_t0 = ensure(small_shape, args.cache_dir, args.rebuild)
    large_dir, large_t0 = ensure(large_shape, args.cache_dir, args.rebuild)
    small = f"{small_shape.entries:,} entries ({small_shape.hot:,} on the SIM)"
    large = f"{large_shape.entries:,} entries ({large_shape.hot:,} on the SIM)"
    dirs = {
        small: (small_dir, positions(small_shape.hot, small_t0)),
        large: (large_dir, positions(large_shape.hot, large_t0)),
    }

    started = time.perf_counter()
    timings = run_loop(store_benchmark(dirs, args.samples, args.rounds))
    report("SqliteStore.query_entries", timings, small, large)
    print(f"({time.perf_counter() - started:.0f} s)")

    if not args.no_http:
        started = time.perf_counter()
        servers = []
        try:
            for label, (data_dir, _) in dirs.items():
                log = args.cache_dir / f"emulator-{data_dir.name}.log"
                servers.append((label, start_server(label, emulator_args(data_dir), log)))
            urls = {label: (server.base_url, dirs[label][1]) for label, server in servers}
            timings = run_loop(http_benchmark(urls, args.samples, args.rounds))
        finally:
            for _, server in servers:
                server.stop()
        report("HTTP GET /v1/subscribers/{imsi}/data", timings, small, large)
        print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
