"""The one control-plane client the simulator, the snapshot commands and the pytest plugin share.

Most calls run against the plugin's in-process emulator (the client is synchronous, as the
plugin's handle is); a few against a scripted socket, for what a real emulator rarely does:
closing a kept connection between calls, or cutting a streamed answer short.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harvest.control_client import (
    TOKEN_HEADER,
    ControlClient,
    ControlPlaneBrokeOff,
    ControlPlaneError,
    ControlPlaneUnreachable,
    Reply,
    describe_error,
)
from harvest.snapshot import MEDIA_TYPE, check_file
from harvest.testing import HarvestEmulator


def client_of(
    h: HarvestEmulator, *, keep_alive: bool = False, timeout: float | None = 10.0
) -> ControlClient:
    return ControlClient(
        h.url, token=h.settings.control_token, keep_alive=keep_alive, timeout=timeout
    )


def test_the_sims_and_the_clock(harvest_emulator: HarvestEmulator) -> None:
    with client_of(harvest_emulator) as control:
        assert control.find_sim("001019999999999") is None
        created = control.ensure_sim("001019999999999")
        assert created["imsi"] == "001019999999999"
        assert control.ensure_sim("001019999999999") == control.sim("001019999999999")
        with pytest.raises(ControlPlaneError, match=r"^SIM 001018888888888: 404 ") as raised:
            control.sim("001018888888888")
        assert raised.value.code is not None
        assert not raised.value.switched_off
        frozen = control.set_clock(1_767_225_600_000, frozen=True)
        assert control.advance_clock(2)["now"] == frozen["now"] + 2000
        assert control.clock()["frozen"] is True
        control.reset()
        assert control.clock()["frozen"] is False


def test_a_refusal_carries_the_emulators_answer(harvest_emulator: HarvestEmulator) -> None:
    control = client_of(harvest_emulator)
    with pytest.raises(ControlPlaneError) as raised:
        control.create_sim({"imsi": "not digits"})
    error = raised.value
    assert error.status == 400
    assert error.what == "create a SIM"
    assert error.message == error.reply.body["message"]
    assert str(error).startswith("create a SIM: 400 {")
    # request() itself never raises for a status
    assert control.request("GET", "/sims/001018888888888").status == 404


def test_a_kept_connection_is_reused(harvest_emulator: HarvestEmulator) -> None:
    with client_of(harvest_emulator, keep_alive=True) as control:
        control.health()
        kept = control._idle
        assert kept is not None
        control.clock()
        assert control._idle is kept
    assert control._idle is None  # let go on close


@pytest.mark.harvest_settings(control_token="sesame")
def test_a_missing_token(harvest_emulator: HarvestEmulator) -> None:
    with pytest.raises(ControlPlaneError) as raised:
        ControlClient(harvest_emulator.url).find_sim(harvest_emulator.default_imsi)
    assert raised.value.needs_token
    assert not raised.value.switched_off
    found = ControlClient(harvest_emulator.url, token="sesame").find_sim(
        harvest_emulator.default_imsi
    )
    assert found is not None


@pytest.mark.harvest_settings(control=False)
def test_a_switched_off_control_plane_is_not_a_missing_sim(
    harvest_emulator: HarvestEmulator,
) -> None:
    with pytest.raises(ControlPlaneError) as raised:
        ControlClient(harvest_emulator.url).find_sim(harvest_emulator.default_imsi)
    assert raised.value.switched_off


def test_snapshots_out_and_back_in(harvest_emulator: HarvestEmulator, tmp_path: Path) -> None:
    h = harvest_emulator
    assert h.send({"keep": "me"}).status == 201
    file = tmp_path / "snap.msgpack"
    control = client_of(h, timeout=None)
    with control.export_snapshot() as chunks, file.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)
    assert check_file(file).counts["entries"] == 1
    h.reset()
    assert h.entries() == []
    answer = control.import_snapshot(file, content_type=MEDIA_TYPE)
    assert answer["imported"]["counts"]["entries"] == 1
    h.login_default()  # the tokens are the snapshot's now
    assert [e["content"] for e in h.entries()] == ['{"keep": "me"}']
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(b"\x93\x01\x02")
    with pytest.raises(ControlPlaneError, match="400"):
        control.import_snapshot(bad, content_type=MEDIA_TYPE)


@pytest.mark.harvest_settings(control_token="sesame")
def test_an_export_without_the_token_writes_nothing(harvest_emulator: HarvestEmulator) -> None:
    with (
        pytest.raises(ControlPlaneError) as raised,
        ControlClient(harvest_emulator.url).export_snapshot(),
    ):
        pytest.fail("no stream without the token")
    assert raised.value.needs_token


# --- against a scripted socket -------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _read_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


Answer = Callable[[socket.socket, bytes], None]
Script = Callable[[Answer], tuple[str, list[bytes]]]


@pytest.fixture
def scripted() -> Iterator[Script]:
    """A listener on 127.0.0.1 that answers each connection with ``answer(connection,
    request)`` and closes it; returns its URL and the requests it read."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(answer: Answer) -> tuple[str, list[bytes]]:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.05)  # to see ``stop`` (closing does not wake an accept)
        seen: list[bytes] = []

        def serve() -> None:
            with listener:
                while not stop.is_set():
                    try:
                        connection, _ = listener.accept()
                    except TimeoutError:
                        continue
                    with connection:
                        connection.settimeout(5)
                        request = _read_request(connection)
                        seen.append(request)
                        answer(connection, request)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return f"http://127.0.0.1:{listener.getsockname()[1]}", seen

    yield start
    stop.set()
    for thread in threads:
        thread.join(5)


