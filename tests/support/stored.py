"""What a running emulator's SQLite file holds, read with plain ``sqlite3``: the tables plus
the journal of writes not folded yet (docs/storage.md, "The journal")."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def entry_count(path: Path) -> int:
    """Entries in the file: folded ones and journalled ones (a journalled write never replaces
    a stored entry, so the two never overlap)."""
    with sqlite3.connect(path) as db:
        (count,) = db.execute(
            "SELECT (SELECT count(*) FROM entries) + (SELECT count(*) FROM journal)"
        ).fetchone()
    return int(count)


def ledger_rows(path: Path, kind: str) -> list[tuple[str, str, str, int]]:
    """``(operator, day, imsi, count)`` of one kind, the journal's usage added in."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT operator_id, day, imsi, sum(count) FROM ("
            " SELECT operator_id, day, imsi, count FROM ledger WHERE kind = ?"
            " UNION ALL SELECT operator_id, day, imsi, count FROM journal_usage WHERE kind = ?"
            ") GROUP BY operator_id, day, imsi ORDER BY operator_id, day, imsi",
            (kind, kind),
        ).fetchall()
    return [(op, day, imsi, int(count)) for op, day, imsi, count in rows]
