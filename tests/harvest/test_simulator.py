"""The device simulator: ``harvest-emulator device send`` and ``harvest-emulator fleet``.

Every test talks to a real emulator subprocess over real sockets. ``as_user`` runs the command
in a subprocess, as a user's terminal would; ``in_process`` runs the same parser and ``run`` in
the test's process (faster, and measured by coverage).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harvest import cli, simulator
from harvest.simulator import FleetConfig, Target, payload, run_fleet
from harvest.simulator.processes import shares
from tests.support.process import Process, running

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_IMSI = "001010000000001"
UNUSED_ADDRESS = "127.250.250.250"

_RAW_LINE = re.compile(r"^\s*(Harvest|Unified) TCP/UDP\s+tcp://\S+:(\d+)\s+udp://\S+:(\d+)")
# No proxy, whatever the environment says: everything here is on loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Server:
    base_url: str
    harvest_port: int
    unified_port: int

    def flags(self) -> list[str]:
        return [
            "--endpoint",
            self.base_url,
            "--harvest-port",
            str(self.harvest_port),
            "--unified-port",
            str(self.unified_port),
        ]


def raw_ports(process: Process) -> dict[str, int]:
    """The raw ports from the banner, whose lines follow the HTTP edge line ``running`` waits
    for (the banner is printed at once, so they are there)."""
    assert process.popen.stdout is not None
    ports: dict[str, int] = {}
    lines = iter(list(process.banner))
    while len(ports) < 2:
        line = next(lines, None)
        if line is None:
            line = process.popen.stdout.readline()
            assert line, "the banner has no raw TCP/UDP lines:\n" + "\n".join(process.banner)
            process.banner.append(line.rstrip("\n"))
        found = _RAW_LINE.match(line)
        if found:
            assert found.group(2) == found.group(3)  # TCP and UDP share the port
            ports[found.group(1).lower()] = int(found.group(2))
    return ports


def serve(data_dir: Path, *extra: str) -> AbstractContextManager[Process]:
    return running(
        [
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--harvest-port",
            "0",
            "--unified-port",
            "0",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # A suspended SIM answered 403 (not the network's silence), so the fleet can count it.
    with serve(tmp_path_factory.mktemp("simulator"), "--sessionless-sims", "refuse") as process:
        ports = raw_ports(process)
        yield Server(process.base_url, ports["harvest"], ports["unified"])


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def as_user(*args: str) -> Result:
    """``harvest-emulator ARGS`` in a subprocess, as a user's terminal runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "harvest", *args],
        capture_output=True,
        text=True,
        timeout=45,
        cwd=ROOT,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def in_process(*args: str) -> Result:
    """The same command line run in this process, through ``harvest.cli.main``."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exit_:  # argparse: --help and usage errors
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue())


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with _OPENER.open(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None


def new_sim(server: Server, **fields: Any) -> dict[str, Any]:
    status, sim = http("POST", server.base_url + "/_emulator/sims", fields)
    assert status == 201, sim
    return dict(sim)


def writes_today(server: Server, imsi: str) -> int:
    status, sim = http("GET", f"{server.base_url}/_emulator/sims/{imsi}")
    assert status == 200, sim
    return int(sim["writesToday"])


def api_headers(server: Server) -> dict[str, str]:
    """Logged in to the SORACOM API as the default operator."""
    status, login = http(
        "POST",
        server.base_url + "/v1/auth",
        {"authKeyId": "keyId-harvest-emulator", "authKey": "secret-harvest-emulator"},
    )
    assert status == 200, login
    return {"X-Soracom-API-Key": login["apiKey"], "X-Soracom-Token": login["token"]}


def entries(server: Server, imsi: str) -> list[dict[str, Any]]:
    """The SIM's entries, oldest first, through the SORACOM API."""
    status, data = http(
        "GET",
        f"{server.base_url}/v1/subscribers/{imsi}/data?sort=asc&limit=100",
        headers=api_headers(server),
    )
    assert status == 200, data
    return list(data)


def new_group(server: Server, configuration: dict[str, Any]) -> str:
    status, group = http(
        "POST",
        server.base_url + "/v1/groups",
        {"tags": {"name": "simulator"}, "configuration": configuration},
        headers=api_headers(server),
    )
    assert status == 201, group
    return str(group["groupId"])