def test_a_kept_connection_the_emulator_closed_is_replaced(scripted: Script) -> None:
    def answer(connection: socket.socket, request: bytes) -> None:
        # keep-alive by HTTP/1.1's default, then closed all the same (an idle timeout)
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
            b'{"now": 42}'
        )

    url, seen = scripted(answer)
    with ControlClient(url, token="t0k", keep_alive=True) as control:
        assert control.clock() == {"now": 42}
        assert control.clock() == {"now": 42}  # on a new connection, once the old one failed
    assert len(seen) == 2
    assert all(request.startswith(b"GET /_emulator/clock HTTP/1.1") for request in seen)
    assert all(f"{TOKEN_HEADER}: t0k".encode() in request for request in seen)


def test_a_stream_cut_short_broke_off(scripted: Script) -> None:
    def answer(connection: socket.socket, request: bytes) -> None:
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-msgpack\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )

    url, _ = scripted(answer)
    with (
        pytest.raises(ControlPlaneBrokeOff, match="broke off"),
        ControlClient(url).export_snapshot() as chunks,
    ):
        b"".join(chunks)


def test_no_emulator_is_unreachable() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ControlPlaneUnreachable) as raised:
        ControlClient(url, connect_timeout=2).health()
    assert raised.value.reason == "Connection refused"
    assert str(raised.value) == f"cannot reach the control plane at {url}: Connection refused"
    assert isinstance(raised.value, ConnectionError)  # as the plugin's helpers raised before


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1:8080", "the scheme must be http or https"),
        ("127.0.0.1:8080", "the scheme must be http or https"),
        ("http://127.0.0.1:port", "the port is not a port"),
        ("http://:8080", "has no host"),
    ],
    ids=["ftp", "no-scheme", "bad-port", "no-host"],
)
def test_a_bad_endpoint(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ControlClient(url)


def test_a_prefix_path_is_kept(scripted: Script) -> None:
    def answer(connection: socket.socket, request: bytes) -> None:
        connection.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    url, seen = scripted(answer)
    ControlClient(url + "/behind/proxy/").clear_faults()
    assert seen[0].startswith(b"DELETE /behind/proxy/_emulator/faults HTTP/1.1")


def test_error_texts() -> None:
    assert describe_error(TimeoutError()) == "timed out"
    assert describe_error(ConnectionRefusedError(111, "Connect call failed ('x', 1)")) == (
        "Connection refused"
    )
    assert describe_error(socket.gaierror(-2, "Name or service not known")) == (
        "Name or service not known"
    )
    assert describe_error(RuntimeError()) == "RuntimeError"
    text = ControlPlaneError("health", Reply(503, "  starting \n"))
    assert text.message == "starting"
    assert ControlPlaneError("health", Reply(502, None)).message == "no message"
    assert ControlPlaneError("health", Reply(502, ["x"])).code is None
