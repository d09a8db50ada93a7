"""A pytest plugin, registered by the package: the ``harvest_emulator`` fixture.

Installing ``harvest-emulator`` registers this module with pytest (the ``pytest11`` entry point),
so any test suite in the same environment can ask for ``harvest_emulator``. Nothing starts until a
test asks for it. Then one emulator starts for the whole session, in this process, on a
background thread with its own event loop: in-memory store, free ports on 127.0.0.1 for the HTTP
edge and the raw TCP/UDP Harvest and Unified Endpoint ports. Before each test it is reset (``POST
/_emulator/reset``) and the fixture hands the test a :class:`HarvestEmulator`: its addresses, a
logged-in SORACOM API client, device helpers that send as a SIM from the SIM's session address
(HTTP, UDP, TCP), and the control plane (SIMs, operators, the clock, faults).

Every helper is synchronous (stdlib sockets), so plain ``def test_...`` functions use it directly;
async tests may call it too (the emulator runs on its own thread, so a blocking call never waits
for the test's loop), or talk to :attr:`HarvestEmulator.url` with their own async client.

``@pytest.mark.harvest_settings(**overrides)`` gives one test a dedicated emulator started with
those settings (the fields of :class:`harvest.settings.Settings`); overriding the session-scoped
``harvest_emulator_settings`` fixture in a ``conftest.py`` changes the shared one. Outside pytest,
:class:`HarvestEmulatorServer` is a context manager that does the same.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import ipaddress
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from harvest.settings import Settings

__all__ = [
    "HarvestEmulator",
    "HarvestEmulatorError",
    "HarvestEmulatorServer",
    "HarvestFaults",
    "Reply",
    "SoracomApi",
    "emulator_settings",
]

#: How long a helper waits for the emulator (start, stop, one request or reply), in seconds.
TIMEOUT_S = 10.0
#: How long shutdown waits for in-flight requests: tests have none worth waiting for.
SHUTDOWN_TIMEOUT_S = 2.0
#: Largest page the API serves (OpenAPI: ``limit`` 1 to 1000), so ``entries`` reads few pages.
PAGE_LIMIT = 1000
CONTROL_TOKEN_HEADER = "X-Emulator-Token"
NEXT_KEY_HEADER = "x-soracom-next-key"
UNIFIED_PATH = "/_unified"
MARKER = "harvest_settings"


class HarvestEmulatorError(AssertionError):
    """The emulator did not answer as a helper expected; the message has its answer.

    An ``AssertionError``, so pytest shows it as a failed expectation of the test.
    """


def emulator_settings(**overrides: Any) -> Settings:
    """The fixture's settings: 127.0.0.1, free ports, in-memory store, then ``overrides``."""
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "harvest_port": 0,
        "unified_port": 0,
        "memory": True,
    }
    return Settings(**{**base, **overrides})


# --- HTTP -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: ``status``, ``body`` (decoded JSON, text, or ``None`` when empty) and
    ``headers`` (lower-case names). Unpacks as ``status, body = reply``."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __iter__(self) -> Iterator[Any]:
        yield self.status
        yield self.body


