"""The device fuzzer in the suite: a bounded, seeded run (issue 9, item 4). The long run is
``python -m tests.fuzz.device --count 1000000`` (docs/fuzzing.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fuzz.device import SERVE_ARGS, fuzz, target_of
from tests.support.process import running

pytestmark = pytest.mark.timeout(180)

INPUTS = 1500


@pytest.mark.parametrize("seed", [11, 12])
async def test_random_device_inputs_get_no_5xx_no_traceback_and_lose_nothing(
    tmp_path: Path, seed: int
) -> None:
    with running([*SERVE_ARGS, "--data-dir", str(tmp_path)]) as process:
        report = await fuzz(target_of(process), INPUTS, seed)
        await asyncio.sleep(0.3)  # the last log lines through the pipe
        assert process.errors == [], process.errors
        assert process.popen.poll() is None  # still running
    assert report.failures == []
    assert report.inputs >= INPUTS
    summary = report.summary()
    assert summary["stored"] > 0  # both kinds were exercised
    assert summary["no_reply"] > 0
    assert {"http 400", "http 413", "udp 403"} <= set(report.statuses), report.statuses
