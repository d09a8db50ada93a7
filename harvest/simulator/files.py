"""``harvest-emulator files put|get|list``: Harvest Files from the command line (docs/files.md,
docs/simulated-devices.md).

``put`` and ``get`` act as a device: from a SIM's session address, bound as ``device send``
binds it, to the device host ``harvest-files.soracom.io``, named in the ``Host`` header of a
request to the emulator's HTTP edge (the edge routes by ``Host``). ``list`` acts as a backend:
``listFiles`` through the SORACOM API, logged in with an operator's auth key. Bodies stream
both ways a piece at a time, so a firmware image is never held whole in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import aiohttp

from harvest import wire
from harvest.simulator.args import BINDING_HELP, add_sim_arguments, positive_float, sim_source
from harvest.simulator.devices import skip_headers
from harvest.simulator.target import DEFAULT_ENDPOINT, SimulatorError, Target, describe, family

#: Bytes per read of a local file or of a download.
CHUNK = 1 << 16
#: The operator credentials ``list`` logs in with: the emulator's own settings' environment
#: variables, else their defaults (docs/settings.md).
AUTH_KEY_ID_ENV, AUTH_KEY_ENV = "HARVEST_AUTH_KEY_ID", "HARVEST_AUTH_KEY"
DEFAULT_AUTH_KEY_ID, DEFAULT_AUTH_KEY = "keyId-harvest-emulator", "secret-harvest-emulator"
_RANGE = re.compile(r"(?:bytes=)?(?:(\d+)-(\d*)|-(\d+))")
_PAGE = 100


def byte_range(text: str) -> str:
    """``--range``: ``START-END``, ``START-`` or ``-LAST`` (optionally after ``bytes=``), as a
    ``Range`` header's value."""
    found = _RANGE.fullmatch(text.strip())
    if found is None or (found[2] and int(found[2]) < int(found[1])):
        raise argparse.ArgumentTypeError(f"not a byte range (START-END, START- or -LAST): {text!r}")
    return "bytes=" + found[0].removeprefix("bytes=")


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``files`` with ``put``, ``get`` and ``list`` on ``harvest-emulator``."""
    files = subparsers.add_parser(
        "files",
        help="upload, download and list Harvest Files",
        description="Harvest Files: upload and download as a SIM (on harvest-files.soracom.io), "
        "list through the SORACOM API.",
    )
    commands = files.add_subparsers(dest="files_command", metavar="COMMAND", required=True)
    put = commands.add_parser(
        "put",
        help="upload a file as a SIM",
        description="Upload FILE (- for stdin) as a SIM to PATH, or to the SIM's group's "
        "default path when no PATH is given, and print the reply. Exit status: 0 if stored "
        "(201 new, 200 replaced), 1 if refused, 2 if the emulator could not be reached or "
        "FILE read. " + BINDING_HELP,
    )
    put.add_argument("file", metavar="FILE", help="the local file to upload; - reads stdin")
    put.add_argument("path", metavar="PATH", nargs="?", help="where to store it, e.g. /logs/a.txt")
    put.add_argument(
        "--content-type",
        metavar="TYPE",
        help="the Content-Type ('' for none; default application/octet-stream)",
    )
    get = commands.add_parser(
        "get",
        help="download a file as a SIM",
        description="Download PATH as a SIM to stdout or to --output; with --range, only those "
        "bytes (206), as firmware-update code downloads in pieces. A refusal is printed on "
        "stderr. Exit status: 0 if downloaded (200, 206), 1 if refused (404, 416, ...), 2 if "
        "the emulator could not be reached or the output written. " + BINDING_HELP,
    )
    get.add_argument("path", metavar="PATH", help="the file to download, e.g. /ota/fw.bin")
    get.add_argument(
        "-o", "--output", metavar="FILE", type=Path, help="write here (whole or not at all)"
    )
    get.add_argument(
        "--range",
        type=byte_range,
        metavar="RANGE",
        help="bytes START-END (inclusive), START- or the -LAST bytes",
    )
    for command in (put, get):
        add_sim_arguments(command, "act")
    listing = commands.add_parser(
        "list",
        help="list a directory through the SORACOM API",
        description="List DIRECTORY (default /) through the SORACOM API's listFiles, logged in "
        f"with an operator's auth key (--auth-key-id and --auth-key, else ${AUTH_KEY_ID_ENV} "
        f"and ${AUTH_KEY_ENV}, else the emulator's defaults): size, last modified time and "
        "path, directories ending with /. Exit status: 0 if listed, 1 if refused (no such "
        "directory, the auth key refused), 2 if the emulator could not be reached.",
    )
    listing.add_argument("directory", metavar="DIRECTORY", nargs="?", default="/")
    listing.add_argument("--auth-key-id", metavar="ID", help="the operator's auth key id")
    listing.add_argument("--auth-key", metavar="SECRET", help="the operator's auth key")
    listing.add_argument("--json", action="store_true", help="print SORACOM's FileEntry objects")
    for command in (put, get, listing):
        command.add_argument(
            "--endpoint",
            default=DEFAULT_ENDPOINT,
            metavar="URL",
            help=f"the emulator's HTTP edge (default {DEFAULT_ENDPOINT})",
        )
        command.add_argument(
            "--control-token",
            metavar="TOKEN",
            help="X-Emulator-Token for a token-protected control plane",
        )
        command.add_argument(
            "--timeout",
            type=positive_float,
            default=10.0,
            metavar="SECONDS",
            help="the longest wait for the emulator at each step (default 10)",
        )


# --- the device side ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reply:
    """An answer that is not a file: its status and the text to show."""

    status: int
    text: str


async def _reply(response: aiohttp.ClientResponse) -> Reply:
    raw = await response.read()
    text = f"{response.status} {response.reason or ''}".rstrip()
    if raw:
        text += "\n" + raw.decode("utf-8", "replace")
    return Reply(response.status, text)


def _session(source: str | None, timeout: float) -> aiohttp.ClientSession:
    kwargs: dict[str, Any] = {}
    if source is not None:
        kwargs = {"local_addr": (source, 0), "family": family(source)}
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1, **kwargs),
        # no bound on the whole: a large file takes as long as it takes
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout),
    )


def device_url(target: Target, path: str | None) -> str:
    """A path on the device host, each segment percent-encoded; ``/`` for none."""
    return target.base + quote("/" + (path or "").lstrip("/"))


async def _unreachable(where: str, call: Callable[[], Awaitable[int]]) -> int:
    try:
        return await call()
    except TimeoutError:
        raise SimulatorError(f"no reply from {where}", 2) from None
    except (aiohttp.ClientError, OSError) as error:
        raise SimulatorError(f"cannot reach {where}: {describe(error)}", 2) from None


async def _stdin_chunks() -> AsyncIterator[bytes]:
    stdin = sys.stdin.buffer
    while chunk := await asyncio.to_thread(stdin.read, CHUNK):
        yield chunk


async def put(namespace: argparse.Namespace, target: Target, source: str | None) -> int:
    """``files put``: the reply on stdout, as ``device send`` prints it."""
    local: IO[bytes] | None = None
    if namespace.file != "-":
        try:
            local = await asyncio.to_thread(open, namespace.file, "rb")
        except OSError as error:
            raise SimulatorError(f"cannot read {namespace.file}: {error.strerror}", 2) from None
    content_type = namespace.content_type
    if content_type is None:
        content_type = "application/octet-stream"
    headers = {"Host": wire.FILES_HOST}
    if content_type:
        headers["Content-Type"] = content_type
    url = device_url(target, namespace.path)

    async def send() -> int:
        body: Any = _stdin_chunks() if local is None else local
        async with (
            _session(source, namespace.timeout) as session,
            session.put(
                url, data=body, headers=headers, skip_auto_headers=skip_headers(content_type)
            ) as response,
        ):
            reply = await _reply(response)
        print(reply.text, flush=True)
        return 0 if reply.status in (200, 201) else 1

    try:
        return await _unreachable(url, send)
    finally:
        if local is not None:
            local.close()


class _Output:
    """Where a download goes: stdout, or a temporary file beside ``path`` renamed over it
    once the whole answer is in (a failed download leaves ``path`` as it was)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: IO[bytes]
        if path is None:
            self._file = sys.stdout.buffer
        else:
            handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            self._temporary = Path(name)
            self._file = os.fdopen(handle, "wb")

    async def write(self, chunk: bytes) -> None:
        try:
            await asyncio.to_thread(self._file.write, chunk)
        except OSError as error:
            where = "stdout" if self.path is None else str(self.path)
            raise SimulatorError(f"cannot write {where}: {error.strerror}", 2) from None

    def finish(self, ok: bool) -> None:
        if self.path is None:
            self._file.flush()
            return
        self._file.close()
        if ok:
            os.replace(self._temporary, self.path)
        else:
            self._temporary.unlink(missing_ok=True)


