"""The pytest plugin (issue 5, item 5): the ``harvest_emulator`` fixture, as a user's suite sees it.

The user-facing runs go through ``pytester`` in a subprocess, with the plugin loaded by its
``pytest11`` entry point (as in a user's environment) and warnings as errors. The handle's
helpers are also exercised here in-process, where this suite can reach every branch.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import textwrap
from pathlib import Path

import pytest

from harvest.testing import (
    HarvestEmulator,
    HarvestEmulatorError,
    HarvestEmulatorServer,
    Reply,
    emulator_settings,
)

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


def documented_example(page: str, test_name: str) -> str:
    """The fenced ``python`` block of ``page`` that defines ``test_name``, exactly as a reader
    copies it: the examples are run from the page, so the page cannot drift from the plugin."""
    text = (ROOT / page).read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)
    [block] = [b for b in blocks if f"def {test_name}(" in b]
    return str(block)


#: docs/testing.md's synchronous example: a user's synchronous tests.
SYNC_EXAMPLE = documented_example("docs/testing.md", "test_device_data_reaches_the_api")

#: docs/testing.md's async example: the fixture is synchronous, so any async plugin works with it.
ASYNC_EXAMPLE = documented_example("docs/testing.md", "test_an_async_device_and_reader")

#: The README tour's example.
README_EXAMPLE = documented_example("README.md", "test_a_device_write_reaches_the_api")

#: How the plugin behaves in a suite: lazy start, dedicated emulators, a misused marker.
LIFECYCLE_TESTS = """
import threading

import pytest


def emulator_threads():
    return [t for t in threading.enumerate() if t.name == "harvest-emulator"]


def test_nothing_runs_until_a_test_asks():
    assert emulator_threads() == []


@pytest.mark.harvest_settings(quota_policy="reject")
def test_a_dedicated_emulator(harvest_emulator):
    assert harvest_emulator.settings.quota_policy == "reject"
    assert len(emulator_threads()) == 1


def test_the_dedicated_emulator_was_stopped_and_no_shared_one_started():
    assert emulator_threads() == []


@pytest.mark.harvest_settings("reject")
def test_the_marker_takes_keywords_only(harvest_emulator):
    pass
"""

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


def _run(pytester: pytest.Pytester, *files: tuple[str, str]) -> pytest.RunResult:
    pytester.makeini(INI)
    for name, text in files:
        pytester.makepyfile(**{name: textwrap.dedent(text)})
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", timeout=60)


def test_a_users_synchronous_suite(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        ("test_1_lifecycle", LIFECYCLE_TESTS),
        ("test_2_example", SYNC_EXAMPLE),
        ("test_3_readme", README_EXAMPLE),
    )
    result.assert_outcomes(passed=7, errors=1)
    result.stdout.fnmatch_lines(["*takes keyword arguments only*"])


def test_a_users_async_suite_with_session_settings(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def harvest_emulator_settings():
            return {"max_payload_bytes": 32}
        """
    )
    settings_test = """
        import pytest

        @pytest.mark.asyncio
        async def test_session_settings_apply(harvest_emulator):
            assert harvest_emulator.settings.max_payload_bytes == 32
            assert harvest_emulator.send(b"x" * 33, None).status == 413  # sync calls work too
    """
    result = _run(
        pytester,
        ("test_async_example", ASYNC_EXAMPLE),
        ("test_settings", settings_test),
    )
    result.assert_outcomes(passed=2)


