"""The one client of an emulator's control plane, ``/_emulator``, shared by every client tool.

The device simulator (fleet provisioning, ``device send --imsi``), the snapshot commands
(``export``/``import --endpoint``) and the pytest plugin's handle all reach the control plane
through :class:`ControlClient`, so its paths, the ``X-Emulator-Token`` header and what its
refusals mean are written down once.

It is synchronous and uses only the standard library: a plain ``def test_...`` calls it
directly, an event loop hands it to a thread, and the command-line tools run without pytest or
aiohttp's client in the way. It lives beside the server's modules, not in
:mod:`harvest.testing`, because production tools (snapshot backups, load generation) use it
too; the server itself never imports it.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

from harvest import errors, wire

__all__ = [
    "CONTROL_PATH",
    "TOKEN_HEADER",
    "ControlClient",
    "ControlClientError",
    "ControlPlaneBrokeOff",
    "ControlPlaneError",
    "ControlPlaneUnreachable",
    "Reply",
    "decode_body",
    "describe_error",
    "encode_body",
]

#: Where the control plane is mounted on the HTTP edge (harvest.app).
CONTROL_PATH = wire.CONTROL_PATH
#: The header a token-protected control plane checks (harvest.control).
TOKEN_HEADER = wire.CONTROL_TOKEN_HEADER
#: Seconds to connect, and to wait for each read of an answer, unless told otherwise.
DEFAULT_TIMEOUT_S = 10.0
#: Bytes per read of a streamed answer (a snapshot export).
STREAM_CHUNK = 1 << 20


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


def decode_body(raw: bytes, content_type: str) -> Any:
    """JSON when it says so and parses, else text; ``None`` when empty."""
    if not raw:
        return None
    if "json" in content_type:
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw.decode("utf-8", errors="replace")


def encode_body(body: Any) -> bytes:
    """bytes as they are, str as UTF-8, anything else as JSON."""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def describe_error(error: BaseException) -> str:
    """A short reason for a failed connection: ``Connection refused``, ``timed out``, ..."""
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, OSError):
        if error.errno and error.errno > 0:  # asyncio's own text names the address instead
            return os.strerror(error.errno)
        if error.strerror:  # a failed name lookup: negative codes of its own
            return error.strerror
    return str(error) or type(error).__name__


class ControlClientError(Exception):
    """A control-plane call did not get the answer it needed."""


class ControlPlaneUnreachable(ControlClientError, ConnectionError):
    """No answer at all: the emulator could not be reached, or hung up before answering."""

    def __init__(self, url: str, error: BaseException) -> None:
        self.url = url
        self.reason = describe_error(error)
        super().__init__(f"cannot reach the control plane at {url}: {self.reason}")


class ControlPlaneBrokeOff(ControlClientError, ConnectionError):
    """A streamed answer (a snapshot export) was cut short after it had begun."""

    def __init__(self, url: str, error: BaseException) -> None:
        self.url = url
        self.reason = describe_error(error)
        super().__init__(f"the answer from {url} broke off: {self.reason}")


class ControlPlaneError(ControlClientError):
    """The control plane answered, but not as the call needed. ``str()`` is
    ``"<what>: <status> <body>"``."""

    def __init__(self, what: str, reply: Reply) -> None:
        self.what = what
        self.reply = reply
        super().__init__(f"{what}: {reply.status} {reply.body!r}")

    @property
    def status(self) -> int:
        return self.reply.status

    @property
    def code(self) -> str | None:
        """The error code of a ``{"code","message"}`` body (``HEM9001``, ...)."""
        body = self.reply.body
        code = body.get("code") if isinstance(body, dict) else None
        return code if isinstance(code, str) else None

    @property
    def message(self) -> str:
        """The body's ``message``, else the body as text."""
        body = self.reply.body
        if isinstance(body, dict) and "message" in body:
            return str(body["message"])
        if body is None or body == "":
            return "no message"
        return str(body).strip()

    @property
    def needs_token(self) -> bool:
        """The control plane is token-protected and the token was missing or wrong."""
        return self.status == errors.CONTROL_TOKEN_REQUIRED.status

    @property
    def switched_off(self) -> bool:
        """The emulator runs with its control plane off (``--no-control``)."""
        return self.status == errors.CONTROL_DISABLED.status and (
            self.code == errors.CONTROL_DISABLED.code
        )


