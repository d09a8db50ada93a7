"""Unmodified clients on a private cellular core reach the emulator by SORACOM's host names
(issue 12, items 1 to 3 and 6).

The core and its UEs are network namespaces (tests/support/netns.py): the emulator runs in the
core on the real ports (80, 8514, 23080) with its DNS responder on 53; each UE has an address of
the 10.45.0.0/16 pool and the core as its resolver. In the UEs, curl and a Python socket client
use ``harvest.soracom.io``, ``uni.soracom.io`` and ``api.soracom.io`` by name; the data lands
under the SIM the UE map names, and an address no SIM owns is refused and logged.

It needs root (``ip netns``): it is skipped elsewhere, with the reason, unless ``CI`` is set,
where it must run (``.ci/run`` runs as root and installs iproute2 and curl).
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from collections.abc import Iterator

import pytest
from dnslib import DNSRecord

from harvest.control_client import ControlClient
from harvest.testing.client import SoracomApi
from tests.support.netns import CORE_ADDRESS, PrivateCore, private_core, unavailable
from tests.support.process import Process, running

pytestmark = pytest.mark.slow

TOKEN = "netns-test-token"
IMSI_CURL, IMSI_SOCKETS = "001010000000101", "001010000000102"
KEY_ID, KEY = "keyId-harvest-emulator", "secret-harvest-emulator"

#: Run in a UE namespace: resolves the names through the UE's resolver and talks TCP and UDP
#: to the Harvest and Unified Endpoint ports, as firmware would; prints what it got as JSON.
SOCKET_CLIENT = textwrap.dedent(
    """
    import json, socket, time

    def tcp(host, port, message):
        time.sleep(0.01)  # one write a millisecond at most: the same millisecond overwrites
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(message)
            return sock.recv(100).decode()

    def udp(host, port, message):
        time.sleep(0.01)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(10)
            sock.sendto(message, (host, port))
            return sock.recv(100).decode()

    print(json.dumps({
        "resolved": socket.gethostbyname("harvest.soracom.io"),
        "harvest_tcp": tcp("harvest.soracom.io", 8514, b"harvest-tcp"),
        "harvest_udp": udp("harvest.soracom.io", 8514, b"harvest-udp"),
        "unified_tcp": tcp("uni.soracom.io", 23080, b"unified-tcp"),
        "unified_udp": udp("unified.soracom.io", 23080, b"unified-udp"),
    }))
    """
)


def requirement() -> str | None:
    reason = unavailable()
    if reason is None and shutil.which("curl") is None:
        reason = "curl is not installed"
    return reason


@pytest.fixture(scope="module")
def network() -> Iterator[tuple[PrivateCore, Process]]:
    """The core, three UEs (the third one mapped to no SIM), and the emulator in the core."""
    reason = requirement()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the namespace test, but {reason}", pytrace=False)
        pytest.skip(reason)
    with private_core(ue_count=3) as core:
        ue_map = f"{core.ue_addresses[0]}={IMSI_CURL},{core.ue_addresses[1]}={IMSI_SOCKETS}"
        args = [
            "--host", "0.0.0.0", "--port", "80", "--harvest-port", "8514",
            "--unified-port", "23080", "--dns", "0.0.0.0:53", "--memory",
            "--control-token", TOKEN, "--ue-map", ue_map,
        ]  # fmt: skip
        with running(args, prefix=core.exec_prefix(core.core)) as emulator:
            control = ControlClient(f"http://{core.core_link_address}:80", token=TOKEN)
            for imsi in (IMSI_CURL, IMSI_SOCKETS):
                control.create_sim({"imsi": imsi})
            yield core, emulator


def curl(core: PrivateCore, ue: int, *args: str) -> str:
    done = core.run(core.ues[ue], ["curl", "-sS", "-m", "10", *args])
    assert done.returncode == 0, done.stderr
    return done.stdout


def api(core: PrivateCore) -> SoracomApi:
    return SoracomApi(core.core_link_address, 80).login(KEY_ID, KEY)


def contents(core: PrivateCore, imsi: str) -> list[str]:
    reply = api(core).get(f"/subscribers/{imsi}/data", sort="asc")
    assert reply.status == 200, reply.body
    return [entry["content"] for entry in reply.body]


def test_the_banner_names_the_real_endpoints(network: tuple[PrivateCore, Process]) -> None:
    _, emulator = network
    banner = "\n".join(emulator.banner)
    assert "http://0.0.0.0:80" in banner
    for real in ("harvest.soracom.io:80", "harvest.soracom.io:8514", "uni.soracom.io:23080"):
        assert real in banner
    assert "udp://0.0.0.0:53" in banner


def test_curl_writes_by_name_on_port_80_and_calls_the_api(
    network: tuple[PrivateCore, Process],
) -> None:
    core, _ = network
    json_type = ["-H", "Content-Type: application/json"]
    write = ["-o", "/dev/null", "-w", "%{http_code}", *json_type]
    assert curl(core, 0, *write, "-d", '{"via":"harvest"}', "http://harvest.soracom.io/") == "201"
    assert curl(core, 0, *write, "-d", '{"via":"uni"}', "http://uni.soracom.io/") == "201"
    login = json.loads(
        curl(core, 0, *json_type, "-d", json.dumps({"authKeyId": KEY_ID, "authKey": KEY}),
             "http://api.soracom.io/v1/auth")
    )  # fmt: skip
    assert login["operatorId"] == "OP0000000000"
    assert contents(core, IMSI_CURL) == ['{"via":"harvest"}', '{"via":"uni"}']


def test_a_socket_client_resolves_and_writes_tcp_and_udp(
    network: tuple[PrivateCore, Process],
) -> None:
    core, _ = network
    done = core.run(core.ues[1], ["python3" if shutil.which("python3") else "python", "-c",
                                  SOCKET_CLIENT])  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got == {
        "resolved": CORE_ADDRESS,  # the emulator as the UE reaches it
        "harvest_tcp": "201",
        "harvest_udp": "201",
        "unified_tcp": "201",
        "unified_udp": "201",
    }
    stored = contents(core, IMSI_SOCKETS)
    assert sorted(stored) == sorted(
        json.dumps({"payload": p}, separators=(",", ":"))
        for p in ("aGFydmVzdC10Y3A=", "aGFydmVzdC11ZHA=", "dW5pZmllZC10Y3A=", "dW5pZmllZC11ZHA=")
    )
    session = api(core).get(f"/subscribers/{IMSI_SOCKETS}").body["sessionStatus"]
    assert (session["online"], session["ueIpAddress"]) == (True, core.ue_addresses[1])


def test_an_address_no_sim_owns_is_refused_and_logged(
    network: tuple[PrivateCore, Process],
) -> None:
    core, _ = network
    code = curl(core, 2, "-o", "/dev/null", "-w", "%{http_code}", "-d", "x",
                "http://harvest.soracom.io/")  # fmt: skip
    assert code == "403"
    control = ControlClient(f"http://{core.core_link_address}:80", token=TOKEN)
    records = control.request("GET", "/requests?protocol=http&limit=20").body
    refused = [r for r in records if r["peer"] == core.ue_addresses[2]]
    assert [(r["status"], r["reason"], r["imsi"]) for r in refused] == [(403, "HEM4003", None)]


def test_dns_answers_each_asker_with_the_address_it_asked(
    network: tuple[PrivateCore, Process],
) -> None:
    core, _ = network
    # from this namespace, over the private link: the core's address on that link
    query = DNSRecord.question("api.soracom.io", "A")
    reply = DNSRecord.parse(query.send(core.core_link_address, 53, timeout=5))
    assert [str(rr.rdata) for rr in reply.rr] == [core.core_link_address]
    # from a UE: the core's address on the UE side (what the socket client resolved)
    done = core.run(core.ues[0], ["getent", "ahostsv4", "harvest.soracom.io"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == CORE_ADDRESS
    control = ControlClient(f"http://{core.core_link_address}:80", token=TOKEN)
    asked = control.request("GET", "/requests?protocol=dns&limit=200").body
    assert any(r["peer"] == core.ue_addresses[0] and r["imsi"] == IMSI_CURL for r in asked)
    assert any(r["peer"] == core.host_link_address and r["imsi"] is None for r in asked)