def test_the_plugins_former_module_still_loads_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A suite that names ``harvest.pytest_plugin`` itself (``-p``, ``pytest_plugins``), with
    the entry points off, still gets the fixture and the marker."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(
        test_old_name="""
        import pytest

        @pytest.mark.harvest_settings(max_payload_bytes=4)
        def test_old_name(harvest_emulator):
            assert harvest_emulator.send(b"12345", None).status == 413
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "harvest.pytest_plugin", "-p", "no:cacheprovider", "--strict-markers", timeout=60
    )
    result.assert_outcomes(passed=1)


# --- the handle, in-process ----------------------------------------------------------------


def _group_of(h: HarvestEmulator, imsi: str) -> str:
    status, subscriber = h.api.get(f"/subscribers/{imsi}")
    assert status == 200, subscriber
    group: str = subscriber["groupId"]
    return group


def test_addresses_match_the_listeners(harvest_emulator: HarvestEmulator) -> None:
    h = harvest_emulator
    listeners = h.health()["listeners"]
    assert listeners["http"] == [h.url]
    assert listeners["harvest-udp"] == [f"udp://127.0.0.1:{h.harvest_port}"]
    assert listeners["unified-tcp"] == [f"tcp://127.0.0.1:{h.unified_port}"]
    assert h.api_url == h.url + "/v1"
    assert h.settings.memory


def test_the_api_client(harvest_emulator: HarvestEmulator) -> None:
    api = harvest_emulator.api
    assert api.operator_id == harvest_emulator.settings.operator_id
    # with or without /v1, with or without the leading slash
    for path in ("/subscribers", "/v1/subscribers", "subscribers"):
        status, body = api.get(path, limit=1)
        assert status == 200
        assert [s["imsi"] for s in body] == [harvest_emulator.default_imsi]
    created = api.post("/groups", {"tags": {"name": "g"}})
    assert created.status == 201
    group = created.body["groupId"]
    config = [{"key": "enabled", "value": True}]
    assert api.put(f"/groups/{group}/configuration/SoracomHarvest", config).status == 200
    assert api.delete(f"/groups/{group}").status == 204
    assert api.request("GET", "/subscribers", authenticated=False).status == 401
    with pytest.raises(HarvestEmulatorError, match="401"):
        api.login("keyId-nobody", "wrong")


def test_entries_follow_the_pages(harvest_emulator: HarvestEmulator) -> None:
    h = harvest_emulator
    t0 = h.clock_freeze(1_767_225_600_000)["now"]
    for i in range(5):
        assert h.send({"i": i}, timestamp=t0 - 4 + i).status == 201
    every = [json.loads(e["content"])["i"] for e in h.entries(limit=2)]
    assert every == [0, 1, 2, 3, 4]
    assert [e["time"] for e in h.entries(sort="desc", **{"from": t0 - 1})] == [t0, t0 - 1]
    with pytest.raises(HarvestEmulatorError, match="400"):
        h.entries(limit=0)


def test_device_writes_as_any_sim(harvest_emulator: HarvestEmulator) -> None:
    h = harvest_emulator
    sim = h.create_sim(imsi="001010000000077", tags={"name": "meter"})
    assert h.session_address(sim["imsi"]) == sim["sessionAddress"] != "127.0.0.1"
    h.clock_freeze()  # one write per frozen instant: two in one millisecond would be one entry
    assert h.send(b"\x00\xff", None, imsi=sim["imsi"]).status == 201
    h.clock_advance(1)
    assert h.send_udp("udp", sim["imsi"]) == "201"
    h.clock_advance(1)
    assert h.send_tcp("tcp", sim["imsi"]) == "201"
    payloads = [json.loads(e["content"])["payload"] for e in h.entries(sim["imsi"])]
    assert [base64.b64decode(p) for p in payloads] == [b"\x00\xff", b"udp", b"tcp"]
    assert h.sim(sim["imsi"])["writesToday"] == 3
    assert h.entries() == []  # the default SIM wrote nothing


def test_refusals_come_back_as_replies(harvest_emulator: HarvestEmulator) -> None:
    h = harvest_emulator
    status, body = h.send("{not json")
    assert (status, body["code"]) == (400, "HEM4006")
    assert h.send("x", "text/plain", source="127.0.0.99").status == 403  # no SIM there
    assert h.send_udp(b"x", source="127.0.0.99") == "403"
    assert h.send_tcp(b"x" * 2000) == "413"  # and the connection is cut
    assert h.send("hi", "text/plain", path="meters/1").status == 201  # any path


def test_a_session_address_of_another_host_is_explained(harvest_emulator: HarvestEmulator) -> None:
    sim = harvest_emulator.create_sim(session_address="192.0.2.10")  # TEST-NET-1
    with pytest.raises(HarvestEmulatorError, match=r"cannot send from 192\.0\.2\.10"):
        harvest_emulator.send({"a": 1}, imsi=sim["imsi"])
    with pytest.raises(HarvestEmulatorError, match="session address"):
        harvest_emulator.send_udp(b"x", sim["imsi"])


def test_the_unified_endpoint(harvest_emulator: HarvestEmulator) -> None:
    h = harvest_emulator
    assert h.send({"a": 1}, unified=True).status == 201
    assert h.send_udp(b"u", unified=True) == "201"
    group = _group_of(h, h.default_imsi)
    unified = [{"key": "response", "value": {"format": "Unified"}}]
    assert h.api.put(f"/groups/{group}/configuration/UnifiedEndpoint", unified).status == 200
    reply = h.send_tcp(b"t", unified=True)
    assert json.loads(reply)["statusCode"] == 200
    assert h.send({"a": 2}, unified=True).status == 200
    # four writes stored (two may share a millisecond and overwrite by design: count writes)
    assert h.sim(h.default_imsi)["writesToday"] == 4


def test_the_clock(harvest_emulator: HarvestEmulator) -> None:
    h = harvest_emulator
    assert h.clock_freeze(1_767_225_600_000)["frozen"] is True
    assert h.now_ms() == 1_767_225_600_000
    assert h.clock_advance(1.5)["now"] == 1_767_225_601_500
    assert h.clock_set(1_767_312_000_000)["frozen"] is True  # left frozen
    assert h.send({"a": 1}).status == 201
    assert [e["time"] for e in h.entries()] == [1_767_312_000_000]
    assert h.clock_set(frozen=False)["frozen"] is False
    with pytest.raises(HarvestEmulatorError, match="400"):
        h.clock_advance(-1)


def test_reset(harvest_emulator: HarvestEmulator) -> None:
    h = harvest_emulator
    sim = h.create_sim()
    assert h.send({"a": 1}).status == 201
    assert h.send({"b": 1}, imsi=sim["imsi"]).status == 201
    h.reset(sim["imsi"])  # that SIM's data only
    assert h.entries(sim["imsi"]) == []
    assert len(h.entries()) == 1
    token = h.api.token
    h.reset()
    assert h.api.token != token  # logged in again: the old token is gone with the state
    assert h.entries() == []
    assert h.control("GET", f"/sims/{sim['imsi']}").status == 404


def test_another_operator(harvest_emulator: HarvestEmulator) -> None:
    h = harvest_emulator
    operator = h.create_operator(operator_id="OP0000000042")
    other = h.login(operator["authKeyId"], operator["authKey"])
    assert other.operator_id == "OP0000000042"
    assert other.get("/subscribers").body == []
    assert other.headers["X-Soracom-Token"] != h.api.headers["X-Soracom-Token"]


def test_faults(harvest_emulator: HarvestEmulator) -> None:
    h = harvest_emulator
    if h.control("GET", "/faults").status == 404:
        assert not h.faults.available
        with pytest.raises(HarvestEmulatorError, match="404"):
            h.faults.list()
        pytest.skip("this emulator has no fault-injection API (/_emulator/faults)")
    assert h.faults.available
    rule = h.faults.add({"effect": "status"}, status=500, protocol="udp", count=1)
    assert h.send_udp(b"x") == "500"
    assert h.send_udp(b"x") == "201"
    assert [(r["id"], r["hits"]) for r in h.faults.list()] == [(rule["id"], 1)]
    h.faults.remove(rule)
    h.faults.add(effect="delay", delay_ms=1, from_=0)
    h.faults.clear()
    assert h.faults.list() == []
    with pytest.raises(HarvestEmulatorError, match="404"):
        h.faults.remove("no-such-rule")
    h.faults.add(effect="maintenance")
    h.reset()  # clears the rules
    assert h.faults.list() == []


@pytest.mark.harvest_settings(max_payload_bytes=8, control_token="sesame")
def test_a_dedicated_emulator_with_a_control_token(harvest_emulator: HarvestEmulator) -> None:
    h = harvest_emulator
    assert h.settings.control_token == "sesame"
    assert h.send(b"123456789", None).status == 413
    assert h.create_sim()["imsi"]  # the helpers send the token
    h.reset()
    assert h.api.get("/subscribers").status == 200


def test_the_server_outside_pytest() -> None:
    with HarvestEmulatorServer() as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
        h = HarvestEmulator(server)
        h.login_default()
        assert h.send({"a": 1}).status == 201
    assert server._thread is None
    server.stop()  # stopping twice is harmless


def test_a_failed_start_is_raised_and_cleaned_up() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = HarvestEmulatorServer(emulator_settings(port=taken.getsockname()[1]))
        with pytest.raises(OSError, match="address already in use"):
            server.start()
    assert server._thread is None


def test_a_reply_unpacks_as_status_and_body() -> None:
    status, body = Reply(201, None, {"content-length": "0"})
    assert (status, body) == (201, None)
    assert repr(Reply(400, {"code": "X"})) == "Reply(status=400, body={'code': 'X'})"