async def get(namespace: argparse.Namespace, target: Target, source: str | None) -> int:
    """``files get``: the body on stdout or in ``--output``; a refusal on stderr."""
    headers = {"Host": wire.FILES_HOST}
    if namespace.range is not None:
        headers["Range"] = namespace.range
    url = device_url(target, namespace.path)
    try:
        output = _Output(namespace.output)
    except OSError as error:
        raise SimulatorError(f"cannot write {namespace.output}: {error.strerror}", 2) from None

    async def download() -> int:
        ok = False
        try:
            async with (
                _session(source, namespace.timeout) as session,
                session.get(url, headers=headers) as response,
            ):
                if response.status not in (200, 206):
                    print((await _reply(response)).text, file=sys.stderr, flush=True)
                    return 1
                received = 0
                async for chunk in response.content.iter_chunked(CHUNK):
                    await output.write(chunk)
                    received += len(chunk)
                ok = True
                status = f"{response.status} {response.reason or ''}".rstrip()
                where = response.headers.get("Content-Range")
        finally:
            output.finish(ok)
        if namespace.output is not None:
            part = f" ({where})" if where else ""
            print(f"{status}: {received} bytes{part} to {namespace.output}", flush=True)
        return 0

    return await _unreachable(url, download)


# --- the API --------------------------------------------------------------------------------------
def listing_path(directory: str) -> str:
    """``listFiles``' path for a directory (``//`` for the root, as soracom-cli sends it)."""
    inner = directory.strip("/")
    return "/v1/files/private/" + (quote(inner + "/") if inner else "/")


