"""Harvest Files for a user's tests (docs/testing.md): switch Files on for a SIM's group,
upload and read back as that SIM on ``harvest-files.soracom.io``, and list and download
through the API, as a backend would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from harvest import wire
from harvest.control_client import Reply
from harvest.testing.transport import HarvestEmulatorError, expect, raw_http

#: The group namespace and key of Harvest Files, and the emulator's key for the default path
#: (docs/files.md).
NAMESPACE = "SoracomHarvestFiles"
DEFAULT_PATH_KEY = "defaultPath"


class Api(Protocol):
    """What these helpers need of the testing client's SORACOM API client."""

    @property
    def headers(self) -> dict[str, str]: ...

    def get(self, path: str, **params: Any) -> Reply: ...

    def put(self, path: str, body: Any = None, **params: Any) -> Reply: ...

    def pages(self, path: str, **params: Any) -> list[Any]: ...


class HarvestFiles:
    """``harvest_emulator.files``: Harvest Files as a device (the SIM's session address, the
    default SIM unless ``imsi`` is given) and as a backend (the logged-in API client)."""

    def __init__(
        self,
        api: Api,
        session_address: Callable[[str | None], str],
        host: str,
        port: int,
        timeout: float,
        default_imsi: str,
    ) -> None:
        self._default_imsi = default_imsi
        self._api = api
        self._session_address = session_address
        self._host = host
        self._port = port
        self._timeout = timeout

    def enable(self, imsi: str | None = None, *, default_path: str | None = None) -> None:
        """Switch Harvest Files on for the SIM's group (and set its default path)."""
        sim = expect(self._api.get(f"/subscribers/{imsi or self._default_imsi}"), "the SIM", 200)
        group_id = sim.get("groupId")
        if not group_id:
            raise HarvestEmulatorError(f"SIM {sim.get('imsi')} belongs to no group")
        body: list[dict[str, Any]] = [{"key": "enabled", "value": True}]
        if default_path is not None:
            body.append({"key": DEFAULT_PATH_KEY, "value": default_path})
        reply = self._api.put(f"/groups/{group_id}/configuration/{NAMESPACE}", body)
        expect(reply, "switching Harvest Files on", 200)

    def _device(
        self, method: str, path: str, imsi: str | None, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        sent = {"Host": wire.FILES_HOST, **headers}
        target = quote(path if path.startswith("/") else "/" + path)
        return raw_http(
            self._host, self._port, method, target, body=body, headers=sent,
            source=self._session_address(imsi), timeout=self._timeout,
        )  # fmt: skip

    def upload(
        self,
        path: str,
        body: bytes | str,
        content_type: str = "application/octet-stream",
        *,
        imsi: str | None = None,
    ) -> int:
        """``PUT`` a file as the SIM; ``201`` (new) or ``200`` (replaced), else an error."""
        data = body.encode() if isinstance(body, str) else body
        status, _, raw = self._device("PUT", path, imsi, data, {"Content-Type": content_type})
        if status not in (200, 201):
            raise HarvestEmulatorError(f"uploading {path}: {status} {raw!r}")
        return status

    def read(self, path: str, *, imsi: str | None = None, range: str | None = None) -> bytes:
        """A file's bytes as the SIM downloads them (``range``: ``"bytes=0-1023"``)."""
        headers = {} if range is None else {"Range": range}
        status, _, raw = self._device("GET", path, imsi, None, headers)
        if status not in (200, 206):
            raise HarvestEmulatorError(f"reading {path}: {status} {raw!r}")
        return raw

    def list(self, directory: str = "/") -> list[dict[str, Any]]:
        """Every entry of a directory through the API (``listFiles``, all pages)."""
        inner = quote(directory.strip("/"))
        return self._api.pages(f"/files/private/{inner}/" if inner else "/files/private//")

    def download(self, path: str) -> bytes:
        """A file through the API: ``getFile``'s redirect, followed."""
        target = f"{wire.API_PATH}/files/private/{quote(path.lstrip('/'))}"
        status, headers, raw = raw_http(
            self._host, self._port, "GET", target, headers=self._api.headers,
            timeout=self._timeout,
        )  # fmt: skip
        if status != 302:
            raise HarvestEmulatorError(f"getFile {path}: {status} {raw!r}")
        location = urlsplit(headers["location"])
        status, _, raw = raw_http(
            self._host, self._port, "GET", f"{location.path}?{location.query}",
            timeout=self._timeout,
        )  # fmt: skip
        if status != 200:
            raise HarvestEmulatorError(f"downloading {path}: {status} {raw!r}")
        return raw
