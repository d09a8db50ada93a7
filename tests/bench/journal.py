"""The SQLite journal's own cost per device write: appending rows and folding them.

    python -m tests.bench.journal [--sims 400] [--rows 20000] [--batch 150] [--rounds 9]
                                  [--fold-rows 20000]

Two SQLite files with the store's schema (WAL, ``synchronous=FULL``, as ``serve`` has them), side
by side in one process, each fed the same rows: ``--rows`` writes of ``--sims`` SIMs in turn (a
fleet's interleaving), in transactions of ``--batch`` rows (a group commit), the journal folded
into entries, resources and ledger by the store's own fold every ``--fold-rows`` rows (setting
``journal_fold_rows``). They differ in the append only:

* the baseline appends a batch with ``executemany``: one statement step per row;
* the store (:func:`harvest.storage.sqlite_journal.append`) appends it in a few multi-row
  ``INSERT ... VALUES`` statements.

Rounds alternate between the two after one unmeasured warm-up round each, so the machine's
noise falls on both. Figures are the medians over rounds of the thread's CPU time
(``time.thread_time``: SQLite runs on the calling thread here) per row: the appends with their
commits, and the folds in the store's own transaction
(:func:`~harvest.storage.sqlite_writes.fold_on_writer_thread`). Both files grow through the run,
as a store's does.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harvest.storage import sqlite_journal
from harvest.storage.sqlite_schema import SCHEMA
from harvest.storage.sqlite_writes import WriterCaches, fold_on_writer_thread
from tests.bench._common import median

#: A 60-byte binary message as the ingest stores it (base64 in ``{"payload": ...}``).
CONTENT = '{"payload":"' + "AQEB" * 20 + '"}'
START_MS = 1_790_000_000_000

Append = Callable[[sqlite3.Connection, list[tuple[Any, ...]]], None]


def one_step_per_row(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    db.executemany(sqlite_journal.APPEND_ONE, rows)


def open_file(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.executescript(SCHEMA)
    return db


class Variant:
    """One file, its append, and its figures."""

    def __init__(self, name: str, path: Path, append: Append) -> None:
        self.name = name
        self.db = open_file(path)
        self.append = append
        self.sent = 0
        self.unfolded = 0
        self.append_us: list[float] = []
        self.fold_us: list[float] = []

    def round(self, sims: int, rows: int, batch: int, fold_rows: int, keep: bool) -> None:
        appending = folding = 0.0
        folded = 0
        for _ in range(0, rows, batch):
            chunk = []
            for _ in range(batch):
                self.sent += 1
                imsi = f"44010{self.sent % sims:010d}"
                at = START_MS + self.sent
                chunk.append(
                    ("OP0000000001", "Subscriber", imsi, at, "application/json", CONTENT, None,
                     at, None, "2026-09-21", "2026-09-21T12:00", 1)
                )  # fmt: skip
            started = time.thread_time()
            self.db.execute("BEGIN IMMEDIATE")
            self.append(self.db, chunk)
            self.db.execute("COMMIT")
            appending += time.thread_time() - started
            self.unfolded += len(chunk)
            if self.unfolded >= fold_rows:
                started = time.thread_time()
                folded += fold_on_writer_thread(self.db, WriterCaches())
                folding += time.thread_time() - started
                self.unfolded = 0
        if keep:
            self.append_us.append(appending / rows * 1e6)
            if folded:
                self.fold_us.append(folding / folded * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sims", type=int, default=400)
    parser.add_argument("--rows", type=int, default=20_000, help="rows per round")
    parser.add_argument("--batch", type=int, default=150, help="rows per transaction")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--fold-rows", type=int, default=20_000)
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
        f"SQLite {sqlite3.sqlite_version}; {args.sims} SIMs, {args.rows} rows a round in "
        f"transactions of {args.batch}, a fold every {args.fold_rows} rows"
    )
    with tempfile.TemporaryDirectory() as directory:
        variants = [
            Variant("baseline: executemany", Path(directory) / "a.sqlite3", one_step_per_row),
            Variant("store: multi-row", Path(directory) / "b.sqlite3", sqlite_journal.append),
        ]
        for number in range(args.rounds + 1):
            for variant in variants:
                variant.round(args.sims, args.rows, args.batch, args.fold_rows, keep=number > 0)
        print(f"{'CPU us per row, medians':24} {'append':>8} {'fold':>8} {'total':>8}")
        for variant in variants:
            append, fold = median(variant.append_us), median(variant.fold_us)
            print(f"{variant.name:24} {append:8.2f} {fold:8.2f} {append + fold:8.2f}")
        base, store = (median(v.append_us) for v in variants)
        print(f"append: the store's {store / base:.2f}x the baseline's CPU per row")
        for variant in variants:
            variant.db.close()


if __name__ == "__main__":
    main()
