"""The SQLite store's schema, its version and the migrations from each older version: the one
place that says what the file holds (docs/storage.md)."""

from __future__ import annotations

from harvest.storage.sqlite_journal import JOURNAL_SCHEMA

SCHEMA_VERSION = 6

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS operators (operator_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS auth_keys (key_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (group_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sims (imsi TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    operator_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    time INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    content TEXT NOT NULL,
    category TEXT,
    PRIMARY KEY (operator_id, resource_type, resource_id, time)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_category
    ON entries (operator_id, category, time, resource_type, resource_id)
    WHERE category IS NOT NULL;
CREATE TABLE IF NOT EXISTS resources (
    operator_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    last_modified INTEGER NOT NULL,
    attribute_names TEXT NOT NULL,
    PRIMARY KEY (operator_id, resource_type, resource_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger (
    operator_id TEXT NOT NULL,
    day TEXT NOT NULL,
    imsi TEXT NOT NULL,
    kind TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (operator_id, day, imsi, kind)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_by_day ON ledger (day, kind);
CREATE TABLE IF NOT EXISTS files (
    operator_id TEXT NOT NULL,
    path TEXT NOT NULL,
    parent TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    blob TEXT,
    PRIMARY KEY (operator_id, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_parent ON files (operator_id, parent, path);
CREATE INDEX IF NOT EXISTS files_by_modified ON files (modified) WHERE blob IS NOT NULL;
"""
    + JOURNAL_SCHEMA
)

#: Upgrades from each older schema version to the next (run in order, in one transaction).
MIGRATIONS = {
    # 1 -> 2: per-SIM daily write counts become the usage ledger (writes, reads, Harvest days).
    1: """
INSERT INTO ledger SELECT operator_id, day, imsi, 'write', count FROM write_counts;
DROP TABLE write_counts;
""",
    # 2 -> 3: version 2 metered reads of resources that were not the operator's SIMs (a SIM id,
    # another operator's IMSI, any string in /subscribers/{imsi}/data); such rows made every
    # bill of the month fail. Reads are metered only for the operator's own SIMs since.
    2: """
DELETE FROM ledger WHERE kind IN ('read', 'read_bytes') AND NOT EXISTS (
    SELECT 1 FROM sims
    WHERE sims.imsi = ledger.imsi AND json_extract(sims.doc, '$.operator_id') = ledger.operator_id
);
""",
    # 3 -> 4: the append-only journal of device writes (its tables are in SCHEMA).
    3: "",
    # 4 -> 5: Harvest Files' metadata (harvest/files/index.py); SCHEMA creates its table.
    4: "",
    # 5 -> 6: a device write's usage rides on its journal rows (sqlite_journal._row_usage); the
    # journal's new columns are added by SqliteStore._prepare where the table lacks them (a
    # schema-3 file gets the new table from SCHEMA, so the change cannot be a fixed script).
    5: "",
}