def _credentials(namespace: argparse.Namespace) -> tuple[str, str]:
    key_id = namespace.auth_key_id or os.environ.get(AUTH_KEY_ID_ENV) or DEFAULT_AUTH_KEY_ID
    key = namespace.auth_key or os.environ.get(AUTH_KEY_ENV) or DEFAULT_AUTH_KEY
    return key_id, key


async def _login(
    session: aiohttp.ClientSession, target: Target, key_id: str, key: str
) -> dict[str, str]:
    async with session.post(
        target.base + "/v1/auth", json={"authKeyId": key_id, "authKey": key}
    ) as response:
        if response.status != 200:
            reply = await _reply(response)
            raise SimulatorError(
                f"the SORACOM API at {target.base} refused the auth key {key_id} "
                f"({reply.status}): give the operator's --auth-key-id and --auth-key, or set "
                f"{AUTH_KEY_ID_ENV} and {AUTH_KEY_ENV} (the emulator's banner shows its own)"
            )
        login = await response.json()
    return {"X-Soracom-API-Key": login["apiKey"], "X-Soracom-Token": login["token"]}


def _when(ms: Any) -> str:
    if not isinstance(ms, int):
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def entry_line(entry: dict[str, Any]) -> str:
    """One entry of a listing: size (``-`` for a directory), last modified (UTC), path."""
    size = "-" if entry.get("isDirectory") else str(entry.get("contentLength", "-"))
    return f"{size:>12}  {_when(entry.get('lastModifiedTime'))}  {entry.get('filePath')}"


async def list_files(namespace: argparse.Namespace, target: Target) -> int:
    """``files list``: every page of ``listFiles``, one line per entry (or JSON)."""
    key_id, key = _credentials(namespace)
    url = target.base + listing_path(namespace.directory)
    found: list[dict[str, Any]] = []

    async def fetch() -> int:
        async with _session(None, namespace.timeout) as session:
            headers = await _login(session, target, key_id, key)
            params = {"limit": str(_PAGE)}
            while True:
                async with session.get(url, headers=headers, params=params) as response:
                    if response.status != 200:
                        print((await _reply(response)).text, file=sys.stderr, flush=True)
                        return 1
                    found.extend(await response.json())
                    next_key = response.headers.get("x-soracom-next-key")
                if not next_key:
                    return 0
                params["last_evaluated_key"] = next_key

    code = await _unreachable(target.base + "/v1", fetch)
    if code == 0 and namespace.json:
        print(json.dumps(found, indent=2, ensure_ascii=False), flush=True)
    elif code == 0:
        print("".join(entry_line(entry) + "\n" for entry in found), end="", flush=True)
    return code


async def run(namespace: argparse.Namespace) -> int:
    """Run ``files put``, ``files get`` or ``files list``; the exit status."""
    target = Target.parse(namespace.endpoint)
    if namespace.files_command == "list":
        return await list_files(namespace, target)
    source = await sim_source(target, namespace.control_token, namespace.imsi, namespace.source)
    if namespace.files_command == "put":
        return await put(namespace, target, source)
    return await get(namespace, target, source)