def _decode(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    if "json" in content_type:
        with contextlib.suppress(ValueError):
            return json.loads(raw)
    return raw.decode("utf-8", errors="replace")


def _encode(body: Any) -> bytes:
    """bytes as they are, str as UTF-8, anything else as JSON."""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def _query(params: Mapping[str, Any]) -> str:
    def text(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    pairs = {name: text(value) for name, value in params.items() if value is not None}
    return "?" + urlencode(pairs) if pairs else ""


def _http(
    host: str,
    port: int,
    method: str,
    target: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    source: str | None = None,
    timeout: float = TIMEOUT_S,
) -> Reply:
    """One request on its own connection (optionally from ``source``, a SIM's address)."""
    connection = http.client.HTTPConnection(
        host, port, timeout=timeout, source_address=None if source is None else (source, 0)
    )
    try:
        connection.request(method, target, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        raw = response.read()
        found = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, _decode(raw, found.get("content-type", "")), found)
    finally:
        connection.close()


def _expect(reply: Reply, what: str, *statuses: int) -> Any:
    if reply.status not in statuses:
        raise HarvestEmulatorError(f"{what}: {reply.status} {reply.body!r}")
    return reply.body


def _camel(name: str) -> str:
    """``session_address`` -> ``sessionAddress``; names without ``_`` are left as they are."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_keys(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {_camel(name): value for name, value in fields.items()}


class SoracomApi:
    """A small synchronous client of the emulator's SORACOM API (``/v1``).

    Paths may be given with or without ``/v1`` (``"/subscribers"`` is ``"/v1/subscribers"``).
    Every call returns a :class:`Reply` and never raises for an HTTP status.
    """

    def __init__(self, host: str, port: int, *, timeout: float = TIMEOUT_S) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.api_key: str | None = None
        self.token: str | None = None
        self.operator_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The authentication headers, for your own HTTP client."""
        if self.token is None:
            return {}
        return {"X-Soracom-API-Key": self.api_key or "", "X-Soracom-Token": self.token}

    def login(self, auth_key_id: str, auth_key: str) -> SoracomApi:
        """``POST /v1/auth`` with an auth key; keeps the API key, token and operator id."""
        reply = self.request(
            "POST",
            "/auth",
            body={"authKeyId": auth_key_id, "authKey": auth_key},
            authenticated=False,
        )
        login = _expect(reply, f"login as {auth_key_id}", 200)
        self.api_key = login["apiKey"]
        self.token = login["token"]
        self.operator_id = login["operatorId"]
        return self

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
    ) -> Reply:
        """Any call: ``params`` is the query, ``body`` is sent as JSON (unless bytes or str)."""
        sent = dict(self.headers) if authenticated else {}
        data = None
        if body is not None:
            data = _encode(body)
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        if not (path == "/v1" or path.startswith("/v1/")):
            path = "/v1" + (path if path.startswith("/") else "/" + path)
        return _http(
            self.host,
            self.port,
            method,
            path + _query(params or {}),
            body=data,
            headers=sent,
            timeout=self.timeout,
        )

    def get(self, path: str, **params: Any) -> Reply:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, **params: Any) -> Reply:
        return self.request("POST", path, params=params, body=body)

    def put(self, path: str, body: Any = None, **params: Any) -> Reply:
        return self.request("PUT", path, params=params, body=body)

    def delete(self, path: str, **params: Any) -> Reply:
        return self.request("DELETE", path, params=params)

    def pages(self, path: str, **params: Any) -> list[Any]:
        """Every item of a paged list, following ``x-soracom-next-key`` (as ``--fetch-all``)."""
        items: list[Any] = []
        while True:
            reply = self.get(path, **params)
            items.extend(_expect(reply, f"GET {path}", 200))
            next_key = reply.headers.get(NEXT_KEY_HEADER)
            if next_key is None:
                return items
            params["last_evaluated_key"] = next_key


# --- the server on its own thread ---------------------------------------------------------------


def _client_host(host: str) -> str:
    """Where a client on this machine reaches a listener bound to ``host``."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class HarvestEmulatorServer:
    """The emulator in this process, on a background thread with its own event loop.

    ``start()`` returns once every listener is up; ``stop()`` shuts it down within a bound. Also
    a context manager. The ports are known after ``start()`` (port 0 in the settings is a free
    port, the same one for raw TCP and UDP).
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or emulator_settings()
        self.host = _client_host(self.settings.hosts[0])
        self.port = 0
        self.harvest_port = 0
        self.unified_port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return _http_url(self.host, self.port)

    def start(self) -> HarvestEmulatorServer:
        if self._thread is not None:
            raise RuntimeError("the emulator is already started")
        started: concurrent.futures.Future[tuple[int, int, int]] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="harvest-emulator", daemon=True
        )
        self._thread.start()
        try:
            self.port, self.harvest_port, self.unified_port = started.result(TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stop.set)
        thread.join(TIMEOUT_S + SHUTDOWN_TIMEOUT_S)
        self._thread = self._loop = self._stop = None
        error, self._error = self._error, None
        if thread.is_alive():
            raise RuntimeError("the Harvest emulator did not stop in time")
        if error is not None:
            raise RuntimeError("the Harvest emulator failed") from error

    def __enter__(self) -> HarvestEmulatorServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, started: concurrent.futures.Future[tuple[int, int, int]]) -> None:
        try:
            asyncio.run(self._serve(started))
        except BaseException as error:  # reported by stop(), not as an unhandled thread error
            if not started.done():
                started.set_exception(error)
            else:
                self._error = error

    async def _serve(self, started: concurrent.futures.Future[tuple[int, int, int]]) -> None:
        """Serve until :meth:`stop`; as ``harvest.server.run`` without signals or the banner."""
        from gateway.app import RAW_LISTENERS
        from harvest.server import serving

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serving(self.settings) as (app, port):
            raw = app[RAW_LISTENERS]
            started.set_result((port, raw.ports["harvest"], raw.ports["unified"]))
            await self._stop.wait()


# --- the handle a test gets ----------------------------------------------------------------------


