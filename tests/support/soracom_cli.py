"""A re-enactment of what soracom-cli sends, for tests where the Go binary cannot be installed.

Modelled on soracom/soracom-cli ``generators/cmd/predefined/apiclient.go``,
``api_credentials_source.go`` and the generated commands (``data_get.go``,
``subscribers_set_group.go``, ``subscribers_unset_group.go``, ``groups_put_config.go``), and on
notes real-service.md sections 3 and 4:

* the endpoint is ``$SORACOM_ENDPOINT`` with the base path ``/v1`` appended;
* every command first sends ``POST /v1/auth`` with ``{"authKeyId","authKey"}`` (Go
  ``json.Marshal`` of a struct with ``omitempty`` pointers: compact, in that field order, never
  ``tokenTimeoutSeconds``). There is no token cache;
* every request carries ``User-Agent: soracom-cli/<version>`` and ``X-Soracom-Lang: en``; the
  API calls add ``X-Soracom-Api-Key`` and ``X-Soracom-Token`` (Go canonicalises header names);
  ``Content-Type`` is sent only when the command has a body; Go's transport adds
  ``Accept-Encoding: gzip`` and no ``Accept``;
* query parameters are sent only when they differ from the flag's zero value (``""``/``0``), and
  ``url.Values.Encode`` sorts them by name and escapes them as ``QueryEscape`` does; path
  parameters are escaped as ``url.PathEscape`` does;
* ``--fetch-all`` repeats the call, setting ``last_evaluated_key`` from the
  ``x-soracom-next-key`` response header while it is non-empty, and concatenates the arrays;
  it never reads ``link``;
* a status of 429 or 500 and above is retried after sleeping 10, 10, 20, 30 and 50 seconds
  (unless ``--no-retry-on-error``); any status of 400 and above ends the command with the raw
  body as its error.

One difference stays: Go writes ``/v1/auth?`` (``constructURL`` appends ``?`` even to an empty
query) and yarl drops a bare ``?``. :func:`go_request_line` gives the exact request target so a
raw-socket test can send it.

:func:`parse_link_header` is soracom-sdk-go's ``parseLinkHeader``, translated line by line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import aiohttp
from yarl import URL

CLI_VERSION = "1.2.3"
BASE_PATH = "/v1"
NEXT_KEY_HEADER = "x-soracom-next-key"
LAST_EVALUATED_KEY = "last_evaluated_key"
RETRY_BACKOFF_S = (10, 10, 20, 30, 50)

Sleep = Callable[[float], Awaitable[None]]


class CliError(Exception):
    """What the CLI prints and exits non-zero with: the response body, verbatim."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(body)
        self.status = status
        self.body = body

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Sent:
    """One request as the CLI sent it, and what came back."""

    method: str
    target: str
    headers: dict[str, str]
    body: str
    status: int
    response_headers: dict[str, str]


def path_escape(value: str) -> str:
    """Go ``url.PathEscape``: unreserved characters and ``$&+:=@`` stay as they are."""
    return quote(value, safe="$&+:=@")


def encode_query(query: dict[str, str]) -> str:
    """Go ``url.Values.Encode``: sorted by key, ``QueryEscape`` (space as ``+``)."""
    return urlencode(sorted(query.items()))


def go_request_line(method: str, path: str, query: dict[str, str]) -> str:
    """The request line Go writes: ``constructURL`` always appends ``?`` and the query."""
    return f"{method} {BASE_PATH}{path}?{encode_query(query)} HTTP/1.1"


def set_if(query: dict[str, str], name: str, value: str | int | None) -> None:
    """Generated commands add a parameter only when the flag is not its zero value."""
    if value is None or value == "" or value == 0:
        return
    query[name] = str(value)


async def no_sleep(seconds: float) -> None:
    raise AssertionError(f"soracom-cli would now sleep {seconds} s and retry (a 429 or 5xx answer)")


