"""docs/security.md's figures are the code's: each setting it quotes has that default, and
each fixed bound it quotes is the constant's value."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from harvest.errorlog import CAPACITY
from harvest.logcaps import MAX_REASON_CHARS, MAX_TRACKED_SOURCES
from harvest.server import RESERVED_FILES
from harvest.settings import Settings

DOC = " ".join((Path(__file__).resolve().parents[1] / "docs" / "security.md").read_text().split())
DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)}


def number(text: str) -> float:
    return float(text.replace(",", ""))


def test_every_quoted_setting_has_its_default() -> None:
    quoted = re.findall(r"`(\w+)` = ([\d,.]+)", DOC)  # "`tcp_max_connections` = 1024"
    quoted += [(n, v) for v, n in re.findall(r"\| ([\d.]+) s \| `(\w+)` \|", DOC)]  # timeouts
    quoted += re.findall(r"`(\w+)` \(([\d,.]+)(?: s)?[;)]", DOC)  # "`log_repeat_interval` (10 s)"
    assert len(quoted) >= 10
    for name, value in quoted:
        assert name in DEFAULTS, name
        assert number(value) == DEFAULTS[name], name
    assert f"`request_log_rate` lines a second ({DEFAULTS['request_log_rate']};" in DOC
    assert "`request_log_file_bytes` (64 MiB)" in DOC
    assert DEFAULTS["request_log_file_bytes"] == 64 * 1024 * 1024


def test_the_fixed_bounds_are_the_constants() -> None:
    assert f"sources tracked per kind | {MAX_TRACKED_SOURCES} (fixed)" in DOC
    assert f"one line, {MAX_REASON_CHARS} characters (fixed)" in DOC
    assert f"the last {CAPACITY:,} entries per operator" in DOC
    assert f"2 \N{MULTIPLICATION SIGN} `tcp_max_connections` + {RESERVED_FILES}" in DOC


def test_the_sections_others_fill_in_are_there() -> None:
    for heading in ("## Control-plane protection", "## What a SIGKILL can and cannot lose"):
        assert heading in DOC