def _json_headers(body: Any) -> tuple[bytes | None, dict[str, str]]:
    if body is None:
        return None, {}
    return encode_body(body), {"Content-Type": "application/json"}


class ControlClient:
    """The control plane of the emulator at ``url`` (its HTTP edge, ``http[s]://host:port``;
    a path there is a prefix, as behind a proxy).

    ``token`` is sent as ``X-Emulator-Token``. ``connect_timeout`` bounds each connection
    attempt and ``timeout`` each read of an answer (``None``: wait as long as it takes, for a
    large snapshot import). With ``keep_alive`` one connection is kept open between calls
    (and opened again if the emulator closed it meanwhile); otherwise each call has its own.
    Calls from several threads take turns; :meth:`close` (or ``with``) lets the kept
    connection go.

    :meth:`request` never raises for a status; the named calls raise
    :class:`ControlPlaneError` for an answer they did not expect. Every call raises
    :class:`ControlPlaneUnreachable` when no answer came.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        connect_timeout: float = DEFAULT_TIMEOUT_S,
        keep_alive: bool = False,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"endpoint {url!r}: the scheme must be http or https")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"endpoint {url!r}: the port is not a port") from None
        if not parts.hostname:
            raise ValueError(f"endpoint {url!r} has no host")
        self.url = url.rstrip("/")
        self.token = token or None
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.keep_alive = keep_alive
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/") + CONTROL_PATH
        self._idle: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, None
        if idle is not None:
            idle.close()

    # --- any call ------------------------------------------------------------------------------
    def request(
        self, method: str, path: str, body: Any = None, *, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """Any control-plane call (``path`` after ``/_emulator``); ``body`` is sent as JSON
        unless it is bytes or str. Never raises for a status."""
        data, sent = _json_headers(body)
        sent.update(headers or {})
        with self._lock:
            response, connection = self._send(method, path, data, sent, reuse=self.keep_alive)
            try:
                reply = self._read(response)
            except BaseException:
                connection.close()
                raise
            if self.keep_alive and not response.will_close:
                self._idle = connection
            else:
                connection.close()
        return reply

    def _headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        headers = dict(extra)
        if self.token:
            headers[TOKEN_HEADER] = self.token
        return headers

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = kind(self._host, self._port, timeout=self.connect_timeout)
        try:
            connection.connect()
            if connection.sock is not None:
                connection.sock.settimeout(self.timeout)
        except BaseException:
            connection.close()
            raise
        return connection

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        headers: Mapping[str, str],
        *,
        reuse: bool,
    ) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
        """Send a request and read the status line. A kept connection the emulator closed
        while it was idle fails at once: the request then goes once more, on a new one."""
        connection = None
        if reuse:
            connection, self._idle = self._idle, None
        stale_allowed = connection is not None
        while True:
            try:
                if connection is None:
                    connection = self._connect()
                connection.request(method, self._prefix + path, body, self._headers(headers))
                return connection.getresponse(), connection
            except (OSError, http.client.HTTPException) as error:
                if connection is not None:
                    connection.close()
                connection = None
                if stale_allowed and isinstance(error, ConnectionError):
                    stale_allowed = False
                    continue
                raise ControlPlaneUnreachable(self.url, error) from error

    def _read(self, response: http.client.HTTPResponse) -> Reply:
        try:
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise ControlPlaneUnreachable(self.url, error) from error
        found = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, decode_body(raw, found.get("content-type", "")), found)

    # --- the named calls -----------------------------------------------------------------------
    def _expect(self, what: str, reply: Reply, *statuses: int) -> Any:
        if reply.status not in statuses:
            raise ControlPlaneError(what, reply)
        return reply.body

    def _object(self, what: str, reply: Reply, *statuses: int) -> dict[str, Any]:
        body = self._expect(what, reply, *statuses)
        if not isinstance(body, dict):
            raise ControlPlaneError(what + " (not a JSON object)", reply)
        return body

    def health(self) -> dict[str, Any]:
        """``GET /_emulator/health``: ready (200) with where each listener is."""
        return self._object("health", self.request("GET", "/health"), 200)

    def reset(self, imsi: str | None = None) -> None:
        """``POST /_emulator/reset``: everything back to a first start, or one SIM's data."""
        if imsi is None:
            self._expect("reset", self.request("POST", "/reset"), 200)
        else:
            self._expect(f"reset {imsi}", self.request("POST", "/reset", {"imsi": imsi}), 200)

    def create_sim(self, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``POST /_emulator/sims`` with the API's camelCase ``fields``; the new SIM."""
        reply = self.request("POST", "/sims", dict(fields or {}))
        return self._object("create a SIM", reply, 201)

    def sim(self, imsi: str) -> dict[str, Any]:
        """``GET /_emulator/sims/{imsi}``: the SIM, its session address and writes today."""
        reply = self.request("GET", "/sims/" + quote(imsi, safe=""))
        return self._object(f"SIM {imsi}", reply, 200)

    def find_sim(self, imsi: str) -> dict[str, Any] | None:
        """As :meth:`sim`, ``None`` if there is no such SIM."""
        try:
            return self.sim(imsi)
        except ControlPlaneError as error:
            if error.status == 404 and not error.switched_off:
                return None
            raise

    def ensure_sim(self, imsi: str) -> dict[str, Any]:
        """The SIM with this IMSI, created with the emulator's defaults if it does not exist."""
        found = self.find_sim(imsi)
        if found is not None:
            return found
        reply = self.request("POST", "/sims", {"imsi": imsi})
        if reply.status == 409:  # created meanwhile by someone else
            found = self.find_sim(imsi)
            if found is not None:
                return found
        return self._object(f"create SIM {imsi}", reply, 201)

    def ensure_sims(self, imsis: Sequence[str], chunk: int = 1000) -> list[dict[str, Any]]:
        """The SIMs with these IMSIs, in order, those that do not exist created with the
        emulator's defaults: ``POST /_emulator/sims?existing=keep`` with arrays of ``chunk``
        (one commit each, where one SIM at a time costs a commit each)."""
        sims: list[dict[str, Any]] = []
        for start in range(0, len(imsis), chunk):
            part = [{"imsi": imsi} for imsi in imsis[start : start + chunk]]
            what = f"create SIMs {part[0]['imsi']}..."
            body = self._expect(what, self.request("POST", "/sims?existing=keep", part), 201)
            if not isinstance(body, list):
                raise ControlClientError(what + ": the answer is not a JSON array")
            sims.extend(body)
        return sims

    def create_operator(self, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``POST /_emulator/operators``: its id and credentials (``authKeyId``, ``authKey``)."""
        reply = self.request("POST", "/operators", dict(fields or {}))
        return self._object("create an operator", reply, 201)

    def clock(self) -> dict[str, Any]:
        """``GET /_emulator/clock``: ``{"now": <ms>, "frozen": bool, "iso": "..."}``."""
        return self._object("read the clock", self.request("GET", "/clock"), 200)

    def set_clock(self, now_ms: int | None = None, *, frozen: bool | None = None) -> dict[str, Any]:
        """``PUT /_emulator/clock``: jump to ``now_ms`` and/or (un)freeze; ``None`` leaves it."""
        body: dict[str, Any] = {}
        if now_ms is not None:
            body["now"] = now_ms
        if frozen is not None:
            body["frozen"] = frozen
        return self._object("set the clock", self.request("PUT", "/clock", body), 200)

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """``POST /_emulator/clock/advance``; every UTC midnight on the way is run first."""
        reply = self.request("POST", "/clock/advance", {"seconds": seconds})
        return self._object("advance the clock", reply, 200)

    def set_link(
        self, imsi: str, profile: str | None = None, figures: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """``PUT /_emulator/sims/{imsi}/link``: a built-in ``profile`` (``lte``, ``lte-m``,
        ``nb-iot``, ``3g``), with ``figures`` (``rttMs``, ``jitterMs``, ``loss``,
        ``uplinkKbps``, ``downlinkKbps``, ``distribution``) overriding it or making a custom one."""
        body = {**({} if profile is None else {"profile": profile}), **(figures or {})}
        reply = self.request("PUT", f"/sims/{quote(imsi, safe='')}/link", body)
        return self._object(f"set the link of SIM {imsi}", reply, 200)

    def clear_link(self, imsi: str) -> None:
        """``DELETE /_emulator/sims/{imsi}/link``: the SIM's link is its group's, or unshaped."""
        reply = self.request("DELETE", f"/sims/{quote(imsi, safe='')}/link")
        self._expect(f"clear the link of SIM {imsi}", reply, 204)

    def set_group_link(
        self, group_id: str, profile: str | None = None, figures: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """``PUT /_emulator/groups/{group_id}/link``: as :meth:`set_link`, for every SIM of the
        group that has no profile of its own."""
        body = {**({} if profile is None else {"profile": profile}), **(figures or {})}
        reply = self.request("PUT", f"/groups/{quote(group_id, safe='')}/link", body)
        return self._object(f"set the link of group {group_id}", reply, 200)

    def clear_group_link(self, group_id: str) -> None:
        reply = self.request("DELETE", f"/groups/{quote(group_id, safe='')}/link")
        self._expect(f"clear the link of group {group_id}", reply, 204)

    def add_fault(self, rule: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /_emulator/faults``: the rule as the emulator stored it (with its ``id``)."""
        reply = self.request("POST", "/faults", dict(rule))
        return self._object("add a fault", reply, 200, 201)

    def faults(self) -> Any:
        """``GET /_emulator/faults``: the rules in force, with how often each fired."""
        return self._expect("list the faults", self.request("GET", "/faults"), 200)

    def remove_fault(self, rule_id: str) -> None:
        """``DELETE /_emulator/faults/{id}``."""
        reply = self.request("DELETE", "/faults/" + quote(rule_id, safe=""))
        self._expect(f"remove fault {rule_id}", reply, 200, 204)

    def clear_faults(self) -> None:
        """``DELETE /_emulator/faults``: every rule off."""
        self._expect("clear the faults", self.request("DELETE", "/faults"), 200, 204)

    @contextmanager
    def export_snapshot(self) -> Iterator[Iterator[bytes]]:
        """``GET /_emulator/snapshot``: the snapshot's bytes a chunk at a time, as they come.
        A body cut short raises :class:`ControlPlaneBrokeOff` while it is read."""
        response, connection = self._send("GET", "/snapshot", None, {}, reuse=False)
        try:
            if response.status != 200:
                raise ControlPlaneError("export a snapshot", self._read(response))
            yield self._chunks(response)
        finally:
            connection.close()

    def _chunks(self, response: http.client.HTTPResponse) -> Iterator[bytes]:
        while True:
            try:
                chunk = response.read(STREAM_CHUNK)
            except (OSError, http.client.HTTPException) as error:
                raise ControlPlaneBrokeOff(self.url, error) from error
            if not chunk:
                return
            yield chunk

    def import_snapshot(self, path: Path, *, content_type: str) -> dict[str, Any]:
        """``PUT /_emulator/snapshot`` with the file at ``path``; the emulator's answer
        (``{"imported": {...}}``) once it has applied it."""
        with path.open("rb") as handle:
            size = path.stat().st_size
            headers = {"Content-Type": content_type, "Content-Length": str(size)}
            response, connection = self._send("PUT", "/snapshot", handle, headers, reuse=False)
            try:
                reply = self._read(response)
            finally:
                connection.close()
        return self._object("import a snapshot", reply, 200)