class HarvestFaults:
    """A thin wrapper of the fault-injection API, ``/_emulator/faults`` (JSON in, JSON out).

    The rule bodies are that API's (see the README's control API); this wrapper only sends
    them, and :meth:`HarvestEmulator.reset` (before every test) clears them. On an emulator
    without that API, :attr:`available` is false and the calls fail.
    """

    def __init__(self, emulator: HarvestEmulator) -> None:
        self._emulator = emulator

    @property
    def available(self) -> bool:
        return self._emulator.control("GET", "/faults").status == 200

    def add(self, rule: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """``POST /_emulator/faults`` with ``rule`` and/or ``fields`` (snake_case names are sent
        camelCase: ``delay_ms`` is ``delayMs``, ``from_`` is ``from``); returns the rule."""
        body = {**(rule or {}), **_camel_keys(fields)}
        created: dict[str, Any] = _expect(
            self._emulator.control("POST", "/faults", body), "add a fault", 200, 201
        )
        return created

    def list(self) -> Any:
        """``GET /_emulator/faults``: the rules in force, with how often each fired."""
        return _expect(self._emulator.control("GET", "/faults"), "list the faults", 200)

    def remove(self, rule: str | Mapping[str, Any]) -> None:
        """``DELETE /_emulator/faults/{id}`` (a rule's id, or the rule :meth:`add` returned)."""
        rule_id = rule if isinstance(rule, str) else str(rule["id"])
        reply = self._emulator.control("DELETE", f"/faults/{quote(rule_id, safe='')}")
        _expect(reply, f"remove fault {rule_id}", 200, 204)

    def clear(self) -> None:
        """``DELETE /_emulator/faults``: every rule off."""
        _expect(self._emulator.control("DELETE", "/faults"), "clear the faults", 200, 204)


class HarvestEmulator:
    """What ``harvest_emulator`` gives a test: addresses, an API client, devices and control.

    - ``url`` (the HTTP edge, ``http://127.0.0.1:<port>``), ``api_url`` (``url + "/v1"``),
      ``host``, ``port``, ``harvest_port`` and ``unified_port`` (raw TCP and UDP), ``settings``;
    - ``api``: a :class:`SoracomApi` logged in as the default operator;
    - devices: :meth:`send` (HTTP), :meth:`send_udp`, :meth:`send_tcp`, each from the SIM's
      session address (the default SIM unless ``imsi`` is given);
    - control: :meth:`reset`, :meth:`create_sim`, :meth:`sim`, :meth:`create_operator`,
      :meth:`login`, the clock (:meth:`clock`, :meth:`clock_freeze`, :meth:`clock_set`,
      :meth:`clock_advance`), :attr:`faults`, and :meth:`control` for any other call;
    - reads: :meth:`entries` (every data entry of a SIM, oldest first).
    """

    def __init__(self, server: HarvestEmulatorServer, *, timeout: float = TIMEOUT_S) -> None:
        self.server = server
        self.settings = server.settings
        self.host = server.host
        self.port = server.port
        self.harvest_port = server.harvest_port
        self.unified_port = server.unified_port
        self.url = server.url
        self.api_url = self.url + "/v1"
        self.default_imsi = self.settings.default_imsi
        self.timeout = timeout
        self.api = SoracomApi(self.host, self.port, timeout=timeout)
        self.faults = HarvestFaults(self)

    # control plane

    def control(self, method: str, path: str, body: Any = None) -> Reply:
        """Any ``/_emulator`` call (``path`` after ``/_emulator``); never raises for a status."""
        headers: dict[str, str] = {}
        data = None
        if body is not None:
            data = _encode(body)
            headers["Content-Type"] = "application/json"
        if self.settings.control_token:
            headers[CONTROL_TOKEN_HEADER] = self.settings.control_token
        return _http(
            self.host,
            self.port,
            method,
            "/_emulator" + path,
            body=data,
            headers=headers,
            timeout=self.timeout,
        )

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = _expect(self.control("GET", "/health"), "health", 200)
        return body

    def reset(self, imsi: str | None = None) -> None:
        """Everything back to a first start (state, data, tokens, clock), then log ``api`` in
        again; with ``imsi``, only that SIM's data."""
        if imsi is not None:
            _expect(self.control("POST", "/reset", {"imsi": imsi}), f"reset {imsi}", 200)
            return
        _expect(self.control("POST", "/reset"), "reset", 200)
        self.login_default()

    def login_default(self) -> SoracomApi:
        """Log :attr:`api` in as the default operator (the settings' auth key)."""
        return self.api.login(self.settings.auth_key_id, self.settings.auth_key)

    def login(self, auth_key_id: str, auth_key: str) -> SoracomApi:
        """A new API client logged in with this auth key (another operator, say)."""
        return SoracomApi(self.host, self.port, timeout=self.timeout).login(auth_key_id, auth_key)

    def create_sim(self, **fields: Any) -> dict[str, Any]:
        """``POST /_emulator/sims``: ``imsi``, ``group_id`` (``None``: no group), ``status``,
        ``session_address``, ``operator_id``, ``tags`` (camelCase names work too). Returns the
        SIM with its ``sessionAddress`` (its own ``127.x.y.z`` unless given)."""
        sim: dict[str, Any] = _expect(
            self.control("POST", "/sims", _camel_keys(fields)), "create a SIM", 201
        )
        return sim

    def sim(self, imsi: str | None = None) -> dict[str, Any]:
        """``GET /_emulator/sims/{imsi}``: the SIM, its session address and writes today."""
        imsi = imsi or self.default_imsi
        sim: dict[str, Any] = _expect(self.control("GET", f"/sims/{imsi}"), f"SIM {imsi}", 200)
        return sim

    def session_address(self, imsi: str | None = None) -> str:
        """The address a device must send from to be this SIM (the default SIM's if None)."""
        address: str = self.sim(imsi)["sessionAddress"]
        return address

    def create_operator(self, **fields: Any) -> dict[str, Any]:
        """``POST /_emulator/operators``; returns its id and credentials (``authKeyId``,
        ``authKey``): pass them to :meth:`login`."""
        operator: dict[str, Any] = _expect(
            self.control("POST", "/operators", _camel_keys(fields)), "create an operator", 201
        )
        return operator

    # the clock

    def clock(self) -> dict[str, Any]:
        """``{"now": <ms>, "frozen": bool, "iso": "..."}``."""
        state: dict[str, Any] = _expect(self.control("GET", "/clock"), "read the clock", 200)
        return state

    def now_ms(self) -> int:
        now: int = self.clock()["now"]
        return now

    def clock_set(self, now_ms: int | None = None, *, frozen: bool | None = None) -> dict[str, Any]:
        """Jump to ``now_ms`` and/or freeze or unfreeze (``None`` leaves it as it is)."""
        body: dict[str, Any] = {}
        if now_ms is not None:
            body["now"] = now_ms
        if frozen is not None:
            body["frozen"] = frozen
        state: dict[str, Any] = _expect(self.control("PUT", "/clock", body), "set the clock", 200)
        return state

    def clock_freeze(self, at_ms: int | None = None) -> dict[str, Any]:
        """Stop the clock at ``at_ms`` (UNIX ms; now if None): every write lands on it."""
        return self.clock_set(at_ms, frozen=True)

    def clock_advance(self, seconds: float) -> dict[str, Any]:
        """Move the clock forward; every UTC midnight on the way is run before it returns."""
        reply = self.control("POST", "/clock/advance", {"seconds": seconds})
        state: dict[str, Any] = _expect(reply, "advance the clock", 200)
        return state

    # reads

    def entries(self, imsi: str | None = None, **params: Any) -> list[dict[str, Any]]:
        """Every data entry of a SIM through the API, oldest first, all pages.

        ``params`` are the API's (``from``, ``to``, ``sort``, ``limit``); pass ``from`` as
        ``**{"from": ms}``.
        """
        imsi = imsi or self.default_imsi
        query = {"sort": "asc", "limit": PAGE_LIMIT, **params}
        return self.api.pages(f"/subscribers/{imsi}/data", **query)

    # devices

    def _source(self, imsi: str | None, source: str | None) -> str:
        return source if source is not None else self.session_address(imsi)

    def send(
        self,
        body: Any,
        content_type: str | None = "application/json",
        *,
        imsi: str | None = None,
        source: str | None = None,
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        timestamp: int | None = None,
        unified: bool = False,
    ) -> Reply:
        """A device write over HTTP from the SIM's session address; ``201`` when stored.

        ``body``: bytes as they are, str as UTF-8, anything else as JSON. ``content_type``
        ``None`` sends no ``Content-Type``. ``timestamp`` sets ``X-Soracom-Timestamp``;
        ``unified`` writes to the Unified Endpoint (``/_unified``); ``source`` binds another
        address instead of the SIM's.
        """
        sent: dict[str, str] = {}
        if content_type is not None:
            sent["Content-Type"] = content_type
        if timestamp is not None:
            sent["X-Soracom-Timestamp"] = str(timestamp)
        sent.update(headers or {})
        address = self._source(imsi, source)
        target = (UNIFIED_PATH if unified else "") + (path if path.startswith("/") else "/" + path)
        try:
            return _http(
                self.host,
                self.port,
                "POST",
                target,
                body=_encode(body),
                headers=sent,
                source=address,
                timeout=self.timeout,
            )
        except OSError as error:
            raise self._unbound(address, error) from error

    def send_udp(
        self,
        data: bytes | str,
        imsi: str | None = None,
        *,
        source: str | None = None,
        unified: bool = False,
        timeout: float | None = None,
    ) -> str:
        """One datagram from the SIM's session address to the Harvest (or Unified Endpoint)
        port; returns the reply datagram as text (``"201"`` when stored). Raises
        ``TimeoutError`` when none comes within ``timeout`` seconds (the client's, 10 s, by
        default): what a SIM without a data session gets."""
        address = self._source(imsi, source)
        port = self.unified_port if unified else self.harvest_port
        with self._socket(address, socket.SOCK_DGRAM, timeout) as sock:
            sock.sendto(_encode(data), (self.host, port))
            reply, _ = sock.recvfrom(65535)
        return reply.decode("utf-8", errors="replace")

    def send_tcp(
        self,
        data: bytes | str,
        imsi: str | None = None,
        *,
        source: str | None = None,
        unified: bool = False,
        timeout: float | None = None,
    ) -> str:
        """One message on a new TCP connection from the SIM's session address; returns the
        reply as text (``"201"`` when stored; ``""`` when the connection is closed without one,
        as for a SIM without a data session). A message is what one read delivers, so keep it
        to one small send (under the size limit)."""
        address = self._source(imsi, source)
        port = self.unified_port if unified else self.harvest_port
        reply = bytearray()
        with self._socket(address, socket.SOCK_STREAM, timeout) as sock:
            sock.connect((self.host, port))
            try:
                sock.sendall(_encode(data))
                while not _whole_reply(reply):
                    chunk = sock.recv(65535)
                    if not chunk:
                        break
                    reply += chunk
            except (ConnectionResetError, BrokenPipeError):
                pass  # closed without a reply
        return reply.decode("utf-8", errors="replace")

    def _socket(
        self, address: str, kind: socket.SocketKind, timeout: float | None = None
    ) -> socket.socket:
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        sock = socket.socket(family, kind)
        sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            sock.bind((address, 0))
        except OSError as error:
            sock.close()
            raise self._unbound(address, error) from error
        return sock

    def _unbound(self, address: str, error: OSError) -> Exception:
        if isinstance(error, TimeoutError | ConnectionError):
            return error
        return HarvestEmulatorError(
            f"cannot send from {address} ({error}): a SIM's session address must be an address "
            "of this host (on macOS: sudo ifconfig lo0 alias <address> up)"
        )


def _whole_reply(reply: bytearray) -> bool:
    """A raw reply is three ASCII digits, or a JSON object (the Unified format)."""
    if reply[:1] == b"{":
        try:
            json.loads(reply)
        except ValueError:
            return False
        return True
    return len(reply) >= 3


# --- the fixtures ------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**overrides): run this test on its own Harvest emulator with these settings",
    )