@dataclass
class SoracomCli:
    """``SORACOM_ENDPOINT=<endpoint> soracom <command> --auth-key-id ... --auth-key ...``.

    Each method is one CLI invocation and returns what the CLI would pretty-print (parsed JSON),
    or ``None`` for an empty body; failures raise :class:`CliError`. ``sent`` records every
    request of every invocation.
    """

    session: aiohttp.ClientSession
    endpoint: str
    auth_key_id: str
    auth_key: str
    version: str = CLI_VERSION
    language: str = "en"
    sleep: Sleep = no_sleep
    no_retry_on_error: bool = False
    sent: list[Sent] = field(default_factory=list)

    # --- the apiClient ------------------------------------------------------------------------
    def _headers(
        self, content_type: str | None, credentials: tuple[str, str] | None
    ) -> dict[str, str]:
        headers = {"User-Agent": f"soracom-cli/{self.version}"}
        if content_type:
            headers["Content-Type"] = content_type
        if credentials is not None:
            headers["X-Soracom-Api-Key"] = credentials[0]
            headers["X-Soracom-Token"] = credentials[1]
        if self.language:
            headers["X-Soracom-Lang"] = self.language
        headers["Accept-Encoding"] = "gzip"  # added by Go's http.Transport
        return headers

    async def _do(
        self, method: str, url: URL, headers: dict[str, str], body: str
    ) -> tuple[int, dict[str, str], str]:
        skip = ["Accept", "Accept-Encoding", "User-Agent"]
        if "Content-Type" not in headers:
            skip.append("Content-Type")  # aiohttp would add application/octet-stream
        async with self.session.request(
            method,
            url,
            data=body.encode() if body else None,
            headers=headers,
            skip_auto_headers=skip,
        ) as response:
            text = (await response.read()).decode()
            got = {k.lower(): v for k, v in response.headers.items()}
        self.sent.append(Sent(method, url.raw_path_qs, headers, body, response.status, got))
        return response.status, got, text

    async def _request(
        self, method: str, url: URL, headers: dict[str, str], body: str
    ) -> tuple[int, dict[str, str], str]:
        if self.no_retry_on_error:
            return await self._do(method, url, headers, body)
        for wait in RETRY_BACKOFF_S:
            status, got, text = await self._do(method, url, headers, body)
            if not (status == 429 or status >= 500):
                return status, got, text
            await self.sleep(wait)
        raise CliError(0, "unable to receive successful response with some retires")

    async def call_api(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        *,
        body: str = "",
        content_type: str | None = None,
        credentials: tuple[str, str] | None = None,
        fetch_all: bool = False,
    ) -> str:
        """``apiClient.callAPI``: one request, or the ``--fetch-all`` loop."""
        params = dict(query or {})
        result = ""
        while True:
            url = URL(self.endpoint + BASE_PATH + path, encoded=True)
            if params:
                url = URL(f"{url}?{encode_query(params)}", encoded=True)
            headers = self._headers(content_type, credentials)
            status, got, text = await self._request(method, url, headers, body)
            if status >= 400:
                raise CliError(status, text)
            if not fetch_all:
                return text
            result = text if result == "" else json.dumps(json.loads(result) + json.loads(text))
            next_key = got.get(NEXT_KEY_HEADER, "")
            if next_key == "":
                return result
            params[LAST_EVALUATED_KEY] = next_key

    async def authenticate(self) -> tuple[str, str]:
        """``credentialsSourceWithAuthKeyIDAndAuthKey``: ``POST /v1/auth`` on every command."""
        body = json.dumps(
            {"authKeyId": self.auth_key_id, "authKey": self.auth_key}, separators=(",", ":")
        )
        text = await self.call_api("POST", "/auth", body=body, content_type="application/json")
        result = json.loads(text)
        return result["apiKey"], result["token"]

    async def command(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        *,
        body: str = "",
        content_type: str | None = None,
        fetch_all: bool = False,
    ) -> Any:
        credentials = await self.authenticate()
        text = await self.call_api(
            method,
            path,
            query,
            body=body,
            content_type=content_type,
            credentials=credentials,
            fetch_all=fetch_all,
        )
        return json.loads(text) if text else None

    # --- commands -----------------------------------------------------------------------------
    async def data_get(
        self,
        imsi: str,
        *,
        from_: int = 0,
        to: int = 0,
        limit: int = 0,
        sort: str = "",
        last_evaluated_key: str = "",
        fetch_all: bool = False,
    ) -> Any:
        """``soracom data get --imsi X``: ``GET /v1/subscribers/{imsi}/data``."""
        query: dict[str, str] = {}
        set_if(query, LAST_EVALUATED_KEY, last_evaluated_key)
        set_if(query, "sort", sort)
        set_if(query, "from", from_)
        set_if(query, "limit", limit)
        set_if(query, "to", to)
        return await self.command(
            "GET", f"/subscribers/{path_escape(imsi)}/data", query, fetch_all=fetch_all
        )

    async def data_get_entries(
        self,
        resource_type: str,
        resource_id: str,
        *,
        from_: int = 0,
        to: int = 0,
        limit: int = 0,
        sort: str = "",
        fetch_all: bool = False,
    ) -> Any:
        """``soracom data get-entries --resource-type T --resource-id I``."""
        query: dict[str, str] = {}
        set_if(query, "sort", sort)
        set_if(query, "from", from_)
        set_if(query, "limit", limit)
        set_if(query, "to", to)
        path = f"/data/{path_escape(resource_type)}/{path_escape(resource_id)}"
        return await self.command("GET", path, query, fetch_all=fetch_all)

    async def data_get_entry(self, resource_type: str, resource_id: str, time: int) -> Any:
        path = f"/data/{path_escape(resource_type)}/{path_escape(resource_id)}/{time}"
        return await self.command("GET", path)

    async def data_delete_entry(self, resource_type: str, resource_id: str, time: int) -> Any:
        path = f"/data/{path_escape(resource_type)}/{path_escape(resource_id)}/{time}"
        return await self.command("DELETE", path)

    async def data_list_resource_metadata(
        self, *, resource_type: str = "", limit: int = 0, fetch_all: bool = False
    ) -> Any:
        query: dict[str, str] = {}
        set_if(query, "resource_type", resource_type)
        set_if(query, "limit", limit)
        return await self.command("GET", "/data/metadata/resources", query, fetch_all=fetch_all)

    async def subscribers_list(
        self, *, limit: int = 0, status_filter: str = "", fetch_all: bool = False
    ) -> Any:
        query: dict[str, str] = {}
        set_if(query, "limit", limit)
        set_if(query, "status_filter", status_filter)
        return await self.command("GET", "/subscribers", query, fetch_all=fetch_all)

    async def subscribers_get(self, imsi: str) -> Any:
        return await self.command("GET", f"/subscribers/{path_escape(imsi)}")

    async def subscribers_set_group(self, imsi: str, group_id: str) -> Any:
        body = json.dumps({"groupId": group_id}, separators=(",", ":"))
        return await self.command(
            "POST",
            f"/subscribers/{path_escape(imsi)}/set_group",
            body=body,
            content_type="application/json",
        )

    async def subscribers_unset_group(self, imsi: str) -> Any:
        """No body and no ``Content-Type`` (Go sends ``Content-Length: 0``)."""
        return await self.command("POST", f"/subscribers/{path_escape(imsi)}/unset_group")

    async def groups_list(self, *, limit: int = 0, fetch_all: bool = False) -> Any:
        query: dict[str, str] = {}
        set_if(query, "limit", limit)
        return await self.command("GET", "/groups", query, fetch_all=fetch_all)

    async def groups_create(self, body: str) -> Any:
        """``soracom groups create --body '<json>'`` (the body is sent verbatim)."""
        return await self.command("POST", "/groups", body=body, content_type="application/json")

    async def groups_get(self, group_id: str) -> Any:
        return await self.command("GET", f"/groups/{path_escape(group_id)}")

    async def groups_put_config(self, group_id: str, namespace: str, body: str) -> Any:
        """``soracom groups put-config --group-id G --namespace N --body '[{"key":..}]'``."""
        path = f"/groups/{path_escape(group_id)}/configuration/{path_escape(namespace)}"
        return await self.command("PUT", path, body=body, content_type="application/json")

    async def groups_delete_config(self, group_id: str, namespace: str, name: str) -> Any:
        path = (
            f"/groups/{path_escape(group_id)}/configuration/{path_escape(namespace)}"
            f"/{path_escape(name)}"
        )
        return await self.command("DELETE", path)

    async def groups_delete(self, group_id: str) -> Any:
        return await self.command("DELETE", f"/groups/{path_escape(group_id)}")

    # --- Harvest Files (files_put.go, files_get.go, files_list.go) -------------------------------
    async def files_put(
        self, path: str, body: str, *, content_type: str = "", scope: str = "private"
    ) -> Any:
        """``soracom files put --path P --body B --content-type T``: ``PUT`` the raw body."""
        escaped = f"/files/{path_escape(scope)}/{files_path_escape(path)}"
        return await self.command("PUT", escaped, body=body, content_type=content_type or None)

    async def files_get(self, path: str, *, scope: str = "private") -> str:
        """``soracom files get --path P``: Go's client follows the ``302`` to the download URL
        and the CLI prints the body as it is."""
        credentials = await self.authenticate()
        escaped = f"/files/{path_escape(scope)}/{files_path_escape(path)}"
        return await self.call_api("GET", escaped, credentials=credentials)

    async def files_list(
        self, path: str, *, limit: int = 0, scope: str = "private", fetch_all: bool = False
    ) -> Any:
        """``soracom files list --path P``: ``GET /files/{scope}/{path}/``; ``--path /`` is
        ``/files/private//``."""
        query: dict[str, str] = {}
        set_if(query, "limit", limit)
        escaped = f"/files/{path_escape(scope)}/{files_path_escape(path)}/"
        return await self.command("GET", escaped, query, fetch_all=fetch_all)

    async def files_find(self, prefix: str, *, limit: int = 0, fetch_all: bool = False) -> Any:
        """``soracom files find --scope private --prefix P``."""
        query = {"scope": "private", "prefix": prefix}
        set_if(query, "limit", limit)
        return await self.command("GET", "/files", query, fetch_all=fetch_all)


