"""``harvest-emulator files put|get|list`` (docs/files.md, docs/simulated-devices.md), tested as
``device send`` is: a real emulator subprocess, real sockets from the SIM's session address,
the command run in a subprocess as a user's terminal runs it (``as_user``, or ``run_bytes`` when
stdin or stdout carry a file) or in this process (``in_process``)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harvest.test_simulator import (
    ROOT,
    UNUSED_ADDRESS,
    Server,
    api_headers,
    as_user,
    free_port,
    http,
    in_process,
    new_group,
    new_sim,
    raw_ports,
    serve,
)
from tests.support import openapi

pytestmark = pytest.mark.timeout(90)

DEFAULT_PATH = "/dev/:imsi/:time.bin"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("files-cli")) as process:
        ports = raw_ports(process)
        yield Server(process.base_url, ports["harvest"], ports["unified"])


@pytest.fixture(scope="module")
def files_group(server: Server) -> str:
    files = {"enabled": True, "defaultPath": DEFAULT_PATH}
    return new_group(server, {"SoracomHarvestFiles": files})


def endpoint(server: Server) -> list[str]:
    return ["--endpoint", server.base_url]


def run_bytes(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> tuple[int, bytes, str]:
    """``harvest-emulator ARGS`` in a subprocess with bytes on stdin and stdout."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HARVEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "harvest", *args],
        input=stdin,
        capture_output=True,
        timeout=45,
        cwd=ROOT,
        env={**environment, **(env or {})},
    )
    return done.returncode, done.stdout, done.stderr.decode()


def firmware(size: int) -> bytes:
    return b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size // 32 + 1))[
        :size
    ]


def file_stats(server: Server, imsi: str) -> dict[str, Any]:
    """The SIM's Harvest Files counts today (``getHarvestStats``): who the emulator saw."""
    _, clock = http("GET", server.base_url + "/_emulator/clock")
    now = int(clock["now"]) // 1000
    status, buckets = http(
        "GET",
        f"{server.base_url}/v1/stats/harvest/subscribers/{imsi}?period=day&from={now}&to={now}",
        headers=api_headers(server),
    )
    assert status == 200, buckets
    return {k: v["count"] for b in buckets for k, v in b["harvestStatsMap"].items()}


def test_put_and_get_as_a_sim_whole_and_by_range(
    server: Server, files_group: str, tmp_path: Path
) -> None:
    sim = new_sim(server, groupId=files_group)
    image = tmp_path / "fw.bin"
    body = firmware(300_000)
    image.write_bytes(body)
    as_sim = ["--imsi", sim["imsi"], *endpoint(server)]
    created = as_user("files", "put", str(image), "/ota/fw.bin", *as_sim)
    assert (created.returncode, created.stdout.strip()) == (0, "201 Created"), created.stderr
    replaced = in_process("files", "put", str(image), "/ota/fw.bin", *as_sim)
    assert (replaced.returncode, replaced.stdout.strip()) == (0, "200 OK"), replaced.stderr

    code, out, err = run_bytes("files", "get", "/ota/fw.bin", *as_sim)
    assert (code, out) == (0, body), err
    copy = tmp_path / "copy.bin"
    whole = in_process("files", "get", "/ota/fw.bin", "-o", str(copy), *as_sim)
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout.strip() == f"200 OK: {len(body)} bytes to {copy}"
    assert copy.read_bytes() == body

    # firmware-style pieces: 206 with the range asked for
    for asked, expected in (("0-1023", body[:1024]), ("bytes=299990-", body[299_990:])):
        code, out, err = run_bytes("files", "get", "/ota/fw.bin", "--range", asked, *as_sim)
        assert (code, out) == (0, expected), err
    part = tmp_path / "tail.bin"
    tail = in_process("files", "get", "/ota/fw.bin", "--range=-10", "-o", str(part), *as_sim)
    assert tail.returncode == 0, tail.stderr
    assert "206 Partial Content: 10 bytes (bytes 299990-299999/300000)" in tail.stdout
    assert part.read_bytes() == body[-10:]
    # the SIM made them: its stats count 2 uploads and 5 downloads
    assert file_stats(server, sim["imsi"]) == {"fileUpload": 2, "fileDownload": 5}


def test_put_from_stdin_to_the_groups_default_path_and_list_it(
    server: Server, files_group: str
) -> None:
    sim = new_sim(server, groupId=files_group)
    code, out, err = run_bytes(
        "files", "put", "-", "--source", sim["sessionAddress"], *endpoint(server),
        stdin=b"boot log\n" * 1000,
    )  # fmt: skip
    assert (code, out.decode().strip()) == (0, "201 Created"), err
    listed = as_user("files", "list", f"/dev/{sim['imsi']}", *endpoint(server))
    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    size, modified, path = line.split()
    assert size == "9000"
    assert time.strptime(modified, "%Y-%m-%dT%H:%M:%SZ")
    assert path.startswith(f"/dev/{sim['imsi']}/")
    assert path.endswith(".bin")
    got = run_bytes("files", "get", path, "--imsi", sim["imsi"], *endpoint(server))
    assert got[:2] == (0, b"boot log\n" * 1000)