@pytest.fixture(scope="session")
def harvest_emulator_settings() -> dict[str, Any]:
    """Settings for the session's emulator, over the fixture's defaults (free ports, memory).

    Override this fixture in a ``conftest.py`` to change them for every test.
    """
    return {}


@pytest.fixture(scope="session")
def harvest_emulator_server(
    harvest_emulator_settings: dict[str, Any],
) -> Iterator[HarvestEmulatorServer]:
    """The session's emulator, started on first use and stopped at the end of the session."""
    with HarvestEmulatorServer(emulator_settings(**harvest_emulator_settings)) as server:
        yield server


@pytest.fixture
def harvest_emulator(request: pytest.FixtureRequest) -> Iterator[HarvestEmulator]:
    """A Harvest emulator reset for this test: see :class:`HarvestEmulator`.

    With ``@pytest.mark.harvest_settings(**overrides)`` the test gets its own emulator, started
    with those settings and stopped after it.
    """
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        server: HarvestEmulatorServer = request.getfixturevalue("harvest_emulator_server")
        emulator = HarvestEmulator(server)
        emulator.reset()
        yield emulator
        return
    if marker.args:
        pytest.fail(f"@pytest.mark.{MARKER} takes keyword arguments only", pytrace=False)
    overrides = {**request.getfixturevalue("harvest_emulator_settings"), **marker.kwargs}
    with HarvestEmulatorServer(emulator_settings(**overrides)) as dedicated:
        emulator = HarvestEmulator(dedicated)
        emulator.login_default()
        yield emulator