def files_path_escape(path: str) -> str:
    """soracom-cli ``harvest_files_path_escape.go``: every segment ``PathEscape``-d, empty ones
    (leading, trailing and double slashes) dropped (notes real-service.md section 5.2)."""
    return "/".join(path_escape(segment) for segment in path.split("/") if segment)


@dataclass(frozen=True)
class PaginationKeys:
    prev: str = ""
    next: str = ""


def parse_link_header(link_header: str) -> PaginationKeys | None:
    """soracom-sdk-go ``parseLinkHeader``, line by line.

    It splits on ``,`` then ``;``, trims ``<>`` from the URL, takes the URL's first
    ``last_evaluated_key`` (a Go index panic, here an ``IndexError``/``KeyError``, if there is
    none) and compares the text after the first ``=`` of the second part to ``next``/``prev``
    exactly, so ``rel="next"`` (quoted) or ``rel = next`` would not match.
    """
    if link_header == "":
        return None
    prev, next_ = "", ""
    for link in link_header.split(","):
        parts = link.split(";")
        url = parts[0].strip("<>")
        try:
            query = urlsplit(url).query
        except ValueError:
            continue
        lek = parse_qs(query, keep_blank_values=True)[LAST_EVALUATED_KEY][0]
        rel = parts[1].split("=")[1]
        if rel == "prev":
            prev = lek
        elif rel == "next":
            next_ = lek
    return PaginationKeys(prev, next_)


async def raw_http(
    host: str, port: int, request_lines: Sequence[str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP/1.1 request byte for byte (for request targets yarl would normalise)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = "\r\n".join([*request_lines, "Connection: close", "", ""]).encode()
        writer.write(head + body)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    header_block, _, payload = raw.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, payload