def test_list_pages_through_a_directory_and_prints_soracoms_entries(server: Server) -> None:
    headers = {**api_headers(server), "Content-Type": "text/plain"}
    for n in range(103):  # more than one page of the command's 100
        status, _ = http(
            "PUT", f"{server.base_url}/v1/files/private/many/f{n:03d}.txt", f"{n}", headers
        )
        assert status == 201
    listed = in_process("files", "list", "/many/", *endpoint(server))
    assert listed.returncode == 0, listed.stderr
    paths = [line.split()[-1] for line in listed.stdout.splitlines()]
    assert paths == [f"/many/f{n:03d}.txt" for n in range(103)]
    root = as_user("files", "list", "--json", *endpoint(server))
    assert root.returncode == 0, root.stderr
    entries = json.loads(root.stdout)
    for entry in entries:
        openapi.validate_schema("FileEntry", entry)
    assert any(e["filePath"] == "/many/" and e["isDirectory"] for e in entries)
    root_lines = in_process("files", "list", "/", *endpoint(server)).stdout.splitlines()
    assert any(line.split()[::2] == ["-", "/many/"] for line in root_lines)


def test_refusals_exit_1_with_the_reply(server: Server, files_group: str, tmp_path: Path) -> None:
    local = tmp_path / "a.txt"
    local.write_text("a")
    plain = new_sim(server)  # the default group: Harvest Files off
    put = ["files", "put", str(local), "/a.txt"]
    off = in_process(*put, "--imsi", plain["imsi"], *endpoint(server))
    assert off.returncode == 1
    assert off.stdout.startswith("400 Bad Request")
    assert "HEM4015" in off.stdout
    nobody = as_user(*put, "--source", UNUSED_ADDRESS, *endpoint(server))
    assert nobody.returncode == 1
    assert nobody.stdout.startswith("403")

    sim = new_sim(server, groupId=files_group)
    output = tmp_path / "missing.bin"
    missing = in_process(
        "files", "get", "/no/such.bin", "-o", str(output), "--imsi", sim["imsi"], *endpoint(server)
    )
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr.startswith("404 Not Found")
    assert "HEM4017" in missing.stderr
    assert not output.exists()
    assert list(tmp_path.iterdir()) == [local]
    as_sim = ["--imsi", sim["imsi"], *endpoint(server)]
    assert in_process("files", "put", str(local), "/r.txt", *as_sim).returncode == 0
    past = in_process("files", "get", "/r.txt", "--range", "5-", "-o", str(output), *as_sim)
    assert past.returncode == 1
    assert past.stderr.startswith("416")
    assert not output.exists()

    no_dir = in_process("files", "list", "/nowhere/", *endpoint(server))
    assert no_dir.returncode == 1
    assert "No such directory: /nowhere/" in no_dir.stderr


def test_list_logs_in_with_the_given_or_the_environments_auth_key(server: Server) -> None:
    wrong = in_process("files", "list", "--auth-key", "wrong", *endpoint(server))
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("harvest-emulator: error: the SORACOM API")
    assert "--auth-key-id and --auth-key" in wrong.stderr  # it says how
    env = {"HARVEST_AUTH_KEY_ID": "keyId-harvest-emulator", "HARVEST_AUTH_KEY": "nope"}
    code, _, err = run_bytes("files", "list", *endpoint(server), env=env)
    assert code == 1
    assert "HARVEST_AUTH_KEY" in err
    env["HARVEST_AUTH_KEY"] = "secret-harvest-emulator"
    assert run_bytes("files", "list", *endpoint(server), env=env)[0] == 0


@pytest.mark.parametrize(
    "command", [["put", "README.md", "/x"], ["get", "/x"], ["list"]], ids=["put", "get", "list"]
)
def test_no_emulator_is_a_one_line_error_and_exit_2(command: list[str]) -> None:
    result = as_user("files", *command, "--endpoint", f"http://127.0.0.1:{free_port()}")
    assert (result.returncode, result.stdout) == (2, "")
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("harvest-emulator: error: cannot reach")
    assert "refused" in line.lower()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    bad_range = in_process("files", "get", "/x", "--range", "9-2")
    assert bad_range.returncode == 2
    assert "not a byte range" in bad_range.stderr
    unreadable = in_process("files", "put", str(tmp_path / "none.bin"), "/x")
    assert unreadable.returncode == 2
    assert unreadable.stderr.strip() == (
        f"harvest-emulator: error: cannot read {tmp_path / 'none.bin'}: No such file or directory"
    )
    assert in_process("files").returncode == 2  # a command is required
    helped = as_user("files", "put", "--help")
    assert helped.returncode == 0
    assert "only when the endpoint is on loopback" in " ".join(helped.stdout.split())


def test_without_imsi_or_source_the_emulator_sees_the_default_sim(server: Server) -> None:
    """Without --imsi or --source nothing is bound: the emulator sees 127.0.0.1, the default
    SIM, whose group has Files off."""
    result = as_user("files", "get", "/x", *endpoint(server))
    assert result.returncode == 1
    assert "HEM4015" in result.stderr
