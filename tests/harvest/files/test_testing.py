"""The pytest plugin's Harvest Files helpers (issue 13, item 5): docs/testing.md's example, run
word for word in a user's suite, and the helpers' refusals in-process."""

from __future__ import annotations

import pytest

from harvest.testing import HarvestEmulator, HarvestEmulatorError
from tests.harvest.test_testing import _run, documented_example

pytest_plugins = ["pytester"]

FILES_EXAMPLE = documented_example("docs/testing.md", "test_a_device_uploads_and_fetches_files")


def test_the_documented_files_example_runs_in_a_users_suite(pytester: pytest.Pytester) -> None:
    _run(pytester, ("test_files_example", FILES_EXAMPLE)).assert_outcomes(passed=1)


def test_the_helpers_upload_as_any_sim_and_say_what_went_wrong(
    harvest_emulator: HarvestEmulator,
) -> None:
    files = harvest_emulator.files
    with pytest.raises(HarvestEmulatorError, match="400"):
        files.upload("/a.txt", "x")  # Files is not on yet
    files.enable(default_path="/by/:imsi")
    assert files.upload("/", b"default") == 201
    assert files.read(f"/by/{harvest_emulator.default_imsi}") == b"default"
    assert files.upload("/a.txt", "x") == 201
    assert files.upload("/a.txt", "y") == 200
    with pytest.raises(HarvestEmulatorError, match="404"):
        files.read("/missing.txt")
    with pytest.raises(HarvestEmulatorError, match="404"):
        files.download("/missing.txt")
    sim = harvest_emulator.create_sim(group_id=None)
    with pytest.raises(HarvestEmulatorError, match="no group"):
        files.enable(sim["imsi"])
    assert [e["filePath"] for e in files.list()] == ["/a.txt", "/by/"]