def binary(raw: bytes) -> str:
    return json.dumps({"payload": base64.b64encode(raw).decode()}, separators=(",", ":"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fleet_json(result: Result) -> dict[str, Any]:
    summary = json.loads(result.stdout)
    assert isinstance(summary, dict), result.stdout
    # the numbers add up: every message sent was stored or refused for one reason
    assert summary["sent"] == summary["stored"] + sum(summary["refused"].values())
    assert summary["refused_total"] == sum(summary["refused"].values())
    return summary


# --- device send ----------------------------------------------------------------------------------
MESSAGES = [
    ("--text", "hello", b"hello"),
    ("--json", '{"t":1}', b'{"t":1}'),
    ("--hex", "ca fe", b"\xca\xfe"),
]


def test_device_send_over_http_stores_text_json_and_hex(server: Server) -> None:
    sim = new_sim(server)
    for option, value, _ in MESSAGES:  # --imsi: the session address comes from the control plane
        result = as_user("device", "send", *server.flags(), "--imsi", sim["imsi"], option, value)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "201 Created"
    stored = entries(server, sim["imsi"])
    assert [(e["contentType"], e["content"]) for e in stored] == [
        ("text/plain", "hello"),
        ("application/json", '{"t":1}'),
        ("application/json", binary(b"\xca\xfe")),  # octet-stream is stored as binary
    ]
    assert writes_today(server, sim["imsi"]) == 3


@pytest.mark.parametrize(
    ("protocol", "extra"),
    [("tcp", []), ("udp", []), ("tcp", ["--unified"]), ("udp", ["--unified"])],
)
def test_device_send_over_raw_tcp_and_udp(server: Server, protocol: str, extra: list[str]) -> None:
    sim = new_sim(server)
    for i, (option, value, _) in enumerate(MESSAGES):
        # both ways of choosing the SIM: --source binds the address, --imsi looks it up
        chosen = ["--source", sim["sessionAddress"]] if i % 2 else ["--imsi", sim["imsi"]]
        result = in_process(
            "device",
            "send",
            *server.flags(),
            "--protocol",
            protocol,
            *extra,
            *chosen,
            option,
            value,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "201"  # the raw reply, as the device gets it
    # anything over TCP or UDP is binary (spec A1)
    assert [e["content"] for e in entries(server, sim["imsi"])] == [
        binary(raw) for _, _, raw in MESSAGES
    ]
    assert writes_today(server, sim["imsi"]) == 3


def test_without_imsi_or_source_the_emulator_sees_the_real_address(server: Server) -> None:
    before = writes_today(server, DEFAULT_IMSI)
    result = as_user("device", "send", *server.flags(), "--text", "from 127.0.0.1")
    assert result.returncode == 0, result.stderr
    assert writes_today(server, DEFAULT_IMSI) == before + 1  # 127.0.0.1 is the default SIM


def test_http_timestamp_and_content_type(server: Server) -> None:
    sim = new_sim(server)
    _, clock = http("GET", server.base_url + "/_emulator/clock")
    when = int(clock["now"]) - 60_000
    result = in_process(
        "device",
        "send",
        *server.flags(),
        "--imsi",
        sim["imsi"],
        "--text",
        "a=1&b=2",
        "--content-type",
        "application/x-www-form-urlencoded",
        "--timestamp",
        str(when),
    )
    assert result.returncode == 0, result.stderr
    [entry] = entries(server, sim["imsi"])
    assert entry["time"] == when
    assert (entry["contentType"], entry["content"]) == (
        "application/x-www-form-urlencoded",
        "a=1&b=2",
    )


@pytest.mark.parametrize("protocol", ["http", "tcp", "udp"])
def test_an_address_with_no_sim_prints_403_and_exits_1(server: Server, protocol: str) -> None:
    chosen = f"--protocol {protocol} --source {UNUSED_ADDRESS} --text who-am-I"
    result = as_user("device", "send", *server.flags(), *chosen.split())
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("403")
    if protocol == "http":  # the error body is shown too
        assert "HEM4003" in result.stdout
        assert UNUSED_ADDRESS in result.stdout


def test_a_refusal_by_the_sims_group_prints_400(server: Server) -> None:
    sim = new_sim(server, groupId=None)
    result = in_process("device", "send", *server.flags(), "--imsi", sim["imsi"], "--json", "{}")
    assert result.returncode == 1
    assert result.stdout.startswith("400 Bad Request")


@pytest.mark.parametrize("protocol", ["http", "tcp", "udp"])
def test_no_emulator_is_a_one_line_error_and_exit_2(protocol: str) -> None:
    port = str(free_port())
    where = f"--endpoint http://127.0.0.1:{port} --harvest-port {port} --protocol {protocol}"
    result = as_user("device", "send", *where.split(), "--text", "anyone?")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("harvest-emulator: error: cannot send to")
    assert "refused" in lines[0].lower()


def test_an_unknown_imsi_is_an_error(server: Server) -> None:
    result = in_process(
        "device", "send", *server.flags(), "--imsi", "001010999999999", "--text", "x"
    )
    assert result.returncode == 1
    assert "no SIM with IMSI 001010999999999" in result.stderr


def test_usage_errors_exit_2() -> None:
    no_body = in_process("device", "send")
    assert no_body.returncode == 2
    assert "one of the arguments --text --json --hex is required" in no_body.stderr
    bad_hex = in_process("device", "send", "--hex", "xyz")
    assert bad_hex.returncode == 2
    assert "not hex bytes" in bad_hex.stderr
    raw_timestamp = in_process(
        "device", "send", "--protocol", "udp", "--text", "x", "--timestamp", "1"
    )
    assert raw_timestamp.returncode == 2
    assert "--timestamp is for --protocol http only" in raw_timestamp.stderr


def test_help_explains_binding_against_a_remote_emulator() -> None:
    for command in (["device", "send"], ["fleet"]):
        result = as_user(*command, "--help")
        assert result.returncode == 0
        text = " ".join(result.stdout.split())
        assert "only when the endpoint is on loopback" in text
        for flag in ("--endpoint", "--protocol", "--harvest-port", "--unified", "--control-token"):
            assert flag in text


# --- fleet ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("protocol", "base"),
    [("http", "001019100000000"), ("tcp", "001019200000000"), ("udp", "001019300000000")],
)
def test_a_fleet_of_5_sims_sends_20_messages_each(server: Server, protocol: str, base: str) -> None:
    options = f"--protocol {protocol} --sims 5 --count 20 --rate 0 --imsi-base {base} --json"
    result = in_process("fleet", *server.flags(), *options.split())
    assert result.returncode == 0, result.stdout + result.stderr
    summary = fleet_json(result)
    assert (summary["sent"], summary["stored"], summary["refused"]) == (100, 100, {})
    assert summary["replied"] == 100
    assert summary["sims"] == 5
    assert summary["protocol"] == protocol
    latency = summary["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert summary["rate"] > 0
    assert summary["elapsed_s"] > 0
    # each SIM was created with its own address, and wrote its own 20
    imsis = [f"{int(base) + i:015d}" for i in range(5)]
    assert [writes_today(server, imsi) for imsi in imsis] == [20] * 5


def test_a_fleet_over_three_generator_processes_merges_their_counts(server: Server) -> None:
    """``--processes`` (issue 11, item 5): the SIMs split 3/3/2 over three processes, each
    sending its SIMs' messages; one summary, latency over every message."""
    base = "001019500000000"
    options = f"--protocol udp --sims 8 --count 25 --rate 0 --imsi-base {base} --json"
    result = as_user("fleet", *server.flags(), *options.split(), "--processes", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = fleet_json(result)
    assert (summary["sims"], summary["sent"], summary["stored"]) == (8, 200, 200)
    assert summary["replied"] == 200
    assert "3 generator processes" in summary["notes"]
    latency = summary["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    imsis = [f"{int(base) + i:015d}" for i in range(8)]
    assert [writes_today(server, imsi) for imsi in imsis] == [25] * 8


def test_shares_of_a_fleet() -> None:
    assert shares(8, 3) == [3, 3, 2]
    assert shares(2, 4) == [1, 1]  # no process without a SIM
    assert sum(shares(100_000, 7)) == 100_000


def test_a_fleet_reuses_existing_sims_and_counts_refusals_by_reason(server: Server) -> None:
    base = 1019400000000
    new_sim(server, imsi=f"{base:015d}", groupId=None)  # 400: no group
    new_sim(server, imsi=f"{base + 1:015d}", status="suspended")  # 403
    # the third does not exist yet: the fleet creates it
    options = f"--protocol udp --sims 3 --count 10 --rate 0 --imsi-base {base:015d} --json"
    result = in_process("fleet", *server.flags(), *options.split())
    assert result.returncode == 1, result.stderr  # not everything was stored
    summary = fleet_json(result)
    assert summary["sent"] == 30
    assert summary["stored"] == 10
    assert summary["refused"] == {"400": 10, "403": 10}
    assert writes_today(server, f"{base + 2:015d}") == 10

    # the text summary says the same, by reason
    options = f"--protocol http --sims 3 --count 4 --rate 0 --imsi-base {base:015d}"
    again = as_user("fleet", *server.flags(), *options.split())
    assert again.returncode == 1
    lines = [line.split() for line in again.stdout.splitlines()]
    assert lines[1][:2] == ["sent", "12"]
    assert lines[2][:3] == ["stored", "4", "(201)"]
    assert lines[3] == ["refused", "8"]
    assert ["400", "4"] in lines
    assert ["403", "4"] in lines
    assert lines[-1][:3] == ["latency", "ms", "p50"]


def test_a_fleet_at_a_rate_for_a_duration(server: Server) -> None:
    options = "--protocol tcp --unified --sims 4 --rate 10 --duration 1.5 --json"
    result = in_process(
        "fleet", *server.flags(), *options.split(), "--imsi-base", "001019500000000"
    )
    assert result.returncode == 0, result.stderr
    summary = fleet_json(result)
    # 4 SIMs x 10/s x 1.5 s, paced (not as fast as possible)
    assert 48 <= summary["sent"] <= 64, summary
    assert summary["stored"] == summary["sent"]
    assert summary["target"].endswith(f":{server.unified_port}")


def test_an_oversized_payload_is_refused_413_and_tcp_reconnects(server: Server) -> None:
    options = "--protocol tcp --sims 2 --count 5 --rate 0 --size 2000 --json"
    result = in_process(
        "fleet", *server.flags(), *options.split(), "--imsi-base", "001019600000000"
    )
    summary = fleet_json(result)
    assert summary["refused"] == {"413": 10}  # each message gets its own reply, none is lost


UNIFIED_FORMAT = {"UnifiedEndpoint": {"response": {"format": "Unified"}}}


@pytest.mark.parametrize(
    ("protocol", "base"),
    [("http", 1019830000000), ("tcp", 1019840000000), ("udp", 1019850000000)],
)
def test_the_unified_endpoint_in_the_unified_format(
    server: Server, protocol: str, base: int
) -> None:
    """Replies in the Unified format are judged by Harvest's status inside them."""
    harvest_on = new_group(server, {"SoracomHarvest": {"enabled": True}, **UNIFIED_FORMAT})
    harvest_off = new_group(server, {"SoracomHarvest": {"enabled": False}, **UNIFIED_FORMAT})
    sims = [
        new_sim(server, imsi=f"{base:015d}", groupId=harvest_on),
        new_sim(server, imsi=f"{base + 1:015d}", groupId=harvest_on),
        new_sim(server, imsi=f"{base + 2:015d}", groupId=harvest_off),
    ]
    chosen = ["--protocol", protocol, "--unified", "--imsi", sims[0]["imsi"], "--text", "uni"]
    sent = in_process("device", "send", *server.flags(), *chosen)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    reply = json.loads(sent.stdout.split("\n", 1)[1] if protocol == "http" else sent.stdout)
    assert simulator.unified_status(reply) == 201
    assert writes_today(server, sims[0]["imsi"]) == 1

    options = f"--protocol {protocol} --unified --sims 3 --count 5 --rate 0 --json"
    result = in_process("fleet", *server.flags(), *options.split(), "--imsi-base", f"{base:015d}")
    summary = fleet_json(result)
    assert (summary["sent"], summary["stored"], summary["refused"]) == (15, 10, {"400": 5})
    assert writes_today(server, sims[1]["imsi"]) == 5


def test_a_fleet_with_no_emulator_exits_2() -> None:
    port = str(free_port())
    result = as_user("fleet", "--endpoint", f"http://127.0.0.1:{port}", "--count", "1")
    assert result.returncode == 2
    assert "cannot reach the control plane" in result.stderr


def test_a_fleet_whose_raw_port_is_closed_reports_connect_failures(server: Server) -> None:
    options = "--protocol tcp --sims 2 --count 2 --rate 0 --imsi-base 001019700000000 --json"
    closed = ["--endpoint", server.base_url, "--harvest-port", str(free_port())]
    result = in_process("fleet", *closed, *options.split())
    assert result.returncode == 2  # nothing got a reply
    summary = fleet_json(result)
    assert summary["refused"] == {"connect failed": 4}
    assert summary["latency_ms"] is None
    assert any("Connection refused" in note for note in summary["notes"])


def test_a_token_protected_control_plane(tmp_path: Path) -> None:
    with serve(tmp_path, "--control-token", "s3cret") as process:
        ports = raw_ports(process)
        target = Server(process.base_url, ports["harvest"], ports["unified"])
        common = [*target.flags(), "--sims", "2", "--count", "3", "--rate", "0", "--json"]
        refused = in_process("fleet", *common)
        assert refused.returncode == 1
        assert "--control-token" in refused.stderr
        result = as_user("fleet", *common, "--control-token", "s3cret")
        assert result.returncode == 0, result.stderr
        assert fleet_json(result)["stored"] == 6


async def test_run_fleet_is_a_coroutine_for_benchmarks(server: Server) -> None:
    progress = io.StringIO()
    config = FleetConfig(
        endpoint=server.base_url,
        harvest_port=server.harvest_port,
        unified_port=server.unified_port,
        protocol="udp",
        sims=3,
        count=7,
        rate=0,
        size=100,
        imsi_base="001019800000000",
    )
    summary = await run_fleet(config, progress=progress)
    assert (summary.sent, summary.stored, summary.refused) == (21, 21, {})
    assert summary.exit_code() == 0
    assert summary.latency_ms is not None
    assert summary.latency_ms.max >= summary.latency_ms.p50 > 0
    assert json.loads(summary.to_json())["stored"] == 21
    assert "stored" in summary.text()
    assert progress.getvalue() == ""  # not a terminal, and shorter than one report period


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_on_a_terminal_the_progress_line_is_rewritten_in_place(server: Server) -> None:
    terminal = Terminal()
    config = FleetConfig(
        endpoint=server.base_url,
        harvest_port=server.harvest_port,
        unified_port=server.unified_port,
        # tcp: nothing is lost on a busy machine (a UDP datagram may be), which this test,
        # about the progress line, must not depend on
        protocol="tcp",
        sims=3,
        rate=20,
        duration=1.2,
        imsi_base="001019810000000",
        timeout=30,  # a starved machine may answer slowly; a loss would still show
    )
    summary = await run_fleet(config, progress=terminal)
    assert summary.exit_code() == 0
    assert 10 <= summary.sent <= 75, summary  # at most 3 SIMs x 20/s x 1.2 s (+ the first)
    assert summary.stored == summary.sent
    shown = terminal.getvalue()
    assert shown.count("\r") >= 2  # every half second, then the final figures
    assert shown.endswith("\n")
    assert shown.count("\n") == 1
    assert f"sent {summary.sent}  stored {summary.stored}" in shown.rsplit("\r", 1)[-1]


async def test_a_fleet_stops_early_when_asked(server: Server) -> None:
    stop = asyncio.Event()
    config = FleetConfig(
        endpoint=server.base_url,
        harvest_port=server.harvest_port,
        protocol="tcp",
        sims=2,
        rate=0.5,  # the SIMs are asleep most of the time
        duration=30,
        imsi_base="001019820000000",
        timeout=30,
    )
    asyncio.get_running_loop().call_later(0.5, stop.set)
    started = time.monotonic()
    summary = await run_fleet(config, stop=stop)
    assert time.monotonic() - started < 25  # below the 30 s it would run otherwise
    assert summary.interrupted
    assert summary.sent == summary.stored + summary.refused_total


# --- pieces ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 5, 30, 60, 1000])
def test_payloads_have_the_size_asked_and_look_like_json(size: int) -> None:
    body = payload(size, sim=12, seq=345)
    assert len(body) == size
    json.loads(body)


def test_loopback_addresses_are_bound_only_for_a_loopback_endpoint() -> None:
    local = Target.parse("http://127.0.0.1:8080")
    assert local.loopback
    assert local.source_for("127.0.0.7") == "127.0.0.7"
    assert Target.parse("localhost:8080").source_for("127.0.0.7") == "127.0.0.7"
    assert Target.parse("http://[::1]:8080").loopback
    remote = Target.parse("http://harvest.example.com:8080")
    assert not remote.loopback
    assert remote.source_for("127.0.0.7") is None  # would not route
    assert remote.source_for("10.0.0.7") == "10.0.0.7"  # a real address may be bound
    assert remote.describe("tcp") == "tcp://harvest.example.com:8514"
    assert remote.describe("udp", unified=True) == "udp://harvest.example.com:23080"
    assert Target.parse("http://192.0.2.1").write_url() == "http://192.0.2.1:80/"
    assert local.write_url(unified=True) == "http://127.0.0.1:8080/_unified"


def test_fleet_imsis() -> None:
    assert simulator.fleet_imsis("001019000000098", 3) == [
        "001019000000098",
        "001019000000099",
        "001019000000100",
    ]
    with pytest.raises(simulator.SimulatorError):
        simulator.fleet_imsis("999999", 2)  # past six digits
