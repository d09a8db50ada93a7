"""The ``harvest-emulator`` command as a user runs it (issue 2, items 1, 2 and 11)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.support.process import running

pytestmark = pytest.mark.timeout(60)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harvest", *args], capture_output=True, text=True, timeout=30
    )


def test_help_lists_every_setting() -> None:
    result = cli("serve", "--help")
    assert result.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--harvest-port",
        "--unified-port",
        "--data-dir",
        "--memory",
        "--config",
        "--max-payload-bytes",
        "--control-token",
    ):
        assert flag in result.stdout


def test_a_bad_setting_stops_the_start_with_a_clear_message() -> None:
    result = cli("serve", "--port", "99999")
    assert result.returncode == 2
    assert "port must be a port from 0 to 65535" in result.stderr


def test_an_unusable_database_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "harvest.sqlite3").write_bytes(b"garbage" * 1000)
    result = cli("serve", "--port", "0", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "not a usable SQLite database" in result.stderr


async def test_banner_shows_real_addresses_credentials_and_the_default_sim(tmp_path: Path) -> None:
    with running(["--port", "0", "--data-dir", str(tmp_path / "d")]) as process:
        text = "\n".join(process.banner)
        assert ":0" not in process.base_url  # the port actually bound, not 0
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                process.base_url + "/",
                data='{"temp":21.5}',
                headers={"Content-Type": "application/json"},
            ) as reply,
        ):
            assert reply.status == 201
    # the whole banner is read before the emulator is handed over
    for expected in (
        "OP0000000000",
        "keyId-harvest-emulator",
        "secret-harvest-emulator",
        "emulator@example.com",
        "001010000000001",
        "127.0.0.1",
        f"web console      {process.base_url}/console/",
    ):
        assert expected in text


async def test_memory_mode_writes_nothing_to_disk(tmp_path: Path) -> None:
    # the data dir is named, so a store that wrote anyway would leave a file there
    args = ["--port", "0", "--memory", "--data-dir", str(tmp_path / "unused")]
    with running(args) as process:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                process.base_url + "/", data="hi", headers={"Content-Type": "text/plain"}
            ) as reply,
        ):
            assert reply.status == 201
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 - the server has stopped


async def test_settings_come_from_the_environment_too(tmp_path: Path) -> None:
    env = {"HARVEST_DATA_DIR": str(tmp_path / "env-dir"), "HARVEST_PORT": "0"}
    with running([], env=env) as process:
        async with (
            aiohttp.ClientSession() as session,
            session.get(process.base_url + "/_emulator/health") as reply,
        ):
            assert reply.status == 200
    assert (tmp_path / "env-dir" / "harvest.sqlite3").exists()
