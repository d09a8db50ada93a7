"""The synchronous client a test gets from the ``harvest_emulator`` fixture: the emulator's
addresses, a SORACOM API client, device helpers that send as a SIM, and the control plane.

Every helper is synchronous (stdlib sockets), so plain ``def test_...`` functions use it directly;
async tests may call it too (the emulator runs on its own thread, so a blocking call never waits
for the test's loop), or talk to :attr:`HarvestEmulator.url` with their own async client. The
control-plane calls go through :class:`harvest.control_client.ControlClient`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

from harvest import wire
from harvest.control_client import (
    ControlClient,
    ControlPlaneError,
    Reply,
    encode_body,
)
from harvest.testing.files import HarvestFiles
from harvest.testing.server import TIMEOUT_S, HarvestEmulatorServer
from harvest.testing.transport import HarvestEmulatorError
from harvest.testing.transport import expect as _expect
from harvest.testing.transport import http_call as _http

__all__ = [
    "HarvestEmulator",
    "HarvestEmulatorError",
    "HarvestFaults",
    "HarvestFiles",
    "Reply",
    "SoracomApi",
]

#: Largest page the API serves (OpenAPI: ``limit`` 1 to 1000), so ``entries`` reads few pages.
PAGE_LIMIT = 1000
NEXT_KEY_HEADER = "x-soracom-next-key"
UNIFIED_PATH = wire.UNIFIED_PATH


def _query(params: Mapping[str, Any]) -> str:
    def text(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    pairs = {name: text(value) for name, value in params.items() if value is not None}
    return "?" + urlencode(pairs) if pairs else ""


def _camel(name: str) -> str:
    """``session_address`` -> ``sessionAddress``; names without ``_`` are left as they are."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_keys(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {_camel(name): value for name, value in fields.items()}


@contextlib.contextmanager
def _expected() -> Iterator[None]:
    """A control-plane answer a helper did not expect, as a failed expectation of the test."""
    try:
        yield
    except ControlPlaneError as error:
        raise HarvestEmulatorError(str(error)) from None


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
            data = encode_body(body)
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
        with _expected():
            return self._emulator.control_plane.add_fault({**(rule or {}), **_camel_keys(fields)})

    def list(self) -> Any:
        """``GET /_emulator/faults``: the rules in force, with how often each fired."""
        with _expected():
            return self._emulator.control_plane.faults()

    def remove(self, rule: str | Mapping[str, Any]) -> None:
        """``DELETE /_emulator/faults/{id}`` (a rule's id, or the rule :meth:`add` returned)."""
        rule_id = rule if isinstance(rule, str) else str(rule["id"])
        with _expected():
            self._emulator.control_plane.remove_fault(rule_id)

    def clear(self) -> None:
        """``DELETE /_emulator/faults``: every rule off."""
        with _expected():
            self._emulator.control_plane.clear_faults()


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
    - Harvest Files: :attr:`files` (switch Files on, upload and read back as a SIM, list and
      download through the API);
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
        #: The emulator's control plane, the client the simulator and the snapshot commands
        #: use too.
        self.control_plane = ControlClient(
            self.url, token=self.settings.control_token, timeout=timeout, connect_timeout=timeout
        )
        self.faults = HarvestFaults(self)
        self.files = HarvestFiles(
            self.api, self.session_address, self.host, self.port, timeout, self.default_imsi
        )

    # control plane

    def control(self, method: str, path: str, body: Any = None) -> Reply:
        """Any ``/_emulator`` call (``path`` after ``/_emulator``); never raises for a status."""
        return self.control_plane.request(method, path, body)

    def health(self) -> dict[str, Any]:
        with _expected():
            return self.control_plane.health()

    def reset(self, imsi: str | None = None) -> None:
        """Everything back to a first start (state, data, tokens, clock), then log ``api`` in
        again; with ``imsi``, only that SIM's data."""
        with _expected():
            self.control_plane.reset(imsi)
        if imsi is None:
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
        with _expected():
            return self.control_plane.create_sim(_camel_keys(fields))

    def link_profile(
        self,
        profile: str | None = None,
        *,
        imsi: str | None = None,
        group_id: str | None = None,
        **figures: Any,
    ) -> dict[str, Any] | None:
        """Give a SIM (the default SIM unless ``imsi`` is given) or a group a link profile:
        a built-in (``"lte"``, ``"lte-m"``, ``"nb-iot"``, ``"3g"``) and/or figures
        (``rtt_ms``, ``jitter_ms``, ``loss``, ``uplink_kbps``, ``downlink_kbps``,
        ``distribution``; camelCase works too) that override it or make a custom profile.
        Every protocol the SIM speaks then goes through that link (docs/link-profiles.md).
        With neither, the profile is taken away. Returns the profile in force, or ``None``.
        A reset (before every test) takes every profile away."""
        body = _camel_keys(figures)
        with _expected():
            if group_id is not None:
                if profile is None and not body:
                    self.control_plane.clear_group_link(group_id)
                    return None
                return dict(self.control_plane.set_group_link(group_id, profile, body)["link"])
            imsi = imsi or self.default_imsi
            if profile is None and not body:
                self.control_plane.clear_link(imsi)
                return None
            return dict(self.control_plane.set_link(imsi, profile, body)["link"])

    def sim(self, imsi: str | None = None) -> dict[str, Any]:
        """``GET /_emulator/sims/{imsi}``: the SIM, its session address and writes today."""
        with _expected():
            return self.control_plane.sim(imsi or self.default_imsi)

    def session_address(self, imsi: str | None = None) -> str:
        """The address a device must send from to be this SIM (the default SIM's if None)."""
        address: str = self.sim(imsi)["sessionAddress"]
        return address

    def create_operator(self, **fields: Any) -> dict[str, Any]:
        """``POST /_emulator/operators``; returns its id and credentials (``authKeyId``,
        ``authKey``): pass them to :meth:`login`."""
        with _expected():
            return self.control_plane.create_operator(_camel_keys(fields))

    # the clock

    def clock(self) -> dict[str, Any]:
        """``{"now": <ms>, "frozen": bool, "iso": "..."}``."""
        with _expected():
            return self.control_plane.clock()

    def now_ms(self) -> int:
        now: int = self.clock()["now"]
        return now

    def clock_set(self, now_ms: int | None = None, *, frozen: bool | None = None) -> dict[str, Any]:
        """Jump to ``now_ms`` and/or freeze or unfreeze (``None`` leaves it as it is)."""
        with _expected():
            return self.control_plane.set_clock(now_ms, frozen=frozen)

    def clock_freeze(self, at_ms: int | None = None) -> dict[str, Any]:
        """Stop the clock at ``at_ms`` (UNIX ms; now if None): every write lands on it."""
        return self.clock_set(at_ms, frozen=True)

    def clock_advance(self, seconds: float) -> dict[str, Any]:
        """Move the clock forward; every UTC midnight on the way is run before it returns."""
        with _expected():
            return self.control_plane.advance_clock(seconds)

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
            sent[wire.TIMESTAMP_HEADER] = str(timestamp)
        sent.update(headers or {})
        address = self._source(imsi, source)
        target = (UNIFIED_PATH if unified else "") + (path if path.startswith("/") else "/" + path)
        try:
            return _http(
                self.host,
                self.port,
                "POST",
                target,
                body=encode_body(body),
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
            sock.sendto(encode_body(data), (self.host, port))
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
                sock.sendall(encode_body(data))
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
