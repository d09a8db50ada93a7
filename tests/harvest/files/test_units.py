"""The pure parts of Harvest Files: paths and their limits, the default path, ``Range``; and a
database of schema version 3 upgraded to Harvest Files' table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harvest.files.domain import (
    FilePathError,
    ancestors,
    directory_path,
    expand_default_path,
    file_path,
    name_of,
    parent_of,
)
from harvest.files.index import SqliteFileIndex
from harvest.files.ranges import ByteRange, RangeNotSatisfiable, parse_range
from harvest.storage.sqlite import SCHEMA_VERSION, SqliteStore


@pytest.mark.parametrize(
    ("raw", "path"),
    [("a/b.txt", "/a/b.txt"), ("//a//b.txt/", "/a/b.txt"), ("/ä b", "/ä b")],
)
def test_file_paths_are_normalised_as_soracom_cli_sends_them(raw: str, path: str) -> None:
    assert file_path(raw) == path


@pytest.mark.parametrize("raw", ["", "/", "//", "/a/../b", "/./a", "/a\x00b", "/" + "x" * 1024])
def test_bad_file_paths_are_refused(raw: str) -> None:
    with pytest.raises(FilePathError):
        file_path(raw)


def test_directories_parents_names_and_ancestors() -> None:
    assert directory_path("") == directory_path("/") == "/"
    assert directory_path("a//b") == "/a/b/"
    assert (parent_of("/a/b/c.txt"), name_of("/a/b/c.txt")) == ("/a/b/", "c.txt")
    assert (parent_of("/a/b/"), name_of("/a/b/")) == ("/a/", "b/")
    assert ancestors("/a/b/c.txt") == ["/a/", "/a/b/"]
    assert ancestors("/c.txt") == []


def test_the_default_path_is_expanded_or_refused() -> None:
    assert expand_default_path("/l/:imsi/:time/", "001", 5) == "/l/001/5"
    assert expand_default_path("l/:imsi", "001", 5) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", ByteRange(0, 0, 10)),
        ("bytes=5-", ByteRange(5, 9, 10)),
        ("bytes=-3", ByteRange(7, 9, 10)),
        ("bytes=-30", ByteRange(0, 9, 10)),
        ("bytes=8-100", ByteRange(8, 9, 10)),
        ("bytes=5-2", None),
        ("bytes=a-b", None),
        ("bytes=1-2,4-5", None),
        ("lines=1-2", None),
        ("bytes", None),
    ],
)
def test_ranges(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 10) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=-1", 0)])
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


async def test_a_schema_4_database_gets_the_files_table(tmp_path: Path) -> None:
    database = tmp_path / "harvest.sqlite3"
    store = SqliteStore(database)
    await store.open()
    await store.close()
    with sqlite3.connect(database) as db:  # as an emulator of schema 4 left it
        db.execute("DROP TABLE files")
        db.execute("PRAGMA user_version = 4")
    store = SqliteStore(database)
    await store.open()
    index = SqliteFileIndex(database)
    await index.open()
    try:
        assert await index.children("OP1", "/", 10, None) == []
    finally:
        await index.close()
        await store.close()
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
